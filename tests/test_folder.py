"""folder.py and run_folder.py: meta-training on any folder of image classes.

The one short training run of this file (trained_run) is shared with test_adapt.py and
test_export.py, which adapt and export it.
"""

import json
import os
import subprocess
import sys
from types import SimpleNamespace

import numpy as np
from PIL import Image
import pytest

from supervised_reptile import folder, images, omniglot, recipes
from supervised_reptile.errors import UserError

from conftest import REPO_DIR


def run_folder(cwd, *flags):
    """Run run_folder.py with flags in cwd; the completed process, output captured."""
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL='3')
    return subprocess.run([sys.executable, str(REPO_DIR / 'run_folder.py'), *flags], cwd=cwd,
                          env=env, capture_output=True, text=True, timeout=600, check=False)


def python_path_env():
    """The environment, with this repository first on the module path."""
    paths = [str(REPO_DIR)] + [p for p in os.environ.get('PYTHONPATH', '').split(os.pathsep) if p]
    return dict(os.environ, TF_CPP_MIN_LOG_LEVEL='3', PYTHONPATH=os.pathsep.join(paths))


def save_image(path, kind, rng, value=None):
    """An image file of one of several kinds: sizes, formats and colour modes of their own."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if kind == 'bits':  # Omniglot-like: a 1-bit PNG
        Image.fromarray(rng.random((40, 40)) > 0.3).convert('1').save(path.with_suffix('.png'))
    elif kind == 'grey':
        pixels = rng.integers(0, 256, (17, 23), dtype=np.uint8)
        Image.fromarray(pixels, 'L').save(path.with_suffix('.png'))
    elif kind == 'jpeg':
        pixels = rng.integers(0, 256, (30, 50, 3), dtype=np.uint8)
        Image.fromarray(pixels, 'RGB').save(path.with_suffix('.JPG'), quality=95)
    elif kind == 'constant':  # a grey square of one value, to follow an image through a split
        Image.fromarray(np.full((8, 8), value, np.uint8), 'L').save(path.with_suffix('.png'))


def write_image_folder(root, num_classes, per_class, kinds=('bits',), seed=0):
    """<root>/<classNN>/<NN.ext>, the images' kinds taken in turn."""
    rng = np.random.default_rng(seed)
    for c in range(num_classes):
        for i in range(per_class):
            save_image(root / ('class%02d' % c) / ('%02d' % i), kinds[(c + i) % len(kinds)], rng)
    return root


def constant_folder(root, num_classes):
    """One image per class, of grey value 10 * its class number."""
    for c in range(num_classes):
        save_image(root / ('class%02d' % c) / 'only', 'constant', None, value=10 * c)
    return root


def one_line_error(result):
    """The one line of a refused run's standard error (asserting that it is one line)."""
    assert result.returncode == 2, result.stdout + result.stderr
    assert 'Traceback' not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith('error: '), result.stderr
    return lines[0]


def files_under(root):
    return {str(p.relative_to(root)): p.read_bytes() for p in root.rglob('*') if p.is_file()}


# The shared short run: a preset of the Omniglot benchmark on a folder of one's own images,
# its values cut down to two meta-steps.
SHORT_RUN = ['--preset', 'o15t', '--notransductive', '--classes', '3', '--shots', '1',
             '--train-shots', '2', '--inner-iters', '1', '--meta-batch', '1', '--meta-iters', '2',
             '--eval-iters', '1', '--eval-samples', '2']
_TRAINED = {}


def trained_run(tmp_path_factory):
    """A finished run_folder.py run on 12 classes of 1-bit PNGs, grey PNGs and colour JPEGs
    (3 each), trained once per session: SimpleNamespace(root, directory, data, process)."""
    if 'run' not in _TRAINED:
        root = tmp_path_factory.mktemp('folder_run')
        write_image_folder(root / 'images', 12, 3, kinds=('bits', 'grey', 'jpeg', 'bits'))
        process = run_folder(root, '--data-dir', 'images', '--checkpoint', 'run', *SHORT_RUN)
        _TRAINED['run'] = SimpleNamespace(root=root, directory=root / 'run',
                                          data=root / 'images', process=process)
    trained = _TRAINED['run']
    assert trained.process.returncode == 0, trained.process.stdout + trained.process.stderr
    return trained


@pytest.fixture(scope='module')
def run(tmp_path_factory):
    return trained_run(tmp_path_factory)


# Reading: the split.

def test_a_flat_folder_is_split_by_seed_the_way_omniglot_is(tmp_path):
    root = constant_folder(tmp_path / 'flat', 12)
    train, val, test = folder.read_dataset(str(root), 8, 1, seed=3, train_fraction=0.75)
    assert val is None
    everything = folder.read_classes(str(root), 8, 1)
    expected_train, expected_test = omniglot.split_dataset(everything, 3, num_train=9)
    assert train.names == expected_train.names and test.names == expected_test.names


def test_the_split_is_deterministic_and_different_seeds_differ(tmp_path):
    root = constant_folder(tmp_path / 'flat', 12)
    first = folder.read_dataset(str(root), 8, 1, seed=0, train_fraction=0.5)
    again = folder.read_dataset(str(root), 8, 1, seed=0, train_fraction=0.5)
    other = folder.read_dataset(str(root), 8, 1, seed=1, train_fraction=0.5)
    assert first[0].names == again[0].names and first[2].names == again[2].names
    assert first[0].names != other[0].names


@pytest.mark.parametrize('fraction, num_train', [(0.5, 6), (0.75, 9), (folder.TRAIN_FRACTION, 9),
                                                 (0.0, 1), (1.0, 11)])
def test_the_train_fraction_is_respected_leaving_each_side_a_class(tmp_path, fraction, num_train):
    root = constant_folder(tmp_path / 'flat', 12)
    train, _, test = folder.read_dataset(str(root), 8, 1, seed=0, train_fraction=fraction)
    assert len(train) == num_train and len(test) == 12 - num_train
    assert sorted(train.names + test.names) == ['class%02d' % c for c in range(12)]


def test_images_follow_their_class_through_the_split(tmp_path):
    root = constant_folder(tmp_path / 'flat', 12)
    train, _, test = folder.read_dataset(str(root), 8, 1, seed=5, train_fraction=0.5)
    for classes in (train, test):
        for class_id, name in enumerate(classes.names):
            assert (classes.class_images(class_id) == 10 * int(name[-2:])).all()


def test_a_train_val_test_folder_is_taken_as_given(tmp_path):
    for split, names in (('train', 'abcd'), ('val', 'ef'), ('test', 'ghi')):
        split_dir = constant_folder(tmp_path / 'given' / split, len(names))
        for c, name in enumerate(names):
            os.rename(split_dir / ('class%02d' % c), split_dir / name)
    for seed in (0, 1):
        train, val, test = folder.read_dataset(str(tmp_path / 'given'), 8, 1, seed=seed)
        assert (train.names, val.names, test.names) == (list('abcd'), list('ef'), list('ghi'))


def test_the_validation_split_is_optional(tmp_path):
    constant_folder(tmp_path / 'given' / 'train', 3)
    constant_folder(tmp_path / 'given' / 'test', 2)
    train, val, test = folder.read_dataset(str(tmp_path / 'given'), 8, 1, seed=0)
    assert val is None and len(train) == 3 and len(test) == 2


# Reading: the images.

@pytest.mark.parametrize('size, channels', [(20, 3), (28, 1)])
def test_images_of_mixed_sizes_and_formats_are_squashed_and_converted(tmp_path, size, channels):
    root = tmp_path / 'given'
    write_image_folder(root / 'train', 3, 4, kinds=('bits', 'grey', 'jpeg'))
    write_image_folder(root / 'test', 2, 3, kinds=('jpeg', 'grey'), seed=1)
    train, _, test = folder.read_dataset(str(root), size, channels, seed=0)
    for split, classes in (('train', train), ('test', test)):
        assert classes.images.dtype == np.uint8
        assert classes.images.shape == (len(classes.images), size, size, channels)
        paths = sorted((root / split).glob('class*/*'))
        assert len(paths) == len(classes.images)
        for path, array in zip(paths, classes.images):
            np.testing.assert_array_equal(array, images.read(str(path), size, channels))


def test_files_that_are_not_images_by_name_are_left_out(tmp_path):
    root = constant_folder(tmp_path / 'flat', 2)
    (root / 'class00' / 'notes.txt').write_text('not an image')
    (root / 'class00' / '.hidden.png').write_bytes(b'not an image either')
    (root / '.thumbnails').mkdir()
    classes = folder.read_classes(str(root), 8, 1)
    assert classes.names == ['class00', 'class01'] and list(classes.counts) == [1, 1]


def test_the_decoded_images_are_cached_and_reused(tmp_path, monkeypatch):
    root = write_image_folder(tmp_path / 'flat', 4, 3, kinds=('bits', 'jpeg'))
    first = folder.read_dataset(str(root), 20, 3, seed=0)
    assert (root / '.decoded-20x20x3.npz').is_file()

    def no_decoding(path, *args, **kwargs):
        raise AssertionError('decoded %s despite the cache' % path)
    with monkeypatch.context() as patch:
        patch.setattr(images, 'read', no_decoding)
        cached = folder.read_dataset(str(root), 20, 3, seed=0)
    for fresh, reused in zip(first, cached):
        if fresh is not None:
            assert reused.names == fresh.names
            np.testing.assert_array_equal(reused.images, fresh.images)


def test_the_cache_is_per_size_and_channels(tmp_path):
    root = write_image_folder(tmp_path / 'flat', 4, 3, kinds=('bits', 'jpeg'))
    folder.read_dataset(str(root), 20, 3, seed=0)
    train, _, _ = folder.read_dataset(str(root), 12, 1, seed=0)
    assert train.images.shape[1:] == (12, 12, 1)
    assert (root / '.decoded-12x12x1.npz').is_file()


@pytest.mark.parametrize('make, message', [
    (lambda root: (root / 'class01' / 'only.png').unlink(), 'class01 holds no images'),
    (lambda root: (root / 'class01' / 'only.png').write_bytes(b'GIF89a but no more'),
     'cannot read image .*%s' % os.path.join('class01', 'only.png')),
])
def test_bad_data_is_a_user_error_naming_it(tmp_path, make, message):
    root = constant_folder(tmp_path / 'flat', 3)
    make(root)
    with pytest.raises(UserError, match=message) as raised:
        folder.read_dataset(str(root), 8, 1, seed=0)
    assert '\n' not in str(raised.value)


def test_a_missing_or_classless_folder_is_a_user_error(tmp_path):
    with pytest.raises(UserError, match='no data directory .*nowhere; point --data-dir at'):
        folder.read_dataset(str(tmp_path / 'nowhere'), 8, 1, seed=0)
    (tmp_path / 'empty').mkdir()
    with pytest.raises(UserError, match='holds no class folders'):
        folder.read_dataset(str(tmp_path / 'empty'), 8, 1, seed=0)
    constant_folder(tmp_path / 'one', 1)
    with pytest.raises(UserError, match='too few'):
        folder.read_dataset(str(tmp_path / 'one'), 8, 1, seed=0)


# The model of a folder.

@pytest.mark.parametrize('family, channels, expected', [
    ('auto', 1, 'omniglot'), ('auto', 3, 'miniimagenet'), ('omniglot', 3, 'omniglot'),
    ('miniimagenet', 1, 'miniimagenet')])
def test_the_architecture_follows_channels_unless_model_names_one(family, channels, expected):
    model = recipes.build_model(recipes.FOLDER, {'model': family, 'channels': channels,
                                                 'image-size': 32, 'classes': 4})
    assert model.name == expected
    assert tuple(model.inputs[0].shape[1:]) == (32, 32, channels)
    assert model.outputs[0].shape[-1] == 4


# run_folder.py end to end.

@pytest.mark.slow
def test_a_short_run_trains_evaluates_and_records_a_folder_run(run):
    lines = run.process.stdout.splitlines()
    assert any(line.startswith('Train accuracy: ') for line in lines)
    assert any(line.startswith('Test accuracy: ') for line in lines)
    assert not any(line.startswith('Validation accuracy') for line in lines)
    config = json.loads((run.directory / 'config.json').read_text())
    assert config['dataset'] == 'folder'
    assert config['flags']['data-dir'] == 'images'
    assert (config['flags']['image-size'], config['flags']['channels']) == (28, 1)
    record = json.loads((run.directory / 'results.json').read_text())
    assert record['dataset'] == 'folder' and record['iterations'] == 2
    assert (record['ways'], record['shots'], record['transductive']) == (3, 1, False)
    assert {split: accuracy['num_tasks'] for split, accuracy in record['accuracy'].items()} == {
        'train': 2, 'test': 2}
    assert (run.data / '.decoded-28x28x1.npz').is_file()


@pytest.mark.slow
def test_a_preset_gives_its_values_and_flags_on_the_command_line_win(run):
    config = json.loads((run.directory / 'config.json').read_text())
    assert config['preset'] == 'o15t'
    flags = config['flags']
    assert (flags['meta-step'], flags['meta-step-final'], flags['inner-batch']) == (1, 0, 10)
    assert (flags['meta-iters'], flags['classes'], flags['transductive']) == (2, 3, False)
    assert flags['checkpoint'] == 'run'


@pytest.mark.slow
def test_compare_shows_a_folder_run_without_published_numbers(run):
    result = subprocess.run([sys.executable, '-m', 'supervised_reptile.compare', 'run'],
                            cwd=run.root, capture_output=True, text=True, timeout=120,
                            check=False, env=python_path_env())
    assert result.returncode == 0, result.stderr
    rows = [[cell.strip() for cell in line.strip('|').split('|')]
            for line in result.stdout.splitlines() if line.startswith('| run |')]
    assert len(rows) == 2 and rows[0][:2] == ['run', 'preset']  # the header, then the run
    cells = rows[1]
    assert cells[:4] == ['run', 'o15t', 'image folder 1-shot 3-way, non-transductive', '2']
    assert cells[5:] == ['-'] * 5


def _corrupt_image(root):
    write_image_folder(root / 'images', 6, 2)
    (root / 'images' / 'class02' / '01.png').write_bytes(b'\x89PNG\r\n\x1a\nnot really')
    return ['--data-dir', 'images'], 'cannot read image %s' % os.path.join(
        'images', 'class02', '01.png')


def _no_data_dir_flag(root):
    del root
    return [], 'flag --data-dir=None'


def _two_channels(root):
    write_image_folder(root / 'images', 6, 2)
    return ['--data-dir', 'images', '--channels', '2'], '--channels must be 1 (grey) or 3 (RGB)'


# One run per way a run can be refused (a subprocess costs seconds): a data error while reading
# (an empty class folder and a missing directory are the same kind: see the tests of
# folder.read_dataset above), absl's required flag, and a check across flags.
@pytest.mark.slow
@pytest.mark.parametrize('make', [_corrupt_image, _no_data_dir_flag, _two_channels],
                         ids=lambda make: make.__name__.strip('_'))
def test_bad_input_is_one_line_with_exit_code_2_and_nothing_written(tmp_path, make):
    flags, message = make(tmp_path)
    before = files_under(tmp_path)
    result = run_folder(tmp_path, *flags, '--checkpoint', 'new', '--meta-iters', '1')
    assert message in one_line_error(result)
    assert not (tmp_path / 'new').exists()
    assert {name: content for name, content in files_under(tmp_path).items()
            if '.decoded-' not in name} == before


@pytest.mark.slow
def test_a_validation_split_too_small_for_the_tasks_is_refused_before_training(tmp_path):
    for split, count in (('train', 4), ('val', 2), ('test', 3)):
        write_image_folder(tmp_path / 'images' / split, count, 2)
    result = run_folder(tmp_path, '--data-dir', 'images', '--checkpoint', 'new', *SHORT_RUN)
    assert 'validation set has only 2 classes' in one_line_error(result)
    assert not (tmp_path / 'new').exists()
