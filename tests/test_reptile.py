"""The compiled meta-step and evaluation do exactly what the reference's algorithm does.

The expected values come from a plain eager re-statement of the reference (one optimizer step
at a time, weights exported and re-imported as numpy), run on a copy of the model.
"""

import keras
import numpy as np
import pytest
import tensorflow as tf

from supervised_reptile import models, sampling
from supervised_reptile.reptile import FOML, Reptile, gather_images

from conftest import random_classes

CLASSES = random_classes(12, 8, seed=3)
IMAGES = tf.constant(CLASSES.images)


def smooth_adam():
    """Adam as the reference sets it up, but with a large epsilon.

    Adam divides by the root of the squared gradient, so where a gradient is nearly zero it
    turns float rounding into whole steps: the conv biases (followed by batch normalization) have
    a gradient that is zero but for rounding. A large epsilon keeps the compiled and the eager
    computations comparable to float precision; state sharing is tested all the same.
    """
    return keras.optimizers.Adam(0.01, beta_1=0.0, beta_2=0.999, epsilon=0.1)


def twin_models(num_classes=3):
    """Two models with the same initial weights."""
    keras.utils.set_random_seed(1)
    model = models.omniglot_model(num_classes)
    twin = keras.models.clone_model(model)
    twin.set_weights(model.get_weights())
    return model, twin


def weights(variables):
    return [np.array(v.numpy()) for v in variables]


def eager_step(model, optimizer, indices, labels, decay=1):
    """One inner step as the reference takes it: weight decay, then one optimizer step on the
    summed cross-entropy of the batch."""
    for v in model.trainable_variables:
        v.assign(v * decay)
    with tf.GradientTape() as tape:
        logits = model(gather_images(IMAGES, indices), training=True)
        loss = tf.reduce_sum(tf.nn.sparse_softmax_cross_entropy_with_logits(labels, logits))
    grads = tape.gradient(loss, model.trainable_variables)
    optimizer.apply_gradients(zip(grads, model.trainable_variables))


def eager_task(model, optimizer, task, decay=1):
    """Run a task's inner loop; return the weights before and after its last step."""
    for indices, labels in zip(task.head_indices, task.head_labels):
        eager_step(model, optimizer, indices, labels, decay)
    before_last = weights(model.trainable_variables)
    eager_step(model, optimizer, task.last_indices, task.last_labels, decay)
    return before_last, weights(model.trainable_variables)


def training_tasks(count, num_shots=4, batch=6, iters=3, seed=0, tail_shots=None):
    rng = np.random.default_rng(seed)
    return [sampling.training_task(CLASSES, 3, num_shots, batch, iters, False, rng, tail_shots)
            for _ in range(count)]


def set_trainable(model, values):
    for v, value in zip(model.trainable_variables, values):
        v.assign(value)


def test_reptile_step_interpolates_towards_the_mean_of_task_finals_with_shared_adam():
    model, twin = twin_models()
    reptile = Reptile(model, smooth_adam())
    twin_optimizer = smooth_adam()
    twin_optimizer.build(twin.trainable_variables)
    tasks = training_tasks(3)

    old = weights(twin.trainable_variables)
    finals = []
    for task in tasks:  # one Adam state runs through the tasks, never reset
        finals.append(eager_task(twin, twin_optimizer, task)[1])
        set_trainable(twin, old)
    expected = [o + 0.3 * (np.mean(f, axis=0) - o) for o, f in zip(old, zip(*finals))]

    reptile.train_step(IMAGES, sampling.stack_tasks(tasks), 0.3)
    for got, want in zip(weights(model.trainable_variables), expected):
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-6)
    for got, want in zip(weights(reptile.optimizer.variables), weights(twin_optimizer.variables)):
        np.testing.assert_allclose(got, want, rtol=1e-3, atol=1e-6)
    assert int(reptile.optimizer.iterations.numpy()) == 3 * 3


def test_one_inner_sgd_step_is_a_gradient_step_on_the_expected_loss():
    model, twin = twin_models()
    reptile = Reptile(model, models.sgd(0.01))
    tasks = training_tasks(4, num_shots=2, batch=6, iters=1)
    old = weights(twin.trainable_variables)
    gradients = []
    for task in tasks:
        with tf.GradientTape() as tape:
            logits = twin(gather_images(IMAGES, task.last_indices), training=True)
            loss = tf.reduce_sum(
                tf.nn.sparse_softmax_cross_entropy_with_logits(task.last_labels, logits))
        gradients.append([g.numpy() for g in tape.gradient(loss, twin.trainable_variables)])
    mean_gradient = [np.mean(g, axis=0) for g in zip(*gradients)]

    reptile.train_step(IMAGES, sampling.stack_tasks(tasks), 0.5)
    for got, o, g in zip(weights(model.trainable_variables), old, mean_gradient):
        np.testing.assert_allclose(got, o - 0.5 * 0.01 * g, rtol=1e-4, atol=1e-6)


def test_foml_update_is_the_mean_displacement_of_the_last_inner_step():
    for tail_shots in (None, 1):
        model, twin = twin_models()
        foml = FOML(model, smooth_adam())
        twin_optimizer = smooth_adam()
        twin_optimizer.build(twin.trainable_variables)
        tasks = training_tasks(2, num_shots=4, batch=6, iters=3, tail_shots=tail_shots)
        old = weights(twin.trainable_variables)
        displacements = []
        for task in tasks:
            before, after = eager_task(twin, twin_optimizer, task)
            displacements.append([a - b for a, b in zip(after, before)])
            set_trainable(twin, old)
        expected = [o + 0.7 * np.mean(d, axis=0) for o, d in zip(old, zip(*displacements))]

        foml.train_step(IMAGES, sampling.stack_tasks(tasks), 0.7)
        for got, want in zip(weights(model.trainable_variables), expected):
            np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-6)


def test_weight_decay_multiplies_the_weights_before_every_inner_step():
    model, _ = twin_models()
    old = weights(model.trainable_variables)
    reptile = Reptile(model, models.sgd(0.0), weight_decay_rate=0.5)
    reptile.train_step(IMAGES, sampling.stack_tasks(training_tasks(1, iters=3)), 1.0)
    for got, o in zip(weights(model.trainable_variables), old):
        np.testing.assert_allclose(got, o * 0.125, rtol=1e-6)


def test_meta_update_touches_trainable_variables_only():
    model, _ = twin_models()
    reptile = Reptile(model, models.sgd(0.0), weight_decay_rate=0.5)
    moving = [v for v in model.non_trainable_variables]
    reptile.train_step(IMAGES, sampling.stack_tasks(training_tasks(2)), 1.0)
    # With meta step 0 the initialization must not move, whatever the tasks did.
    before = weights(model.trainable_variables)
    reptile.train_step(IMAGES, sampling.stack_tasks(training_tasks(2, seed=1)), 0.0)
    for got, want in zip(weights(model.trainable_variables), before):
        np.testing.assert_array_equal(got, want)
    assert moving and all(not v.trainable for v in moving)


def test_adam_matches_the_reference_settings():
    adam = models.adam(0.001)
    assert adam.beta_1 == 0.0 and adam.beta_2 == 0.999 and adam.epsilon == 1e-8


def evaluation_task(num_shots=2, seed=0):
    return sampling.evaluation_task(CLASSES, 3, num_shots, 4, 5, False,
                                    np.random.default_rng(seed))


@pytest.mark.parametrize('transductive', [True, False])
def test_evaluation_leaves_weights_and_optimizer_state_bit_for_bit_unchanged(transductive):
    model, _ = twin_models()
    reptile = Reptile(model, models.adam(0.01), transductive=transductive)
    reptile.train_step(IMAGES, sampling.stack_tasks(training_tasks(2)), 0.5)
    before = weights(reptile.full_state)
    reptile.evaluate(IMAGES, evaluation_task())
    after = weights(reptile.full_state)
    assert len(before) == len(model.variables) + len(reptile.optimizer.variables)
    for b, a in zip(before, after):
        np.testing.assert_array_equal(b, a)


def test_prediction_batches_transductive_and_not():
    task = evaluation_task(num_shots=2)
    logits = {}
    for transductive in (True, False):
        model, twin = twin_models()
        reptile = Reptile(model, smooth_adam(), transductive=transductive)
        twin_optimizer = smooth_adam()
        twin_optimizer.build(twin.trainable_variables)
        for indices, labels in zip(task.batch_indices, task.batch_labels):
            eager_step(twin, twin_optimizer, indices, labels)
        queries = gather_images(IMAGES, task.query_indices)
        support = gather_images(IMAGES, task.support_indices)
        if transductive:  # all queries in one batch, nothing else
            expected = twin(queries, training=True).numpy()
        else:  # each query alone with the whole support set, its own row last
            expected = np.stack([twin(tf.concat([support, queries[q:q + 1]], 0),
                                      training=True)[-1].numpy() for q in range(3)])
        logits[transductive] = reptile.query_logits(IMAGES, task)
        np.testing.assert_allclose(logits[transductive], expected, rtol=1e-4, atol=1e-5)
    # Batch statistics make the two modes differ.
    assert not np.allclose(logits[True], logits[False])


def test_evaluate_counts_correct_queries():
    model, _ = twin_models()
    reptile = Reptile(model, models.adam(0.01), transductive=True)
    task = evaluation_task()
    correct = reptile.evaluate(IMAGES, task)
    expected = np.sum(np.argmax(reptile.query_logits(IMAGES, task), -1) == [0, 1, 2])
    assert correct == expected
