"""export.py: a trained run's model as a plain Keras file that loads without this project."""

import json
import re
import subprocess
import sys

import keras
import numpy as np
import pytest

from supervised_reptile import backbone, export, models
from supervised_reptile.adapt import Adapter

from test_folder import files_under, one_line_error, python_path_env, trained_run

pytestmark = pytest.mark.slow  # a run_folder.py run in a subprocess, and the command

# Loads the file in a process that cannot import this project, prints its parameter count and
# saves its logits (training=True) on a batch.
LOAD_ALONE = '''
import sys
sys.modules['supervised_reptile'] = None  # any import of the project fails
import numpy as np
import keras
try:
    import supervised_reptile
except ImportError:
    print('project not importable')
model = keras.models.load_model(sys.argv[1])
print(model.count_params())
logits = model(np.load(sys.argv[2]), training=True)
np.save(sys.argv[3], keras.ops.convert_to_numpy(logits))
'''


def run_export(cwd, *flags):
    """python -m supervised_reptile.export with flags in cwd; the completed process."""
    return subprocess.run([sys.executable, '-m', 'supervised_reptile.export', *flags], cwd=cwd,
                          env=python_path_env(), capture_output=True, text=True, timeout=600,
                          check=False)


@pytest.fixture(scope='module')
def run(tmp_path_factory):
    return trained_run(tmp_path_factory)


@pytest.fixture(scope='module')
def exported(run, tmp_path_factory):
    """The run exported to <tmp>/out/model.keras: (that path, the completed process)."""
    root = tmp_path_factory.mktemp('export')
    process = run_export(root, '--checkpoint', str(run.directory), '--output', 'out/model.keras')
    assert process.returncode == 0, process.stdout + process.stderr
    return root / 'out' / 'model.keras', process


@pytest.fixture(scope='module')
def batch():
    rng = np.random.default_rng(3)
    return (rng.integers(0, 2, (7, 28, 28, 1)) * 255).astype(np.float32) / 255


@pytest.fixture(scope='module')
def loaded_alone(exported, batch, tmp_path_factory):
    """LOAD_ALONE run on the exported file: (its output lines, its logits)."""
    root = tmp_path_factory.mktemp('alone')
    np.save(root / 'batch.npy', batch)
    process = subprocess.run([sys.executable, '-c', LOAD_ALONE, str(exported[0]), 'batch.npy',
                              'logits.npy'], cwd=root, capture_output=True, text=True,
                             timeout=600, check=False)
    assert process.returncode == 0, process.stderr
    return process.stdout.splitlines(), np.load(root / 'logits.npy')


def test_the_file_loads_with_keras_alone_and_has_the_models_parameters(run, exported,
                                                                       loaded_alone):
    lines, _ = loaded_alone
    assert lines[0] == 'project not importable'
    model = Adapter.from_checkpoint(str(run.directory)).learner.model
    assert int(lines[1]) == model.count_params()
    written = re.search(r'out/model\.keras \((\d+) parameters\)', exported[1].stdout)
    assert written and int(written.group(1)) == model.count_params()


def test_called_with_training_true_it_gives_the_projects_logits(run, loaded_alone, batch):
    _, logits = loaded_alone
    expected = np.asarray(Adapter.from_checkpoint(str(run.directory)).learner.model(
        batch, training=True))
    assert logits.shape == expected.shape == (7, 3)
    np.testing.assert_allclose(logits, expected, rtol=1e-5, atol=1e-5 * np.abs(expected).max())
    np.testing.assert_array_equal(logits.argmax(-1), expected.argmax(-1))


@pytest.mark.parametrize('build, shape', [(models.omniglot_model, (28, 28, 1)),
                                          (models.miniimagenet_model, (32, 32, 3))])
def test_a_model_with_frozen_blocks_still_normalises_with_the_batchs_statistics(build, shape):
    """A run with --freeze-blocks restores its model with the first blocks frozen; Keras'
    BatchNormalization, frozen, would normalise with its moving statistics (0 and 1) even when
    called with training=True, which the project's never does."""
    keras.utils.set_random_seed(0)
    model = build(3, shape)
    backbone.freeze(model, 2)
    plain = export.plain_keras_model(model)
    x = np.random.default_rng(0).random((4,) + shape).astype(np.float32)
    expected = np.asarray(model(x, training=True))
    np.testing.assert_allclose(np.asarray(plain(x, training=True)), expected, rtol=1e-5,
                               atol=1e-5 * np.abs(expected).max())


def test_the_printed_settings_are_the_runs_evaluation(run, exported):
    flags = json.loads((run.directory / 'config.json').read_text())['flags']
    printed = exported[1].stdout
    assert 'input: 28x28x1 images' in printed
    assert 'training=True' in printed
    assert ('fine-tune: %d steps on mini-batches of %d support images'
            % (flags['eval-iters'], flags['eval-batch'])) in printed
    assert 'optimizer: Adam, learning rate %g' % flags['learning-rate'] in printed
    assert 'predict: each query in a batch with the whole support set' in printed
    assert 'ways: at most 3 classes' in printed


def test_an_output_that_is_not_a_keras_file_is_refused(run, tmp_path):
    result = run_export(tmp_path, '--checkpoint', str(run.directory), '--output', 'out/x.h5')
    assert 'must end in .keras' in one_line_error(result)
    assert list(tmp_path.iterdir()) == []


def test_a_directory_without_a_checkpoint_is_refused(tmp_path):
    (tmp_path / 'empty').mkdir()
    before = files_under(tmp_path)
    result = run_export(tmp_path, '--checkpoint', 'empty', '--output', 'out/model.keras')
    assert 'no checkpoint in empty' in one_line_error(result)
    assert files_under(tmp_path) == before and not (tmp_path / 'out').exists()
