"""
Algebra on lists of variables, as TF ops that stay on the device.

The names are the maths of the meta-update; every function takes and returns lists in the
order of the variable list it was given.
"""

import tensorflow as tf


def snapshot(variables):
    """Current values of the variables, as tensors that later assignments do not change."""
    return [tf.identity(v) for v in variables]


def assign(variables, values):
    for variable, value in zip(variables, values):
        variable.assign(value)


def zeros_like(xs):
    return [tf.zeros_like(x) for x in xs]


def add(xs, ys):
    return [x + y for x, y in zip(xs, ys)]


def subtract(xs, ys):
    return [x - y for x, y in zip(xs, ys)]


def scale(xs, factor):
    return [x * factor for x in xs]


def interpolate(old, new, epsilon):
    """old + epsilon * (new - old): the Reptile meta-update."""
    return [o + epsilon * (n - o) for o, n in zip(old, new)]


def add_scaled(old, direction, epsilon):
    """old + epsilon * direction: the first-order MAML meta-update."""
    return [o + epsilon * d for o, d in zip(old, direction)]


def all_finite(variables):
    """A boolean tensor: no variable holds a NaN or an infinity."""
    return tf.reduce_all([tf.reduce_all(tf.math.is_finite(v)) for v in variables])


def weight_decay(variables, rate):
    """Multiply every variable by rate, as the reference does before each inner step.

    A rate of 1 is skipped: multiplying by one is an exact no-op.
    """
    if rate != 1:
        for variable in variables:
            variable.assign(variable * rate)
