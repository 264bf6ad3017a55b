"""The inner loop against NumPy: its rules are the formulas of TF1's optimizers, and a step
decays the weights it trains, then takes the rule's step on the gradient of the reduced loss, for
each task of a batch as if it were alone, reading the variables it does not train and leaving
them as they were; followed in numpy_reference.py's NumPy."""

import numpy as np
import pytest
import tensorflow as tf

from supervised_reptile.inner_loop import SGD, Adam, InnerLoop, InnerState
from supervised_reptile.networks import TaskNetwork

from numpy_reference import (CLASSES, NETWORK_ROUNDINGS, ROUNDING, NumpyAdam, NumpySGD,
                             assert_rounded, f32, numpy_adam, numpy_step, small_model, values)


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
