"""benchmarks/handwriting_styles.py: each way of handing in handwriting does what it says, the
same for the same seed, and a redrawn character stays nearer its own drawings than others'."""

import io
import itertools
import sys
import zipfile

import numpy as np
from PIL import Image, ImageDraw
import pytest

from conftest import OMNIGLOT_MIRROR, REPO_DIR

sys.path.insert(0, str(REPO_DIR / 'benchmarks'))
import handwriting_styles as styles  # pylint: disable=wrong-import-position,wrong-import-order

SEEDS = range(12)


def drawing():
    """An Omniglot-like drawing: an 'A' with Omniglot's pen on the 105-pixel pad."""
    pad = Image.new('1', (105, 105), 1)
    pen = ImageDraw.Draw(pad)
    pen.line([(25, 80), (50, 25), (78, 80)], fill=0, width=5)
    pen.line([(35, 60), (68, 60)], fill=0, width=5)
    return styles.omniglot_ink(pad)


def horizontal_line():
    """A stroke of Omniglot's width: rows 50-54, columns 20-85."""
    ink = np.zeros((105, 105), bool)
    ink[50:55, 20:86] = True
    return ink


def pixels(image):
    return np.asarray(image, float)


def ink_box(mask):
    """(top, bottom, left, right) of a mask's set pixels, bottom and right exclusive."""
    rows, columns = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
    return rows[0], rows[-1] + 1, columns[0], columns[-1] + 1


def stroke_width(mask):
    """Twice the area over the boundary's length: a long stroke's width."""
    edges = (mask[1:] != mask[:-1]).sum() + (mask[:, 1:] != mask[:, :-1]).sum()
    return 2 * mask.sum() / edges


def cropped_to_ink(image):
    """The square around the ink of a black-on-white image, centred on it: what is left of a
    drawing's shape once where and how large it was drawn is taken away."""
    top, bottom, left, right = ink_box(pixels(image) < 200)
    side = max(bottom - top, right - left)
    y, x = (top + bottom - side) // 2, (left + right - side) // 2
    return image.crop((x, y, x + side, y + side))


def mean_distances(drawings):
    """Mean Euclidean distance between drawings (lists of images, one list per class), each
    cropped to its ink and averaged down to 28x28 grey: between two drawings of a class, and
    between drawings of two classes; and the smallest distance within a class."""
    small = [[pixels(cropped_to_ink(image).resize((28, 28), Image.BOX)) / 255
              for image in images] for images in drawings]
    within = [np.linalg.norm(a - b) for images in small
              for a, b in itertools.combinations(images, 2)]
    between = [np.linalg.norm(a - b) for first, second in itertools.combinations(small, 2)
               for a, b in itertools.product(first, second)]
    return np.mean(within), np.mean(between), min(within)


@pytest.mark.parametrize('style', sorted(styles.OMNIGLOT_STYLES))
def test_a_style_draws_the_same_image_for_the_same_seed_and_another_for_another(style):
    restyle = styles.OMNIGLOT_STYLES[style]
    first = pixels(restyle(drawing(), np.random.default_rng(3)))
    np.testing.assert_array_equal(first, pixels(restyle(drawing(), np.random.default_rng(3))))
    others = [pixels(restyle(drawing(), np.random.default_rng(seed))) for seed in (4, 5)]
    assert any(other.shape != first.shape or (other != first).any() for other in others)


def test_generated_characters_and_digits_are_the_same_for_the_same_seed():
    def draw(seed):
        rng = np.random.default_rng(seed)
        character = styles.made_up_character(rng)
        return [pixels(styles.redraw(character, rng)),
                pixels(styles.write_digit(7, styles.writer(rng), rng))]
    for same, again in zip(draw(8), draw(8)):
        np.testing.assert_array_equal(same, again)


def test_small_in_a_corner_is_30_to_50_percent_of_the_frame_inside_one_quadrant():
    quadrants = set()
    for seed in SEEDS:
        image = styles.corner(drawing(), np.random.default_rng(seed))
        size = image.size[0]
        assert image.size == (size, size) and 105 <= size <= 200
        top, bottom, left, right = ink_box(pixels(image) < 250)
        assert 0.28 * size <= max(bottom - top, right - left) <= 0.5 * size
        vertical = 0 if bottom <= size / 2 else 1 if top >= size / 2 else None
        horizontal = 0 if right <= size / 2 else 1 if left >= size / 2 else None
        assert vertical is not None and horizontal is not None, (seed, top, bottom, left, right)
        quadrants.add((vertical, horizontal))
    assert len(quadrants) >= 3  # any corner, not always the same one


def test_filling_the_frame_puts_the_ink_across_at_least_90_percent_of_it():
    for seed in SEEDS:
        image = styles.fill(drawing(), np.random.default_rng(seed))
        size = image.size[0]
        assert image.size == (size, size) and 64 <= size <= 200
        top, bottom, left, right = ink_box(pixels(image) < 250)
        assert max(bottom - top, right - left) >= 0.89 * size


def test_a_thick_pen_is_2_5_to_4_times_as_wide_and_the_drawing_stays_whole():
    widths = []
    for seed in SEEDS:
        ink = pixels(styles.thick(horizontal_line(), np.random.default_rng(seed))) < 128
        columns = ink.sum(axis=0)
        widths.append(columns.max())
        margin = (ink.shape[1] - 105) // 2  # the pad is widened by the same on every side
        assert (columns[margin + 20:margin + 86] > 0).all()
    assert 2.4 * 5 <= min(widths) and max(widths) <= 4 * 5 + 1
    assert max(widths) - min(widths) >= 3  # the width varies from image to image


def test_a_thin_pen_is_about_half_as_wide_and_breaks_no_stroke():
    for seed in SEEDS:
        image = styles.thin(horizontal_line(), np.random.default_rng(seed))
        assert image.size == (105, 105)
        coverage = 1 - pixels(image) / 255
        across = coverage[:, 22:84].sum(axis=0)  # the stroke's width, column by column
        assert 2 <= across.min() and across.max() <= 3.3


def test_a_grey_scan_is_grey_paper_with_dark_grey_ink_not_black_and_white():
    for seed in SEEDS:
        image = pixels(styles.grey_scan(drawing(), np.random.default_rng(seed)))
        assert len(np.unique(image)) > 40
        assert 170 <= np.median(image) <= 245  # the paper
        assert np.percentile(image, 1) < 130  # the ink


def test_inverted_is_light_ink_on_dark_paper():
    for seed in SEEDS:
        image = pixels(styles.inverted(drawing(), np.random.default_rng(seed)))
        assert np.median(image) <= 45 and image.max() >= 210


def blur_from_20_pixels(image):
    """How far an image is from itself averaged down to 20x20 and scaled back up: small for
    an image with no more detail than 20x20 pixels hold."""
    back = image.resize((20, 20), Image.BOX).resize(image.size, Image.BILINEAR)
    return np.abs(pixels(image) - pixels(back)).mean()


def test_low_resolution_holds_no_more_detail_than_20_pixels_a_side():
    for seed in SEEDS:
        image = styles.low_res(drawing(), np.random.default_rng(seed))
        size = image.size[0]
        assert image.size == (size, size) and 64 <= size <= 128
        assert blur_from_20_pixels(image) < 6
        assert len(np.unique(pixels(image))) > 10  # smooth, not blocks of black and white
    # The measure tells: the drawing scaled without the thumbnail step holds finer detail.
    assert blur_from_20_pixels(Image.fromarray(~drawing()).convert('L').resize((96, 96))) > 9


def test_redrawings_of_a_character_differ_but_less_than_from_other_characters():
    rng = np.random.default_rng(0)
    characters = [styles.made_up_character(rng) for _ in range(8)]
    for character in characters:
        assert 2 <= len(character) <= 4
    drawings = [[styles.redraw(character, rng) for _ in range(4)] for character in characters]
    within, between, closest = mean_distances(drawings)
    assert closest > 0.5  # no two drawings alike
    # Real Omniglot measures 0.80-0.85; drawings that ignore their character, about 1.
    assert within < 0.92 * between


def test_a_digit_is_written_filling_a_small_grey_scan_white_on_black_if_asked():
    rng = np.random.default_rng(1)
    for digit in range(10):
        person = styles.writer(rng)
        image = styles.write_digit(digit, person, rng)
        size = image.size[0]
        assert image.size == (size, size) and 8 <= size <= 20
        values = pixels(image)
        assert len(np.unique(values)) > 3 and np.median(values) > 200
        top, bottom, left, right = ink_box(values < 230)
        assert bottom - top >= 0.75 * size  # digits are tall: the height fills the frame
        white = pixels(styles.write_digit(digit, person, rng, white_on_black=True))
        assert np.median(white) < 55 and white.max() > 150


def test_digits_by_other_writers_are_nearer_the_same_digit_than_other_digits():
    rng = np.random.default_rng(2)
    people = [styles.writer(rng) for _ in range(4)]
    drawings = [[styles.write_digit(digit, person, rng) for person in people]
                for digit in range(10)]
    within, between, closest = mean_distances(drawings)
    assert closest > 0.3
    assert within < 0.92 * between


@pytest.mark.skipif(not OMNIGLOT_MIRROR.is_dir(),
                    reason='the real Omniglot (../shared/data/omniglot/mirror) is not here')
def test_pens_change_the_width_of_real_omniglot_strokes_by_their_factors():
    with zipfile.ZipFile(OMNIGLOT_MIRROR / 'images_background.zip') as archive:
        names = sorted(n for n in archive.namelist() if n.endswith('.png'))[::1500]
        drawings = [styles.omniglot_ink(Image.open(io.BytesIO(archive.read(n)))) for n in names]
    thick, thin = [], []
    for seed, ink in enumerate(drawings):
        width = stroke_width(ink)
        thick.append(stroke_width(pixels(styles.thick(ink, np.random.default_rng(seed))) < 128)
                     / width)
        thin.append(stroke_width(pixels(styles.thin(ink, np.random.default_rng(seed))) < 128)
                    / width)
    assert 2.3 <= np.median(thick) <= 4.3
    assert 0.4 <= np.median(thin) <= 0.75
