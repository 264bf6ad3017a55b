"""
People's handwriting framed and stroked as Omniglot's characters are, before the squash every
image gets (images.py).

A model meta-trained on Omniglot has only seen characters drawn with one pen on a 105-pixel pad,
black on white, at the place and size Omniglot's writers chose. People hand in other things: a
scan the character fills, a drawing small in a corner, white chalk on a dark board, a grey
photo, a thumbnail, a felt pen or a fine one. frame() puts any of them into Omniglot's framing:

1. the ink is whatever differs from the paper, darker or lighter (the side of the border's tone
   that the image reaches furthest); the paper's tone is estimated under every pixel, so that
   uneven light is paper; Otsu's threshold splits the two;
2. the ink is cropped to its bounding box and scaled, with bilinear interpolation, until the
   box's longer side is the median of Omniglot's training characters;
3. its strokes are thinned to their centre lines and drawn again with a pen of Omniglot's
   median width, so that a thick, thin or blurred pen reads as Omniglot's (a broad pen's
   drawing, smaller once redrawn, is scaled again to the median size);
4. the drawing is centred on a 105-pixel pad of white paper, in black ink.

A photo's orientation tag is applied first. A box drawn around the picture (lines along three
or four of its edges) is not part of the drawing and is left out.

benchmarks/omniglot_framing.py measures the constants on the training characters;
benchmarks/people_handwriting.py measures what framing does to adaptation.
"""

import numpy as np
from PIL import Image, ImageOps

from . import images

PAD = 105           # Omniglot's drawing pad, pixels a side
INK_SIDE = 67       # median longer side of a training character's ink bounding box on the pad
STROKE_WIDTH = 5.5  # median stroke width of the training characters on the pad, pixels
PEN_RADIUS = 2.3    # the disc that draws a centre line STROKE_WIDTH wide
MIN_CONTRAST = 0.1  # ink this close to the paper's tone (of 1) is noise, not a drawing
MAX_GROWTH = 1.5    # how much a broad pen's drawing may grow back to INK_SIDE once redrawn
COARSE_SIDE = 32    # the paper's tone is estimated at this scale, pixels a side
CLOSING = 15        # pixels at that scale: wider than a stroke or a loop filled with ink


def frame(image):
    """A PIL image of handwriting as a 105x105 1-channel image of black ink on white paper, in
    Omniglot's framing. An image without ink (a blank page) comes back as blank paper."""
    ink = ink_strength(ImageOps.exif_transpose(image))
    level = _threshold(ink)
    ink = without_box(ink, ink > level)
    marked = ink > level
    pad = np.full((PAD, PAD), 255, np.uint8)
    if ink.max() < MIN_CONTRAST or not marked.any():
        return Image.fromarray(pad, 'L')
    ink = crop(ink, marked)
    scale = INK_SIDE / max(ink.shape)
    drawing = redrawn(scaled(ink, scale, level))
    if max(drawing.shape) < INK_SIDE:  # a broad pen's centre lines span less than its ink
        scale *= min(MAX_GROWTH, INK_SIDE / max(drawing.shape))
        drawing = redrawn(scaled(ink, scale, level))
    height, width = drawing.shape
    top, left = (PAD - height) // 2, (PAD - width) // 2
    pad[top:top + height, left:left + width][drawing] = 0
    return Image.fromarray(pad, 'L')


def ink_strength(image):
    """How far each pixel is from the paper's tone under it, in [0, 1]. The ink is the side of
    the border's median tone that the image reaches furthest, darker or lighter; the paper's
    tone is estimated at every pixel as the upper envelope of the tones (in ink-dark terms) at
    a coarse scale, so that uneven light and shadows are paper, not ink."""
    grey = np.asarray(images.on_white(image).convert('L'), np.float32) / 255
    border = np.median(np.concatenate([grey[0], grey[-1], grey[:, 0], grey[:, -1]]))
    dark_ink = border - np.percentile(grey, 1) >= np.percentile(grey, 99) - border
    tone = grey if dark_ink else 1 - grey
    return np.clip(paper_tone(tone) - tone, 0, 1)


def paper_tone(tone):
    """The paper's tone at every pixel of tone (ink dark): the tones shrunk to at most
    COARSE_SIDE pixels a side, closed (a maximum, then a minimum, over windows wider than a
    stroke there) and enlarged back. The edges are extended as the light's slope goes on (an
    odd reflection, within the tones the image has), so that the closing keeps a slope of
    light to the image's edge."""
    height, width = tone.shape
    scale = min(1.0, COARSE_SIDE / max(height, width))
    coarse = np.asarray(Image.fromarray(tone, 'F').resize(
        (max(1, round(width * scale)), max(1, round(height * scale))), Image.BOX))
    reach = CLOSING - 1
    if min(coarse.shape) > 1:
        extended = np.clip(np.pad(coarse, reach, mode='reflect', reflect_type='odd'),
                           coarse.min(), coarse.max())
    else:
        extended = np.pad(coarse, reach, mode='edge')
    closed = _sliding(_sliding(extended, np.max), np.min)
    return np.asarray(Image.fromarray(closed.astype(np.float32), 'F').resize(
        (width, height), Image.BILINEAR))


def _sliding(values, reduce):
    """reduce (np.max or np.min) over the CLOSING x CLOSING windows of values: over each
    window's columns, then over its rows."""
    for axis in (0, 1):
        values = reduce(np.lib.stride_tricks.sliding_window_view(values, CLOSING, axis), -1)
    return values


def without_box(ink, mask):
    """ink without the lines of a box drawn around the picture: lines across at least 90% of
    the image within its outer tenth, on three of its four sides or all of them (a character's
    bar that fills the frame is on one side)."""
    height, width = mask.shape
    rows, columns = mask.mean(axis=1) >= 0.9, mask.mean(axis=0) >= 0.9
    band_rows, band_columns = max(1, height // 10), max(1, width // 10)
    sides = [rows[:band_rows], rows[-band_rows:], columns[:band_columns],
             columns[-band_columns:]]
    if sum(side.any() for side in sides) < 3:
        return ink
    ink = ink.copy()
    for side in (slice(None, band_rows), slice(height - band_rows, None)):
        ink[side][rows[side]] = 0
    for side in (slice(None, band_columns), slice(width - band_columns, None)):
        ink[:, side][:, columns[side]] = 0
    return ink


def crop(values, mask):
    """values cut to the bounding box of mask."""
    rows, columns = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
    return values[rows[0]:rows[-1] + 1, columns[0]:columns[-1] + 1]


def scaled(ink, scale, level):
    """The ink scaled by scale, as a mask. Shrinking averages a stroke with the paper around
    it, so the threshold shrinks with the scale; a drawing too faint to keep any pixel keeps
    its strongest."""
    height, width = (max(1, round(side * scale)) for side in ink.shape)
    resized = np.asarray(Image.fromarray(ink, 'F').resize((width, height), Image.BILINEAR))
    mask = resized > level * min(1.0, scale)
    return mask if mask.any() else resized >= resized.max()


def redrawn(mask):
    """The mask's strokes thinned to their centre lines and drawn with Omniglot's pen, cropped
    to the drawing; a mask too small to thin keeps its own strokes."""
    lines = centre_lines(mask)
    if not lines.any():
        return mask
    drawing = dilated(np.pad(crop(lines, lines), int(np.ceil(PEN_RADIUS))), PEN_RADIUS)
    return crop(drawing, drawing)


def centre_lines(mask):
    """Zhang and Suen's thinning (1984): the mask's strokes peeled from both sides, one pixel a
    pass, alternating their two sub-iterations, until one pixel wide lines are left."""
    pixels = np.pad(mask, 1).astype(np.uint8)
    peeled = True
    while peeled:
        peeled = False
        for second in (False, True):
            # The 8 neighbours clockwise from north: p2 (north), p3, ..., p9 (north-west).
            p2, p3, p4, p5 = pixels[:-2, 1:-1], pixels[:-2, 2:], pixels[1:-1, 2:], pixels[2:, 2:]
            p6, p7, p8, p9 = pixels[2:, 1:-1], pixels[2:, :-2], pixels[1:-1, :-2], pixels[:-2, :-2]
            ring = [p2, p3, p4, p5, p6, p7, p8, p9, p2]
            neighbours = sum(ring[:8])
            rises = sum((ring[i] == 0) & (ring[i + 1] == 1) for i in range(8))
            if second:
                open_side = (p2 * p4 * p8 == 0) & (p2 * p6 * p8 == 0)
            else:
                open_side = (p2 * p4 * p6 == 0) & (p4 * p6 * p8 == 0)
            remove = ((pixels[1:-1, 1:-1] == 1) & (neighbours >= 2) & (neighbours <= 6)
                      & (rises == 1) & open_side)
            if remove.any():
                pixels[1:-1, 1:-1][remove] = 0
                peeled = True
    return pixels[1:-1, 1:-1].astype(bool)


def dilated(mask, radius):
    """mask grown by a disc of radius (a pen of width about 2 * radius + 1)."""
    reach = int(np.floor(radius))
    padded = np.pad(mask, reach)
    height, width = mask.shape
    grown = np.zeros_like(mask)
    for dy in range(-reach, reach + 1):
        for dx in range(-reach, reach + 1):
            if dy * dy + dx * dx <= radius * radius:
                grown |= padded[reach + dy:reach + dy + height, reach + dx:reach + dx + width]
    return grown


def stroke_width(mask):
    """The mean width of a mask's strokes: twice its area over its edge's length in pixels."""
    inside = np.pad(mask, 1)
    interior = mask & inside[:-2, 1:-1] & inside[2:, 1:-1] & inside[1:-1, :-2] & inside[1:-1, 2:]
    edge = mask.sum() - interior.sum()
    return 2 * mask.sum() / max(edge, 1)


def _threshold(ink):
    """Otsu's threshold of the ink strengths: the level that best splits paper from ink."""
    counts, edges = np.histogram(ink, bins=64, range=(0, 1))
    levels = (edges[:-1] + edges[1:]) / 2
    below = np.cumsum(counts)
    above = below[-1] - below
    mass_below = np.cumsum(counts * levels)
    mean_below = mass_below / np.maximum(below, 1)
    mean_above = (mass_below[-1] - mass_below) / np.maximum(above, 1)
    spread = below * above * (mean_below - mean_above) ** 2
    return max(levels[int(np.argmax(spread))], MIN_CONTRAST / 2)
