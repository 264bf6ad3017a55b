"""
Task families: how a task is drawn, what it asks, and which points a learner sees.

Everything here runs inside the graph and draws from a tf.random.Generator, so that a
compiled meta-training loop samples its own tasks. A task is a vector of parameters (the
amplitude, the phase, ...); a family turns task parameters and inputs into targets. Shapes:
tasks [..., params], inputs [..., points, in], targets [..., points, 1], with the same
leading axes (or broadcastable ones).
"""

import math

import numpy as np
import tensorflow as tf


class Sine:
    """a * sin(x + b), a ~ U[amplitude], b ~ U[0, 2 pi], on [-5, 5] (the paper's section 3).

    The loss of a task is the mean squared error on `grid_size` equally spaced points. Training
    mini-batches are drawn from that grid, shuffled, an epoch at a time (as in the authors'
    demo); the few points of a test task are drawn uniformly from the interval.
    """

    name = 'sine'
    input_dim = 1
    half_width = 5.0

    def __init__(self, amplitude=(0.1, 5.0), grid_size=50):
        self.amplitude = amplitude
        axis = np.linspace(-self.half_width, self.half_width, grid_size, dtype=np.float32)
        self.grid_axes = [axis]
        self.grid = tf.constant(axis[:, None])

    def sample_tasks(self, generator, count):
        """Parameters [count, 2]: amplitude and phase."""
        return tf.stack([generator.uniform([count], *self.amplitude),
                         generator.uniform([count], 0, 2 * math.pi)], axis=-1)

    def targets(self, tasks, inputs):
        amplitude, phase = _columns(tasks)
        return amplitude * tf.sin(inputs + phase)

    def training_inputs(self, generator, num_tasks, num_batches, batch_size):
        """Mini-batches [num_batches, num_tasks, batch_size, in] of grid points: each task goes
        through the grid in a random order, starting a new random order when one runs out."""
        grid_size = self.grid.shape[0]
        needed = num_batches * batch_size
        epochs = -(-needed // grid_size)
        orders = tf.argsort(generator.uniform([num_tasks, epochs, grid_size]), axis=-1)
        indices = tf.reshape(orders, [num_tasks, epochs * grid_size])[:, :needed]
        indices = tf.transpose(tf.reshape(indices, [num_tasks, num_batches, batch_size]),
                               [1, 0, 2])
        return tf.gather(self.grid, indices)

    def support_inputs(self, generator, num_tasks, num_points):
        """The points [num_tasks, num_points, in] a learner sees of a test task."""
        return generator.uniform([num_tasks, num_points, self.input_dim],
                                 -self.half_width, self.half_width)

    def examples(self, tasks):
        """Indices of the tasks to draw in the figures: the first one."""
        del tasks
        return [0]


class SineOrFourier(Sine):
    """The review's mixture (its section 5.1): each task is, with equal odds, a sine wave
    a * sin(x + p) or the Fourier series a * sin(x + p) + 3a * sin(x / 3 + p)."""

    name = 'mixture'

    def sample_tasks(self, generator, count):
        """Parameters [count, 3]: amplitude, phase and 1 for a Fourier series (else 0)."""
        is_fourier = tf.cast(generator.uniform([count]) < 0.5, tf.float32)
        return tf.concat([super().sample_tasks(generator, count), is_fourier[:, None]], axis=-1)

    def targets(self, tasks, inputs):
        amplitude, phase, is_fourier = _columns(tasks)
        return (amplitude * tf.sin(inputs + phase)
                + is_fourier * 3 * amplitude * tf.sin(inputs / 3 + phase))

    def examples(self, tasks):
        """The first sine wave and the first Fourier series, as in the review's Figure 4."""
        kinds = np.asarray(tasks)[:, 2]
        return [int(np.argmax(kinds == kind)) for kind in (0, 1) if np.any(kinds == kind)]


class RadialSine2D(Sine):
    """The review's 2-D tasks (its section 5.2): z = a * sin(x^2 + y^2 + p), with the loss on a
    100 x 100 grid.

    The review does not give the square the grid covers. On [-1.5, 1.5]^2 a task is a bowl (or
    dome) whose rim turns over towards the corners, the review's "bowl" and "tails"; on
    [-2, 2]^2 or [-2.5, 2.5]^2, with whole rings, neither inner SGD nor Adam learned anything in
    3,000 meta-iterations in our runs.
    """

    name = 'radial2d'
    input_dim = 2
    half_width = 1.5

    def __init__(self, amplitude=(0.0, 2.0), grid_size=100):
        super().__init__(amplitude, grid_size)
        axis = self.grid_axes[0]
        xs, ys = np.meshgrid(axis, axis, indexing='xy')
        self.grid_axes = [axis, axis]
        self.grid = tf.constant(np.stack([xs.ravel(), ys.ravel()], axis=-1))

    def targets(self, tasks, inputs):
        amplitude, phase = _columns(tasks)
        radius_squared = tf.reduce_sum(tf.square(inputs), axis=-1, keepdims=True)
        return amplitude * tf.sin(radius_squared + phase)


FAMILIES = {family.name: family for family in (Sine, SineOrFourier, RadialSine2D)}


def _columns(tasks):
    """The task parameters as separate tensors [..., 1, 1], to broadcast over points."""
    return tf.unstack(tasks[..., None, None, :], axis=-1)
