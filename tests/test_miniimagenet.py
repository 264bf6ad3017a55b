"""Mini-ImageNet: reading, building data/miniimagenet from what a user has, and a short run."""

import csv
import os
import pickle
import subprocess
import sys

import numpy as np
from PIL import Image
import pytest

from supervised_reptile import build_miniimagenet, miniimagenet
from supervised_reptile.errors import UserError
from supervised_reptile.inner_loop import gather_inputs

from conftest import REPO_DIR, SHARED_DIR

SAMPLE = SHARED_DIR / 'data' / 'mini-imagenet' / 'sample'
PER_CLASS = 2


def jpeg(path, seed, size=(12, 10)):
    pixels = np.random.default_rng(seed).integers(0, 256, size[::-1] + (3,), dtype=np.uint8)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(pixels).save(path, quality=95)


def ravi_folder(root, per_class=PER_CLASS):
    """Ravi-format: images named <wnid><8 digits>.jpg spread over two folders, plus the CSVs."""
    root.mkdir()
    seed = 0
    for split, wnids in miniimagenet.SPLITS.items():
        with open(root / ('%s.csv' % split), 'w', newline='', encoding='utf-8') as handle:
            writer = csv.writer(handle)
            writer.writerow(['filename', 'label'])
            for wnid in wnids:
                for number in range(1, per_class + 1):
                    name = '%s%08d.jpg' % (wnid, number)
                    jpeg(root / 'images' / ('part%d' % (seed % 2)) / name, seed)
                    writer.writerow([name, wnid])
                    seed += 1
    return root


def test_ravi_folder_builds_a_verified_split_tree(tmp_path):
    dest = tmp_path / 'data' / 'miniimagenet'
    build_miniimagenet.build(str(ravi_folder(tmp_path / 'ravi')), str(dest), PER_CLASS)
    train, val, test = miniimagenet.read_dataset(str(dest))
    assert (len(train), len(val), len(test)) == (64, 16, 20)
    assert train.images.shape == (64 * PER_CLASS, 84, 84, 3)
    assert sorted(os.listdir(dest / 'val' / 'n01855672')) == ['n0185567200000001.jpg',
                                                             'n0185567200000002.jpg']
    assert [p.name for p in dest.parent.iterdir()] == ['miniimagenet']


def test_pickles_build_a_tree_with_the_same_pixels(tmp_path):
    source = tmp_path / 'pkl'
    source.mkdir()
    rng = np.random.default_rng(0)
    expected = {}
    for split, wnids in miniimagenet.SPLITS.items():
        images = rng.integers(0, 256, (len(wnids) * PER_CLASS, 84, 84, 3), dtype=np.uint8)
        class_dict = {w: list(range(i * PER_CLASS, (i + 1) * PER_CLASS))
                      for i, w in enumerate(wnids)}
        expected[split] = images
        with open(source / ('mini-imagenet-cache-%s.pkl' % split), 'wb') as handle:
            pickle.dump({'image_data': images, 'class_dict': class_dict}, handle)
    dest = tmp_path / 'miniimagenet'
    build_miniimagenet.build(str(source), str(dest), PER_CLASS)
    for split, classes in zip(miniimagenet.SPLITS, miniimagenet.read_dataset(str(dest))):
        np.testing.assert_array_equal(classes.images, expected[split])


def test_wrong_classes_are_caught(tmp_path):
    source = ravi_folder(tmp_path / 'ravi')
    rows = (source / 'train.csv').read_text().replace('n01532829', 'n01855672')
    (source / 'train.csv').write_text(rows)
    with pytest.raises(UserError, match='does not list the 64 train classes'):
        build_miniimagenet.build(str(source), str(tmp_path / 'out'), PER_CLASS)
    assert not (tmp_path / 'out').exists()


def test_missing_and_corrupt_images_are_named_and_nothing_is_left(tmp_path):
    source = ravi_folder(tmp_path / 'ravi')
    missing = next((source / 'images').rglob('n0193011200000002.jpg'))
    missing.unlink()
    with pytest.raises(UserError, match='n0193011200000002.jpg'):
        build_miniimagenet.build(str(source), str(tmp_path / 'out'), PER_CLASS)
    jpeg(missing, 0)
    corrupt = next((source / 'images').rglob('n0174993900000001.jpg'))
    corrupt.write_bytes(corrupt.read_bytes()[:40])
    with pytest.raises(UserError, match='n0174993900000001.jpg does not decode'):
        build_miniimagenet.build(str(source), str(tmp_path / 'out'), PER_CLASS)
    assert sorted(p.name for p in tmp_path.iterdir()) == ['ravi']


def test_a_short_class_is_reported(tmp_path):
    dest = tmp_path / 'miniimagenet'
    build_miniimagenet.build(str(ravi_folder(tmp_path / 'ravi')), str(dest), PER_CLASS)
    next((dest / 'test' / 'n01930112').iterdir()).unlink()
    with pytest.raises(UserError, match='test/n01930112 has 1 images, not 2'):
        build_miniimagenet.verify(str(dest), PER_CLASS)


def test_reader_squashes_with_nearest_then_converts_to_rgb(tmp_path):
    source = np.random.default_rng(0).integers(0, 256, (168, 252), dtype=np.uint8)
    path = tmp_path / 'n0153282900000001.PNG'
    Image.fromarray(source, mode='L').save(path)
    image = miniimagenet.read_image(str(path))
    assert image.shape == (84, 84, 3) and image.dtype == np.uint8
    rows = ((np.arange(84) + 0.5) * 168 / 84).astype(int)
    cols = ((np.arange(84) + 0.5) * 252 / 84).astype(int)
    for channel in range(3):
        np.testing.assert_array_equal(image[..., channel], source[np.ix_(rows, cols)])


def test_reader_names_a_corrupt_image_and_a_missing_folder(tmp_path):
    dest = tmp_path / 'miniimagenet'
    build_miniimagenet.build(str(ravi_folder(tmp_path / 'ravi')), str(dest), PER_CLASS)
    bad = dest / 'val' / 'n02091244' / 'n0209124400000002.jpg'
    bad.write_bytes(b'')
    with pytest.raises(UserError, match='n0209124400000002.jpg'):
        miniimagenet.read_dataset(str(dest))
    with pytest.raises(UserError, match='fetch_data.sh'):
        miniimagenet.read_dataset(str(tmp_path / 'nowhere'))


@pytest.mark.skipif(not SAMPLE.is_dir(), reason='no Mini-ImageNet sample in ../shared')
def test_sample_loads_as_84x84x3_in_unit_range():
    train, val, test = miniimagenet.read_dataset(str(SAMPLE))
    assert (len(train), len(val), len(test)) == (64, 16, 20)
    assert list(test.counts) == [20] * 20
    floats = gather_inputs(train.images, np.arange(40)).numpy()
    assert floats.shape == (40, 84, 84, 3)
    assert floats.min() >= 0 and floats.max() <= 1 and floats.std() > 0.1


@pytest.mark.slow
@pytest.mark.skipif(not SAMPLE.is_dir(), reason='no Mini-ImageNet sample in ../shared')
def test_short_run_of_readme_row_2_on_the_sample(tmp_path):
    (tmp_path / 'data').mkdir()
    (tmp_path / 'data' / 'miniimagenet').symlink_to(SAMPLE)
    row_2 = ('--shots 1 --inner-batch 10 --inner-iters 8 --meta-step 1 --meta-batch 5 '
             '--meta-iters 100000 --eval-batch 5 --eval-iters 50 --learning-rate 0.001 '
             '--meta-step-final 0 --train-shots 15 --checkpoint ckpt_m15t --transductive').split()
    short = ['--meta-iters', '2', '--eval-samples', '2', '--eval-iters', '3']
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL='3')
    result = subprocess.run([sys.executable, str(REPO_DIR / 'run_miniimagenet.py')] + row_2 + short,
                            cwd=tmp_path, env=env, capture_output=True, text=True, timeout=900,
                            check=False)
    assert result.returncode == 0, result.stderr
    for split in ('Train', 'Validation', 'Test'):
        assert '%s accuracy: ' % split in result.stdout
    assert 'batch 0: train=' in result.stdout
