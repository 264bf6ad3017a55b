"""
The inner loop and the meta-updates of Reptile, first-order MAML, MAML and joint training.

Graph code: these functions take and return tensors, so that a compiled loop can run them.
A training batch is mini-batches xs, ys of shape [num_batches, num_tasks, batch, in or 1];
every task of the meta-batch adapts its own copy of the meta-parameters phi, all at once.
The meta-updates follow the paper (section 4.1): Reptile moves phi towards the adapted
weights; (FO)MAML takes the inner steps on all but the last mini-batch and steps phi along the
gradient of the last mini-batch's loss, scaled by the inner step size.

First-order MAML is named 'fomaml-gradient' because its step is the inner step size times that
raw gradient, whatever the inner optimiser: supervised_reptile's first-order MAML (--foml)
takes the displacement of the last inner step instead, the inner optimiser's own step. The two
agree with SGD only.
"""

import tensorflow as tf

from .model import task_mean, task_mse, tile
from .optimizers import mean_state, tile_state

ALGORITHMS = ('reptile', 'fomaml-gradient', 'maml')


def inner_step(optimizer, params, state, inputs, targets, first_order=False):
    """One optimiser step of every task on its own mini-batch; returns the new parameters and
    state and the tasks' mean loss before the step.

    first_order stops the gradient from flowing through the step's gradient (FOMAML).
    """
    with tf.GradientTape() as tape:
        tape.watch(params)
        losses = task_mse(params, inputs, targets)
        # Summed, not averaged, over tasks: each task's copy gets its own loss's gradient.
        total = tf.reduce_sum(losses)
    grads = tape.gradient(total, params)
    if first_order:
        grads = [tf.stop_gradient(g) for g in grads]
    params, state = optimizer.apply(params, grads, state)
    return params, state, tf.reduce_mean(losses)


def adapt(optimizer, params, state, xs, ys, first_order=False):
    """One inner step per mini-batch, in a graph loop; returns parameters, state and the mean
    loss over the steps."""
    total_loss = tf.zeros([], xs.dtype)
    for step in tf.range(tf.shape(xs)[0]):
        params, state, loss = inner_step(optimizer, params, state, xs[step], ys[step],
                                         first_order)
        total_loss += loss
    return params, state, total_loss / tf.cast(tf.shape(xs)[0], xs.dtype)


def reptile_update(optimizer, phi, state, xs, ys, meta_step):
    """phi + meta_step * (mean adapted weights - phi)."""
    num_tasks = xs.shape[1]
    params, state, loss = adapt(optimizer, tile(phi, num_tasks), tile_state(state, num_tasks),
                                xs, ys)
    new_phi = [p + meta_step * (w - p) for p, w in zip(phi, task_mean(params))]
    return new_phi, mean_state(state), loss


def maml_gradient(optimizer, phi, state, xs, ys, second_order):
    """The gradient with respect to phi of the last mini-batch's loss after inner steps on the
    others, averaged over tasks: through the inner steps (MAML) or not (FOMAML). Also returns
    the state after the inner steps and the mean loss over all mini-batches."""
    num_tasks = xs.shape[1]
    with tf.GradientTape() as tape:
        tape.watch(phi)
        params, state, inner_loss = adapt(optimizer, tile(phi, num_tasks),
                                          tile_state(state, num_tasks), xs[:-1], ys[:-1],
                                          first_order=not second_order)
        query_loss = tf.reduce_mean(task_mse(params, xs[-1], ys[-1]))
    grads = tape.gradient(query_loss, phi)
    num_batches = tf.cast(tf.shape(xs)[0], xs.dtype)
    mean_loss = (inner_loss * (num_batches - 1) + query_loss) / num_batches
    return grads, mean_state(state), mean_loss


def maml_update(optimizer, phi, state, xs, ys, meta_step, second_order):
    """phi - meta_step * inner learning rate * the (FO)MAML gradient."""
    grads, state, loss = maml_gradient(optimizer, phi, state, xs, ys, second_order)
    step = meta_step * optimizer.learning_rate
    return [p - step * g for p, g in zip(phi, grads)], state, loss


def joint_update(phi, xs, ys, learning_rate):
    """One gradient step on the tasks' mean loss over all their points pooled: plain training
    on the expected loss, the paper's joint-training baseline."""
    num_tasks = xs.shape[1]
    pooled_x, pooled_y = [tf.reshape(tf.transpose(t, [1, 0, 2, 3]), [num_tasks, -1, t.shape[-1]])
                          for t in (xs, ys)]
    with tf.GradientTape() as tape:
        tape.watch(phi)
        loss = tf.reduce_mean(task_mse(tile(phi, num_tasks), pooled_x, pooled_y))
    grads = tape.gradient(loss, phi)
    return [p - learning_rate * g for p, g in zip(phi, grads)], loss


def meta_update_fn(algorithm, optimizer):
    """update(phi, state, xs, ys, step_size) -> (phi, state, loss) for an algorithm name."""
    if algorithm == 'reptile':
        return lambda phi, state, xs, ys, step: reptile_update(optimizer, phi, state, xs, ys,
                                                               step)
    return lambda phi, state, xs, ys, step: maml_update(optimizer, phi, state, xs, ys, step,
                                                        second_order=algorithm == 'maml')


def joint_update_fn():
    """joint_update in the signature of meta_update_fn's functions (it has no inner state)."""
    def update(phi, state, xs, ys, step):
        phi, loss = joint_update(phi, xs, ys, step)
        return phi, state, loss
    return update
