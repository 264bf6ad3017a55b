"""
Callbacks of the library's own for learner.fit (public as sr.callbacks); Keras' work as well.

    learner.fit(tasks, 10000, callbacks=[sr.callbacks.BackupAndRestore('backup')])

BackupAndRestore is Keras' callback of that name for meta-training: a fit killed anywhere and
run again by the same script goes on from the last backup and ends with the weights the
uninterrupted fit would have, bit for bit. A backup holds everything the rest of the fit
depends on: the model's variables, the inner optimizer's state, the meta-iterations done and the
state of the task source's random generator (tasks are the only random draws of meta-training).
"""

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
        self._manager = None
        self._iteration = None

    def set_learner(self, learner, tasks):
        """Called by fit before training: the learner and the task source to back up."""
        self._learner = learner
        self._iteration = tf.Variable(0, dtype=tf.int64, trainable=False)
        checkpoint = tf.train.Checkpoint(model=learner.model,
                                         optimizer=learner.algorithm.optimizer,
                                         iteration=self._iteration, rng=GeneratorState(tasks.rng))
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
        """Load the backup at path: True if done, False if its files are damaged; a UserError if
        it is the backup of another model."""
        try:
            # Consumed: every value of the backup has a variable to go to, and every variable a
            # value, or it is the backup of another model or inner optimizer.
            self._manager.checkpoint.restore(path).assert_consumed()
        except (tf.errors.OpError, IndexError):
            print('warning: backup %s cannot be read; trying the one before it' % path)
            return False
        except (AssertionError, ValueError) as exc:
            # The half-done restore would log warnings about unrestored values at exit; the error
            # below says all there is to say.
            tf.get_logger().setLevel('ERROR')
            raise UserError('%s holds the backup of another model or inner optimizer (%s); '
                            'delete it, or give BackupAndRestore another directory'
                            % (self.backup_dir, str(exc).splitlines()[0])) from None
        return True
