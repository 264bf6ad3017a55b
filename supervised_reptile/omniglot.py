"""
Omniglot: reading, the reference's 1200/423 character split, and the x4 rotation augmentation.

Expected layout: <data_dir>/<Alphabet>/characterNN/*.png, the 50 alphabets of the background
and evaluation sets merged (./fetch_data.sh makes it). Images are 105x105 1-bit PNGs; they are
resized to 28x28 with nearest-neighbour sampling (images.py) and kept as uint8 0 (ink) / 255
(background), which the models see as 0.0 / 1.0, as in the reference.

The decoded images are cached in the data directory (see image_cache.py).
"""

import os

import numpy as np
from PIL import Image

from . import folder, image_cache, images
from .errors import UserError
from .sampling import ImageClasses

IMAGE_SIZE = 28
NUM_TRAIN_CHARACTERS = 1200
CACHE_NAME = '.decoded-28x28.npz'


def read_dataset(data_dir):
    """All characters of the data directory as ImageClasses, in sorted alphabet/character order."""
    characters = [(name, name, files) for name, files in _list_characters(data_dir)]
    return image_cache.read_classes(data_dir, characters, _read_image, CACHE_NAME)


def split_dataset(classes, seed, num_train=NUM_TRAIN_CHARACTERS):
    """The reference's split of the sorted characters (folder.shuffled_split)."""
    return folder.shuffled_split(classes, seed, num_train)


def augment_dataset(classes):
    """Each character at 0, 90, 180 and 270 degrees counter-clockwise, as four separate classes."""
    arrays, names = [], []
    for class_id, name in enumerate(classes.names):
        drawings = classes.class_images(class_id)
        for quarter_turns in range(4):
            arrays.append(np.rot90(drawings, quarter_turns, axes=(1, 2)))
            names.append('%s@%d' % (name, 90 * quarter_turns))
    return ImageClasses.from_arrays(arrays, names)


def load(data_dir, seed):
    """The training set (1200 characters x 4 rotations) and the test set (the other characters)."""
    train, test = split_dataset(read_dataset(data_dir), seed)
    return augment_dataset(train), test


def _list_characters(data_dir):
    """[(alphabet/characterNN, sorted png names)] in the reference's order."""
    missing = 'no Omniglot data in %s; run ./fetch_data.sh to download it' % data_dir
    if not os.path.isdir(data_dir):
        raise UserError(missing)
    characters = []
    for alphabet in sorted(os.listdir(data_dir)):
        alphabet_dir = os.path.join(data_dir, alphabet)
        if not os.path.isdir(alphabet_dir):
            continue
        for character in sorted(os.listdir(alphabet_dir)):
            if character.startswith('character'):
                files = sorted(f for f in os.listdir(os.path.join(alphabet_dir, character))
                               if f.endswith('.png'))
                if not files:
                    raise UserError('character folder %s has no PNG images; re-run ./fetch_data.sh'
                                    % os.path.join(alphabet_dir, character))
                characters.append((alphabet + '/' + character, files))
    if not characters:
        raise UserError(missing)
    return characters


def _read_image(path):
    try:
        with Image.open(path) as image:
            image.load()
            if image.mode != '1':
                raise UserError('%s is a %s image, not a 1-bit Omniglot PNG; re-run ./fetch_data.sh'
                                % (path, image.mode))
            return images.to_array(image, IMAGE_SIZE, 1)
    except (OSError, SyntaxError, ValueError) as exc:
        raise UserError('cannot read image %s (%s); re-run ./fetch_data.sh' % (path, exc)) from None
