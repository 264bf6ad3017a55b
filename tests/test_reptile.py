"""The compiled meta-step and evaluation do exactly what the reference's algorithm does.

The expected values come from a plain eager re-statement of the reference (one Keras optimizer
step at a time, weights exported and re-imported as numpy), run on a copy of the model.
"""

import dataclasses

import keras
import numpy as np
import pytest
import tensorflow as tf

from supervised_reptile import models, sampling
from supervised_reptile.evaluation import Evaluator
from supervised_reptile.inner_loop import SGD, Adam, gather_inputs
from supervised_reptile.reptile import FOML, Reptile
from supervised_reptile.settings import Evaluation

from conftest import random_classes

CLASSES = random_classes(12, 8, seed=3)
IMAGES = tf.constant(CLASSES.images)


def smooth_adam():
    """The project's Adam as the reference sets it up, but with a large epsilon.

    Adam divides by the root of the squared gradient, so where a gradient is nearly zero it
    turns float rounding into whole steps: the conv biases (followed by batch normalization) have
    a gradient that is zero but for rounding. A large epsilon keeps the compiled and the eager
    computations comparable to float precision; state sharing is tested all the same.
    """
    return Adam(0.01, epsilon=0.1)


def keras_smooth_adam(model):
    """smooth_adam() restated with Keras' own optimizer, built for model."""
    optimizer = keras.optimizers.Adam(0.01, beta_1=0.0, beta_2=0.999, epsilon=0.1)
    optimizer.build(model.trainable_variables)
    return optimizer


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
        logits = model(gather_inputs(IMAGES, indices), training=True)
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


def eager_reptile_step(model, optimizer, tasks, meta_step_size):
    """A Reptile meta-step: one Adam state runs through the tasks, never reset."""
    old = weights(model.trainable_variables)
    finals = []
    for task in tasks:
        finals.append(eager_task(model, optimizer, task)[1])
        set_trainable(model, old)
    set_trainable(model, [o + meta_step_size * (np.mean(f, axis=0) - o)
                          for o, f in zip(old, zip(*finals))])


def training_tasks(count, num_shots=4, batch=6, iters=3, seed=0, tail_shots=None):
    rng = np.random.default_rng(seed)
    return [sampling.training_task(CLASSES, 3, num_shots, batch, iters, False, rng, tail_shots)
            for _ in range(count)]


def set_trainable(model, values):
    for v, value in zip(model.trainable_variables, values):
        v.assign(value)


def rms(array):
    return np.sqrt(np.mean(np.square(array)))


def is_near(got, want, rtol, atol=1e-5):
    """Whether got is want to rtol of want's root mean square, or to atol (the conv biases'
    gradients are rounding noise; see smooth_adam).

    A root mean square, not element by element: in one channel of the first block the batch
    statistics sit on an edge where float rounding moves that channel's few gradients by far
    more than rounding, while everything else agrees to float precision.
    """
    return got.shape == want.shape and rms(got - want) <= rtol * rms(want) + atol


def assert_near(got, want, rtol=1e-4):
    for g, w in zip(got, want, strict=True):
        assert is_near(g, w, rtol), 'off by %g (root mean square %g)' % (rms(g - w), rms(w))


def assert_same_adam_state(reptile, optimizer):
    """The optimizer state of reptile is Keras' optimizer's: the same step count, and each slot
    of a weight variable near one Keras slot of its shape (Keras' own order of them aside; its
    scalars are the step count and the learning rate)."""
    assert int(reptile.optimizer.iterations.numpy()) == int(optimizer.iterations.numpy())
    theirs = [v.numpy() for v in optimizer.variables if len(v.shape)]
    ours = [slot.numpy()[0] for slots in reptile.optimizer.slots for slot in slots]
    assert len(ours) == len(theirs) == 2 * len(reptile.meta_trained_variables)
    for slot in ours:
        matches = [i for i, value in enumerate(theirs) if is_near(slot, value, rtol=1e-2)]
        assert matches, 'no Keras slot of shape %s has these values' % (slot.shape,)
        theirs.pop(matches[0])


def test_reptile_step_interpolates_towards_the_mean_of_task_finals_with_shared_adam():
    model, twin = twin_models()
    reptile = Reptile(model, smooth_adam())
    twin_optimizer = keras_smooth_adam(twin)
    tasks = training_tasks(3)
    eager_reptile_step(twin, twin_optimizer, tasks, 0.3)

    reptile.train_step(IMAGES, sampling.stack_tasks(tasks), 0.3)
    assert_near(weights(model.trainable_variables), weights(twin.trainable_variables))
    assert_same_adam_state(reptile, twin_optimizer)
    assert int(reptile.optimizer.iterations.numpy()) == 3 * 3


def test_one_inner_sgd_step_is_a_gradient_step_on_the_expected_loss():
    model, twin = twin_models()
    reptile = Reptile(model, SGD(0.01))
    tasks = training_tasks(4, num_shots=2, batch=6, iters=1)
    old = weights(twin.trainable_variables)
    gradients = []
    for task in tasks:
        with tf.GradientTape() as tape:
            logits = twin(gather_inputs(IMAGES, task.last_indices), training=True)
            loss = tf.reduce_sum(
                tf.nn.sparse_softmax_cross_entropy_with_logits(task.last_labels, logits))
        gradients.append([g.numpy() for g in tape.gradient(loss, twin.trainable_variables)])
    mean_gradient = [np.mean(g, axis=0) for g in zip(*gradients)]

    reptile.train_step(IMAGES, sampling.stack_tasks(tasks), 0.5)
    for got, o, g in zip(weights(model.trainable_variables), old, mean_gradient):
        np.testing.assert_allclose(got, o - 0.5 * 0.01 * g, rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize('tail_shots', [None, 1])
def test_foml_update_is_the_mean_displacement_of_the_last_inner_step(tail_shots):
    model, twin = twin_models()
    foml = FOML(model, smooth_adam())
    twin_optimizer = keras_smooth_adam(twin)
    tasks = training_tasks(2, num_shots=4, batch=6, iters=3, tail_shots=tail_shots)
    old = weights(twin.trainable_variables)
    displacements = []
    for task in tasks:
        before, after = eager_task(twin, twin_optimizer, task)
        displacements.append([a - b for a, b in zip(after, before)])
        set_trainable(twin, old)
    expected = [o + 0.7 * np.mean(d, axis=0) for o, d in zip(old, zip(*displacements))]

    foml.train_step(IMAGES, sampling.stack_tasks(tasks), 0.7)
    assert_near(weights(model.trainable_variables), expected)
    assert_same_adam_state(foml, twin_optimizer)


def test_weight_decay_multiplies_the_weights_before_every_inner_step():
    model, _ = twin_models()
    old = weights(model.trainable_variables)
    reptile = Reptile(model, SGD(0.0), weight_decay=0.5)
    reptile.train_step(IMAGES, sampling.stack_tasks(training_tasks(1, iters=3)), 1.0)
    for got, o in zip(weights(model.trainable_variables), old):
        np.testing.assert_allclose(got, o * 0.125, rtol=1e-6)


def test_meta_step_0_moves_neither_the_initialization_nor_batch_norm_statistics():
    model, _ = twin_models()
    reptile = Reptile(model, SGD(0.01), weight_decay=0.5)
    reptile.train_step(IMAGES, sampling.stack_tasks(training_tasks(2)), 1.0)
    before = weights(model.variables)
    # With meta step 0 the initialization must not move, whatever the tasks did.
    reptile.train_step(IMAGES, sampling.stack_tasks(training_tasks(2, seed=1)), 0.0)
    assert len(model.non_trainable_variables) == 2 * 4  # the BN moving averages
    for got, want in zip(weights(model.variables), before):
        np.testing.assert_array_equal(got, want)


EVALUATION = Evaluation(inner_batch=4, inner_iters=5)


def evaluator_of(reptile, transductive=False):
    return Evaluator(reptile, dataclasses.replace(EVALUATION, transductive=transductive))


def evaluation_jobs(count=1, num_shots=2, seed=0):
    """(images, task) pairs of 3-way tasks, as an evaluator of EVALUATION samples them."""
    rng = np.random.default_rng(seed)
    return [(CLASSES.images, sampling.evaluation_task(CLASSES, 3, num_shots, EVALUATION.inner_batch,
                                                      EVALUATION.inner_iters, False, rng))
            for _ in range(count)]


@pytest.mark.parametrize('transductive', [True, False])
def test_evaluation_leaves_weights_and_optimizer_state_bit_for_bit_unchanged(transductive):
    model, _ = twin_models()
    reptile = Reptile(model, Adam(0.01))
    reptile.train_step(IMAGES, sampling.stack_tasks(training_tasks(2)), 0.5)
    state = model.variables + list(reptile.optimizer.variables)
    assert len(state) == len(model.variables) + 2 * len(model.trainable_variables) + 1
    before = weights(state)
    # Three tasks two at a time: a call of two, and a padded one.
    evaluator_of(reptile, transductive).count_correct(evaluation_jobs(count=3), size=2)
    for b, a in zip(before, weights(state)):
        np.testing.assert_array_equal(b, a)


def test_prediction_batches_transductive_and_not():
    """Evaluation fine-tunes from the meta-trained weights and optimizer state, then predicts
    the queries in the batches of its mode."""
    (_, task), = evaluation_jobs()
    model, twin = twin_models()
    reptile = Reptile(model, smooth_adam())
    reptile.train_step(IMAGES, sampling.stack_tasks(training_tasks(2)), 0.5)
    twin_optimizer = keras_smooth_adam(twin)
    eager_reptile_step(twin, twin_optimizer, training_tasks(2), 0.5)
    for indices, labels in zip(task.batch_indices, task.batch_labels):
        eager_step(twin, twin_optimizer, indices, labels)
    queries = gather_inputs(IMAGES, task.query_indices)
    support = gather_inputs(IMAGES, task.support_indices)
    expected = {
        True: twin(queries, training=True).numpy(),  # all queries in one batch, nothing else
        # Each query alone with the whole support set, its own row last.
        False: np.stack([twin(tf.concat([support, queries[q:q + 1]], 0), training=True)[-1]
                         for q in range(3)])}
    logits = {}
    for transductive, want in expected.items():
        logits[transductive] = evaluator_of(reptile, transductive).query_logits(
            [(CLASSES.images, task)], 1)[0]
        np.testing.assert_allclose(logits[transductive], want, rtol=1e-4, atol=1e-5)
    # Batch statistics make the two modes differ.
    assert not np.allclose(logits[True], logits[False])


def test_count_correct_counts_queries_predicted_right():
    model, _ = twin_models()
    evaluator = evaluator_of(Reptile(model, Adam(0.01)), transductive=True)
    jobs = evaluation_jobs(count=2)
    expected = [np.sum(np.argmax(logits, -1) == [0, 1, 2])
                for logits in evaluator.query_logits(jobs, 2)]
    assert evaluator.count_correct(jobs, 2) == expected
