"""adapt.py: a trained run fine-tuned on a user's own few-shot task, as its evaluation would.

The run is test_folder.py's short run (a grey 28x28 Omniglot-architecture model for 3 ways,
recorded with --eval-iters 1 --eval-batch 5, non-transductive, seed 0).
"""

import json
import os
import shutil
import subprocess
import sys

import numpy as np
from PIL import Image
import pytest

from supervised_reptile import adapt, images, sampling
from supervised_reptile.adapt import Adapter
from supervised_reptile.errors import UserError

from conftest import random_classes
from test_folder import files_under, one_line_error, python_path_env, trained_run

pytestmark = pytest.mark.slow  # a run_folder.py run in a subprocess, and the command


def run_adapt(cwd, *flags):
    """python -m supervised_reptile.adapt with flags in cwd; the completed process."""
    return subprocess.run([sys.executable, '-m', 'supervised_reptile.adapt', *flags], cwd=cwd,
                          env=python_path_env(), capture_output=True, text=True, timeout=600,
                          check=False)


def one_bit_png(path, rng):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(rng.random((40, 40)) > 0.3).convert('1').save(path)
    return path


def softmax(logits):
    shifted = np.exp(logits - logits.max(axis=-1, keepdims=True))
    return shifted / shifted.sum(axis=-1, keepdims=True)


@pytest.fixture(scope='module')
def run(tmp_path_factory):
    return trained_run(tmp_path_factory)


@pytest.fixture(scope='module')
def task(tmp_path_factory):
    """A user's task in a folder: support/ of 3 classes (2 one-bit PNGs each), queries/ of two
    PNGs and a colour JPEG, and support2/ of 2 classes (3 PNGs each)."""
    root = tmp_path_factory.mktemp('task')
    rng = np.random.default_rng(21)
    for name in ('alpha', 'beta', 'gamma'):
        for i in range(2):
            one_bit_png(root / 'support' / name / ('%d.png' % i), rng)
    for name in ('left', 'right'):
        for i in range(3):
            one_bit_png(root / 'support2' / name / ('%d.png' % i), rng)
    one_bit_png(root / 'queries' / 'q0.png', rng)
    one_bit_png(root / 'queries' / 'q1.png', rng)
    colour = rng.integers(0, 256, (33, 45, 3), dtype=np.uint8)
    Image.fromarray(colour, 'RGB').save(root / 'queries' / 'q2.jpg', quality=95)
    return root


def queries(task):
    return [str(task / 'queries' / name) for name in ('q0.png', 'q1.png', 'q2.jpg')]


@pytest.fixture(scope='module')
def adapter(run):
    return Adapter.from_checkpoint(str(run.directory))


@pytest.fixture(scope='module')
def adapter_3_steps(run):
    return Adapter.from_checkpoint(str(run.directory), eval_iters=3)


@pytest.fixture(scope='module')
def api_predictions(adapter, task):
    return adapter.fit(str(task / 'support')).predict(queries(task))


# The command line.

@pytest.fixture(scope='module')
def cli_text(run, task):
    return run_adapt(task, '--checkpoint', str(run.directory), '--support', 'support',
                     '--query', 'queries/q0.png,queries/q1.png,queries/q2.jpg')


@pytest.fixture(scope='module')
def cli_json(run, task):
    return run_adapt(task, '--checkpoint', str(run.directory), '--support', 'support',
                     '--query', 'queries', '--json')


def test_the_command_prints_one_line_per_query_with_every_class_probability(cli_text,
                                                                           api_predictions):
    assert cli_text.returncode == 0, cli_text.stderr
    lines = cli_text.stdout.strip().splitlines()
    assert len(lines) == 3
    for line, name, prediction in zip(lines, ('q0.png', 'q1.png', 'q2.jpg'), api_predictions):
        query, rest = line.split(': ', 1)
        assert query == os.path.join('queries', name)
        predicted, probabilities = rest.split(' ', 1)
        assert predicted == prediction.predicted
        shown = dict(item.rsplit(' ', 1) for item in probabilities.strip('()').split(', '))
        assert sorted(shown) == ['alpha', 'beta', 'gamma']
        for name_, value in shown.items():
            assert float(value) == pytest.approx(prediction.probabilities[name_], abs=6e-4)


def test_images_of_the_wrong_channels_are_converted_with_a_note(cli_text):
    assert cli_text.returncode == 0
    notes = [line for line in cli_text.stderr.splitlines() if line.startswith('note: ')]
    assert len(notes) == 1 and notes[0].startswith('note: 1 images converted to grey')


def test_json_lists_queries_predictions_and_probabilities_summing_to_1(cli_json):
    assert cli_json.returncode == 0, cli_json.stderr
    listed = json.loads(cli_json.stdout)
    assert [entry['query'] for entry in listed] == [
        os.path.join('queries', name) for name in ('q0.png', 'q1.png', 'q2.jpg')]
    for entry in listed:
        assert set(entry) == {'query', 'predicted', 'probabilities'}
        assert sorted(entry['probabilities']) == ['alpha', 'beta', 'gamma']
        assert sum(entry['probabilities'].values()) == pytest.approx(1, abs=1e-6)
        assert entry['predicted'] == max(entry['probabilities'], key=entry['probabilities'].get)


def test_the_python_api_predicts_what_the_command_does(cli_json, api_predictions):
    listed = json.loads(cli_json.stdout)
    assert [p.predicted for p in api_predictions] == [entry['predicted'] for entry in listed]
    for prediction, entry in zip(api_predictions, listed):
        assert os.path.basename(prediction.query) == os.path.basename(entry['query'])
        for name, value in entry['probabilities'].items():
            assert prediction.probabilities[name] == pytest.approx(value, rel=1e-6, abs=1e-7)


def test_a_flag_of_the_trained_run_is_refused(run, task):
    before = files_under(task)
    result = run_adapt(task, '--checkpoint', str(run.directory), '--support', 'support',
                       '--query', 'queries', '--classes', '3')
    assert '--classes is a setting of the trained run' in one_line_error(result)
    assert files_under(task) == before


# The Python API.

def test_predictions_name_a_support_class_and_give_each_class_a_probability(api_predictions,
                                                                            task):
    assert [p.query for p in api_predictions] == queries(task)
    for prediction in api_predictions:
        assert sorted(prediction.probabilities) == ['alpha', 'beta', 'gamma']
        assert sum(prediction.probabilities.values()) == pytest.approx(1, abs=1e-6)
        assert prediction.predicted == max(prediction.probabilities,
                                           key=prediction.probabilities.get)


def test_adapting_twice_gives_identical_results_and_changes_nothing(adapter, task,
                                                                    api_predictions):
    model_before = [v.numpy().copy() for v in adapter.learner.algorithm.model.variables]
    optimizer = adapter.learner.algorithm.optimizer
    optimizer_before = ([s.numpy().copy() for slots in optimizer.slots for s in slots],
                        optimizer.iterations.numpy())
    again = adapter.fit(str(task / 'support')).predict(queries(task))
    once_more = adapter.predict(queries(task))
    assert again == api_predictions and once_more == api_predictions
    for before, variable in zip(model_before, adapter.learner.algorithm.model.variables):
        np.testing.assert_array_equal(variable.numpy(), before)
    for before, slot in zip(optimizer_before[0], [s for slots in optimizer.slots for s in slots]):
        np.testing.assert_array_equal(slot.numpy(), before)
    assert optimizer.iterations.numpy() == optimizer_before[1] > 0


def test_support_given_as_arrays_or_paths_or_a_folder_agree(adapter, task, api_predictions):
    as_paths = {name: sorted(str(p) for p in (task / 'support' / name).iterdir())
                for name in ('gamma', 'alpha', 'beta')}
    as_arrays = {name: [images.read(path, 28, 1) for path in paths]
                 for name, paths in as_paths.items()}
    assert adapter.fit(as_paths).predict(queries(task)) == api_predictions
    from_arrays = adapter.fit(as_arrays).predict(queries(task))
    assert [p.probabilities for p in from_arrays] == [p.probabilities for p in api_predictions]


def test_float_images_in_0_1_are_read_as_their_uint8_originals(adapter, task, api_predictions):
    # Equal up to float rounding: the compiled step's division by 255 may round differently
    # from numpy's for the grey levels of a converted colour image.
    as_paths = {name: sorted(str(p) for p in (task / 'support' / name).iterdir())
                for name in ('gamma', 'alpha', 'beta')}
    as_floats = {name: [images.read(path, 28, 1) / 255.0 for path in paths]
                 for name, paths in as_paths.items()}
    query_floats = [images.read(path, 28, 1).astype(np.float32) / 255 for path in queries(task)]
    predictions = adapter.fit(as_floats).predict(query_floats)
    assert [p.predicted for p in predictions] == [p.predicted for p in api_predictions]
    for prediction, expected in zip(predictions, api_predictions):
        assert np.allclose(list(prediction.probabilities.values()),
                           list(expected.probabilities.values()), atol=1e-6)
    refused(adapter.predict, [query_floats[0] * 255], match='outside \\[0, 1\\]')


def test_a_colour_query_is_classified_as_its_grey_conversion(adapter, task, api_predictions):
    grey = images.read(queries(task)[2], 28, 1)
    converted_before = adapter.converted
    adapter.fit(str(task / 'support'))
    predictions = adapter.predict(queries(task)[:2] + [grey])
    assert predictions[2].probabilities == api_predictions[2].probabilities
    adapter.predict(queries(task))
    assert adapter.converted == converted_before + 1


def test_the_recorded_evaluation_settings_are_used(adapter, run):
    recorded = json.loads((run.directory / 'config.json').read_text())['flags']
    settings = adapter.learner.evaluator.settings
    assert (settings.inner_iters, settings.inner_batch, settings.transductive) == (
        recorded['eval-iters'], recorded['eval-batch'], recorded['transductive']) == (1, 5, False)


def test_an_override_replaces_a_recorded_setting_and_changes_the_result(adapter_3_steps, task,
                                                                        api_predictions):
    assert adapter_3_steps.learner.evaluator.settings.inner_iters == 3
    longer = adapter_3_steps.fit(str(task / 'support')).predict(queries(task))
    for three_steps, one_step in zip(longer, api_predictions):
        assert three_steps.probabilities != pytest.approx(one_step.probabilities, abs=1e-4)


def test_adaptation_is_the_evaluation_of_the_same_task(adapter_3_steps, tmp_path):
    """A task drawn as evaluation draws one, written out as files: adaptation gives the
    probabilities the evaluator gives for the task (with adaptation's mini-batches)."""
    adapter = adapter_3_steps
    classes = random_classes(5, 4, seed=13)
    grid = sampling.sample_task(classes, 3, 3, np.random.default_rng(4))  # column 0: the query
    support_indices = grid[:, 1:].reshape(-1)
    support_labels = np.repeat(np.arange(3), 2)
    names = ['class_%s' % letter for letter in 'abc']  # sorted as the labels
    for label, name in enumerate(names):
        for shot, index in enumerate(grid[label, 1:]):
            path = tmp_path / 'support' / name / ('%d.png' % shot)
            path.parent.mkdir(parents=True, exist_ok=True)
            Image.fromarray(classes.images[index, ..., 0], 'L').save(path)
    query_paths = []
    for label, index in enumerate(grid[:, 0]):
        query_paths.append(str(tmp_path / ('query%d.png' % label)))
        Image.fromarray(classes.images[index, ..., 0], 'L').save(query_paths[-1])

    settings, values = adapter.learner.evaluator.settings, adapter.values
    positions = sampling.mini_batches(len(support_indices), settings.inner_batch,
                                      settings.inner_iters, values['replacement'],
                                      np.random.default_rng(values['seed']))
    evaluation_task = sampling.EvaluationTask(support_indices[positions],
                                              support_labels[positions], support_indices,
                                              grid[:, 0], np.arange(3))
    logits = adapter.learner.evaluator.query_logits([(classes.images, evaluation_task)])[0]
    expected = softmax(logits[:, :3])

    predictions = adapter.fit(str(tmp_path / 'support')).predict(query_paths)
    actual = np.array([[p.probabilities[name] for name in names] for p in predictions])
    np.testing.assert_allclose(actual, expected, rtol=1e-6, atol=0)
    assert [p.predicted for p in predictions] == [names[i] for i in expected.argmax(-1)]


def test_fewer_classes_than_the_model_has_ways_are_told_apart(adapter, task):
    predictions = adapter.fit(str(task / 'support2')).predict(queries(task))
    for prediction in predictions:
        assert sorted(prediction.probabilities) == ['left', 'right']
        assert prediction.predicted in ('left', 'right')
        assert sum(prediction.probabilities.values()) == pytest.approx(1, abs=1e-6)


# Bad input: a UserError of one line (the command prints it with exit code 2), nothing written.

def refused(call, *call_args, match):
    with pytest.raises(UserError, match=match) as raised:
        call(*call_args)
    assert '\n' not in str(raised.value)


def test_a_support_file_that_is_not_an_image_is_refused_naming_it(adapter, task, tmp_path):
    shutil.copytree(task / 'support', tmp_path / 'support')
    (tmp_path / 'support' / 'beta' / '1.png').write_text('a letter, not a drawing')
    before = files_under(tmp_path)
    refused(adapter.fit, str(tmp_path / 'support'), match=r'cannot read image .*beta/1\.png')
    assert files_under(tmp_path) == before


def test_a_query_that_is_not_an_image_is_refused_naming_it(adapter, task, tmp_path):
    bad = tmp_path / 'photo.png'
    bad.write_bytes(b'\xff\xd8 not a picture')
    adapter.fit(str(task / 'support'))
    refused(adapter.predict, [queries(task)[0], str(bad)], match=r'cannot read image .*photo\.png')


def test_an_empty_class_folder_is_refused_naming_it(adapter, task, tmp_path):
    shutil.copytree(task / 'support', tmp_path / 'support')
    for path in (tmp_path / 'support' / 'gamma').iterdir():
        path.unlink()
    refused(adapter.fit, str(tmp_path / 'support'), match='gamma holds no images')
    refused(adapter.fit, {'alpha': queries(task)[:1], 'gamma': []},
            match='class gamma of the support set has no images')


def test_more_classes_than_the_model_has_are_refused(adapter, task, tmp_path):
    shutil.copytree(task / 'support', tmp_path / 'support')
    shutil.copytree(task / 'support' / 'beta', tmp_path / 'support' / 'delta')
    refused(adapter.fit, str(tmp_path / 'support'), match='has 4 classes; this model tells 2 to 3')


def test_a_support_of_one_class_is_refused(adapter, task, tmp_path):
    shutil.copytree(task / 'support' / 'alpha', tmp_path / 'support' / 'alpha')
    refused(adapter.fit, str(tmp_path / 'support'),
            match='has 1 class; this model tells 2 to 3 apart')
    refused(adapter.fit, str(tmp_path / 'nowhere'), match='no support folder')


def test_a_directory_without_a_checkpoint_is_refused(tmp_path):
    refused(Adapter.from_checkpoint, str(tmp_path), match='no checkpoint in')
    refused(Adapter.from_checkpoint, str(tmp_path / 'nowhere'), match='no checkpoint in')
    assert list(tmp_path.iterdir()) == []


def test_a_run_still_training_is_refused_naming_its_newest_checkpoint(run, tmp_path):
    shutil.copytree(run.directory, tmp_path / 'unfinished')
    (tmp_path / 'unfinished' / 'results.json').unlink()
    refused(Adapter.from_checkpoint, str(tmp_path / 'unfinished'),
            match=r'still training \(its newest checkpoint is .*model\.ckpt-1\)')


def test_a_query_path_that_does_not_exist_is_refused(adapter, task, tmp_path):
    refused(adapt.query_paths, [queries(task)[0], str(tmp_path / 'missing.png')],
            match='no query image or folder .*missing.png')
    (tmp_path / 'empty').mkdir()
    refused(adapt.query_paths, [str(tmp_path / 'empty')], match='holds no images')
    adapter.fit(str(task / 'support'))
    refused(adapter.predict, [str(tmp_path / 'missing.png')], match='missing.png')


def test_predicting_before_fitting_is_refused(run):
    fresh = Adapter.from_checkpoint(str(run.directory))
    refused(fresh.predict, [np.zeros((28, 28, 1), np.uint8)], match='fit a support set')
