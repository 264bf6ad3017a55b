"""Resume: a run killed at any moment and rerun ends exactly where an uninterrupted run ends."""

import json
import os
import random
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import tensorflow as tf

from supervised_reptile import checkpoints, learner, models
from supervised_reptile.inner_loop import Adam
from supervised_reptile.reptile import Reptile
from supervised_reptile.settings import Evaluation, TaskShape, Training
from supervised_reptile.summaries import last_logged_step
from supervised_reptile.tasks import ClassificationTasks
from supervised_reptile.train import TrainingDiverged, train

from conftest import REPO_DIR, copy_omniglot_tree, random_classes

pytestmark = pytest.mark.slow  # run scripts killed and resumed in subprocesses

META_ITERS = 450
COMMAND = ['--shots', '1', '--train-shots', '2', '--inner-iters', '2', '--meta-batch', '2',
           '--meta-iters', str(META_ITERS), '--eval-iters', '3', '--eval-interval', '10',
           '--eval-samples', '5', '--transductive',
           # Annealed, so that a resumed run that restarted the annealing would end elsewhere.
           '--meta-step', '0.8', '--meta-step-final', '0.05']
FINAL = 'model.ckpt-%d' % (META_ITERS - 1)


def script(cwd, checkpoint, prelude=None):
    """The command line of a training run, optionally with Python run before the script."""
    run = ('import os, runpy, sys; sys.argv = sys.argv[1:]; '
           'sys.path.insert(0, os.path.dirname(sys.argv[0])); '
           'runpy.run_path(sys.argv[0], run_name="__main__")')
    code = (prelude or '') + '\n' + run
    return [sys.executable, '-c', code, str(REPO_DIR / 'run_omniglot.py'), *COMMAND,
            '--checkpoint', checkpoint]


def environment():
    return dict(os.environ, TF_CPP_MIN_LOG_LEVEL='3', PYTHONUNBUFFERED='1')


def run_to_end(cwd, checkpoint, prelude=None):
    result = subprocess.run(script(cwd, checkpoint, prelude), cwd=cwd, env=environment(),
                            capture_output=True, text=True, timeout=600, check=False)
    assert result.returncode == 0, result.stderr
    return result


def saved_tensors(path):
    """Every tensor of a checkpoint but the clock and the count of saves made."""
    reader = tf.train.load_checkpoint(path)
    return {name: reader.get_tensor(name) for name in reader.get_variable_to_shape_map()
            if not name.startswith(('save_counter', 'training_seconds'))}


def assert_same_end(directory, reference):
    ours, theirs = saved_tensors(str(directory / FINAL)), saved_tensors(str(reference / FINAL))
    assert sorted(ours) == sorted(theirs)
    assert any('rng' in name for name in ours) and any('optimizer' in name for name in ours)
    for name, value in theirs.items():
        assert np.array_equal(ours[name], value), name
    accuracies = [json.loads((d / 'results.json').read_text())['accuracy']
                  for d in (directory, reference)]
    assert accuracies[0] == accuracies[1]


def logged_steps(log_dir):
    steps = []
    for path in sorted(log_dir.glob('events.out.tfevents.*')):
        steps += [(event.step, value.tag) for event in tf.compat.v1.train.summary_iterator(str(path))
                  for value in event.summary.value]
    return steps


@pytest.fixture(scope='module')
def workdir(tmp_path_factory, omniglot_tree):
    root = tmp_path_factory.mktemp('resume')
    copy_omniglot_tree(omniglot_tree, root)
    return root


@pytest.fixture(scope='module')
def uninterrupted(workdir):
    run_to_end(workdir, 'whole')
    return workdir / 'whole'


def test_a_run_killed_at_a_random_moment_resumes_to_the_same_end(workdir, uninterrupted):
    seed = random.randrange(10**6)
    delay = random.Random(seed).uniform(0.0, 2.0)
    process = subprocess.Popen(script(workdir, 'killed'), cwd=workdir, env=environment(),
                               stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    for line in process.stdout:
        if line.startswith('checkpoint'):
            break
    time.sleep(delay)
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert process.returncode == -signal.SIGKILL, 'the run ended before the kill (seed %d)' % seed

    resumed = run_to_end(workdir, 'killed')
    assert 'Resuming from checkpoint' in resumed.stdout, 'seed %d' % seed
    assert_same_end(workdir / 'killed', uninterrupted)
    for split in ('train', 'test'):
        assert logged_steps(workdir / 'killed' / split) == logged_steps(uninterrupted / split)


# Dies the way a kill in the middle of saving checkpoint 300 would leave things: its files are
# written, but the record naming the newest checkpoint still names 200. It loads TensorFlow, so
# it makes the script's choice of CPU kernels first (their rounding differs).
KILL_WHILE_SAVING_300 = '''
import os, signal
from supervised_reptile import cpu_kernels
cpu_kernels.choose('omniglot')
from tensorflow.python.checkpoint import checkpoint_management
record = checkpoint_management.update_checkpoint_state_internal
def record_or_die(save_dir, model_checkpoint_path, *args, **kwargs):
    if model_checkpoint_path.endswith('-300'):
        os.kill(os.getpid(), signal.SIGKILL)
    return record(save_dir, model_checkpoint_path, *args, **kwargs)
checkpoint_management.update_checkpoint_state_internal = record_or_die
'''


def test_a_kill_during_a_save_and_a_damaged_checkpoint_cost_only_time(workdir, uninterrupted):
    result = subprocess.run(script(workdir, 'cut', KILL_WHILE_SAVING_300), cwd=workdir,
                            env=environment(), capture_output=True, text=True, timeout=600,
                            check=False)
    assert result.returncode == -signal.SIGKILL
    assert checkpoints.latest(str(workdir / 'cut')).endswith('model.ckpt-200')
    damaged = workdir / 'cut' / 'model.ckpt-200.data-00000-of-00001'
    damaged.write_bytes(damaged.read_bytes()[:100])

    resumed = run_to_end(workdir, 'cut')
    assert 'model.ckpt-200 cannot be read' in resumed.stdout
    assert 'Resuming from checkpoint %s' % os.path.join('cut', 'model.ckpt-100') in resumed.stdout
    assert_same_end(workdir / 'cut', uninterrupted)


def test_a_finished_run_is_not_trained_again_and_a_changed_command_does_not_resume(
        workdir, uninterrupted):
    before = {path: path.read_bytes() for path in uninterrupted.rglob('*') if path.is_file()}
    again = subprocess.run(script(workdir, 'whole'), cwd=workdir, env=environment(),
                           capture_output=True, text=True, timeout=600, check=False)
    assert again.returncode == 2
    assert again.stderr.strip().splitlines()[-1] == (
        'error: whole holds a finished run (see its results.json); evaluate it with '
        '--pretrained, or choose another --checkpoint')
    assert {path: path.read_bytes() for path in uninterrupted.rglob('*') if path.is_file()} == before


def diverging_at(step, outcome):
    """A learner whose meta-step at `step` reports `outcome` (loss, weights finite), as a
    diverging run would."""

    class DivergingAt(Reptile):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            self.calls = 0

        def train_step(self, images, meta_batch, meta_step_size):
            result = super().train_step(images, meta_batch, meta_step_size)
            self.calls += 1
            return outcome if self.calls - 1 == step else result

    class DivergingLearner(learner.Reptile):
        engine = DivergingAt

    return DivergingLearner


def train_diverging_at(directory, step, outcome):
    classes = random_classes(6, 3)
    shape = TaskShape(classes=2, shots=1)
    training = Training(train_shots=1, inner_batch=2, inner_iters=1, meta_iters=300,
                        eval_interval=50)
    evaluation = Evaluation(inner_iters=1)
    diverging = diverging_at(step, outcome)(
        models.omniglot_model(2), inner_optimizer=Adam(1e-3), inner_steps=training.inner_iters,
        inner_batch_size=training.inner_batch, meta_batch_size=training.meta_batch,
        meta_step_size=training.meta_step, meta_step_size_final=training.meta_step_final,
        eval_steps=evaluation.inner_iters, eval_batch_size=evaluation.inner_batch)
    rng = np.random.default_rng(0)
    tasks = ClassificationTasks(classes, shape.classes, training.train_shots, rng=rng)
    logged = [(name, ClassificationTasks(classes, shape.classes, shape.shots, rng=rng))
              for name in ('train', 'test')]
    with pytest.raises(TrainingDiverged) as stopped:
        train(diverging, tasks, logged, str(directory), training.meta_iters,
              training.eval_interval, log_fn=lambda line: None)
    return str(stopped.value)


def test_a_nan_loss_stops_the_run_and_keeps_the_last_good_checkpoint(tmp_path):
    message = train_diverging_at(tmp_path, 150, (float('nan'), True))
    assert message.startswith('meta-iteration 150: the training loss is nan')
    assert 'its last good state is %s' % (tmp_path / 'model.ckpt-100') in message
    assert checkpoints.latest(str(tmp_path)).endswith('model.ckpt-100')
    assert last_logged_step(str(tmp_path / 'train')) == 100


def test_weights_that_stop_being_finite_stop_the_run_before_any_checkpoint(tmp_path):
    message = train_diverging_at(tmp_path, 0, (1.0, False))
    assert message.startswith('meta-iteration 0: a weight is no longer finite')
    assert 'no checkpoint (none had been written)' in message
    assert checkpoints.latest(str(tmp_path)) is None


def test_the_generator_state_round_trips_through_a_checkpoint(tmp_path):
    rng = np.random.default_rng(5)
    reptile = Reptile(models.omniglot_model(2), Adam(1e-3))
    state = checkpoints.TrainingState(reptile, rng, str(tmp_path))
    rng.random(7)
    state.save(3, 1.5)
    expected = rng.random(4)
    rng.random(100)
    fresh = np.random.default_rng(99)
    restored = checkpoints.TrainingState(reptile, fresh, str(tmp_path))
    restored.restore()
    assert np.array_equal(fresh.random(4), expected)
    assert int(restored.last_step.numpy()) == 3 and float(restored.training_seconds.numpy()) == 1.5
