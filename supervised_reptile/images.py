"""
An image as a model sees it: one function, shared by the data loaders and by adaptation to a
user's own images, so that a user's picture becomes exactly what the model saw in training.

An image is squashed to size x size with nearest-neighbour sampling and then converted to grey
(one channel) or RGB (three), in that order, as the reference did: its pinned Pillow 4 (>= 4.0,
< 5) resized with NEAREST by default, as every Pillow before 7 did. Pillow 7 and later default
to bicubic, which would silently change the inputs, so NEAREST is passed explicitly. Omniglot's
1-bit drawings keep their polarity: ink 0, paper 255 (the models see 0.0 and 1.0). Pixels
that are transparent, or partly so, are laid on white paper first, and 16-bit images scaled to
8 bits.
"""

import numpy as np
from PIL import Image

from .errors import UserError


def to_array(image, size, channels):
    """A PIL image as uint8 [size, size, channels] (channels 1 or 3)."""
    image = on_white(image)
    squashed = image.resize((size, size), Image.NEAREST)
    array = np.asarray(squashed.convert('L' if channels == 1 else 'RGB'), dtype=np.uint8)
    return array.reshape(size, size, channels)


def read(path, size, channels, fix='replace it'):
    """The image file at path as to_array() makes it (see load())."""
    return to_array(load(path, fix), size, channels)


def load(path, fix='replace it'):
    """The decoded image file at path; a file Pillow cannot read is a UserError naming it, with
    `fix` as the remedy."""
    try:
        with Image.open(path) as image:
            image.load()
            return image
    except (OSError, SyntaxError, ValueError) as exc:
        raise UserError('cannot read image %s (%s); %s' % (path, exc, fix)) from None


def colour_bands(image):
    """1 for a grey (or black and white) image, 3 for a colour one; transparency aside."""
    return 3 if len(image.getbands()) - ('A' in image.getbands()) >= 3 or image.mode == 'P' else 1


def on_white(image):
    """The image with 8-bit bands, and without transparency: laid on white paper."""
    if image.mode.startswith('I;16'):  # Pillow would clip 16-bit grey to 8 bits, not scale it
        image = Image.fromarray((np.asarray(image) >> 8).astype(np.uint8), 'L')
    if 'transparency' in image.info:  # a palette entry or colour key marked transparent
        image = image.convert('RGBA')
    if image.mode not in ('RGBA', 'LA', 'PA'):
        return image
    paper = Image.new('RGBA', image.size, (255, 255, 255, 255))
    return Image.alpha_composite(paper, image.convert('RGBA'))
