"""
The meta-training loop: host-side bookkeeping around the compiled meta-step.

Every eval_interval steps a task of the training classes and one of the test classes are
evaluated, beside the training (periodic.py); the accuracies go to the log and to TensorBoard
under <save_dir>/train and <save_dir>/test, with the training loss. A checkpoint is written
every 100 steps and after the last one.

Training into a directory that holds checkpoints resumes after the newest one (see
checkpoints.py), and a loss or weight that stops being finite ends the run before it is saved.
"""

import math
import os
import time

import tensorflow as tf

from . import checkpoints, sampling
from .errors import UserError
from .periodic import PeriodicEvaluation
from .progress import Progress
from .summaries import ScalarWriter

CHECKPOINT_INTERVAL = 100


class TrainingDiverged(UserError):
    """The loss or the weights became NaN or infinite; nothing after the last checkpoint is kept."""


def check_task_sizes(train_set, test_set, shape, training):
    """Raise a UserError if the tasks are larger than the data allows."""
    train_set.check_task_size(shape.classes, training.train_shots, 'training')
    for classes, name in ((train_set, 'training'), (test_set, 'test')):
        classes.check_task_size(shape.classes, shape.shots + 1, name)


def sample_meta_batch(classes, shape, training, rng):
    """The training tasks of one meta-step, stacked (a sampling.TrainingTask of arrays)."""
    return sampling.stack_tasks([
        sampling.training_task(classes, shape.classes, training.train_shots,
                               training.inner_batch, training.inner_iters, shape.replacement,
                               rng, training.tail_shots)
        for _ in range(training.meta_batch)])


def train(reptile, evaluator, train_set, test_set, save_dir, rng, shape, training, log_fn=print):
    """Meta-train reptile on train_set with tasks of shape (settings.TaskShape) and settings
    training (settings.Training), logging evaluations by evaluator on train_set and test_set,
    from scratch or from the newest checkpoint in save_dir; return the seconds spent training
    over all the sessions of the run."""
    check_task_sizes(train_set, test_set, shape, training)
    os.makedirs(save_dir, exist_ok=True)
    state = checkpoints.TrainingState(reptile, rng, save_dir)
    first_step, seconds_before = _resume(state, training.meta_iters, log_fn)
    train_images = tf.constant(train_set.images)
    logged_sets = [(train_set, ScalarWriter(os.path.join(save_dir, 'train'))),
                   (test_set, ScalarWriter(os.path.join(save_dir, 'test')))]
    progress = Progress(training.meta_iters, done=first_step)
    started = time.monotonic()
    with PeriodicEvaluation(evaluator, logged_sets, shape, log_fn) as periodic:
        for i in range(first_step, training.meta_iters):
            meta_batch = sample_meta_batch(train_set, shape, training, rng)
            loss, finite = reptile.train_step(train_images, meta_batch,
                                              training.meta_step_size(i))
            if not (finite and math.isfinite(loss)):
                raise TrainingDiverged(_divergence_message(i, loss, finite, state))
            progress.advance()
            if i % training.eval_interval == 0:
                periodic.start(i, loss, rng)
            periodic.log_if_done()
            if i % CHECKPOINT_INTERVAL == 0 or i == training.meta_iters - 1:
                periodic.finish()
                path = state.save(i, seconds_before + time.monotonic() - started)
                log_fn('checkpoint %s (%s)' % (path, progress.describe('steps')))
    return seconds_before + time.monotonic() - started


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


def _divergence_message(step, loss, finite, state):
    problem = 'the training loss is %s' % loss if finite else 'a weight is no longer finite'
    kept = state.manager.latest_checkpoint or 'no checkpoint (none had been written)'
    return ('meta-iteration %d: %s, so the run stopped; its last good state is %s. Lower '
            '--learning-rate or --meta-step and train into a new --checkpoint'
            % (step, problem, kept))
