"""The compiled meta-step and evaluation do what the reference's algorithm does, followed in
NumPy (numpy_reference.py's small network and TF1's Adam): one Adam state carried through the
tasks of a meta-batch and across meta-steps, Reptile's interpolation and first-order MAML's
last-step displacement, frozen blocks as constants, and evaluation fine-tuning from the
meta-trained state, then predicting in the batches of its mode."""

import dataclasses

import keras
import numpy as np
import pytest
import tensorflow as tf

from supervised_reptile import backbone, models, sampling
from supervised_reptile.evaluation import Evaluator
from supervised_reptile.inner_loop import SGD, Adam, gather_inputs
from supervised_reptile.reptile import FOML, Reptile
from supervised_reptile.settings import Evaluation

from conftest import random_classes
from numpy_reference import (CLASSES, NETWORK_ROUNDINGS, ROUNDING, NumpyAdam, assert_rounded,
                             f32, numpy_evaluation, numpy_meta_step, small_model, training_tasks,
                             values)

IMAGES = tf.constant(CLASSES.images)


def assert_adam_state(algorithm, optimizer, steps, numpy_order=None):
    """algorithm's Adam state is optimizer's (NumpyAdam, whose variables are numpy_order; by
    default the model's trainable variables): the step count, and the moments of each variable
    algorithm trains, found by the variable."""
    assert int(algorithm.optimizer.iterations.numpy()) == optimizer.step == steps
    numpy_order = [id(v) for v in numpy_order or algorithm.model.trainable_variables]
    for variable, slots in zip(algorithm.meta_trained_variables, algorithm.optimizer.slots,
                               strict=True):
        expected = optimizer.slots[numpy_order.index(id(variable))]
        for slot, want in zip(slots, expected, strict=True):
            assert slot.shape == (1, *variable.shape)
            assert_rounded(slot.numpy()[0], want, NETWORK_ROUNDINGS)  # (squared) gradients


@pytest.mark.parametrize('algorithm, tail_shots, frozen_blocks', [
    (Reptile, None, 0), (FOML, None, 0), (FOML, 1, 0), (Reptile, None, 1), (FOML, None, 1)],
                         ids=['reptile', 'fomaml', 'fomaml-tail', 'reptile-first-block-frozen',
                              'fomaml-first-block-frozen'])
def test_meta_steps_follow_the_reference_with_one_adam_state_through_tasks_and_meta_steps(
        algorithm, tail_shots, frozen_blocks):
    """Two meta-steps of three tasks, three inner steps each, with weight decay: the weights,
    Adam's moments and its step count (18) are the reference's, and batch norm's statistics
    never move. A frozen block is a constant of the reference's computation: it stays bit for
    bit, neither decayed nor trained, and the rest trains with its values."""
    model = small_model()
    weight_variables = model.trainable_variables  # each block's kernel, gamma, beta; the head's
    weights = values(weight_variables)
    backbone.freeze(model, frozen_blocks)
    learner = algorithm(model, Adam(0.01), weight_decay=0.9)
    trained = range(3 * frozen_blocks, len(weights))
    assert [id(v) for v in learner.meta_trained_variables] == [
        id(weight_variables[i]) for i in trained]
    untrained = values(model.non_trainable_variables)  # statistics, and the frozen block
    optimizer = NumpyAdam([w.shape for w in weights], 0.01)
    rng = np.random.default_rng(0)
    for meta_step_size in (0.3, 0.6):
        tasks = training_tasks(rng, tail_shots=tail_shots)
        learner.train_step(IMAGES, sampling.stack_tasks(tasks), meta_step_size)
        weights = numpy_meta_step(weights, optimizer, tasks, meta_step_size, weight_decay=0.9,
                                  first_order=algorithm is FOML, trained=trained)

    for i in trained:
        # In each meta-step a weight rounds at a task's three decays and three steps, at the
        # sum and the mean over tasks and at the interpolation's difference and sum.
        assert_rounded(weight_variables[i].numpy(), weights[i], 2 * (3 + 3 + 2 + 1 + 2),
                       adam_steps=2 * 3, learning_rate=0.01)
    assert_adam_state(learner, optimizer, 18, weight_variables)
    for before, after in zip(untrained, values(model.non_trainable_variables), strict=True):
        np.testing.assert_array_equal(before, after)


def test_one_inner_sgd_step_is_a_gradient_step_on_the_expected_loss():
    """Through the real Omniglot model (its first layer's own kernel gradient, biases before
    batch norm): with one inner SGD step and no decay, Reptile moves the initialization by
    meta step x learning rate x the tasks' mean gradient of their summed losses, taken here by
    plain autodiff of the Keras model."""
    classes = random_classes(12, 8, seed=3)
    images = tf.constant(classes.images)
    keras.utils.set_random_seed(1)
    model = models.omniglot_model(3)
    old = values(model.trainable_variables)
    rng = np.random.default_rng(0)
    tasks = [sampling.training_task(classes, 3, 2, 6, 1, False, rng) for _ in range(4)]
    gradients = []
    for task in tasks:
        with tf.GradientTape() as tape:
            logits = model(gather_inputs(images, task.last_indices), training=True)
            loss = tf.reduce_sum(
                tf.nn.sparse_softmax_cross_entropy_with_logits(task.last_labels, logits))
        gradients.append(values(tape.gradient(loss, model.trainable_variables)))

    Reptile(model, SGD(0.01)).train_step(images, sampling.stack_tasks(tasks), 0.3)
    for variable, o, g in zip(model.trainable_variables, old, zip(*gradients), strict=True):
        want = o - f32(0.3) * f32(0.01) * np.mean(g, axis=0)
        # The inner step, the sum over the four tasks and the interpolation round at the
        # weights' scale; the gradients, scaled by 0.003, at the network's.
        np.testing.assert_allclose(variable.numpy(), want, rtol=0, atol=ROUNDING * (
            6 * np.abs(o).max() + 0.003 * NETWORK_ROUNDINGS * np.abs(g).max()))


EVALUATION = Evaluation(inner_batch=4, inner_iters=5)


def test_evaluation_fine_tunes_from_the_meta_trained_adam_state_then_predicts_by_its_mode():
    """After a meta-step (so Adam's moments and step count are not fresh), each task is
    fine-tuned from the meta-trained weights and Adam state with weight decay; its queries'
    logits then depend on the batches batch normalization sees: the queries together, or each
    with the support set. count_correct counts the queries whose largest logit is their
    label's."""
    model = small_model()
    reptile = Reptile(model, Adam(0.01), weight_decay=0.9)
    weights = values(model.trainable_variables)
    optimizer = NumpyAdam([w.shape for w in weights], 0.01)
    rng = np.random.default_rng(1)
    tasks = training_tasks(rng, count=2)
    reptile.train_step(IMAGES, sampling.stack_tasks(tasks), 0.3)
    weights = numpy_meta_step(weights, optimizer, tasks, 0.3, weight_decay=0.9)
    jobs = [(CLASSES.images, sampling.evaluation_task(CLASSES, 3, 2, EVALUATION.inner_batch,
                                                      EVALUATION.inner_iters, False, rng))
            for _ in range(3)]
    expected = [numpy_evaluation(weights, optimizer, task, 0.9) for _, task in jobs]

    logits = {}
    for transductive in (True, False):
        evaluator = Evaluator(reptile, dataclasses.replace(EVALUATION, transductive=transductive))
        logits[transductive] = evaluator.query_logits(jobs)
        want = [e[transductive] for e in expected]
        for got, task_want in zip(logits[transductive], want, strict=True):
            assert_rounded(got, task_want, NETWORK_ROUNDINGS)
        assert evaluator.count_correct(jobs) == [
            int(np.sum(np.argmax(w, -1) == task.query_labels)) for w, (_, task) in zip(want, jobs)]
    # Batch statistics make every query's logits differ between the modes, far beyond rounding.
    assert np.all(np.abs(logits[True] - logits[False]).max(axis=-1) > 0.01)
