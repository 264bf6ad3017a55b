"""
Handwriting as people hand it in, for benchmarks/people_handwriting.py: Omniglot's drawings
restyled (small in a corner, filling the frame, a thick or a thin pen, a grey scan, white on
black, a thumbnail), made-up characters redrawn by hand, and digits written and scanned small.

NumPy, Pillow and the package's handwriting.py only, so that the tests import it without
TensorFlow. Every function draws the parameters of each image from the Generator it is given: a
style is one way of handing images in, and its parameters vary from image to image as one
person's do. Images come back as PIL
'L' images, dark ink on light paper unless the style says otherwise.
"""

from dataclasses import dataclass
import io
import math

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

from supervised_reptile import handwriting

OMNIGLOT_PEN = 5.0  # pixels: the width of Omniglot's strokes on its 105-pixel pad
SUPERSAMPLING = 4   # strokes are drawn at 4x and averaged down: antialiased edges


def omniglot_ink(image):
    """The ink of an Omniglot drawing (a 1-bit PIL image, ink black): a boolean array."""
    return ~np.asarray(image.convert('1'))


# Omniglot's drawings, handed in other ways. Each takes the drawing's ink and a Generator.

def corner(ink, rng):
    """Drawn small: the longer side of the character 30-50% of a 105-200 pixel frame, inside
    one of the frame's quadrants."""
    size = int(rng.integers(105, 201))
    character = _resized(_cropped(ink), rng.uniform(0.3, 0.5) * size)
    half = size // 2
    top = rng.integers(2) * (size - half) + rng.integers(half - character.shape[0] + 1)
    left = rng.integers(2) * (size - half) + rng.integers(half - character.shape[1] + 1)
    return _on_paper(_pasted(character, size, top, left))


def fill(ink, rng):
    """Cropped to the ink: the character's longer side 90-100% of a 64-200 pixel frame."""
    size = int(rng.integers(64, 201))
    character = _resized(_cropped(ink), rng.uniform(0.9, 1.0) * size)
    top = rng.integers(size - character.shape[0] + 1)
    left = rng.integers(size - character.shape[1] + 1)
    return _on_paper(_pasted(character, size, top, left))


def thick(ink, rng):
    """A pen 2.5-4 times as wide as Omniglot's: the ink dilated, the pad widened to hold it."""
    radius = (rng.uniform(2.5, 4) - 1) * OMNIGLOT_PEN / 2
    return _on_paper(handwriting.dilated(np.pad(ink, math.ceil(radius)), radius).astype(float))


def thin(ink, rng):
    """A pen 40-60% as wide as Omniglot's: the drawing at 3x, its strokes eroded, and averaged
    back to 105 pixels (grey edges). Omniglot's pen is even: strokes get thinner, none vanishes
    (on a sample of its drawings, at most 1% of a drawing's ink was in parts too thin)."""
    big = _resized(ink.astype(float), 3 * ink.shape[0]) > 0.5
    radius = 3 * OMNIGLOT_PEN * (1 - rng.uniform(0.4, 0.6)) / 2
    return _on_paper(_resized(_eroded(big, radius).astype(float), ink.shape[0]))


def grey_scan(ink, rng):
    """A scan or photo of the page: grey paper (180-235) unevenly lit and noisy, dark grey ink
    (20-80) slightly blurred and turned (up to 4 degrees), saved as a JPEG, 105-160 pixels."""
    size = int(rng.integers(105, 161))
    turned = Image.fromarray(ink.astype(np.float32)).rotate(rng.uniform(-4, 4), Image.BILINEAR)
    coverage = _resized(np.asarray(turned), size)
    coverage = np.asarray(Image.fromarray((coverage * 255).astype(np.uint8)).filter(
        ImageFilter.GaussianBlur(rng.uniform(0.4, 1.2)))) / 255
    paper = rng.uniform(180, 235) + _lighting(size, rng.uniform(0, 15), rng)
    pixels = paper + (rng.uniform(20, 80) - paper) * coverage
    pixels += rng.normal(0, rng.uniform(2, 6), pixels.shape)
    return _jpeg(_grey(pixels), int(rng.integers(40, 86)))


def inverted(ink, rng):
    """White ink on black paper (chalk on a board, a dark-mode drawing app): ink 215-255 on
    paper 0-40, 80-160 pixels."""
    coverage = _resized(ink.astype(float), rng.integers(80, 161))
    board = rng.uniform(0, 40)
    return _grey(board + (rng.uniform(215, 255) - board) * coverage)


def low_res(ink, rng):
    """A thumbnail scaled up: the pad averaged down to 12-20 pixels, then scaled to 64-128 with
    bilinear interpolation (blurry blocks). Omniglot's framing is kept."""
    small, large = rng.integers(12, 21), rng.integers(64, 129)
    return _on_paper(ink.astype(float)).resize((small, small), Image.BOX).resize(
        (large, large), Image.BILINEAR)


OMNIGLOT_STYLES = {'corner': corner, 'fill': fill, 'thick': thick, 'thin': thin,
                   'grey-scan': grey_scan, 'inverted': inverted, 'low-res': low_res}


# Made-up characters, each image a redrawing by hand of the character's prototype.

def made_up_character(rng):
    """A prototype: 2-4 pen strokes in the unit box, each an array of control points and
    whether a smooth curve (True) or a polyline (False) goes through them. A stroke starts at a
    point of an earlier one, more often than not, so that the strokes make one character."""
    strokes = []
    for _ in range(rng.integers(2, 5)):
        smooth = bool(rng.random() < 0.6)
        if strokes and rng.random() < 0.6:
            points, _ = strokes[rng.integers(len(strokes))]
            start = points[rng.integers(len(points))]
        else:
            start = rng.uniform(0.15, 0.85, 2)
        strokes.append((_walk(start, smooth, rng), smooth))
    # Enlarged to fill the box, as a person draws a character at the size of the pad.
    corners = np.concatenate([points for points, _ in strokes])
    low, high = corners.min(axis=0), corners.max(axis=0)
    scale = 0.8 / max(np.max(high - low), 0.2)  # a walk stuck in a corner is not blown up
    return [((points - (low + high) / 2) * scale + 0.5, smooth) for points, smooth in strokes]


def redraw(character, rng):
    """The character drawn again by hand on a 64-200 pixel canvas: its control points and
    strokes moved a little, another pen (2.5-6% of the canvas), and the whole shifted, scaled
    (0.6-1.1), turned (up to 15 degrees) and slanted."""
    size = int(rng.integers(64, 201))
    transform = _transform(rng.uniform(0.6, 1.1), rng.uniform(-15, 15), rng.uniform(-0.25, 0.25),
                           aspect=1)
    centre = 0.5 + rng.normal(0, 0.04, 2)
    paths = []
    for points, smooth in character:
        moved = points + rng.normal(0, 0.025, points.shape) + rng.normal(0, 0.02, 2)
        path = _curve(moved) if smooth else moved
        # The unit box spans 75% of the canvas at scale 1.
        paths.append(((path - 0.5) @ transform.T * 0.75 + centre) * size)
    return _drawn(paths, size, rng.uniform(0.025, 0.06) * size)


def _walk(start, smooth, rng):
    """Control points from start: 2-4 steps of 30-60% of the box for a curve, turning gently,
    1-3 for a polyline, turning sharply; kept inside the box."""
    points, heading = [np.asarray(start, float)], rng.uniform(0, 2 * np.pi)
    for _ in range(rng.integers(2, 5) if smooth else rng.integers(1, 4)):
        heading += rng.normal(0, 0.8) if smooth else rng.choice([-1, 1]) * rng.uniform(0.6, 2.2)
        step = rng.uniform(0.3, 0.6) * np.array([np.cos(heading), np.sin(heading)])
        points.append(np.clip(points[-1] + step, 0.05, 0.95))
    return np.array(points)


# Digits written by hand and scanned small. Strokes of each digit in a box 0.6 wide and 1 high,
# y downwards: (control points, smooth).

_OVAL = [(0.3 + 0.3 * math.sin(t), 0.5 - 0.5 * math.cos(t))
         for t in np.linspace(0, 2 * np.pi, 8, endpoint=False)]
DIGITS = {
    0: [(_OVAL + _OVAL[:1], True)],
    1: [([(0.12, 0.22), (0.38, 0.0), (0.38, 1.0)], False)],
    2: [([(0.03, 0.25), (0.25, 0.02), (0.52, 0.12), (0.5, 0.42), (0.0, 1.0)], True),
        ([(0.0, 1.0), (0.6, 1.0)], False)],
    3: [([(0.05, 0.1), (0.3, 0.0), (0.55, 0.17), (0.45, 0.4), (0.22, 0.47)], True),
        ([(0.22, 0.47), (0.52, 0.6), (0.55, 0.85), (0.3, 1.0), (0.02, 0.9)], True)],
    4: [([(0.45, 1.0), (0.45, 0.0), (0.0, 0.68), (0.6, 0.68)], False)],
    5: [([(0.56, 0.0), (0.1, 0.0), (0.05, 0.45)], False),
        ([(0.05, 0.45), (0.3, 0.37), (0.56, 0.55), (0.55, 0.85), (0.3, 1.0), (0.02, 0.9)], True)],
    6: [([(0.5, 0.0), (0.2, 0.25), (0.03, 0.65), (0.15, 0.97), (0.45, 0.95), (0.57, 0.72),
          (0.35, 0.52), (0.1, 0.6), (0.04, 0.72)], True)],
    7: [([(0.0, 0.0), (0.6, 0.0), (0.22, 1.0)], False)],
    8: [([(0.3, 0.47), (0.06, 0.25), (0.3, 0.0), (0.54, 0.25), (0.3, 0.47), (0.02, 0.75),
          (0.3, 1.0), (0.58, 0.75), (0.3, 0.47)], True)],
    9: [([(0.55, 0.25), (0.35, 0.45), (0.06, 0.35), (0.08, 0.08), (0.35, 0.0), (0.56, 0.2),
          (0.52, 0.6), (0.4, 1.0)], True)],
}


@dataclass(frozen=True)
class Writer:
    """How one person writes digits: slant (shear), width over the templates' (aspect), a
    tilt in degrees, a pen as a fraction of the digit's height, and how much the control points
    wobble."""
    slant: float
    aspect: float
    tilt: float
    pen: float
    wobble: float


def writer(rng):
    """A person who writes digits, with a thick pen."""
    return Writer(slant=rng.uniform(-0.35, 0.35), aspect=rng.uniform(0.7, 1.4),
                  tilt=rng.uniform(-6, 6), pen=rng.uniform(0.08, 0.15),
                  wobble=rng.uniform(0.01, 0.04))


def write_digit(digit, person, rng, white_on_black=False):
    """The digit as person writes it, filling the frame (its longer side 90-100%), scanned
    small: averaged down to 8-20 pixels, grey; white on black if white_on_black."""
    frame = 64
    transform = _transform(1, person.tilt, person.slant, person.aspect)
    paths = [(_curve(points) if smooth else points) @ transform.T
             for points, smooth in _wobbled(DIGITS[digit], person.wobble, rng)]
    corners = np.concatenate(paths)
    low, high = corners.min(axis=0), corners.max(axis=0)
    pen = person.pen * frame
    scale = (rng.uniform(0.9, 1.0) * frame - pen) / max(high - low)
    paths = [(path - (low + high) / 2) * scale + frame / 2 for path in paths]
    scan = int(rng.integers(8, 21))
    image = _drawn(paths, frame, pen).resize((scan, scan), Image.BOX)
    return Image.eval(image, lambda value: 255 - value) if white_on_black else image


# Drawing and image helpers.

def _wobbled(strokes, spread, rng):
    """Strokes with each control point moved at random (normal, spread): a point that strokes
    share, or that closes a loop, moves as one, so that they stay joined."""
    moves = {}
    return [(np.array([point + moves.setdefault(point, rng.normal(0, spread, 2))
                       for point in points]), smooth) for points, smooth in strokes]


def _transform(scale, degrees, slant, aspect):
    """A 2x2 matrix acting on (x, y) rows: widen by aspect, slant (x moves with -y, upright
    strokes lean right for slant > 0), turn, scale."""
    angle = math.radians(degrees)
    turn = np.array([[math.cos(angle), -math.sin(angle)], [math.sin(angle), math.cos(angle)]])
    return scale * turn @ np.array([[1, -slant], [0, 1]]) @ np.diag([aspect, 1])


def _curve(points, samples=10):
    """A Catmull-Rom spline through the control points (the ends repeated): smooth and passing
    through each of them, as a pen's path."""
    padded = np.concatenate([points[:1], points, points[-1:]])
    t = np.linspace(0, 1, samples, endpoint=False)[:, None]
    pieces = [0.5 * (2 * p1 + (p2 - p0) * t + (2 * p0 - 5 * p1 + 4 * p2 - p3) * t ** 2
                     + (3 * p1 - p0 - 3 * p2 + p3) * t ** 3)
              for p0, p1, p2, p3 in zip(padded, padded[1:], padded[2:], padded[3:])]
    return np.concatenate(pieces + [points[-1:]])


def _drawn(paths, size, pen):
    """Paths (arrays of (x, y) in pixels) drawn with a round pen of width pen, black on a
    white size x size canvas, antialiased."""
    scale = SUPERSAMPLING
    canvas = Image.new('L', (size * scale, size * scale), 255)
    draw = ImageDraw.Draw(canvas)
    width = max(1, round(pen * scale))
    for path in paths:
        points = [tuple(point) for point in path * scale]
        draw.line(points, fill=0, width=width, joint='curve')
        for x, y in (points[0], points[-1]):  # round ends
            draw.ellipse((x - width / 2, y - width / 2, x + width / 2, y + width / 2), fill=0)
    return canvas.resize((size, size), Image.BOX)


def _cropped(ink):
    """The ink's bounding box, as a float coverage array."""
    rows, columns = np.flatnonzero(ink.any(axis=1)), np.flatnonzero(ink.any(axis=0))
    return ink[rows[0]:rows[-1] + 1, columns[0]:columns[-1] + 1].astype(float)


def _resized(coverage, longer_side):
    """A coverage array (0 paper, 1 ink) resized with antialiasing so that its longer side is
    longer_side pixels (rounded down), its aspect kept."""
    factor = int(longer_side) / max(coverage.shape)
    height = max(1, round(coverage.shape[0] * factor))
    width = max(1, round(coverage.shape[1] * factor))
    image = Image.fromarray(coverage.astype(np.float32), 'F')
    return np.clip(np.asarray(image.resize((width, height), Image.LANCZOS)), 0, 1)


def _pasted(coverage, size, top, left):
    frame = np.zeros((size, size))
    frame[top:top + coverage.shape[0], left:left + coverage.shape[1]] = coverage
    return frame


def _eroded(mask, radius):
    """mask shrunk by a disc of radius: a pixel stays set if every one within radius is."""
    return ~handwriting.dilated(~mask, radius)


def _lighting(size, strength, rng):
    """Uneven lighting: a linear ramp of +-strength grey levels across the page, any way."""
    angle = rng.uniform(0, 2 * np.pi)
    y, x = np.mgrid[0:size, 0:size] / size - 0.5
    return strength * 2 * (x * math.cos(angle) + y * math.sin(angle))


def _on_paper(coverage):
    """A coverage array (0 paper, 1 ink) as black ink on white paper."""
    return _grey(255 * (1 - coverage))


def _grey(pixels):
    return Image.fromarray(np.clip(np.round(pixels), 0, 255).astype(np.uint8), 'L')


def _jpeg(image, quality):
    """The image after a round trip through a JPEG file of that quality: its artefacts."""
    buffer = io.BytesIO()
    image.save(buffer, 'JPEG', quality=quality)
    buffer.seek(0)
    with Image.open(buffer) as decoded:
        return decoded.convert('L')
