"""The inner loop against NumPy: its rules are the formulas of TF1's optimizers, and a step
decays the weights it trains, then takes the rule's step on the gradient of the reduced loss, for
each task of a batch as if it were alone, reading the variables it does not train and leaving
them as they were.

The NumPy here (a small network of two conv blocks with batch normalization and a dense head,
its gradients, TF1's Adam) is also what test_reptile.py and test_freezing.py follow the
algorithm with. Everything is computed in float64 from the float32 values the product starts
from, with hyper-parameters rounded to float32 as the kernels take them."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from supervised_reptile import models
from supervised_reptile.inner_loop import SGD, Adam, InnerLoop, InnerState
from supervised_reptile.networks import TaskNetwork
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


def gradients_of_every_scale(steps, shape=(3, 4), seed=0):
    """Gradients whose elements keep their magnitudes, from 1e-6 to 1, across steps (their
    signs and sizes vary within a factor of two): where the root of the second moment is near
    epsilon, and where it is far above."""
    rng = np.random.default_rng(seed)
    scales = 10.0 ** rng.uniform(-6, 0, shape)
    return [(scales * rng.uniform(0.7, 1.4, shape) * rng.choice([-1, 1], shape)).astype(np.float32)
            for _ in range(steps)]


@pytest.mark.parametrize('rule, adam_settings', [
    (Adam(0.01), {'beta_1': 0.0, 'beta_2': 0.999, 'epsilon': 1e-8}),  # the reference's Adam
    (Adam(0.01, epsilon=1e-3), {'epsilon': 1e-3}),  # where epsilon goes matters at this size
    # Pre-training's Adam (pretrain.py), with momentum and Keras' epsilon.
    (Adam(0.01, beta_1=0.9, epsilon=1e-7), {'beta_1': 0.9, 'epsilon': 1e-7}),
    (SGD(0.01), None),
], ids=['reference-adam', 'adam-large-epsilon', 'pretraining-adam', 'sgd'])
def test_rules_take_the_steps_of_tf1s_formulas(rule, adam_settings):
    start = np.random.default_rng(1).normal(size=(3, 4)).astype(np.float32)
    gradients = gradients_of_every_scale(5)
    variable = tf.Variable(start)
    slots = [tf.Variable(tf.zeros_like(start)) for _ in range(rule.num_slots)]
    for step, gradient in enumerate(gradients, 1):
        rule.apply(variable, slots, tf.constant(gradient), step)

    weight, first, second = start.astype(np.float64), np.zeros((3, 4)), np.zeros((3, 4))
    for step, gradient in enumerate(gradients, 1):
        if adam_settings is None:
            weight = weight - f32(0.01) * gradient.astype(np.float64)
        else:
            weight, first, second = numpy_adam(weight, first, second, gradient, step, 0.01,
                                               **adam_settings)
    # Each step rounds the weight once.
    assert_rounded(variable.numpy(), weight, 5, 5 if adam_settings else 0, 0.01)
    assert len(slots) == (0 if adam_settings is None else 2)
    if adam_settings:
        # The moments are each element's own sums of its gradients (squared), right to a few
        # roundings of that element's largest gradient (squared).
        largest = np.abs(gradients).max(0)
        np.testing.assert_array_less(np.abs(slots[0].numpy() - first), 4 * ROUNDING * largest)
        np.testing.assert_array_less(np.abs(slots[1].numpy() - second),
                                     4 * ROUNDING * largest ** 2)


CLASSES = small_classes()


def random_batches(steps, seed, batch_size=6):
    """steps mini-batches (inputs, labels) of CLASSES' inputs with random labels of 3."""
    rng = np.random.default_rng(seed)
    return [(CLASSES.images[rng.choice(len(CLASSES.images), batch_size, replace=False)],
             rng.integers(0, 3, batch_size)) for _ in range(steps)]


def test_tasks_side_by_side_each_take_their_own_adam_steps_from_their_own_state():
    """Two tasks in one inner state, each from its own weights and Adam moments, the step count
    given: each follows TF1's Adam on its own summed loss, and the count goes on from the one
    given, one a step."""
    model = small_model()
    network = TaskNetwork(model)
    rng = np.random.default_rng(2)
    first = [v.numpy() for v in model.trainable_variables]
    starts = [first, [(w * rng.uniform(0.5, 1.5, w.shape)).astype(np.float32) for w in first]]
    moments = [[[(0.1 * rng.normal(size=w.shape)).astype(np.float32),
                 rng.uniform(0.01, 0.1, w.shape).astype(np.float32)] for w in first]
               for _ in starts]
    batches = [random_batches(3, seed=task) for task in range(2)]
    state = InnerState(Adam(0.01), 2, network.shapes)
    state.start([np.stack(pair) for pair in zip(*starts)],
                [[np.stack(pair) for pair in zip(*slots)] for slots in zip(*moments)], 4)
    loop = InnerLoop(network, Adam(0.01), weight_decay=0.9)
    losses = [loop.step(state, np.stack([a[0], b[0]]), np.stack([a[1], b[1]]))[0].numpy()
              for a, b in zip(*batches)]

    assert int(state.optimizer.iterations.numpy()) == 4 + 3
    for task in range(2):
        optimizer = NumpyAdam(network.shapes, 0.01)
        optimizer.slots = [[slot.astype(np.float64) for slot in slots] for slots in moments[task]]
        optimizer.step = 4
        weights = [w.astype(np.float64) for w in starts[task]]
        for step, (inputs, labels) in enumerate(batches[task]):
            loss, weights = numpy_step(weights, optimizer, inputs, labels, weight_decay=0.9)
            # Six cross-entropies summed, each a few roundings off.
            np.testing.assert_allclose(losses[step][task], loss, rtol=16 * ROUNDING)
        for got, want in zip(state.weights, weights, strict=True):
            # The decay's rounding and the step's, three times.
            assert_rounded(got.numpy()[task], want, 2 * 3, adam_steps=3, learning_rate=0.01)
        for got, want in zip(state.optimizer.slots, optimizer.slots, strict=True):
            for slot, expected in zip(got, want, strict=True):  # (squared) gradients
                assert_rounded(slot.numpy()[task], expected, NETWORK_ROUNDINGS)


def test_a_step_reads_the_variables_it_does_not_train_and_leaves_them_as_they_were():
    """The first block's variables are not trained but are read on the way to the loss, where a
    step that decayed or trained whatever it reads would change them: they stay bit for bit,
    and the gradient of the rest is taken with their values."""
    model = small_model()
    network = TaskNetwork(model, trained=model.trainable_variables[3:])  # not the first block
    state = InnerState(SGD(0.1), 1, network.shapes)
    state.start(network.read(), [[] for _ in network.shapes], 0)
    model_before = values(model.variables)
    loop = InnerLoop(network, SGD(0.1), weight_decay=0.5, reduction='mean')
    batches = random_batches(2, seed=3)
    for inputs, labels in batches:
        loop.step(state, inputs[None], labels[None])

    weights = values(model.trainable_variables)
    for inputs, labels in batches:
        _, weights = numpy_step(weights, NumpySGD(0.1), inputs, labels, weight_decay=0.5,
                                trained=range(3, len(weights)), reduction='mean')
    for got, want in zip(state.weights, weights[3:], strict=True):
        assert_rounded(got.numpy()[0], want, 2 * 2)  # the decay's and the step's, twice
    for before, after in zip(model_before, values(model.variables), strict=True):
        np.testing.assert_array_equal(before, after)
