"""
Lay out Omniglot as a generic image folder, to compare run_folder.py with run_omniglot.py.

    python benchmarks/omniglot_as_folder.py data/omniglot omniglot_folder

Writes <out>/train/<class>/ and <out>/test/<class>/ with links to the original PNGs: the
training and test characters of run_omniglot.py's split for --seed (0 by default), without its
rotations. Class names are <alphabet>__<character>.
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

# pylint: disable=wrong-import-position
from absl import app, flags

from supervised_reptile import omniglot

flags.DEFINE_integer('seed', 0, "the seed of run_omniglot.py's split")
FLAGS = flags.FLAGS


def main(argv):
    source, target = argv[1:3]
    characters = omniglot.read_dataset(source)
    train, test = omniglot.split_dataset(characters, FLAGS.seed)
    for split, classes in (('train', train), ('test', test)):
        for name in classes.names:
            folder = os.path.join(target, split, name.replace('/', '__'))
            os.makedirs(folder)
            for file_name in sorted(os.listdir(os.path.join(source, name))):
                os.symlink(os.path.abspath(os.path.join(source, name, file_name)),
                           os.path.join(folder, file_name))
    print('%s: %d training and %d test classes' % (target, len(train), len(test)))


if __name__ == '__main__':
    app.run(main)
