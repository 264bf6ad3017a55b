"""Evaluation fine-tunes k tasks side by side exactly as it fine-tunes each task alone (k = 1)."""

import os
import subprocess
import sys

import keras
import numpy as np
import pytest
import tensorflow as tf

from supervised_reptile import backbone, evaluation, models, sampling, settings
from supervised_reptile.evaluation import Evaluator
from supervised_reptile.inner_loop import SGD, Adam
from supervised_reptile.reptile import Reptile
from supervised_reptile.tasks import ClassificationTasks

from conftest import REPO_DIR, random_classes

OMNIGLOT = random_classes(8, 6, seed=5)
MINIIMAGENET = random_classes(6, 4, shape=(84, 84, 3), seed=6)


def trained_reptile(build, classes, rule, weight_decay=1.0, blocks_frozen_in_evaluation=0):
    """A Reptile whose optimizer state is not fresh: one meta-step taken."""
    keras.utils.set_random_seed(2)
    model = build(3)
    reptile = Reptile(model, rule, weight_decay, frozen_in_evaluation=backbone.block_variables(
        model, blocks_frozen_in_evaluation))
    rng = np.random.default_rng(1)
    reptile.train_step(tf.constant(classes.images), sampling.stack_tasks(
        [sampling.training_task(classes, 3, 3, 4, 2, False, rng)]), 0.3)
    return reptile


def evaluator_for(reptile, transductive, **kwargs):
    """An evaluator of the per-task layout, whatever the device (the grouped one has its own
    test)."""
    return Evaluator(reptile, settings.Evaluation(inner_batch=4, inner_iters=4,
                                                  transductive=transductive, **kwargs),
                     grouped=False)


def sample_jobs(evaluator, classes, count, shots=2, seed=0):
    return evaluator.jobs(ClassificationTasks(classes, 3, shots, seed=seed), count)


def assert_side_by_side_equals_alone(evaluator, tasks, k):
    """Bit for bit: every task runs its own kernels on its own inputs, side by side or alone
    (see inner_loop.reduced_loss), so nothing may round differently."""
    alone = np.concatenate([evaluator.query_logits([job], 1) for job in tasks])
    assert alone.shape == (len(tasks), 3, 3)
    np.testing.assert_array_equal(evaluator.query_logits(tasks, k), alone)
    assert evaluator.count_correct(tasks, k) == [evaluator.count_correct([job], 1)[0]
                                                 for job in tasks]


@pytest.fixture(scope='module')
def reference_reptile():
    """Reptile with the reference's Adam; shared, since tracing takes seconds."""
    return trained_reptile(models.omniglot_model, OMNIGLOT, Adam(0.001))


@pytest.fixture(scope='module')
def reference_evaluator(reference_reptile):
    return evaluator_for(reference_reptile, transductive=True)


def test_omniglot_tasks_two_at_a_time_match_each_task_alone(reference_evaluator):
    assert_side_by_side_equals_alone(reference_evaluator,
                                     sample_jobs(reference_evaluator, OMNIGLOT, 5), 2)


def test_tasks_fine_tuned_by_sgd_with_weight_decay_match_each_task_alone():
    reptile = trained_reptile(models.omniglot_model, OMNIGLOT, SGD(0.003), weight_decay=0.9)
    evaluator = evaluator_for(reptile, transductive=False)
    assert_side_by_side_equals_alone(evaluator, sample_jobs(evaluator, OMNIGLOT, 5), 2)


@pytest.mark.slow
def test_miniimagenet_tasks_two_at_a_time_match_each_task_alone():
    reptile = trained_reptile(models.miniimagenet_model, MINIIMAGENET, Adam(0.01),
                              weight_decay=0.95)
    evaluator = evaluator_for(reptile, transductive=False)
    assert_side_by_side_equals_alone(evaluator, sample_jobs(evaluator, MINIIMAGENET, 3, shots=1),
                                     2)


def test_variables_frozen_in_evaluation_stay_fixed_as_for_a_task_alone():
    reptile = trained_reptile(models.omniglot_model, OMNIGLOT, Adam(0.01), weight_decay=0.9,
                              blocks_frozen_in_evaluation=2)
    evaluator = evaluator_for(reptile, transductive=False)
    # Two blocks of four variables (kernel, bias, gamma, beta) are left out of fine-tuning.
    assert len(evaluator.network.variables) == len(reptile.model.trainable_variables) - 8
    assert_side_by_side_equals_alone(evaluator, sample_jobs(evaluator, OMNIGLOT, 3), 3)


def test_tasks_of_different_image_sets_share_a_call(reference_evaluator):
    other = random_classes(5, 6, seed=9)
    tasks = (sample_jobs(reference_evaluator, OMNIGLOT, 1)
             + sample_jobs(reference_evaluator, other, 1))
    together = reference_evaluator.query_logits(tasks, 2)
    for job, logits in zip(tasks, together, strict=True):
        np.testing.assert_array_equal(logits, reference_evaluator.query_logits([job], 1)[0])


@pytest.mark.parametrize('transductive', [True, False])
def test_evaluation_leaves_weights_and_optimizer_state_bit_for_bit_unchanged(reference_reptile,
                                                                              transductive):
    optimizer = list(reference_reptile.optimizer.variables)  # Adam's 2 slots a weight, the step
    assert len(optimizer) == 2 * len(reference_reptile.model.trainable_variables) + 1
    variables = reference_reptile.model.variables + optimizer
    before = [v.numpy().copy() for v in variables]
    evaluator = evaluator_for(reference_reptile, transductive)
    evaluator.count_correct(sample_jobs(evaluator, OMNIGLOT, 3), 2)
    for value, variable in zip(before, variables):
        np.testing.assert_array_equal(value, variable.numpy())


def test_accuracy_draws_the_same_tasks_however_many_run_side_by_side(reference_reptile):
    results = []
    for tasks_per_batch in (1, 4):
        rng = np.random.default_rng(3)
        evaluator = evaluator_for(reference_reptile, transductive=True,
                                  tasks_per_batch=tasks_per_batch)
        accuracy = evaluator.evaluate(ClassificationTasks(OMNIGLOT, 3, 2, rng=rng), 6,
                                      log_fn=lambda line: None)
        results.append((accuracy, rng.bit_generator.state))
    assert results[0][0].num_tasks == 6
    assert results[0] == results[1]


def test_default_tasks_per_call_are_bounded_by_memory():
    five_shot = 5 * 5 + 1  # the support set and a query
    omniglot = evaluation.default_tasks_per_batch(models.omniglot_model(5), five_shot,
                                                  (28, 28, 1))
    miniimagenet = evaluation.default_tasks_per_batch(models.miniimagenet_model(5), five_shot,
                                                      (84, 84, 3))
    huge = evaluation.default_tasks_per_batch(models.miniimagenet_model(5), 10000, (84, 84, 3))
    assert omniglot == evaluation.MAX_TASKS_PER_BATCH
    assert 1 < miniimagenet < omniglot and huge == 1


GROUPED = '''
import sys
import keras
import numpy as np
import tensorflow as tf
sys.path[:0] = sys.argv[1:3]
from supervised_reptile import backbone, models, sampling, settings
from supervised_reptile.evaluation import Evaluator
from supervised_reptile.inner_loop import Adam
from supervised_reptile.reptile import Reptile
from supervised_reptile.tasks import ClassificationTasks
from conftest import random_classes

classes = random_classes(8, 6, seed=5)
keras.utils.set_random_seed(2)
model = models.omniglot_model(3)
# A large epsilon: the conv biases' gradients are rounding alone (batch norm follows), which
# Adam with the reference's would turn into whole steps, different in each layout.
reptile = Reptile(model, Adam(0.01, epsilon=0.1), weight_decay=0.9,
                  frozen_in_evaluation=backbone.block_variables(model, 2))
rng = np.random.default_rng(1)
reptile.train_step(tf.constant(classes.images), sampling.stack_tasks(
    [sampling.training_task(classes, 3, 3, 4, 2, False, rng)]), 0.5)
for transductive in (False, True):
    evaluation = settings.Evaluation(inner_batch=4, inner_iters=4, transductive=transductive)
    per_task = Evaluator(reptile, evaluation, grouped=False)
    grouped = Evaluator(reptile, evaluation, grouped=True)
    assert grouped.network.grouped and not per_task.network.grouped
    jobs = per_task.jobs(ClassificationTasks(classes, 3, 2, rng=rng), 3)
    for actual, expected in zip(grouped.query_logits(jobs, 3), per_task.query_logits(jobs, 3)):
        # The layouts sum the convolutions in different orders: each task's logits within 64
        # float32 roundings of their largest.
        np.testing.assert_allclose(actual, expected, rtol=0,
                                   atol=64 * 2.0 ** -24 * np.abs(expected).max())
print('grouped matches per task')
'''


@pytest.mark.slow
def test_the_grouped_convolution_layout_matches_the_per_task_layout():
    """In a process of its own: TensorFlow's own CPU kernels cannot group convolutions, oneDNN's
    can, and TensorFlow reads TF_ENABLE_ONEDNN_OPTS when it loads.

    The layouts round differently, so an activation within rounding of a ReLU's kink takes a
    different gradient in each (about one mini-batch of 3 tasks in a hundred, and the logits then
    differ by 1e-3); the data here have none."""
    env = dict(os.environ, TF_ENABLE_ONEDNN_OPTS='1', TF_CPP_MIN_LOG_LEVEL='3')
    result = subprocess.run([sys.executable, '-c', GROUPED, str(REPO_DIR),
                             str(REPO_DIR / 'tests')], env=env, capture_output=True, text=True,
                            timeout=600, check=False)
    assert result.returncode == 0, result.stderr[-3000:]
    assert 'grouped matches per task' in result.stdout
