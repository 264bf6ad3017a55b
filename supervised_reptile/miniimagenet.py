"""
Mini-ImageNet: the few-shot split of Ravi & Larochelle (64 training, 16 validation and 20 test
classes of ImageNet, 600 images each), read from <data_dir>/{train,val,test}/<wnid>/<image>.

Images of any usual format are squashed to 84x84 with nearest-neighbour sampling and then
converted to RGB, in that order (images.py). They are kept as uint8 and scaled to [0, 1] by the
models' input pipeline.
"""

import os

from . import image_cache, images
from .errors import UserError

IMAGE_SIZE = 84
IMAGES_PER_CLASS = 600
IMAGE_EXTENSIONS = ('.jpg', '.jpeg', '.png')
CACHE_NAME = '.decoded-84x84-nearest.npz'

SPLITS = {
    'train': (
        'n01532829 n01558993 n01704323 n01749939 n01770081 n01843383 n01910747 n02074367 '
        'n02089867 n02091831 n02101006 n02105505 n02108089 n02108551 n02108915 n02111277 '
        'n02113712 n02120079 n02165456 n02457408 n02606052 n02687172 n02747177 n02795169 '
        'n02823428 n02966193 n03017168 n03047690 n03062245 n03207743 n03220513 n03337140 '
        'n03347037 n03400231 n03476684 n03527444 n03676483 n03838899 n03854065 n03888605 '
        'n03908618 n03924679 n03998194 n04067472 n04243546 n04251144 n04258138 n04275548 '
        'n04296562 n04389033 n04435653 n04443257 n04509417 n04515003 n04596742 n04604644 '
        'n04612504 n06794110 n07584110 n07697537 n07747607 n09246464 n13054560 n13133613'
    ).split(),
    'val': (
        'n01855672 n02091244 n02114548 n02138441 n02174001 n02950826 n02971356 n02981792 '
        'n03075370 n03417042 n03535780 n03584254 n03770439 n03773504 n03980874 n09256479'
    ).split(),
    'test': (
        'n01930112 n01981276 n02099601 n02110063 n02110341 n02116738 n02129165 n02219486 '
        'n02443484 n02871525 n03127925 n03146219 n03272010 n03544143 n03775546 n04146614 '
        'n04149813 n04418357 n04522168 n07613480'
    ).split(),
}


def read_dataset(data_dir):
    """The (train, val, test) ImageClasses of the data directory."""
    if not os.path.isdir(data_dir):
        raise UserError('no Mini-ImageNet data in %s; run ./fetch_data.sh to build it (see '
                        'README.md, "Data")' % data_dir)
    return tuple(read_split(os.path.join(data_dir, split), wnids)
                 for split, wnids in SPLITS.items())


def read_split(split_dir, wnids):
    """One split's classes, which must be exactly the given wnids."""
    found = sorted(d for d in os.listdir(split_dir) if d.startswith('n')) \
        if os.path.isdir(split_dir) else []
    if found != sorted(wnids):
        missing, extra = sorted(set(wnids) - set(found)), sorted(set(found) - set(wnids))
        raise UserError('%s does not hold the %d classes of the split (missing: %s; unexpected: '
                        '%s); rebuild it with ./fetch_data.sh' % (split_dir, len(wnids),
                                                                  _few(missing), _few(extra)))
    classes = []
    for wnid in found:
        files = image_files(os.path.join(split_dir, wnid))
        if not files:
            raise UserError('%s has no images; rebuild it with ./fetch_data.sh'
                            % os.path.join(split_dir, wnid))
        classes.append((wnid, wnid, files))
    return image_cache.read_classes(split_dir, classes, read_image, CACHE_NAME)


def image_files(folder):
    """The image files of a class folder, by extension in any case, sorted."""
    return sorted(f for f in os.listdir(folder) if f.lower().endswith(IMAGE_EXTENSIONS))


def read_image(path):
    """An image file as uint8 [84, 84, 3]: nearest-neighbour squash, then RGB (images.py)."""
    return images.read(path, IMAGE_SIZE, 3,
                       fix='replace it or rebuild the data with ./fetch_data.sh')


def _few(names, shown=3):
    if not names:
        return 'none'
    return ', '.join(names[:shown]) + (' and %d more' % (len(names) - shown)
                                       if len(names) > shown else '')
