"""Training's periodic evaluation runs beside the training and logs what it would log inline."""

import keras
import numpy as np

from supervised_reptile import learner, models
from supervised_reptile.evaluation import Evaluator
from supervised_reptile.inner_loop import Adam
from supervised_reptile.reptile import Reptile
from supervised_reptile.settings import Evaluation, TaskShape, Training
from supervised_reptile.tasks import ClassificationTasks
from supervised_reptile.train import train

from conftest import random_classes

TRAIN_CLASSES = random_classes(6, 4, seed=1)
TEST_CLASSES = random_classes(5, 4, seed=2)
SHAPE = TaskShape(classes=3, shots=1)
TRAINING = Training(train_shots=2, inner_batch=3, inner_iters=2, meta_batch=2, meta_iters=7,
                    eval_interval=2)
EVALUATION = Evaluation(inner_batch=3, inner_iters=3, transductive=True)


def fresh_reptile():
    keras.utils.set_random_seed(4)
    return Reptile(models.omniglot_model(SHAPE.classes), Adam(1e-3))


def fresh_learner():
    """A learner with the settings of TRAINING and EVALUATION; its engine is fresh_reptile's."""
    keras.utils.set_random_seed(4)
    return learner.Reptile(
        models.omniglot_model(SHAPE.classes), inner_optimizer=Adam(1e-3), loss_reduction='sum',
        inner_steps=TRAINING.inner_iters, inner_batch_size=TRAINING.inner_batch,
        meta_batch_size=TRAINING.meta_batch, meta_step_size=TRAINING.meta_step,
        meta_step_size_final=TRAINING.meta_step_final, eval_steps=EVALUATION.inner_iters,
        eval_batch_size=EVALUATION.inner_batch, transductive=EVALUATION.transductive)


def training_tasks(rng):
    return ClassificationTasks(TRAIN_CLASSES, SHAPE.classes, TRAINING.train_shots,
                               replacement=SHAPE.replacement, rng=rng)


def evaluation_tasks(classes, rng):
    return ClassificationTasks(classes, SHAPE.classes, SHAPE.shots,
                               replacement=SHAPE.replacement, rng=rng)


def meta_step(reptile, tasks, step=0):
    pool, meta_batch = tasks.training_tasks(TRAINING.meta_batch, TRAINING.inner_batch,
                                            TRAINING.inner_iters, TRAINING.tail_shots)
    reptile.train_step(pool, meta_batch, TRAINING.meta_step_size(step))


def test_an_evaluation_from_a_snapshot_sees_the_state_it_was_taken_in():
    reptile = fresh_reptile()
    rng = np.random.default_rng(0)
    tasks = training_tasks(rng)
    meta_step(reptile, tasks)
    evaluator = Evaluator(reptile, EVALUATION)
    jobs = evaluator.jobs(evaluation_tasks(TEST_CLASSES, rng), 2)
    snapshot = reptile.snapshot()
    then = evaluator.query_logits(jobs)
    for _ in range(3):
        meta_step(reptile, tasks)
    assert not np.allclose(evaluator.query_logits(jobs), then)
    np.testing.assert_array_equal(evaluator.query_logits(jobs, start=snapshot), then)


def record_starts(evaluator):
    """Make evaluator keep the weights each query_logits call started from; the list of them."""
    started_from = []
    query_logits = evaluator.query_logits

    def recording(jobs, size=None, start=None):
        started_from.append(start and [value.numpy() for value in start.weights])
        return query_logits(jobs, size, start)
    evaluator.query_logits = recording
    return started_from


def test_training_logs_what_evaluating_inline_after_each_meta_step_gives(tmp_path):
    lines = []
    trained = fresh_learner()
    started_from_list = record_starts(trained.evaluator)
    rng = np.random.default_rng(7)
    logged = [('train', evaluation_tasks(TRAIN_CLASSES, rng)),
              ('test', evaluation_tasks(TEST_CLASSES, rng))]
    train(trained, training_tasks(rng), logged, str(tmp_path), TRAINING.meta_iters,
          TRAINING.eval_interval, log_fn=lines.append)

    reptile = fresh_reptile()
    evaluator = Evaluator(reptile, EVALUATION)
    rng = np.random.default_rng(7)
    tasks = training_tasks(rng)
    sources = [evaluation_tasks(classes, rng) for classes in (TRAIN_CLASSES, TEST_CLASSES)]
    expected = []
    for step in range(TRAINING.meta_iters):
        meta_step(reptile, tasks, step)
        if step % TRAINING.eval_interval == 0:
            started_from = started_from_list[len(expected)]
            assert started_from is not None
            for value, expected_value in zip(started_from, reptile.snapshot().weights):
                np.testing.assert_array_equal(value, expected_value)
            jobs = [evaluator.jobs(source, 1)[0] for source in sources]
            train_correct, test_correct = evaluator.count_correct(jobs)
            expected.append('batch %d: train=%f test=%f' % (step, train_correct / SHAPE.classes,
                                                            test_correct / SHAPE.classes))
    assert [line for line in lines if line.startswith('batch')] == expected
    # Each checkpoint comes after the evaluation of its step.
    kinds = [line.split()[0] + line.split()[1].split('-')[-1].strip(':') for line in lines]
    assert kinds.index('batch0') < kinds.index('checkpoint0')
    assert kinds.index('batch6') < kinds.index('checkpoint6')
