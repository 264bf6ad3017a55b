"""The inner loop's rules take Keras' steps, and its step trains every task as if it were alone."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from supervised_reptile import models
from supervised_reptile.inner_loop import SGD, Adam, InnerLoop, InnerState, gather_inputs
from supervised_reptile.networks import TaskNetwork

from conftest import random_classes

IMAGES = tf.constant(random_classes(3, 8, seed=5).images)


def gradients(count, shape=(3, 4)):
    return [tf.constant(np.random.default_rng(step).normal(size=shape), tf.float32)
            for step in range(count)]


def run_rule(rule, start, steps):
    """Apply rule to a variable starting at start, one step per gradient; return the variable
    and its slots."""
    variable = tf.Variable(start)
    slots = [tf.Variable(tf.zeros_like(start)) for _ in range(rule.num_slots)]
    for step, gradient in enumerate(steps, 1):
        rule.apply(variable, slots, gradient, step)
    return variable, slots


def run_keras(optimizer, start, steps):
    variable = tf.Variable(start)
    optimizer.build([variable])
    for gradient in steps:
        optimizer.apply_gradients([(gradient, variable)])
    return variable


@pytest.mark.parametrize('rule, optimizer', [
    (Adam(0.01), keras.optimizers.Adam(0.01, beta_1=0.0, beta_2=0.999, epsilon=1e-8)),
    # Pre-training's Adam, as Keras' AdamW sets it up (pretrain.py).
    (Adam(0.01, beta_1=0.9, epsilon=1e-7),
     keras.optimizers.Adam(0.01, beta_1=0.9, beta_2=0.999, epsilon=1e-7)),
    (SGD(0.01), keras.optimizers.SGD(0.01)),
])
def test_rules_take_the_same_steps_as_keras(rule, optimizer):
    start = np.random.default_rng(0).normal(size=(3, 4)).astype(np.float32)
    steps = gradients(5)
    got, _ = run_rule(rule, start, steps)
    want = run_keras(optimizer, start, steps)
    assert not np.allclose(got.numpy(), start)
    np.testing.assert_allclose(got.numpy(), want.numpy(), rtol=1e-5, atol=1e-6)


def test_adam_defaults_are_the_reference_settings():
    adam = Adam(0.001)
    assert (adam.beta_1, adam.beta_2, adam.epsilon, adam.num_slots) == (0.0, 0.999, 1e-8, 2)
    assert SGD(0.001).num_slots == 0


def test_adam_slots_are_the_moment_estimates():
    steps = gradients(3)
    _, (first, second) = run_rule(Adam(0.01), np.zeros((3, 4), np.float32), steps)
    # beta_1 = 0: the first moment is the last gradient.
    np.testing.assert_allclose(first.numpy(), steps[-1].numpy(), rtol=1e-6)
    expected = sum(0.001 * 0.999 ** (2 - i) * g.numpy() ** 2 for i, g in enumerate(steps))
    np.testing.assert_allclose(second.numpy(), expected, rtol=1e-4)  # 1 - 0.999 in float32


@pytest.mark.parametrize('rule', [Adam(0.01), SGD(0.01)])
def test_rules_touch_nothing_but_the_given_variables(rule):
    bystander = tf.Variable(tf.ones((3, 4)))
    gradient = tf.ones((3, 4))
    run_rule(rule, np.zeros((3, 4), np.float32), [gradient])
    np.testing.assert_array_equal(bystander.numpy(), np.ones((3, 4)))
    np.testing.assert_array_equal(gradient.numpy(), np.ones((3, 4)))


def small_model():
    keras.utils.set_random_seed(1)
    return models.omniglot_model(3)


def task_batches(task, steps=3):
    rng = np.random.default_rng(task)
    return [(gather_inputs(IMAGES, rng.choice(len(IMAGES), 6, replace=False)),
             tf.constant(rng.integers(0, 3, 6), tf.int32)) for _ in range(steps)]


def values(variables):
    return [v.numpy().copy() for v in variables]


def test_tasks_side_by_side_each_take_the_steps_they_would_take_alone():
    model = small_model()
    network = TaskNetwork(model)
    rule = Adam(0.01, epsilon=0.1)
    loop = InnerLoop(network, rule, weight_decay=0.9)
    # Each task starts from its own weights.
    starts = [network.read(), [0.5 * value for value in network.read()]]
    batches = [task_batches(task) for task in range(2)]

    alone = []
    for start, task in zip(starts, batches):
        state = InnerState(rule, 1, network.shapes)
        state.start(start, [[tf.zeros(shape)] * 2 for shape in network.shapes], 0)
        losses = [loop.step(state, images[None], labels[None])[0].numpy()
                  for images, labels in task]
        alone.append((losses, values(state.weights), values(state.optimizer.variables)))

    together = InnerState(rule, 2, network.shapes)
    together.start([tf.stack(pair) for pair in zip(*starts)],
                   [[tf.zeros(shape)] * 2 for shape in network.shapes], 0)
    model_before = values(model.variables)
    losses = [loop.step(together, tf.stack([a[0], b[0]]), tf.stack([a[1], b[1]]))[0].numpy()
              for a, b in zip(*batches)]

    for task, (task_losses, task_weights, task_optimizer) in enumerate(alone):
        np.testing.assert_allclose([loss[task] for loss in losses], np.concatenate(task_losses),
                                   rtol=1e-5)
        for got, want in zip(values(together.weights), task_weights):
            np.testing.assert_allclose(got[task], want[0], rtol=1e-5, atol=1e-6)
        for got, want in zip(values(together.optimizer.variables), task_optimizer):
            np.testing.assert_allclose(got if got.ndim == 0 else got[task],
                                       want if want.ndim == 0 else want[0], rtol=1e-5, atol=1e-7)
    assert int(together.optimizer.iterations.numpy()) == 3
    # The steps train the state's own variables, never the model's.
    for before, after in zip(model_before, values(model.variables)):
        np.testing.assert_array_equal(before, after)


def test_a_step_decays_the_weights_then_descends_the_summed_loss():
    model = small_model()
    network = TaskNetwork(model)
    twin = keras.models.clone_model(model)
    twin.set_weights(model.get_weights())
    images, labels = task_batches(0, steps=1)[0]

    state = InnerState(SGD(0.01), 1, network.shapes)
    state.start(network.read(), [[] for _ in network.shapes], 0)
    InnerLoop(network, SGD(0.01), weight_decay=0.5).step(state, images[None], labels[None])

    for variable in twin.trainable_variables:
        variable.assign(variable * 0.5)
    with tf.GradientTape() as tape:
        loss = tf.reduce_sum(tf.nn.sparse_softmax_cross_entropy_with_logits(
            labels, twin(images, training=True)))
    keras.optimizers.SGD(0.01).apply_gradients(
        zip(tape.gradient(loss, twin.trainable_variables), twin.trainable_variables))
    for got, want in zip(values(state.weights), values(twin.trainable_variables)):
        np.testing.assert_allclose(got[0], want, rtol=1e-5, atol=1e-6)
