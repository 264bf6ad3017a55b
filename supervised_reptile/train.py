"""
The meta-training loop: host-side bookkeeping around the compiled meta-step.

Every eval_interval steps one task of the training classes and one of the test classes are
evaluated (one task each, so the logged accuracies are coarse, as in the reference); the
accuracies go to the log and to TensorBoard under <save_dir>/train and <save_dir>/test, with
the training loss. A checkpoint is written every 100 steps and after the last one.

Training into a directory that holds checkpoints resumes after the newest one (see
checkpoints.py), and a loss or weight that stops being finite ends the run before it is saved.
"""

import math
import os
import time

import tensorflow as tf

from . import batched_eval, checkpoints, sampling
from .errors import UserError
from .eval import sample_task
from .progress import Progress
from .summaries import ScalarWriter

CHECKPOINT_INTERVAL = 100


class TrainingDiverged(UserError):
    """The loss or the weights became NaN or infinite; nothing after the last checkpoint is kept."""


def annealed_meta_step_size(step, meta_iters, initial, final):
    """The meta step size at a step: linear from initial at step 0 towards final at meta_iters."""
    frac_done = step / meta_iters
    return frac_done * final + (1 - frac_done) * initial


def check_task_sizes(train_set, test_set, num_classes, num_shots, train_shots):
    """Raise a UserError if the tasks are larger than the data allows."""
    train_set.check_task_size(num_classes, train_shots, 'training')
    for classes, name in ((train_set, 'training'), (test_set, 'test')):
        classes.check_task_size(num_classes, num_shots + 1, name)


# pylint: disable=too-many-arguments,too-many-locals
def train(reptile, train_set, test_set, save_dir, rng, num_classes=5, num_shots=5,
          train_shots=None, inner_batch_size=5, inner_iters=20, replacement=False,
          meta_step_size=0.1, meta_step_size_final=0.1, meta_batch_size=1, meta_iters=400000,
          eval_inner_batch_size=5, eval_inner_iters=50, eval_interval=10, tail_shots=None,
          log_fn=print):
    """Meta-train reptile on train_set, logging evaluations on train_set and test_set, from
    scratch or from the newest checkpoint in save_dir; return the seconds spent training over
    all the sessions of the run."""
    train_shots = train_shots or num_shots
    check_task_sizes(train_set, test_set, num_classes, num_shots, train_shots)
    os.makedirs(save_dir, exist_ok=True)
    state = checkpoints.TrainingState(reptile, rng, save_dir)
    first_step, seconds_before = _resume(state, meta_iters, log_fn)
    train_images = tf.constant(train_set.images)
    logged_sets = [(train_set, ScalarWriter(os.path.join(save_dir, 'train'))),
                   (test_set, ScalarWriter(os.path.join(save_dir, 'test')))]
    eval_kwargs = dict(num_classes=num_classes, num_shots=num_shots,
                       eval_inner_batch_size=eval_inner_batch_size,
                       eval_inner_iters=eval_inner_iters, replacement=replacement)
    progress = Progress(meta_iters, done=first_step)
    started = time.monotonic()
    for i in range(first_step, meta_iters):
        meta_batch = sampling.stack_tasks([
            sampling.training_task(train_set, num_classes, train_shots, inner_batch_size,
                                   inner_iters, replacement, rng, tail_shots)
            for _ in range(meta_batch_size)])
        loss, finite = reptile.train_step(
            train_images, meta_batch,
            annealed_meta_step_size(i, meta_iters, meta_step_size, meta_step_size_final))
        if not (finite and math.isfinite(loss)):
            raise TrainingDiverged(_divergence_message(i, loss, finite, state))
        progress.advance()
        if i % eval_interval == 0:
            train_accuracy, test_accuracy = _evaluate_and_log(reptile, logged_sets, i, rng,
                                                              eval_kwargs)
            logged_sets[0][1].scalars(i, loss=loss)
            log_fn('batch %d: train=%f test=%f' % (i, train_accuracy, test_accuracy))
        if i % CHECKPOINT_INTERVAL == 0 or i == meta_iters - 1:
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


def _evaluate_and_log(reptile, logged_sets, step, rng, eval_kwargs):
    """The accuracy on one sampled task of each logged set, each also written to its set's
    TensorBoard writer as 'accuracy' at step. The tasks are drawn in the sets' order, then
    fine-tuned together (batched_eval)."""
    jobs = [(classes.images, sample_task(classes, rng, **eval_kwargs))
            for classes, _ in logged_sets]
    accuracies = [correct / eval_kwargs['num_classes']
                  for correct in batched_eval.evaluate(reptile, jobs)]
    for (_, writer), accuracy in zip(logged_sets, accuracies):
        writer.scalars(step, accuracy=accuracy)
    return accuracies
