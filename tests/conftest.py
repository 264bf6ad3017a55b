"""Shared fixtures: tiny synthetic data, and the real data of ../shared when it is there."""

import os
import pathlib
import subprocess
import sys
import zipfile

os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')

import numpy as np  # pylint: disable=wrong-import-position
from PIL import Image  # pylint: disable=wrong-import-position
import pytest  # pylint: disable=wrong-import-position

from supervised_reptile.sampling import ImageClasses  # pylint: disable=wrong-import-position

REPO_DIR = pathlib.Path(__file__).resolve().parents[1]
SHARED_DIR = REPO_DIR.parent / 'shared'
OMNIGLOT_MIRROR = SHARED_DIR / 'data' / 'omniglot' / 'mirror'


def run_script(cwd, *flags):
    """Run run_omniglot.py with flags in cwd; the completed process, output captured."""
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL='3')
    return subprocess.run([sys.executable, str(REPO_DIR / 'run_omniglot.py'), *flags], cwd=cwd,
                          env=env, capture_output=True, text=True, timeout=600, check=False)


def random_classes(num_classes, per_class, shape=(28, 28, 1), seed=0):
    """ImageClasses of random 0/255 images."""
    rng = np.random.default_rng(seed)
    arrays = [rng.integers(0, 2, (per_class,) + shape, dtype=np.uint8) * 255
              for _ in range(num_classes)]
    return ImageClasses.from_arrays(arrays, ['class%d' % c for c in range(num_classes)])


def write_omniglot_tree(root, alphabets=3, characters=4, drawings=20, seed=0):
    """A synthetic Omniglot folder: random 105x105 1-bit PNGs in <alphabet>/characterNN/."""
    rng = np.random.default_rng(seed)
    for a in range(alphabets):
        for c in range(characters):
            folder = root / ('Alphabet%d' % a) / ('character%02d' % (c + 1))
            folder.mkdir(parents=True)
            for d in range(drawings):
                pixels = rng.random((105, 105)) > 0.3
                Image.fromarray(pixels).convert('1').save(folder / ('%04d_%02d.png' % (c, d + 1)))
    return root


@pytest.fixture(scope='session')
def real_omniglot_dir(tmp_path_factory):
    """The full Omniglot, merged as fetch_data.sh lays it out, from the mirror in ../shared."""
    if not OMNIGLOT_MIRROR.is_dir():
        pytest.skip('the real Omniglot (../shared/data/omniglot/mirror) is not here')
    root = tmp_path_factory.mktemp('real') / 'omniglot'
    root.mkdir()
    for name in ('images_background', 'images_evaluation'):
        extracted = tmp_path_factory.mktemp(name)
        with zipfile.ZipFile(OMNIGLOT_MIRROR / (name + '.zip')) as archive:
            archive.extractall(extracted)
        for alphabet in (extracted / name).iterdir():
            alphabet.rename(root / alphabet.name)
    return root
