"""
How Omniglot frames its characters: the statistics behind supervised_reptile/handwriting.py's
constants, measured on the training characters of run_omniglot.py's split.

    python benchmarks/omniglot_framing.py [--data-dir data/omniglot] [--seed 0]

For every original 105x105 drawing of the split's training characters (without rotations): the
longer side of the ink's bounding box, the centre of that box, and the stroke width as
handwriting.stroke_width measures it; printed as percentiles beside the constants the package
uses, so that a change of the data or of the measure shows as a mismatch.
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

# pylint: disable=wrong-import-position
from absl import app, flags
import numpy as np
from PIL import Image

from supervised_reptile import handwriting, omniglot

flags.DEFINE_string('data-dir', 'data/omniglot', 'the merged Omniglot (./fetch_data.sh)')
flags.DEFINE_integer('seed', 0, "the seed of run_omniglot.py's split")
FLAGS = flags.FLAGS


def drawing_statistics(path):
    """(longer side of the ink's box, its centre row, its centre column, stroke width)."""
    with Image.open(path) as image:
        ink = ~np.asarray(image.convert('1'))
    rows, columns = np.flatnonzero(ink.any(axis=1)), np.flatnonzero(ink.any(axis=0))
    side = max(rows[-1] - rows[0] + 1, columns[-1] - columns[0] + 1)
    return (side, (rows[0] + rows[-1] + 1) / 2, (columns[0] + columns[-1] + 1) / 2,
            handwriting.stroke_width(ink))


def main(argv):
    del argv
    data_dir = FLAGS['data-dir'].value
    train, _ = omniglot.split_dataset(omniglot.read_dataset(data_dir), FLAGS.seed)
    paths = [os.path.join(data_dir, name, file_name) for name in train.names
             for file_name in sorted(os.listdir(os.path.join(data_dir, name)))]
    measured = np.array([drawing_statistics(path) for path in paths])
    print('%d drawings of %d training characters (seed %d), on the %d-pixel pad'
          % (len(paths), len(train), FLAGS.seed, handwriting.PAD))
    print('%-28s %8s %8s %8s %8s %8s   %s' % ('', 'p10', 'p25', 'median', 'p75', 'p90',
                                             'handwriting.py'))
    used = (handwriting.INK_SIDE, (handwriting.PAD - 1) / 2, (handwriting.PAD - 1) / 2,
            handwriting.STROKE_WIDTH)
    names = ('longer side of the ink box', 'centre row of the box', 'centre column of the box',
             'stroke width')
    for name, values, constant in zip(names, measured.T, used):
        print('%-28s %8.1f %8.1f %8.1f %8.1f %8.1f   %s' % (
            name, *np.percentile(values, [10, 25, 50, 75, 90]), constant))


if __name__ == '__main__':
    app.run(main)
