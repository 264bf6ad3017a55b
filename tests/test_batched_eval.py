"""Evaluating a batch of tasks at once gives what evaluating them one by one gives."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from supervised_reptile import batched_eval, models, sampling
from supervised_reptile.reptile import Reptile

from conftest import random_classes

OMNIGLOT = random_classes(8, 6, seed=5)
MINIIMAGENET = random_classes(6, 4, shape=(84, 84, 3), seed=6)


def smooth_adam():
    """The reference's Adam with a large epsilon (see test_reptile.smooth_adam): near-zero
    gradients would otherwise turn float rounding into whole steps."""
    return keras.optimizers.Adam(0.01, beta_1=0.0, beta_2=0.999, epsilon=0.1)


class FrozenFeatures(Reptile):
    """Reptile fine-tuning the last two blocks and the classifier only."""

    @property
    def fine_tuned_variables(self):
        return self.model.trainable_variables[8:]


def trained_reptile(build, classes, optimizer, algorithm=Reptile, **kwargs):
    """A Reptile whose optimizer state is not fresh: one meta-step taken."""
    keras.utils.set_random_seed(2)
    reptile = algorithm(build(3), optimizer, **kwargs)
    rng = np.random.default_rng(1)
    reptile.train_step(tf.constant(classes.images), sampling.stack_tasks(
        [sampling.training_task(classes, 3, 3, 4, 2, False, rng)]), 0.5)
    return reptile


def evaluation_tasks(classes, count, num_shots=2, seed=0):
    rng = np.random.default_rng(seed)
    return [sampling.evaluation_task(classes, 3, num_shots, 4, 4, False, rng)
            for _ in range(count)]


def assert_batched_equals_sequential(reptile, classes, tasks, tasks_per_batch):
    images = tf.constant(classes.images)
    sequential = np.stack([reptile.query_logits(images, task) for task in tasks])
    jobs = [(classes.images, task) for task in tasks]
    batched = batched_eval.query_logits(reptile, jobs, tasks_per_batch)
    np.testing.assert_allclose(batched, sequential, rtol=1e-4,
                               atol=1e-5 * np.abs(sequential).max())
    np.testing.assert_array_equal(batched.argmax(-1), sequential.argmax(-1))
    assert batched_eval.evaluate(reptile, jobs, tasks_per_batch) == [
        reptile.evaluate(images, task) for task in tasks]


@pytest.fixture(scope='module')
def reference_reptile():
    """Reptile with the reference's Adam, transductive; shared, since tracing takes seconds."""
    return trained_reptile(models.omniglot_model, OMNIGLOT, models.adam(0.001), transductive=True)


@pytest.mark.parametrize('optimizer, transductive', [(smooth_adam, True),
                                                     (lambda: models.sgd(0.003), False)],
                         ids=['adam-transductive', 'sgd-non-transductive'])
def test_omniglot_tasks_in_batches_of_two_match_one_by_one(optimizer, transductive):
    reptile = trained_reptile(models.omniglot_model, OMNIGLOT, optimizer(),
                              transductive=transductive, weight_decay_rate=0.9)
    assert_batched_equals_sequential(reptile, OMNIGLOT, evaluation_tasks(OMNIGLOT, 5), 2)


def test_miniimagenet_tasks_match_one_by_one():
    reptile = trained_reptile(models.miniimagenet_model, MINIIMAGENET, smooth_adam(),
                              transductive=False, weight_decay_rate=0.95)
    tasks = evaluation_tasks(MINIIMAGENET, 3, num_shots=1)
    assert_batched_equals_sequential(reptile, MINIIMAGENET, tasks, 2)


def test_frozen_variables_stay_fixed_as_in_sequential_evaluation():
    reptile = trained_reptile(models.omniglot_model, OMNIGLOT, smooth_adam(),
                              algorithm=FrozenFeatures, weight_decay_rate=0.9)
    assert_batched_equals_sequential(reptile, OMNIGLOT, evaluation_tasks(OMNIGLOT, 3), 3)


def test_the_reference_adam_gives_the_same_predictions(reference_reptile):
    tasks = evaluation_tasks(OMNIGLOT, 3, seed=1)
    assert_batched_equals_sequential(reference_reptile, OMNIGLOT, tasks, 3)


def test_tasks_of_different_image_sets_share_a_batch(reference_reptile):
    other = random_classes(5, 6, seed=9)
    tasks = [evaluation_tasks(OMNIGLOT, 1)[0], evaluation_tasks(other, 1)[0]]
    together = batched_eval.query_logits(reference_reptile, [(OMNIGLOT.images, tasks[0]),
                                                             (other.images, tasks[1])])
    for classes, task, logits in zip((OMNIGLOT, other), tasks, together):
        expected = reference_reptile.query_logits(tf.constant(classes.images), task)
        np.testing.assert_allclose(logits, expected, rtol=1e-4, atol=1e-5 * np.abs(expected).max())


def test_evaluation_leaves_weights_and_optimizer_state_unchanged(reference_reptile):
    before = [v.numpy().copy() for v in reference_reptile.full_state]
    batched_eval.evaluate(reference_reptile,
                          [(OMNIGLOT.images, t) for t in evaluation_tasks(OMNIGLOT, 2)])
    for b, a in zip(before, reference_reptile.full_state):
        np.testing.assert_array_equal(b, a.numpy())


def test_default_batch_is_bounded_by_memory():
    five_shot = 5 * 5 + 1  # the support set and a query
    omniglot = batched_eval.default_tasks_per_batch(models.omniglot_model(5), five_shot)
    miniimagenet = batched_eval.default_tasks_per_batch(models.miniimagenet_model(5), five_shot)
    huge = batched_eval.default_tasks_per_batch(models.miniimagenet_model(5), 10000)
    assert omniglot == batched_eval.MAX_TASKS_PER_BATCH
    assert 1 < miniimagenet < omniglot and huge == 1


def test_grouped_layout_matches_where_grouped_convolutions_have_gradients(monkeypatch):
    monkeypatch.setattr(batched_eval, 'grouped_convolutions', lambda: True)
    reptile = trained_reptile(models.omniglot_model, OMNIGLOT, smooth_adam(),
                              transductive=False, weight_decay_rate=0.9)
    try:
        assert_batched_equals_sequential(reptile, OMNIGLOT, evaluation_tasks(OMNIGLOT, 3), 2)
    except (tf.errors.InvalidArgumentError, tf.errors.UnimplementedError) as exc:
        if 'grouped convolutions' not in str(exc):
            raise
        pytest.skip("this device's convolutions (TensorFlow's own CPU kernels) do not group; "
                    "oneDNN's (TF_ENABLE_ONEDNN_OPTS=1) and GPUs' do")
