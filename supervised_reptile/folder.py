"""
Any folder of image classes as a few-shot data set: <data_dir>/<class>/<images>, or
<data_dir>/{train,val,test}/<class>/<images> when the split is given (val optional).

Without a given split, the classes are split by seed as Omniglot's characters are (the sorted
class names shuffled with Python's random, then cut), the first train_fraction of them for
training. Images of any size and format Pillow reads are squashed to size x size and converted
to grey or RGB by images.py, decoded once and cached in the data folder (image_cache.py).
"""

import os
import random

from . import image_cache, images
from .errors import UserError
from .sampling import ImageClasses

IMAGE_EXTENSIONS = ('.bmp', '.gif', '.jpeg', '.jpg', '.png', '.ppm', '.tif', '.tiff', '.webp')
SPLITS = ('train', 'val', 'test')
# Omniglot's share of training characters, 1200 of 1623.
TRAIN_FRACTION = 1200 / 1623


def image_files(folder):
    """The image files of a folder, by extension in any case, sorted."""
    return sorted(f for f in os.listdir(folder)
                  if f.lower().endswith(IMAGE_EXTENSIONS) and not f.startswith('.'))


def class_folders(root):
    """The class folders of root, sorted by name; each must hold at least one image."""
    names = sorted(d for d in os.listdir(root)
                   if os.path.isdir(os.path.join(root, d)) and not d.startswith('.'))
    for name in names:
        if not image_files(os.path.join(root, name)):
            raise UserError('class folder %s holds no images (%s); add images or remove it'
                            % (os.path.join(root, name), ', '.join(IMAGE_EXTENSIONS)))
    return names


def read_classes(root, size, channels):
    """The classes of root (one folder each) as ImageClasses of uint8 [size, size, channels]."""
    classes = [(name, name, image_files(os.path.join(root, name))) for name in class_folders(root)]
    if not classes:
        raise UserError('%s holds no class folders; lay it out as <class>/<images>' % root)

    def decode(path):
        return images.read(path, size, channels, fix='replace or remove it')
    return image_cache.read_classes(root, classes, decode,
                                    '.decoded-%dx%dx%d.npz' % (size, size, channels))


def read_dataset(data_dir, size, channels, seed, train_fraction=TRAIN_FRACTION):
    """(training, validation or None, test) ImageClasses of data_dir."""
    if not os.path.isdir(data_dir):
        raise UserError('no data directory %s; point --data-dir at a folder of <class>/<images>'
                        % data_dir)
    if all(os.path.isdir(os.path.join(data_dir, split)) for split in ('train', 'test')):
        val_dir = os.path.join(data_dir, 'val')
        return (read_classes(os.path.join(data_dir, 'train'), size, channels),
                read_classes(val_dir, size, channels) if os.path.isdir(val_dir) else None,
                read_classes(os.path.join(data_dir, 'test'), size, channels))
    train, test = split_classes(read_classes(data_dir, size, channels), seed, train_fraction)
    return train, None, test


def split_classes(classes, seed, train_fraction):
    """(training, test) classes: shuffled_split() with train_fraction of them (rounded, at least
    one, and at least one left) for training."""
    if len(classes) < 2:
        raise UserError('%d class is too few to split into training and test classes; add '
                        'classes' % len(classes))
    return shuffled_split(classes, seed,
                          min(max(round(train_fraction * len(classes)), 1), len(classes) - 1))


def shuffled_split(classes, seed, num_train):
    """The reference's split: shuffle the classes (in their sorted order) with Python's random
    seeded by seed, then the first num_train train and the rest test."""
    order = list(range(len(classes)))
    random.Random(seed).shuffle(order)
    return subset(classes, order[:num_train]), subset(classes, order[num_train:])


def subset(classes, class_ids):
    """The classes of class_ids, in that order."""
    return ImageClasses.from_arrays([classes.class_images(c) for c in class_ids],
                                    [classes.names[c] for c in class_ids])
