"""Shared fixtures: tiny synthetic data, and the real data of ../shared when it is there."""

import contextlib
import io
import os
import pathlib
import runpy
import shutil
import subprocess
import sys
import types
import zipfile

os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')
if 'PYTEST_XDIST_WORKER' in os.environ:
    # One worker per core: TensorFlow splitting each operation over every core (its default)
    # would make the workers fight over them. Set before TensorFlow loads, here and in every
    # subprocess the tests start.
    os.environ.setdefault('TF_NUM_INTRAOP_THREADS', '1')

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


def run_script_here(cwd, *flags):
    """Run run_omniglot.py with flags in this process, in cwd, as run_script would (flags
    parsed by absl, a UserError reported as one line with exit code 2); a completed-process-like
    namespace of returncode, stdout and stderr.

    For refused and short runs: a subprocess would add seconds of TensorFlow's start-up and
    test nothing more (the script keeps end-to-end runs in subprocesses)."""
    from supervised_reptile import args  # pylint: disable=import-outside-toplevel
    environment, directory, argv = dict(os.environ), os.getcwd(), sys.argv
    stdout, stderr = io.StringIO(), io.StringIO()
    args.FLAGS.unparse_flags()
    try:
        os.chdir(cwd)
        sys.argv = ['run_omniglot.py', *flags]
        with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
            try:
                runpy.run_path(str(REPO_DIR / 'run_omniglot.py'), run_name='__main__')
                returncode = 0
            except SystemExit as exited:
                code = exited.code
                returncode = 0 if code is None else code if isinstance(code, int) else 1
    finally:
        os.chdir(directory)
        sys.argv = argv
        os.environ.clear()
        os.environ.update(environment)  # the script chooses TensorFlow's threads by variables
        args.FLAGS.unparse_flags()
    return types.SimpleNamespace(returncode=returncode, stdout=stdout.getvalue(),
                                 stderr=stderr.getvalue())


def blobs(num_classes=12, per_class=8, seed=0):
    """Classes of 8-dimensional points around random centres: (x float32, y)."""
    rng = np.random.default_rng(seed)
    y = np.repeat(np.arange(num_classes), per_class)
    x = (3 * rng.normal(size=(num_classes, 8)))[y] + rng.normal(size=(len(y), 8))
    return x.astype(np.float32), y


def sine(rng, n):
    """A regression task of sr.tasks.from_function: n points of a random sine wave."""
    amplitude, phase = rng.uniform(0.5, 2.0), rng.uniform(0, np.pi)
    points = rng.uniform(-3, 3, size=(n, 1))
    return points, amplitude * np.sin(points[:, 0] + phase)


def sine_model(seed=0):
    """A 1-8-1 tanh network for sine's tasks."""
    import keras  # pylint: disable=import-outside-toplevel
    keras.utils.set_random_seed(seed)
    return keras.Sequential([keras.Input((1,)), keras.layers.Dense(8, activation='tanh'),
                             keras.layers.Dense(1)])


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
def omniglot_tree(tmp_path_factory):
    """A synthetic Omniglot with enough characters for the 1200-character training split and a
    test split, two drawings each (enough for 1-shot tasks), written and decoded into its image
    cache once a session; give a working directory a copy with copy_omniglot_tree."""
    from supervised_reptile import omniglot  # pylint: disable=import-outside-toplevel
    tree = write_omniglot_tree(tmp_path_factory.mktemp('synthetic') / 'omniglot', alphabets=11,
                               characters=110, drawings=2)
    omniglot.load(str(tree), 0)
    return tree


def copy_omniglot_tree(tree, root):
    """root/data/omniglot, a copy of the omniglot_tree fixture (its cache still valid); root."""
    shutil.copytree(tree, root / 'data' / 'omniglot')
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
