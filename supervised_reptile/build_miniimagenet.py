"""
Build data/miniimagenet, verified, from a copy of Mini-ImageNet the user already has.

    python -m supervised_reptile.build_miniimagenet SOURCE DEST
    python -m supervised_reptile.build_miniimagenet --check DEST

SOURCE is one of:
  (a) the common Ravi-format download: images named like n0153282900000005.jpg in any
      sub-folders, with its train.csv, val.csv and test.csv (filename,label);
  (b) a folder holding mini-imagenet-cache-{train,val,test}.pkl (dicts with 'image_data',
      uint8 [N, 84, 84, 3], and 'class_dict', wnid -> image indices); the images are written
      as PNG, losslessly;
  (c) a tree already in the split layout, SOURCE/{train,val,test}/<wnid>/<images>.

The tree is assembled next to DEST and checked before it is moved into place in one step:
the 64/16/20 classes of the split (miniimagenet.SPLITS), 600 images per class (or the count the
reference implementation's 59,981-image list has for that class) and every image decodable.
Problems are reported by file name; nothing is left behind on failure. --check verifies an
existing DEST (without decoding every image).
"""

import csv
import os
import pickle
import re
import shutil
import sys
import tempfile

import numpy as np
from PIL import Image

from .errors import UserError
from .miniimagenet import IMAGES_PER_CLASS, SPLITS, image_files, read_image

# Classes that the reference implementation's own image list has fewer than 600 images of.
REFERENCE_COUNTS = dict(
    [(wnid, 599) for wnid in ('n02099601 n03544143 n04522168 n07613480 n02108551 n03220513 '
                              'n03337140 n03527444 n03854065 n07584110 n07747607 n13133613 '
                              'n02138441 n03075370').split()]
    + [('n02174001', 598), ('n03535780', 597)])

RAVI_NAME = re.compile(r'^(n\d{8})\d+\.(jpe?g|png)$', re.IGNORECASE)
SHOWN = 5


def build(source, dest, images_per_class=IMAGES_PER_CLASS):
    """Build dest from source (see the module docstring); raise UserError on any problem."""
    if os.path.exists(dest):
        raise UserError('%s already exists; remove it first to rebuild it' % dest)
    parent = os.path.dirname(os.path.abspath(dest))
    os.makedirs(parent, exist_ok=True)
    work = tempfile.mkdtemp(prefix='.miniimagenet.', dir=parent)
    try:
        _assemble(source, work)
        verify(work, images_per_class, decode=True)
        os.rename(work, dest)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def verify(tree, images_per_class=IMAGES_PER_CLASS, decode=False):
    """Check the classes of every split and their image counts (and, with decode, every image)."""
    problems = []
    for split, wnids in SPLITS.items():
        split_dir = os.path.join(tree, split)
        found = set(os.listdir(split_dir)) if os.path.isdir(split_dir) else set()
        for wnid in sorted(set(wnids) - found):
            problems.append('%s/%s is missing' % (split, wnid))
        for wnid in sorted(found - set(wnids)):
            problems.append('%s/%s is not a %s class of the split' % (split, wnid, split))
        for wnid in sorted(found & set(wnids)):
            files = image_files(os.path.join(split_dir, wnid))
            if len(files) not in (images_per_class, REFERENCE_COUNTS.get(wnid)):
                problems.append('%s/%s has %d images, not %d' % (split, wnid, len(files),
                                                                 images_per_class))
            if decode:
                problems += _undecodable(split_dir, wnid, files)
    if problems:
        raise UserError('%s is not a valid Mini-ImageNet: %s' % (tree, _summary(problems)))


def _assemble(source, work):
    if not os.path.isdir(source):
        raise UserError('Mini-ImageNet source %s is not a folder' % source)
    if all(os.path.isdir(os.path.join(source, split)) for split in SPLITS):
        _copy_split_tree(source, work)
    elif all(os.path.isfile(_pickle_path(source, split)) for split in SPLITS):
        _write_pickles(source, work)
    else:
        _place_ravi_images(source, work)


def _pickle_path(source, split):
    return os.path.join(source, 'mini-imagenet-cache-%s.pkl' % split)


def _link_or_copy(src, dst):
    os.makedirs(os.path.dirname(dst), exist_ok=True)
    try:
        os.link(src, dst)
    except OSError:
        shutil.copyfile(src, dst)


def _copy_split_tree(source, work):
    for split in SPLITS:
        for wnid in os.listdir(os.path.join(source, split)):
            class_dir = os.path.join(source, split, wnid)
            if os.path.isdir(class_dir):
                for name in image_files(class_dir):
                    _link_or_copy(os.path.join(class_dir, name),
                                  os.path.join(work, split, wnid, name))


def _write_pickles(source, work):
    for split in SPLITS:
        with open(_pickle_path(source, split), 'rb') as handle:
            try:
                cache = pickle.load(handle)
                images, class_dict = cache['image_data'], cache['class_dict']
            except (pickle.UnpicklingError, EOFError, KeyError, TypeError) as exc:
                raise UserError('%s is not a Mini-ImageNet cache pickle (%s)'
                                % (_pickle_path(source, split), exc)) from None
        for wnid, indices in class_dict.items():
            os.makedirs(os.path.join(work, split, wnid))
            for number, index in enumerate(indices, 1):
                Image.fromarray(np.asarray(images[index], dtype=np.uint8)).save(
                    os.path.join(work, split, wnid, '%s%08d.png' % (wnid, number)))


def _place_ravi_images(source, work):
    images, csvs = {}, {}
    for folder, _, files in os.walk(source):
        for name in files:
            if RAVI_NAME.match(name):
                images[name] = os.path.join(folder, name)
            elif name in ('train.csv', 'val.csv', 'test.csv'):
                csvs.setdefault(name[:-4], os.path.join(folder, name))
    if not images or len(csvs) < len(SPLITS):
        raise UserError('%s is neither a split tree ({train,val,test}/<wnid>/), nor a folder of '
                        'mini-imagenet-cache-*.pkl files, nor Ravi-format images with train.csv, '
                        'val.csv and test.csv' % source)
    missing = []
    for split, wnids in SPLITS.items():
        with open(csvs[split], newline='', encoding='utf-8') as handle:
            rows = list(csv.DictReader(handle))
        labels = {row['label'] for row in rows}
        if labels != set(wnids):
            raise UserError('%s does not list the %d %s classes of the Ravi split (%s)'
                            % (csvs[split], len(wnids), split,
                               _summary(sorted(labels ^ set(wnids)))))
        for row in rows:
            if row['filename'] in images:
                _link_or_copy(images[row['filename']],
                              os.path.join(work, split, row['label'], row['filename']))
            else:
                missing.append(row['filename'])
    if missing:
        raise UserError('%d images listed in the CSVs are not in %s: %s'
                        % (len(missing), source, _summary(missing)))


def _undecodable(split_dir, wnid, files):
    problems = []
    for name in files:
        try:
            read_image(os.path.join(split_dir, wnid, name))
        except UserError:
            problems.append('%s/%s does not decode' % (wnid, name))
    return problems


def _summary(items):
    shown = '; '.join(items[:SHOWN])
    return shown + ('; and %d more' % (len(items) - SHOWN) if len(items) > SHOWN else '')


def main(argv):
    try:
        if len(argv) == 3 and argv[1] == '--check':
            verify(argv[2])
        elif len(argv) == 3:
            build(argv[1], argv[2])
        else:
            raise UserError('usage: python -m supervised_reptile.build_miniimagenet SOURCE DEST '
                            '| --check DEST')
    except UserError as exc:
        print('error: %s' % exc, file=sys.stderr)
        return 2
    return 0


if __name__ == '__main__':
    sys.exit(main(sys.argv))
