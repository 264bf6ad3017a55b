"""The drawing demo in a real browser: headless Chromium (Debian's package, which
tests/install_browser.sh installs) driven by Playwright draws with the mouse on the page that
`python -m supervised_reptile.demo` serves, with the model that ships in the package.

These tests do not skip when the browser is missing: they fail, saying so.

DEMO_SCREENSHOT=path.png makes the drawing test also save its screenshot there (the README's
picture is made so).
"""

import base64
import io
import math
import os
import shutil
import urllib.parse
import zipfile

import numpy as np
from PIL import Image
import pytest
from playwright.sync_api import sync_playwright

from supervised_reptile import images, omniglot
from supervised_reptile.demo.server import decode_drawing

from conftest import OMNIGLOT_MIRROR
from demo_server import running_demo

pytestmark = pytest.mark.slow  # a browser

BROWSER_FLAGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic',
                 '--no-first-run', '--disable-background-networking',
                 '--disable-component-update', '--disable-sync']
ANSWER_TIMEOUT_MS = 30000


def chromium_path():
    path = shutil.which('chromium') or shutil.which('chromium-browser')
    assert path, 'no chromium on PATH: run tests/install_browser.sh (Debian package chromium)'
    return path


@pytest.fixture(scope='module')
def demo_url():
    with running_demo() as url:
        yield url


@pytest.fixture(scope='module')
def browser():
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium_path(), args=BROWSER_FLAGS)
        yield browser
        browser.close()


@pytest.fixture
def requested():
    """The URLs of the requests the page makes, in order (the page fixture records them)."""
    return []


@pytest.fixture
def page(browser, demo_url, requested):
    page = browser.new_page(viewport={'width': 1280, 'height': 900})
    page.on('request', lambda request: requested.append(request.url))
    page.goto(demo_url)
    page.wait_for_selector('#classes canvas')
    yield page
    page.close()


def stroke(page, canvas, points):
    """Draw one stroke with the mouse through points given as fractions of the canvas."""
    canvas.scroll_into_view_if_needed()
    box = canvas.bounding_box()
    at = [(box['x'] + x * box['width'], box['y'] + y * box['height']) for x, y in points]
    page.mouse.move(*at[0])
    page.mouse.down()
    for point in at[1:]:
        page.mouse.move(*point, steps=2)
    page.mouse.up()


def circle(cx, cy, radius, points=36):
    return [(cx + radius * math.cos(2 * math.pi * i / points),
             cy + radius * math.sin(2 * math.pi * i / points)) for i in range(points + 1)]


def shown_probabilities(page):
    texts = page.locator('#classes .probability').all_inner_texts()
    return [float(text.rstrip('%')) / 100 for text in texts]


def test_a_drawn_circle_is_classified_as_the_circle_class(page, tmp_path):
    page.select_option('#ways', '3')
    bar, ring, cross = page.locator('#classes canvas').all()
    stroke(page, bar, [(0.5, 0.15), (0.5, 0.85)])
    stroke(page, ring, circle(0.5, 0.5, 0.3))
    stroke(page, cross, [(0.2, 0.2), (0.8, 0.8)])
    stroke(page, cross, [(0.8, 0.2), (0.2, 0.8)])
    assert 'Draw a query' in page.inner_text('#status')
    stroke(page, page.locator('#query canvas'), circle(0.52, 0.48, 0.27, points=30))
    page.wait_for_function("document.getElementById('status').textContent.includes('looks')",
                           timeout=ANSWER_TIMEOUT_MS)
    probabilities = shown_probabilities(page)
    screenshot = tmp_path / 'demo.png'
    page.screenshot(path=str(screenshot), full_page=True)
    if os.environ.get('DEMO_SCREENSHOT'):
        shutil.copyfile(screenshot, os.environ['DEMO_SCREENSHOT'])
    assert screenshot.stat().st_size > 0
    assert len(probabilities) == 3
    assert sum(probabilities) == pytest.approx(1, abs=0.01)
    assert np.argmax(probabilities) == 1, probabilities
    assert 'class 2' in page.inner_text('#status')
    assert page.locator('#classes .pad.winner').count() == 1


def test_the_page_asks_for_nothing_but_the_demos_own_address(page, demo_url, requested):
    """Loading the page and answering a drawn task, it requests nothing from anywhere else: no
    font, script or style sheet from the network."""
    page.select_option('#ways', '2')
    first, second = page.locator('#classes canvas').all()
    stroke(page, first, [(0.5, 0.15), (0.5, 0.85)])
    stroke(page, second, circle(0.5, 0.5, 0.3))
    stroke(page, page.locator('#query canvas'), circle(0.5, 0.5, 0.3))
    page.wait_for_function("document.getElementById('status').textContent.includes('looks')",
                           timeout=ANSWER_TIMEOUT_MS)
    own = urllib.parse.urlsplit(demo_url)
    paths = [urllib.parse.urlsplit(url).path for url in requested]
    assert {'/', '/demo.js', '/demo.css', '/predict'} <= set(paths), requested
    for url in requested:
        parts = urllib.parse.urlsplit(url)
        assert (parts.scheme, parts.netloc) == (own.scheme, own.netloc), url


def test_a_bad_request_shows_the_servers_message_and_the_page_goes_on(page):
    page.select_option('#ways', '2')
    first, second = page.locator('#classes canvas').all()
    stroke(page, first, [(0.5, 0.15), (0.5, 0.85)])
    stroke(page, second, circle(0.5, 0.5, 0.3))
    query = page.locator('#query canvas')
    # The page asks only once every box is inked; a blank query is sent by marking it inked.
    page.evaluate("""() => {
        window.demo.queryPad.inked = true;
        window.demo.predict();
    }""")
    page.wait_for_function("document.getElementById('status').className === 'error'",
                           timeout=ANSWER_TIMEOUT_MS)
    assert 'the query is blank' in page.inner_text('#status')
    page.click('#query button')
    stroke(page, query, circle(0.5, 0.5, 0.3))
    page.wait_for_function("document.getElementById('status').textContent.includes('looks')",
                           timeout=ANSWER_TIMEOUT_MS)
    assert page.get_attribute('#status', 'class') == ''


def stroke_width(ink):
    """The mean width of the strokes of a boolean ink image: its area over half its outline."""
    outline = np.sum(ink[1:] != ink[:-1]) + np.sum(ink[:, 1:] != ink[:, :-1])
    return 2 * np.sum(ink) / outline


def real_omniglot_pngs(folder_prefix, count, step=1):
    """The names and bytes of count PNGs under folder_prefix of the evaluation zip: every
    step-th in sorted order."""
    if not OMNIGLOT_MIRROR.is_dir():
        pytest.skip('the real Omniglot (../shared/data/omniglot/mirror) is not here')
    with zipfile.ZipFile(OMNIGLOT_MIRROR / 'images_evaluation.zip') as archive:
        names = sorted(n for n in archive.namelist()
                       if n.startswith(folder_prefix) and n.endswith('.png'))[::step][:count]
        return [(os.path.basename(name), archive.read(name)) for name in names]


def test_the_pen_draws_strokes_as_wide_as_omniglots(page):
    widths = [stroke_width(np.asarray(Image.open(io.BytesIO(png)).convert('L')) < 128)
              for _, png in real_omniglot_pngs('images_evaluation/', 200, step=60)]
    query = page.locator('#query canvas')
    stroke(page, query, circle(0.5, 0.5, 0.3))
    stroke(page, query, [(0.2, 0.2), (0.8, 0.8)])
    exported = page.evaluate('() => window.demo.exportDrawing(window.demo.queryPad.canvas)')
    drawing = Image.open(io.BytesIO(base64.b64decode(exported.split(',', 1)[1])))
    width = stroke_width(np.asarray(drawing.convert('L')) < 128)
    low, high = np.percentile(widths, [10, 90])
    assert low <= width <= high, (width, low, high)


def test_a_real_omniglot_image_through_the_page_is_what_the_loader_reads(page, tmp_path):
    pngs = real_omniglot_pngs('images_evaluation/Angelic/character01/', 3)
    character = tmp_path / 'omniglot' / 'Angelic' / 'character01'
    character.mkdir(parents=True)
    for name, png in pngs:
        (character / name).write_bytes(png)
    loaded = omniglot.read_dataset(str(tmp_path / 'omniglot'))
    for index, path in enumerate(sorted(character.iterdir())):
        source = 'data:image/png;base64,' + base64.b64encode(path.read_bytes()).decode('ascii')
        exported = page.evaluate("""async (source) => {
            const image = new Image();
            image.src = source;
            await image.decode();
            const canvas = window.demo.queryPad.canvas;
            canvas.getContext('2d').drawImage(image, 0, 0);
            return window.demo.exportDrawing(canvas);
        }""", source)
        array = images.to_array(decode_drawing(exported, 'the query'), 28, 1)
        np.testing.assert_array_equal(array, loaded.class_images(0)[index])
