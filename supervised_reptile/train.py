"""
The run scripts' meta-training: the learner's fit (learner.py) with the bookkeeping of a run as
a Keras callback.

Every eval_interval steps a task of the training classes and one of the test classes are
evaluated, beside the training (periodic.py); the accuracies go to the log and to TensorBoard
under <save_dir>/train and <save_dir>/test, with the training loss. A checkpoint is written
every 100 steps and after the last one.

Training into a directory that holds checkpoints resumes after the newest one (see
checkpoints.py), and a loss or weight that stops being finite ends the run before it is saved.
"""

import os
import time

import keras

from . import checkpoints
from .errors import UserError
from .learner import TrainingDiverged as LearnerDiverged
from .periodic import PeriodicEvaluation
from .progress import Progress
from .summaries import ScalarWriter

CHECKPOINT_INTERVAL = 100


class TrainingDiverged(UserError):
    """The loss or the weights became NaN or infinite; nothing after the last checkpoint is kept."""


def train(learner, tasks, logged, save_dir, meta_iters, eval_interval, log_fn=print):
    """Meta-train learner on tasks (a tasks.py source) for meta_iters meta-iterations, logging
    the periodic evaluation of a task from each (name, source) of logged (the training set's
    first) every eval_interval of them, from scratch or from the newest checkpoint in save_dir;
    return the seconds spent training over all the sessions of the run.

    The sources share tasks' generator, which the checkpoints save."""
    tasks.check('training', queries=False)
    os.makedirs(save_dir, exist_ok=True)
    state = checkpoints.TrainingState(learner.algorithm, tasks.rng, save_dir)
    first_step, seconds_before = _resume(state, meta_iters, log_fn)
    logged_sets = [(source, ScalarWriter(os.path.join(save_dir, name))) for name, source in logged]
    started = time.monotonic()
    with PeriodicEvaluation(learner.evaluator, logged_sets, log_fn) as periodic:
        bookkeeping = RunBookkeeping(learner, periodic, state, meta_iters, eval_interval,
                                     Progress(meta_iters, done=first_step),
                                     lambda: seconds_before + time.monotonic() - started, log_fn)
        try:
            learner.fit(tasks, meta_iters, callbacks=[bookkeeping], initial_iteration=first_step,
                        verbose=0)
        except LearnerDiverged as exc:
            kept = state.manager.latest_checkpoint or 'no checkpoint (none had been written)'
            raise TrainingDiverged('%s; its last good state is %s. Lower --learning-rate or '
                                   '--meta-step and train into a new --checkpoint'
                                   % (exc, kept)) from None
    return seconds_before + time.monotonic() - started


class RunBookkeeping(keras.callbacks.Callback):
    """After every meta-step: the periodic evaluation every eval_interval steps, and a
    checkpoint (after the pending evaluation is logged) every CHECKPOINT_INTERVAL steps and
    after the last one, with a progress line."""

    def __init__(self, learner, periodic, state, meta_iters, eval_interval, progress, clock,
                 log_fn):
        super().__init__()
        self.learner = learner
        self.periodic = periodic
        self.state = state
        self.meta_iters = meta_iters
        self.eval_interval = eval_interval
        self.progress = progress
        self.clock = clock
        self.log_fn = log_fn

    def on_train_batch_end(self, batch, logs=None):
        step = self.learner.iteration - 1
        self.progress.advance()
        if step % self.eval_interval == 0:
            self.periodic.start(step, logs['loss'])
        self.periodic.log_if_done()
        if step % CHECKPOINT_INTERVAL == 0 or step == self.meta_iters - 1:
            self.periodic.finish()
            path = self.state.save(step, self.clock())
            self.log_fn('checkpoint %s (%s)' % (path, self.progress.describe('steps')))


def _resume(state, meta_iters, log_fn):
    """(first step to run, seconds trained before) after restoring the newest checkpoint of the
    run, if it has one."""
    if not state.manager.latest_checkpoint:
        return 0, 0.0
    path = state.restore()
    first_step = int(state.last_step.numpy()) + 1
    if first_step > meta_iters:
        raise UserError('%s was trained for %d meta-iterations, beyond --meta-iters %d; pass the '
                        'same --meta-iters to finish it' % (state.manager.directory, first_step,
                                                            meta_iters))
    log_fn('Resuming from checkpoint %s: %d of %d meta-iterations done'
           % (path, first_step, meta_iters))
    return first_step, float(state.training_seconds.numpy())
