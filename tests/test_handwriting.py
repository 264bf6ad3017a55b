"""handwriting.py: people's images framed as Omniglot frames its characters."""

import numpy as np
from PIL import Image, ImageDraw
import pytest

from supervised_reptile import handwriting
from supervised_reptile.handwriting import INK_SIDE, PAD, STROKE_WIDTH


def drawing(size=105, box=(30, 20, 70, 80), width=5, paper=255, ink=0):
    """An 'L' image of an L-shaped stroke and a ring in box (left, top, right, bottom)."""
    image = Image.new('L', (size, size), paper)
    draw = ImageDraw.Draw(image)
    left, top, right, bottom = box
    draw.line([(left, top), (left, bottom), (right, bottom)], fill=ink, width=width)
    middle = ((left + right) // 2, (top + bottom) // 2)
    radius = max(2, (right - left) // 4)
    draw.ellipse([middle[0] - radius, middle[1] - radius, middle[0] + radius,
                  middle[1] + radius], outline=ink, width=width)
    return image


def ink_of(framed):
    """The framed image's ink (True) after checking it is black on white, 105 a side."""
    array = np.asarray(framed)
    assert framed.mode == 'L' and array.shape == (PAD, PAD)
    assert set(np.unique(array)) <= {0, 255}
    return array == 0


def box(ink):
    rows, columns = np.flatnonzero(ink.any(axis=1)), np.flatnonzero(ink.any(axis=0))
    return rows[0], rows[-1] + 1, columns[0], columns[-1] + 1


def overlap(a, b):
    return (a & b).sum() / (a | b).sum()


def longer_side(ink):
    top, bottom, left, right = box(ink)
    return max(bottom - top, right - left)


def test_the_longer_side_becomes_omniglots_median_and_the_drawing_is_centred():
    for where in [(2, 3, 22, 40), (60, 70, 100, 100), (10, 10, 95, 50)]:
        framed = ink_of(handwriting.frame(drawing(box=where)))
        assert abs(longer_side(framed) - INK_SIDE) <= 2
        top, bottom, left, right = box(framed)
        assert abs((top + bottom) / 2 - PAD / 2) <= 1 and abs((left + right) / 2 - PAD / 2) <= 1


def test_the_aspect_ratio_is_kept():
    top, bottom, left, right = box(ink_of(handwriting.frame(drawing(box=(40, 10, 55, 90)))))
    assert abs(bottom - top - INK_SIDE) <= 2
    assert (right - left) / (bottom - top) == pytest.approx(15 / 80, abs=0.05)


def test_a_drawing_framed_and_stroked_as_omniglots_are_is_redrawn_in_place():
    y, x = np.mgrid[:PAD, :PAD]
    start = (PAD - INK_SIDE) // 2
    bar = (x >= start) & (x < start + 5) & (y >= start) & (y < start + INK_SIDE)
    ring = np.abs(np.hypot(y - 55, x - 60) - 20) < 2.5
    top = (y >= start) & (y < start + 5) & (x >= start) & (x < start + INK_SIDE)
    original = bar | ring | top
    assert box(original) == (start, start + INK_SIDE) * 2
    paper = Image.fromarray(np.where(original, 0, 255).astype(np.uint8), 'L')
    framed = ink_of(handwriting.frame(paper))
    assert overlap(framed, original) > 0.85
    assert overlap(framed, np.roll(original, 3, axis=1)) < 0.6  # a shift would show


def test_white_ink_on_dark_paper_is_read_as_black_ink_on_white():
    normal = ink_of(handwriting.frame(drawing()))
    inverted = ink_of(handwriting.frame(drawing(paper=10, ink=240)))
    assert overlap(inverted, normal) > 0.98


def test_a_grey_noisy_scan_is_read_as_the_clean_drawing():
    rng = np.random.default_rng(3)
    clean = np.asarray(drawing(size=140, box=(30, 30, 110, 120)), np.float32) / 255
    scan = 60 + (205 - 60) * clean + rng.normal(0, 10, clean.shape)
    framed = ink_of(handwriting.frame(Image.fromarray(np.clip(scan, 0, 255).astype(np.uint8))))
    reference = ink_of(handwriting.frame(drawing(size=140, box=(30, 30, 110, 120))))
    assert overlap(framed, reference) > 0.85


def test_ink_on_transparent_paper_and_in_colour_is_found():
    reference = ink_of(handwriting.frame(drawing()))
    ink = np.asarray(drawing()) == 0
    rgba = np.zeros(ink.shape + (4,), np.uint8)
    rgba[ink] = (0, 0, 255, 255)  # blue ink; the paper is transparent black
    framed = ink_of(handwriting.frame(Image.fromarray(rgba, 'RGBA')))
    assert overlap(framed, reference) > 0.95


@pytest.mark.parametrize('pen', [1, 2, 9, 21])
def test_any_pen_is_redrawn_with_omniglots_at_omniglots_size(pen):
    framed = ink_of(handwriting.frame(drawing(width=pen)))
    assert handwriting.stroke_width(framed) == pytest.approx(STROKE_WIDTH, rel=0.1)
    assert abs(longer_side(framed) - INK_SIDE) <= 2
    if pen < 10:  # a broader pen fills the ring
        assert overlap(framed, ink_of(handwriting.frame(drawing(width=5)))) > 0.5


def test_a_thumbnail_scaled_up_becomes_a_drawing_of_omniglots_size_and_pen():
    framed = ink_of(handwriting.frame(drawing(width=9).resize((12, 12), Image.BOX)))
    assert abs(longer_side(framed) - INK_SIDE) <= 2
    assert handwriting.stroke_width(framed) == pytest.approx(STROKE_WIDTH, rel=0.15)


def test_centre_lines_are_one_pixel_wide_and_keep_a_ring_closed():
    y, x = np.mgrid[:60, :60]
    ring = np.abs(np.hypot(y - 30, x - 30) - 20) < 5
    lines = handwriting.centre_lines(ring)
    assert lines.sum() == pytest.approx(2 * np.pi * 20, rel=0.15)
    inside = np.zeros_like(ring)
    inside[30, 30] = True
    for _ in range(30):  # flood from the centre: a closed line keeps the fill inside
        inside = handwriting.dilated(inside, 1) & ~lines
    assert not inside[0, 0] and inside.sum() < np.pi * 20 ** 2


def test_a_blank_or_nearly_blank_page_comes_back_as_blank_paper():
    rng = np.random.default_rng(0)
    faint = 250 + rng.integers(0, 4, (60, 80))
    for image in (Image.new('L', (50, 70), 200), Image.fromarray(faint.astype(np.uint8))):
        assert not ink_of(handwriting.frame(image)).any()


def test_stroke_width_measures_a_bar_of_known_width():
    bar = np.zeros((60, 60), bool)
    bar[10:50, 20:26] = True
    assert handwriting.stroke_width(bar) == pytest.approx(6, rel=0.15)


def test_uneven_light_and_noise_on_a_photo_of_paper_are_paper():
    rng = np.random.default_rng(5)
    clean = np.asarray(drawing(size=300, box=(90, 60, 210, 240), width=9), np.float32) / 255
    y, x = np.mgrid[:300, :300] / 300
    light = 215 - 70 * x - 40 * ((x - 0.5) ** 2 + (y - 0.5) ** 2)  # a falloff and a vignette
    photo = np.where(clean < 0.5, 60.0, light) + rng.normal(0, 8, clean.shape)
    framed = ink_of(handwriting.frame(Image.fromarray(np.clip(photo, 0, 255).astype(np.uint8))))
    reference = ink_of(handwriting.frame(drawing(size=300, box=(90, 60, 210, 240), width=9)))
    assert overlap(framed, reference) > 0.8


def test_a_box_drawn_around_the_picture_is_left_out_and_a_bar_along_one_edge_is_kept():
    boxed = drawing(size=150, box=(50, 40, 100, 110))
    ImageDraw.Draw(boxed).rectangle([3, 3, 146, 146], outline=0, width=2)
    reference = ink_of(handwriting.frame(drawing(size=150, box=(50, 40, 100, 110))))
    assert overlap(ink_of(handwriting.frame(boxed)), reference) > 0.9
    bar = Image.new('L', (100, 100), 255)
    ImageDraw.Draw(bar).line([(2, 3), (97, 3), (50, 96)], fill=0, width=5)  # a 7 filling it
    top, bottom, _, _ = box(ink_of(handwriting.frame(bar)))
    assert bottom - top >= INK_SIDE - 2 and handwriting.stroke_width(
        ink_of(handwriting.frame(bar))) == pytest.approx(STROKE_WIDTH, rel=0.15)
    assert ink_of(handwriting.frame(bar))[top:top + 6].sum() > 40  # the bar is there


def test_a_photos_orientation_tag_is_applied(tmp_path):
    upright = drawing(box=(20, 10, 60, 95))
    turned = upright.transpose(Image.Transpose.ROTATE_90)  # as a camera held sideways stores it
    exif = Image.Exif()
    exif[0x0112] = 6  # orientation: turn 90 degrees clockwise to show
    turned.save(tmp_path / 'photo.jpg', exif=exif, quality=95)
    with Image.open(tmp_path / 'photo.jpg') as photo:
        framed = ink_of(handwriting.frame(photo))
    assert overlap(framed, ink_of(handwriting.frame(upright))) > 0.8
