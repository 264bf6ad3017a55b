"""Training's periodic evaluation runs beside the training and logs what it would log inline."""

import keras
import numpy as np
import tensorflow as tf

from supervised_reptile import models
from supervised_reptile.evaluation import Evaluator
from supervised_reptile.inner_loop import Adam
from supervised_reptile.reptile import Reptile
from supervised_reptile.settings import Evaluation, TaskShape, Training
from supervised_reptile.train import sample_meta_batch, train

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


def meta_step(reptile, rng, step=0):
    reptile.train_step(tf.constant(TRAIN_CLASSES.images),
                       sample_meta_batch(TRAIN_CLASSES, SHAPE, TRAINING, rng),
                       TRAINING.meta_step_size(step))


def test_an_evaluation_from_a_snapshot_sees_the_state_it_was_taken_in():
    reptile = fresh_reptile()
    rng = np.random.default_rng(0)
    meta_step(reptile, rng)
    evaluator = Evaluator(reptile, EVALUATION)
    jobs = [(TEST_CLASSES.images, evaluator.sample_task(TEST_CLASSES, SHAPE, rng))
            for _ in range(2)]
    snapshot = reptile.snapshot()
    then = evaluator.query_logits(jobs)
    for _ in range(3):
        meta_step(reptile, rng)
    assert not np.allclose(evaluator.query_logits(jobs), then)
    np.testing.assert_array_equal(evaluator.query_logits(jobs, start=snapshot), then)


class RecordingEvaluator(Evaluator):
    """An Evaluator that keeps the weights each count_correct started from."""

    def __init__(self, *args):
        super().__init__(*args)
        self.started_from = []

    def count_correct(self, jobs, size=None, start=None):
        self.started_from.append(start and [value.numpy() for value in start.weights])
        return super().count_correct(jobs, size, start)


def test_training_logs_what_evaluating_inline_after_each_meta_step_gives(tmp_path):
    lines = []
    reptile = fresh_reptile()
    recording = RecordingEvaluator(reptile, EVALUATION)
    train(reptile, recording, TRAIN_CLASSES, TEST_CLASSES, str(tmp_path),
          np.random.default_rng(7), SHAPE, TRAINING, log_fn=lines.append)

    reptile = fresh_reptile()
    evaluator = Evaluator(reptile, EVALUATION)
    rng = np.random.default_rng(7)
    expected = []
    for step in range(TRAINING.meta_iters):
        meta_step(reptile, rng, step)
        if step % TRAINING.eval_interval == 0:
            started_from = recording.started_from[len(expected)]
            assert started_from is not None
            for value, expected_value in zip(started_from, reptile.snapshot().weights):
                np.testing.assert_array_equal(value, expected_value)
            jobs = [(classes.images, evaluator.sample_task(classes, SHAPE, rng))
                    for classes in (TRAIN_CLASSES, TEST_CLASSES)]
            train_correct, test_correct = evaluator.count_correct(jobs)
            expected.append('batch %d: train=%f test=%f' % (step, train_correct / SHAPE.classes,
                                                            test_correct / SHAPE.classes))
    assert [line for line in lines if line.startswith('batch')] == expected
    # Each checkpoint comes after the evaluation of its step.
    kinds = [line.split()[0] + line.split()[1].split('-')[-1].strip(':') for line in lines]
    assert kinds.index('batch0') < kinds.index('checkpoint0')
    assert kinds.index('batch6') < kinds.index('checkpoint6')
