"""
The meta-training loop: host-side bookkeeping around the compiled meta-step.

Every eval_interval steps one task of the training classes and one of the test classes are
evaluated (one task each, so the logged accuracies are coarse, as in the reference); the
accuracies go to the log and to TensorBoard under <save_dir>/train and <save_dir>/test.
A checkpoint is written every 100 steps and after the last one.
"""

import os

import tensorflow as tf

from . import checkpoints, sampling
from .errors import UserError
from .eval import evaluate_task
from .progress import Progress

CHECKPOINT_INTERVAL = 100


def annealed_meta_step_size(step, meta_iters, initial, final):
    """The meta step size at a step: linear from initial at step 0 towards final at meta_iters."""
    frac_done = step / meta_iters
    return frac_done * final + (1 - frac_done) * initial


def check_can_train(train_set, test_set, save_dir, num_classes, num_shots, train_shots):
    """Raise a UserError where train() would refuse: tasks larger than the data allows, or a
    save_dir that already holds a run (nothing is overwritten)."""
    train_set.check_task_size(num_classes, train_shots, 'training')
    for classes, name in ((train_set, 'training'), (test_set, 'test')):
        classes.check_task_size(num_classes, num_shots + 1, name)
    if checkpoints.latest(save_dir):
        raise UserError('%s already holds a training run; pass --pretrained to evaluate it, or '
                        'choose another --checkpoint' % save_dir)


# pylint: disable=too-many-arguments,too-many-locals
def train(reptile, train_set, test_set, save_dir, rng, num_classes=5, num_shots=5,
          train_shots=None, inner_batch_size=5, inner_iters=20, replacement=False,
          meta_step_size=0.1, meta_step_size_final=0.1, meta_batch_size=1, meta_iters=400000,
          eval_inner_batch_size=5, eval_inner_iters=50, eval_interval=10, tail_shots=None,
          log_fn=print):
    """Meta-train reptile on train_set, logging evaluations on train_set and test_set."""
    train_shots = train_shots or num_shots
    check_can_train(train_set, test_set, save_dir, num_classes, num_shots, train_shots)
    os.makedirs(save_dir, exist_ok=True)
    manager = checkpoints.manager(reptile, save_dir)
    train_images = tf.constant(train_set.images)
    logged_sets = [(train_set, train_images, _writer(save_dir, 'train')),
                   (test_set, tf.constant(test_set.images), _writer(save_dir, 'test'))]
    eval_kwargs = dict(num_classes=num_classes, num_shots=num_shots,
                       eval_inner_batch_size=eval_inner_batch_size,
                       eval_inner_iters=eval_inner_iters, replacement=replacement)
    progress = Progress(meta_iters)
    for i in range(meta_iters):
        meta_batch = sampling.stack_tasks([
            sampling.training_task(train_set, num_classes, train_shots, inner_batch_size,
                                   inner_iters, replacement, rng, tail_shots)
            for _ in range(meta_batch_size)])
        reptile.train_step(train_images, meta_batch,
                           annealed_meta_step_size(i, meta_iters, meta_step_size,
                                                   meta_step_size_final))
        progress.advance()
        if i % eval_interval == 0:
            train_accuracy, test_accuracy = [
                _evaluate_and_log(reptile, classes, images, writer, i, rng, eval_kwargs)
                for classes, images, writer in logged_sets]
            log_fn('batch %d: train=%f test=%f' % (i, train_accuracy, test_accuracy))
        if i % CHECKPOINT_INTERVAL == 0 or i == meta_iters - 1:
            manager.save(checkpoint_number=i)
            log_fn('checkpoint %s (%s)' % (manager.latest_checkpoint, progress.describe('steps')))


def _writer(save_dir, name):
    return tf.summary.create_file_writer(os.path.join(save_dir, name))


def _evaluate_and_log(reptile, classes, images, writer, step, rng, eval_kwargs):
    """Accuracy on one sampled task, also written to TensorBoard as 'accuracy' at step."""
    accuracy = evaluate_task(reptile, classes, images, rng, **eval_kwargs) / eval_kwargs['num_classes']
    with writer.as_default():
        tf.summary.scalar('accuracy', accuracy, step=step)
    writer.flush()
    return accuracy
