"""The reference's algorithm in float64 NumPy, for the tests to follow the product with: a small
network of two conv blocks with batch normalization and a dense head (its forward pass and
gradients written out), TF1's Adam and SGD, an inner step, the meta-step of Reptile and
first-order MAML, and evaluation by mode; and float32's rounding, in whose units the tests'
tolerances are given.

Everything is computed in float64 from the float32 values the product starts from, with
hyper-parameters rounded to float32 as the kernels take them."""

import copy

import keras
import numpy as np

from supervised_reptile import models, sampling
from supervised_reptile.sampling import ImageClasses

# float32 rounds a value to within this fraction of its size.
ROUNDING = 2.0 ** -24
# How far float32's Adam step can be off, in roundings of the learning rate: its bias correction
# sqrt(1 - beta_2^t) is computed from beta_2^t, a value just below 1 that float32 holds to
# 2**-24, so it is right to 2**-25 / (1 - beta_2^t) of itself; with beta_1 = 0 a step moves a
# weight by at most lr * sqrt((1 - beta_2^t) / (1 - beta_2)) (v >= (1 - beta_2) g^2), hence errs
# by up to lr * 2**-25 / sqrt((1 - beta_2) (1 - beta_2^t)): 354 roundings of lr at t = 2, the
# worst step (at t = 1 the correction is exact).
ADAM_STEP_ROUNDINGS = 354
# What the network computes (logits, gradients) goes through some twenty float32 sums and
# products, from weights a few roundings off: right to this many roundings of its largest value.
NETWORK_ROUNDINGS = 64


def f32(value):
    """value as the float32 constant a kernel takes."""
    return float(np.float32(value))


def assert_rounded(got, want, roundings, adam_steps=0, learning_rate=0.0):
    """got (float32) is want (float64) to float32's rounding, element by element: `roundings`
    roundings at the scale of the variable's largest value (the operands' scale, where a
    rounding happens), and the bias correction's error in each of adam_steps Adam steps of
    learning_rate (ADAM_STEP_ROUNDINGS)."""
    np.testing.assert_allclose(got, want, rtol=0, atol=ROUNDING * (
        roundings * np.abs(want).max() + adam_steps * ADAM_STEP_ROUNDINGS * learning_rate))


def numpy_adam(weight, first, second, gradient, step, learning_rate, beta_1=0.0, beta_2=0.999,
               epsilon=1e-8):
    """One step of TF1's AdamOptimizer (the reference's Adam, with beta_1 = 0 and epsilon 1e-8
    by default): the bias correction goes into the step size, and epsilon is added to the root
    of the uncorrected second moment. Returns the new weight, first and second moments."""
    learning_rate, beta_1, beta_2, epsilon = map(f32, (learning_rate, beta_1, beta_2, epsilon))
    gradient = np.asarray(gradient, np.float64)
    first = beta_1 * first + (1 - beta_1) * gradient
    second = beta_2 * second + (1 - beta_2) * gradient ** 2
    step_size = learning_rate * np.sqrt(1 - beta_2 ** step) / (1 - beta_1 ** step)
    return weight - step_size * first / (np.sqrt(second) + epsilon), first, second


class NumpyAdam:
    """The reference's Adam over a list of weight variables: their moments, and one step count
    that every step advances."""

    def __init__(self, shapes, learning_rate):
        self.learning_rate = learning_rate
        self.slots = [[np.zeros(shape), np.zeros(shape)] for shape in shapes]
        self.step = 0

    def apply(self, weights, gradients, trained):
        """One step of the variables whose positions are in trained; returns all weights."""
        self.step += 1
        weights = list(weights)
        for i in trained:
            weights[i], *self.slots[i] = numpy_adam(weights[i], *self.slots[i], gradients[i],
                                                    self.step, self.learning_rate)
        return weights


class NumpySGD:
    """Plain gradient descent over a list of weight variables."""

    def __init__(self, learning_rate):
        self.learning_rate = learning_rate

    def apply(self, weights, gradients, trained):
        return [w - f32(self.learning_rate) * g if i in trained else w
                for i, (w, g) in enumerate(zip(weights, gradients))]


# The small network: [conv 2x2 stride 2 without bias -> batch norm -> ReLU] x 2 -> dense, on
# 4x4 inputs. Its windows do not overlap, so NumPy convolves with a reshape and a product; the
# convolutions have no bias, whose gradient batch normalization would make zero but for
# rounding (Adam would turn that rounding into whole steps).
INPUT_SHAPE = (4, 4, 1)
BLOCKS = 2


def small_model(seed=0):
    """The small network, its batch-norm scales and offsets and its head's bias drawn at random
    too, so that no two units start alike."""
    keras.utils.set_random_seed(seed)
    layers = [keras.Input(INPUT_SHAPE)]
    for filters in (3, 4):
        layers += [keras.layers.Conv2D(filters, 2, strides=2, use_bias=False),
                   models.BatchStatsNormalization(epsilon=1e-3), keras.layers.ReLU()]
    layers += [keras.layers.Flatten(), keras.layers.Dense(3, name='logits')]
    model = keras.Sequential(layers)
    rng = np.random.default_rng(seed)
    for variable in model.trainable_variables:
        if variable.name == 'gamma':
            variable.assign(rng.uniform(0.5, 1.5, variable.shape).astype(np.float32))
        elif variable.name in ('beta', 'bias'):
            variable.assign(rng.normal(0.0, 0.3, variable.shape).astype(np.float32))
    return model


def small_classes(num_classes=6, per_class=8, seed=0):
    """ImageClasses of float inputs for the small network, each class about its own mean."""
    rng = np.random.default_rng(seed)
    return ImageClasses.from_arrays(
        [rng.normal(rng.normal(0.0, 0.5), 1.0, (per_class, *INPUT_SHAPE)).astype(np.float32)
         for _ in range(num_classes)], ['class%d' % c for c in range(num_classes)])


def values(variables):
    """The variables' values, in float64."""
    return [v.numpy().astype(np.float64) for v in variables]


def _windows(x):
    """[b, h, w, c] -> [b, h/2, w/2, 4c]: each 2x2 window, in a kernel's (row, column,
    channel) order."""
    b, h, w, c = x.shape
    return x.reshape(b, h // 2, 2, w // 2, 2, c).transpose(0, 1, 3, 2, 4, 5).reshape(
        b, h // 2, w // 2, 4 * c)


def _unwindows(windows, channels):
    b, h, w, _ = windows.shape
    return windows.reshape(b, h, w, 2, 2, channels).transpose(0, 1, 3, 2, 4, 5).reshape(
        b, 2 * h, 2 * w, channels)


def _forward(weights, inputs):
    """The logits, and each block's (windows, convolution, normalised, batch-norm output)."""
    x, blocks = inputs.astype(np.float64), []
    for block in range(BLOCKS):
        kernel, gamma, beta = weights[3 * block:3 * block + 3]
        windows = _windows(x)
        z = windows @ kernel.reshape(-1, kernel.shape[-1])
        # Batch statistics, the variance biased (the fused kernel's), epsilon 1e-3.
        normalised = (z - z.mean((0, 1, 2))) / np.sqrt(z.var((0, 1, 2)) + f32(1e-3))
        y = gamma * normalised + beta
        blocks.append((windows, z, normalised, y))
        x = np.maximum(y, 0.0)
    kernel, bias = weights[3 * BLOCKS:]
    return x.reshape(len(x), -1) @ kernel + bias, blocks


def numpy_logits(weights, inputs):
    """The logits of inputs [batch, 4, 4, 1], batch normalization on the batch's statistics."""
    return _forward(weights, inputs)[0]


def numpy_loss_and_gradients(weights, inputs, labels, reduction='sum'):
    """The softmax cross-entropy of labels, reduced over the batch ('sum', the reference's, or
    'mean'), and its gradient with respect to each weight variable."""
    logits, blocks = _forward(weights, inputs)
    probabilities = np.exp(logits - logits.max(1, keepdims=True))
    probabilities /= probabilities.sum(1, keepdims=True)
    losses = -np.log(probabilities[np.arange(len(labels)), labels])
    d_logits = probabilities - np.eye(logits.shape[1])[labels]
    if reduction == 'mean':
        d_logits /= len(labels)
    features = np.maximum(blocks[-1][3], 0.0).reshape(len(labels), -1)
    gradients = [None] * (3 * BLOCKS) + [features.T @ d_logits, d_logits.sum(0)]
    d_x = (d_logits @ weights[3 * BLOCKS].T).reshape(blocks[-1][3].shape)
    for block in reversed(range(BLOCKS)):
        windows, z, normalised, y = blocks[block]
        # float32 decides the side of ReLU's kink for an input this close to it.
        assert np.abs(y).min() > 1e-5, 'an activation sits on the kink: choose other data'
        kernel, gamma = weights[3 * block:3 * block + 2]
        d_y = d_x * (y > 0)
        d_normalised = d_y * gamma
        d_z = (d_normalised - d_normalised.mean((0, 1, 2))
               - normalised * (d_normalised * normalised).mean((0, 1, 2))) / np.sqrt(
                   z.var((0, 1, 2)) + f32(1e-3))
        gradients[3 * block:3 * block + 3] = [
            (windows.reshape(-1, windows.shape[-1]).T @ d_z.reshape(-1, d_z.shape[-1])).reshape(
                kernel.shape),
            (d_y * normalised).sum((0, 1, 2)), d_y.sum((0, 1, 2))]
        d_x = _unwindows(d_z @ kernel.reshape(-1, kernel.shape[-1]).T, kernel.shape[2])
    return (losses.sum() if reduction == 'sum' else losses.mean()), gradients


def numpy_step(weights, optimizer, inputs, labels, weight_decay=1.0, trained=None,
               reduction='sum'):
    """One inner step as the reference takes it: the trained weights (positions; by default
    all) multiplied by the weight decay rate, then the optimizer's step on the gradient of the
    reduced loss. Returns the loss (before the update) and the new weights."""
    trained = range(len(weights)) if trained is None else trained
    weights = [np.asarray(w, np.float64) * (f32(weight_decay) if i in trained else 1)
               for i, w in enumerate(weights)]
    loss, gradients = numpy_loss_and_gradients(weights, inputs, labels, reduction)
    return loss, optimizer.apply(weights, gradients, trained)


CLASSES = small_classes()


def numpy_meta_step(weights, optimizer, tasks, meta_step_size, weight_decay=1.0,
                    first_order=False, trained=None):
    """The reference's meta-step from weights: every task trains from them (the variables at
    positions trained; by default all), optimizer's state carried from task to task, then
    old + meta_step_size * (mean of the tasks' final weights - old) for Reptile, or
    old + meta_step_size * (mean displacement of the tasks' last inner steps) for first-order
    MAML."""
    updates = []
    for task in tasks:
        task_weights = weights
        for indices, labels in [*zip(task.head_indices, task.head_labels),
                                (task.last_indices, task.last_labels)]:
            before_last = task_weights
            _, task_weights = numpy_step(task_weights, optimizer, CLASSES.images[indices], labels,
                                         weight_decay, trained)
        updates.append([a - b for a, b in zip(task_weights, before_last)] if first_order
                       else task_weights)
    mean = [np.mean(update, axis=0) for update in zip(*updates)]
    step = f32(meta_step_size)
    if first_order:
        return [o + step * m for o, m in zip(weights, mean)]
    return [o + step * (m - o) for o, m in zip(weights, mean)]


def training_tasks(rng, count=3, tail_shots=None):
    """count 3-way tasks of 4 shots, in 3 mini-batches of 6 (the last one the held-out tail of
    one shot a class with tail_shots=1)."""
    return [sampling.training_task(CLASSES, 3, 4, 6, 3, False, rng, tail_shots)
            for _ in range(count)]


def numpy_evaluation(weights, optimizer, task, weight_decay, trained=None):
    """A task's query logits as the reference predicts them after fine-tuning (the variables at
    positions trained; by default all) from weights and optimizer's state (a copy; it is left
    as it is), by mode: transductive (True), the queries in one batch; non-transductive
    (False), each query last in a batch with the whole support set."""
    optimizer = copy.deepcopy(optimizer)
    for indices, labels in zip(task.batch_indices, task.batch_labels):
        _, weights = numpy_step(weights, optimizer, CLASSES.images[indices], labels,
                                weight_decay, trained)
    support, queries = CLASSES.images[task.support_indices], CLASSES.images[task.query_indices]
    return {True: numpy_logits(weights, queries),
            False: np.stack([numpy_logits(weights, np.concatenate([support, query[None]]))[-1]
                             for query in queries])}
