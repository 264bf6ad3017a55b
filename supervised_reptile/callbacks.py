"""
Callbacks of the library's own for learner.fit (public as sr.callbacks); Keras' work as well.

    learner.fit(tasks, 10000, callbacks=[sr.callbacks.BackupAndRestore('backup')])

BackupAndRestore is Keras' callback of that name for meta-training: a fit killed anywhere and
run again by the same script goes on from the last backup and ends with the weights the
uninterrupted fit would have, bit for bit. A backup holds everything the rest of the fit
depends on: the model's variables, the inner optimizer's state, the meta-iterations done and the
state of the task source's random generator (tasks are the only random draws of meta-training),
with a record of the fit it belongs to (the learner's settings, the total of meta-iterations and
the tasks' shape), so that a backup of another fit is refused rather than continued.
"""

import json
import os
import shutil

import keras
import tensorflow as tf

from .checkpoints import GeneratorState
from .errors import UserError

CHECKPOINT_NAME = 'backup'


class BackupAndRestore(keras.callbacks.Callback):
    """Back the meta-training of learner.fit up into backup_dir, and restore the newest backup
    there when fit starts, so that a fit interrupted (killed, crashed, out of time) and rerun by
    the same script goes on where it was.

    save_freq: 'epoch' (a backup after every epoch of fit's steps_per_epoch meta-iterations) or
    an integer N (after every N meta-iterations). delete_checkpoint: remove the backups once the
    fit has ended normally, as Keras does. A backup is written whole before it counts, so a kill
    during a write leaves the one before it.
    """

    def __init__(self, backup_dir, save_freq='epoch', delete_checkpoint=True):
        super().__init__()
        if not isinstance(backup_dir, (str, os.PathLike)) or not str(backup_dir):
            raise UserError('BackupAndRestore needs a directory to keep its backups in')
        if save_freq != 'epoch' and not (isinstance(save_freq, int) and save_freq >= 1
                                         and not isinstance(save_freq, bool)):
            raise UserError("save_freq must be 'epoch' or a positive number of meta-iterations, "
                            'not %r' % (save_freq,))
        self.backup_dir = str(backup_dir)
        self.save_freq = save_freq
        self.delete_checkpoint = delete_checkpoint
        self._learner = None
        self._tasks = None
        self._manager = None
        self._iteration = None
        self._record = None

    def set_learner(self, learner, tasks, meta_iterations):
        """Called by fit before training: the learner, the task source and the total of
        meta-iterations of the fit to back up."""
        self._learner = learner
        self._tasks = tasks
        self._iteration = tf.Variable(0, dtype=tf.int64, trainable=False)
        self._record = FitRecord(fit_record(learner, tasks, meta_iterations))
        checkpoint = tf.train.Checkpoint(model=learner.model,
                                         optimizer=learner.algorithm.optimizer,
                                         iteration=self._iteration, rng=GeneratorState(tasks.rng),
                                         fit=self._record)
        self._manager = tf.train.CheckpointManager(checkpoint, self.backup_dir, max_to_keep=2,
                                                   checkpoint_name=CHECKPOINT_NAME)

    def on_train_begin(self, logs=None):
        if self._learner is None:
            raise UserError('BackupAndRestore backs up a learner\'s fit: pass it to '
                            'learner.fit(..., callbacks=[...]), not to keras.Model.fit')
        for path in self._manager.checkpoints[::-1]:
            if self._restore(path):
                iteration = int(self._iteration.numpy())
                self._learner.iteration = iteration
                self._learner._resume_at = iteration  # pylint: disable=protected-access
                return

    def on_train_batch_end(self, batch, logs=None):
        if self.save_freq != 'epoch' and self._learner.iteration % self.save_freq == 0:
            self._save()

    def on_epoch_end(self, epoch, logs=None):
        if self.save_freq == 'epoch':
            self._save()

    def on_train_end(self, logs=None):
        if self.delete_checkpoint:
            shutil.rmtree(self.backup_dir, ignore_errors=True)

    def _save(self):
        self._iteration.assign(self._learner.iteration)
        self._manager.save(checkpoint_number=self._learner.iteration)

    def _restore(self, path):
        """Load the backup at path: True if done, False if its files are damaged; a UserError,
        with nothing changed, if it is the backup of another fit."""
        try:
            recorded = json.loads(tf.train.load_checkpoint(path).get_tensor(RECORD_KEY))
        except (tf.errors.OpError, ValueError, IndexError):
            return _damaged(path)
        differing = sorted(name for name, value in self._record.values.items()
                           if recorded.get(name) != value)
        if differing:
            raise UserError('%s holds the backup of a fit with other %s; delete it, or give '
                            'BackupAndRestore another directory'
                            % (self.backup_dir, ', '.join(differing)))
        before = self._state()
        try:
            # Consumed: every value of the backup has a variable to go to, and every variable a
            # value, or it is the backup of another model or inner optimizer.
            self._manager.checkpoint.restore(path).assert_consumed()
        except (tf.errors.OpError, IndexError):
            self._put_back(before)
            return _damaged(path)
        except (AssertionError, ValueError) as exc:
            self._put_back(before)
            # The half-done restore would log warnings about unrestored values at exit; the error
            # below says all there is to say.
            tf.get_logger().setLevel('ERROR')
            raise UserError('%s holds the backup of another model or inner optimizer (%s); '
                            'delete it, or give BackupAndRestore another directory'
                            % (self.backup_dir, str(exc).splitlines()[0])) from None
        return True

    def _variables(self):
        optimizer = self._learner.algorithm.optimizer
        return (list(self._learner.model.variables) + [optimizer.iterations, self._iteration]
                + [slot for slots in optimizer.slots for slot in slots])

    def _state(self):
        """What a restore changes, to put back if it fails half-way."""
        return ([variable.numpy() for variable in self._variables()],
                self._tasks.rng.bit_generator.state)

    def _put_back(self, state):
        values, generator = state
        for variable, value in zip(self._variables(), values):
            variable.assign(value)
        self._tasks.rng.bit_generator.state = generator


def _damaged(path):
    print('warning: backup %s cannot be read; trying the one before it' % path)
    return False


# Where a backup keeps its FitRecord.
RECORD_KEY = 'fit/.ATTRIBUTES/py_state'


class FitRecord(tf.train.experimental.PythonState):
    """What fit a backup belongs to, saved in it as JSON (values: see fit_record)."""

    def __init__(self, values):
        self.values = values

    def serialize(self):
        return json.dumps(self.values)

    def deserialize(self, string_value):
        del string_value  # compared before the restore (BackupAndRestore._restore)


def fit_record(learner, tasks, meta_iterations):
    """The settings a fit's rest depends on, as JSON values: the learner's, the total of
    meta-iterations and the shape of the tasks."""
    settings = dict(learner._settings())  # pylint: disable=protected-access
    del settings['iteration']
    shape = {name: getattr(tasks, name, None) for name in ('ways', 'shots', 'replacement')}
    return json.loads(json.dumps({'learner': settings, 'meta_iterations': meta_iterations,
                                  'tasks': dict(shape, kind=type(tasks).__name__)}))
