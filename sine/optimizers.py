"""
Inner-loop optimisers as pure functions: apply(params, grads, state) -> (params, state).

Pure, so that the inner loop is a graph loop over tensors that MAML can differentiate through,
and so that many tasks adapt at once (the state then has the tasks axis of the parameters).
The update rules are PyTorch's, as in the experiments of the 2022 review, so Adam is named
PyTorchAdam ('adam-pytorch' on the command line): supervised_reptile's inner-loop Adam is TF1's,
which adds epsilon elsewhere.
"""

from typing import NamedTuple

import tensorflow as tf

from .model import task_mean, tile


class State(NamedTuple):
    """An optimiser's state: the number of steps taken (a scalar) and its slots, a tuple of
    lists shaped like the parameters (empty for SGD)."""
    count: tf.Tensor
    slots: tuple


class SGD:
    """Plain gradient descent, the paper's inner loop."""

    name = 'sgd'
    num_slots = 0

    def __init__(self, learning_rate):
        self.learning_rate = learning_rate

    def init(self, params):
        """The state of a fresh optimiser (what resetting it per task means)."""
        return State(tf.zeros([], params[0].dtype),
                     tuple([tf.zeros_like(p) for p in params] for _ in range(self.num_slots)))

    def apply(self, params, grads, state):
        return [p - self.learning_rate * g for p, g in zip(params, grads)], _counted(state)


class PyTorchAdam(SGD):
    """Adam as PyTorch computes it: lr * m_hat / (sqrt(v_hat) + epsilon), with the bias-corrected
    moments m_hat and v_hat. TF1's rule (supervised_reptile.inner_loop.Adam, the reference's)
    adds epsilon to the uncorrected root, which amounts to epsilon / sqrt(1 - beta2^t) here: a
    larger epsilon in the first steps. The review uses beta1 = 0.1 so that little momentum
    leaks from one mini-batch into the next, which is what Reptile learns from."""

    name = 'adam-pytorch'
    num_slots = 2

    def __init__(self, learning_rate, beta1, beta2, epsilon):
        super().__init__(learning_rate)
        self.beta1, self.beta2, self.epsilon = beta1, beta2, epsilon

    def apply(self, params, grads, state):
        state = _counted(state)
        means, squares = state.slots
        means = [self.beta1 * m + (1 - self.beta1) * g for m, g in zip(means, grads)]
        squares = [self.beta2 * s + (1 - self.beta2) * tf.square(g)
                   for s, g in zip(squares, grads)]
        mean_scale = 1 / (1 - self.beta1 ** state.count)
        square_scale = 1 / (1 - self.beta2 ** state.count)
        params = [p - self.learning_rate * mean_scale * m
                  / (tf.sqrt(square_scale * s) + self.epsilon)
                  for p, m, s in zip(params, means, squares)]
        return params, state._replace(slots=(means, squares))


class RMSProp(SGD):
    """RMSProp without momentum: steps scaled by a running root mean square of the gradient,
    epsilon added to the root (PyTorch's rule; Keras adds it under the root)."""

    name = 'rmsprop'
    num_slots = 1

    def __init__(self, learning_rate, rho, epsilon):
        super().__init__(learning_rate)
        self.rho, self.epsilon = rho, epsilon

    def apply(self, params, grads, state):
        (squares,) = state.slots
        squares = [self.rho * s + (1 - self.rho) * tf.square(g) for s, g in zip(squares, grads)]
        params = [p - self.learning_rate * g / (tf.sqrt(s) + self.epsilon)
                  for p, g, s in zip(params, grads, squares)]
        return params, _counted(state)._replace(slots=(squares,))


def _counted(state):
    return state._replace(count=state.count + 1)


def tile_state(state, num_tasks):
    """A state for num_tasks tasks that each start from `state`."""
    return state._replace(slots=tuple(tile(slot, num_tasks) for slot in state.slots))


def mean_state(state):
    """The state averaged over the tasks axis: what a carried-over state becomes after a
    meta-batch of tasks that each advanced their own copy."""
    return state._replace(slots=tuple(task_mean(slot) for slot in state.slots))

