"""sr.callbacks.BackupAndRestore: a learner.fit killed anywhere and run again ends with the weights,
inner optimizer state, meta-iteration count and task generator of the uninterrupted fit, bit for
bit; backups are written when save_freq says, deleted after a normal end if asked, and a backup of
another model is refused.

The fits anneal the meta step size (1.0 to 0.0), so that a resumed fit that restarted or
stretched the schedule would end elsewhere; 23 meta-iterations of 5 per epoch, interrupted at 13,
keep the kill off epoch and save boundaries.
"""

import json
import os
import re
import signal
import subprocess
import sys

import keras
import numpy as np
import pytest
import tensorflow as tf

import supervised_reptile as sr

META_ITERATIONS = 23
STEPS_PER_EPOCH = 5
INTERRUPT_AT = 13  # meta-iterations done when the fit dies: mid-epoch, off every save point
SETTINGS = dict(inner_steps=2, inner_batch_size=4, meta_batch_size=2, eval_steps=3,
                eval_batch_size=3, meta_step_size=1.0, meta_step_size_final=0.0)
# The newest backup when the fit dies at INTERRUPT_AT, for each save_freq.
LAST_BACKUP = {'epoch': 10, 3: 12}

# A training script as a user writes it: killed (SIGKILL) at meta-iteration KILL_AT if set, and
# run again as it is. It writes its end state to argv[2] and appends the meta-iterations it
# runs to argv[3].
SCRIPT = '''
import json, os, signal, sys
import keras
import numpy as np
import supervised_reptile as sr

backup_dir, out, record = sys.argv[1:4]
kill_at = int(os.environ.get('KILL_AT', -1))
keras.utils.set_random_seed(0)
rng = np.random.default_rng(1)
y = np.repeat(np.arange(6), 8)
x = (3 * rng.normal(size=(6, 8)))[y] + rng.normal(size=(len(y), 8))
tasks = sr.tasks.from_arrays(x, y, ways=3, shots=2, seed=0)
model = keras.Sequential([keras.Input((8,)), keras.layers.Dense(16, activation='relu'),
                          keras.layers.Dense(3)])
learner = sr.Reptile(model, **%(settings)r)


class Killer(keras.callbacks.Callback):
    def on_train_batch_begin(self, batch, logs=None):
        with open(record, 'a') as f:
            f.write('%%d\\n' %% learner.iteration)

    def on_train_batch_end(self, batch, logs=None):
        if learner.iteration == kill_at:
            os.kill(os.getpid(), signal.SIGKILL)


learner.fit(tasks, %(meta_iterations)d, steps_per_epoch=%(steps_per_epoch)d, verbose=0,
            callbacks=[sr.callbacks.BackupAndRestore(backup_dir), Killer()])
optimizer = learner.algorithm.optimizer
arrays = {'weight%%d' %% i: w for i, w in enumerate(model.get_weights())}
arrays.update(('slot%%d' %% i, v.numpy())
              for i, v in enumerate(v for slots in optimizer.slots for v in slots))
np.savez(out, step=optimizer.iterations.numpy(), iteration=learner.iteration,
         rng=json.dumps(tasks.rng.bit_generator.state), **arrays)
''' % dict(settings=SETTINGS, meta_iterations=META_ITERATIONS, steps_per_epoch=STEPS_PER_EPOCH)


def blobs():
    """Points of 6 classes around random centres (as SCRIPT draws them): (x [48, 8], y [48])."""
    rng = np.random.default_rng(1)
    y = np.repeat(np.arange(6), 8)
    x = (3 * rng.normal(size=(6, 8)))[y] + rng.normal(size=(len(y), 8))
    return x.astype(np.float32), y


def mlp(hidden=16, use_bias=True):
    return keras.Sequential([keras.Input((8,)),
                             keras.layers.Dense(hidden, activation='relu', use_bias=use_bias),
                             keras.layers.Dense(3)])


def fresh_start(hidden=16, use_bias=True, **settings):
    """(learner, tasks) as a script builds them at its start: seeded model, new task source."""
    keras.utils.set_random_seed(0)
    x, y = blobs()
    return (sr.Reptile(mlp(hidden, use_bias), **dict(SETTINGS, **settings)),
            sr.tasks.from_arrays(x, y, ways=3, shots=2, seed=0))


def end_state(learner, tasks):
    """Everything the rest of a fit depends on, as arrays (the keys SCRIPT saves)."""
    optimizer = learner.algorithm.optimizer
    state = {'weight%d' % i: w for i, w in enumerate(learner.model.get_weights())}
    state.update(('slot%d' % i, v.numpy())
                 for i, v in enumerate(v for slots in optimizer.slots for v in slots))
    state.update(step=optimizer.iterations.numpy(), iteration=np.array(learner.iteration),
                 rng=np.array(json.dumps(tasks.rng.bit_generator.state)))
    return state


def assert_same_state(state, expected):
    assert sorted(state) == sorted(expected)
    assert any(key.startswith('slot') for key in expected)  # the inner optimizer's are compared
    for key, value in expected.items():
        assert np.array_equal(state[key], value), key


def backup_number(backup_dir):
    """The meta-iterations of the newest backup in backup_dir, or None."""
    path = tf.train.latest_checkpoint(str(backup_dir))
    return None if path is None else int(path.rsplit('-', 1)[1])


class Interrupted(Exception):
    """Raised by Interrupt: a fit that dies, in process."""


class Recorder(keras.callbacks.Callback):
    """Records the meta-iterations run and, after each and each epoch, the newest backup;
    raises Interrupted once interrupt_at meta-iterations are done."""

    def __init__(self, learner, backup_dir=None, interrupt_at=None):
        super().__init__()
        self.learner = learner
        self.backup_dir = backup_dir
        self.interrupt_at = interrupt_at
        self.ran = []
        self.backups = set()

    def on_train_batch_begin(self, batch, logs=None):
        self.ran.append(self.learner.iteration)

    def on_train_batch_end(self, batch, logs=None):
        self._look()
        if self.learner.iteration == self.interrupt_at:
            raise Interrupted()

    def on_epoch_end(self, epoch, logs=None):
        self._look()

    def _look(self):
        if self.backup_dir is not None and backup_number(self.backup_dir) is not None:
            self.backups.add(backup_number(self.backup_dir))


def fit(learner, tasks, backup_dir, meta_iterations=META_ITERATIONS, interrupt_at=None,
        **options):
    """learner.fit with a BackupAndRestore(backup_dir, **options) and a Recorder after it; the
    Recorder."""
    recorder = Recorder(learner, backup_dir, interrupt_at)
    learner.fit(tasks, meta_iterations, steps_per_epoch=STEPS_PER_EPOCH, verbose=0,
                callbacks=[sr.callbacks.BackupAndRestore(backup_dir, **options), recorder])
    return recorder


@pytest.fixture(scope='module')
def uninterrupted(tmp_path_factory):
    """The end state of a fit never interrupted, in this process."""
    learner, tasks = fresh_start()
    fit(learner, tasks, tmp_path_factory.mktemp('uninterrupted') / 'backup')
    return end_state(learner, tasks)


def run_script(tmp_path, name, kill_at=None):
    """Run SCRIPT in tmp_path (its backups in tmp_path/backup) as run `name`: the completed
    process, its end state (None if killed) and the meta-iterations it ran."""
    script = tmp_path / 'train.py'
    script.write_text(SCRIPT)
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL='3')
    env.pop('KILL_AT', None)
    if kill_at is not None:
        env['KILL_AT'] = str(kill_at)
    out, record = tmp_path / (name + '.npz'), tmp_path / (name + '.txt')
    result = subprocess.run([sys.executable, str(script), str(tmp_path / 'backup'), str(out),
                             str(record)], cwd=tmp_path, env=env, capture_output=True, text=True,
                            timeout=300, check=False)
    state = dict(np.load(out)) if out.exists() else None
    ran = [int(line) for line in record.read_text().split()] if record.exists() else []
    return result, state, ran


@pytest.mark.slow
def test_a_script_killed_mid_fit_and_rerun_ends_as_if_never_interrupted(tmp_path):
    reference_dir, resumed_dir = tmp_path / 'reference', tmp_path / 'resumed'
    reference_dir.mkdir()
    resumed_dir.mkdir()
    result, expected, ran = run_script(reference_dir, 'whole')
    assert result.returncode == 0, result.stderr
    assert ran == list(range(META_ITERATIONS))

    result, state, ran = run_script(resumed_dir, 'killed', kill_at=INTERRUPT_AT)
    assert result.returncode == -signal.SIGKILL, result.stderr
    assert state is None and ran == list(range(INTERRUPT_AT))
    assert backup_number(resumed_dir / 'backup') == LAST_BACKUP['epoch']

    result, state, ran = run_script(resumed_dir, 'rerun')
    assert result.returncode == 0, result.stderr
    # It went on from the backup of the last epoch's end, not from the start or from the kill.
    assert ran == list(range(LAST_BACKUP['epoch'], META_ITERATIONS))
    assert_same_state(state, expected)
    assert int(state['iteration']) == META_ITERATIONS
    assert not (resumed_dir / 'backup').exists()


@pytest.mark.parametrize('save_freq', ['epoch', 3])
def test_a_fit_interrupted_in_process_is_finished_by_a_new_learner_from_the_backup(
        tmp_path, uninterrupted, save_freq):
    backup_dir = tmp_path / 'backup'
    learner, tasks = fresh_start()
    with pytest.raises(Interrupted):
        fit(learner, tasks, backup_dir, interrupt_at=INTERRUPT_AT, save_freq=save_freq)
    assert backup_number(backup_dir) == LAST_BACKUP[save_freq]  # kept: no on_train_end

    learner, tasks = fresh_start()
    recorder = fit(learner, tasks, backup_dir, save_freq=save_freq)
    assert recorder.ran == list(range(LAST_BACKUP[save_freq], META_ITERATIONS))
    assert_same_state(end_state(learner, tasks), uninterrupted)
    assert not backup_dir.exists()


def test_a_damaged_newest_backup_is_passed_over_for_the_one_before_it(tmp_path, uninterrupted):
    backup_dir = tmp_path / 'backup'
    learner, tasks = fresh_start()
    with pytest.raises(Interrupted):
        fit(learner, tasks, backup_dir, interrupt_at=INTERRUPT_AT, save_freq=3)
    newest = LAST_BACKUP[3]
    assert backup_number(backup_dir) == newest
    data = backup_dir / ('backup-%d.data-00000-of-00001' % newest)
    data.write_bytes(data.read_bytes()[:data.stat().st_size // 2])  # a half-written file

    learner, tasks = fresh_start()
    recorder = fit(learner, tasks, backup_dir, save_freq=3)
    assert recorder.ran == list(range(newest - 3, META_ITERATIONS))
    assert_same_state(end_state(learner, tasks), uninterrupted)


@pytest.mark.parametrize('save_freq, backups', [
    ('epoch', {5, 10, 15, 20, 23}),  # every epoch's end, the last one short
    (3, {3, 6, 9, 12, 15, 18, 21}),  # every 3 meta-iterations, and never at an epoch's end
])
def test_backups_are_written_when_save_freq_says(tmp_path, save_freq, backups):
    learner, tasks = fresh_start()
    recorder = fit(learner, tasks, tmp_path / 'backup', save_freq=save_freq,
                   delete_checkpoint=False)
    assert recorder.backups == backups


def test_the_backup_is_deleted_when_fit_ends_normally(tmp_path):
    backup_dir = tmp_path / 'backup'
    learner, tasks = fresh_start()
    recorder = fit(learner, tasks, backup_dir, meta_iterations=7)
    assert recorder.backups == {5, 7}  # there was one to delete
    assert not backup_dir.exists()


def test_a_backup_kept_after_a_normal_end_holds_the_end_state(tmp_path):
    backup_dir = tmp_path / 'backup'
    learner, tasks = fresh_start()
    fit(learner, tasks, backup_dir, meta_iterations=7, delete_checkpoint=False)
    assert backup_number(backup_dir) == 7
    expected = end_state(learner, tasks)

    # The script run again restores it and has nothing left to do.
    learner, tasks = fresh_start()
    recorder = fit(learner, tasks, backup_dir, meta_iterations=7, delete_checkpoint=False)
    assert recorder.ran == []
    assert_same_state(end_state(learner, tasks), expected)
    assert backup_number(backup_dir) == 7


def write_backup(backup_dir, meta_iterations=5, **settings):
    """A kept backup of a fit of meta_iterations (5 by default) of the 16-unit model (with these
    learner settings)."""
    learner, tasks = fresh_start(**settings)
    fit(learner, tasks, backup_dir, meta_iterations=meta_iterations, delete_checkpoint=False)
    assert backup_number(backup_dir) == meta_iterations


@pytest.mark.parametrize('backup_settings, settings, named', [
    (dict(meta_iterations=5), dict(meta_iterations=7), 'meta_iterations'),
    (dict(meta_iterations=7), dict(meta_iterations=7, inner_steps=3), 'learner'),
], ids=['another-total', 'other-inner-steps'])
def test_the_backup_of_a_fit_with_other_settings_is_refused_naming_them(
        tmp_path, backup_settings, settings, named):
    backup_dir = tmp_path / 'backup'
    write_backup(backup_dir, **backup_settings)
    meta_iterations = settings.pop('meta_iterations')
    learner, tasks = fresh_start(**settings)
    with pytest.raises(ValueError, match='fit with other .*%s' % named):
        fit(learner, tasks, backup_dir, meta_iterations=meta_iterations)


def test_a_refused_backup_leaves_the_learner_and_its_tasks_as_they_were(tmp_path):
    backup_dir = tmp_path / 'backup_of_a_biased_layer'
    write_backup(backup_dir, meta_iterations=7)
    learner, tasks = fresh_start(use_bias=False)
    before = end_state(learner, tasks)
    with pytest.raises(ValueError, match='another model'):
        fit(learner, tasks, backup_dir, meta_iterations=7)
    assert_same_state(end_state(learner, tasks), before)


def test_the_backup_of_a_model_of_another_shape_is_refused_naming_the_directory(tmp_path):
    backup_dir = tmp_path / 'backup_of_16_units'
    write_backup(backup_dir)
    learner, tasks = fresh_start(hidden=12)
    with pytest.raises(ValueError, match=re.escape(str(backup_dir))) as error:
        fit(learner, tasks, backup_dir)
    assert isinstance(error.value, sr.UserError)
    assert learner.iteration == 0  # refused before any training
    assert backup_number(backup_dir) == 5  # and left as it was


@pytest.mark.parametrize('backup_settings, settings', [
    # The model has no bias in its hidden layer; the backup's model had one (SGD: no slots
    # whose count would differ).
    (dict(inner_optimizer=sr.SGD(0.1)), dict(inner_optimizer=sr.SGD(0.1), use_bias=False)),
    # The backup holds Adam's moments; the learner's inner optimizer is SGD.
    (dict(), dict(inner_optimizer=sr.SGD(0.1))),
], ids=['model-without-a-variable', 'sgd-learner-adam-backup'])
def test_a_backup_with_values_the_learner_has_no_variable_for_is_refused(
        tmp_path, backup_settings, settings):
    backup_dir = tmp_path / 'backup_of_another_learner'
    write_backup(backup_dir, **backup_settings)
    learner, tasks = fresh_start(**settings)
    with pytest.raises(ValueError, match=re.escape(str(backup_dir))):
        fit(learner, tasks, backup_dir, meta_iterations=7)
    assert learner.iteration == 0


def test_keras_model_fit_with_the_callback_is_refused(tmp_path):
    x, y = blobs()
    model = mlp()
    model.compile(optimizer='sgd', loss='sparse_categorical_crossentropy')
    with pytest.raises(sr.UserError, match='learner.fit'):
        model.fit(x, y % 3, epochs=1, verbose=0,
                  callbacks=[sr.callbacks.BackupAndRestore(tmp_path / 'backup')])
    assert not (tmp_path / 'backup').exists()


@pytest.mark.parametrize('arguments', [
    dict(backup_dir=''), dict(backup_dir=None), dict(backup_dir='backup', save_freq=0),
    dict(backup_dir='backup', save_freq=-3), dict(backup_dir='backup', save_freq='batch'),
    dict(backup_dir='backup', save_freq=2.5),
    dict(backup_dir='backup', save_freq=True)])
def test_arguments_that_cannot_work_are_refused(arguments):
    with pytest.raises(sr.UserError):
        sr.callbacks.BackupAndRestore(**arguments)
