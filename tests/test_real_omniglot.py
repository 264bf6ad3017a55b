"""On the real Omniglot (from ../shared; skipped when it is absent)."""

import hashlib

import numpy as np
import pytest

from supervised_reptile import models, omniglot
from supervised_reptile.inner_loop import Adam
from supervised_reptile.learner import Reptile
from supervised_reptile.settings import Evaluation, TaskShape, Training
from supervised_reptile.tasks import ClassificationTasks
from supervised_reptile.train import train

pytestmark = pytest.mark.slow  # the real Omniglot, decoded and trained on


def test_full_omniglot_reads_and_splits_like_the_reference(real_omniglot_dir):
    classes = omniglot.read_dataset(str(real_omniglot_dir))
    assert len(classes) == 1623 and classes.images.shape == (32460, 28, 28, 1)
    train_set, test_set = omniglot.load(str(real_omniglot_dir), seed=0)
    assert len(train_set) == 4800 and len(test_set) == 423
    # Strokes are dark: most of a character image is background (255).
    assert (classes.images == 255).mean() > 0.8


# Produced by running the reference implementation's own split code (random.seed(0), its
# read_dataset and split_dataset) on the full Omniglot.
REFERENCE_SEED_0_FIRST_TEST = ['Malayalam/character17', 'Mkhedruli_(Georgian)/character07',
                               'Japanese_(hiragana)/character33', 'Oriya/character14',
                               'Alphabet_of_the_Magi/character17']
REFERENCE_SEED_0_TEST_SHA256 = '60dc8fb79410c085e6a78f7c702b298b08ef6416955114285f25154e0267f1a8'
REFERENCE_SEED_0_TRAIN_SHA256 = 'b26d35723b7bd435b51a35919b9ccbadb961f4adbf1a1abcd54e503f6216f660'


def names_digest(classes):
    return hashlib.sha256('\n'.join(classes.names).encode()).hexdigest()


def test_split_for_seed_0_is_the_reference_split(real_omniglot_dir):
    train_set, test_set = omniglot.split_dataset(omniglot.read_dataset(str(real_omniglot_dir)), 0)
    assert test_set.names[:5] == REFERENCE_SEED_0_FIRST_TEST
    assert names_digest(test_set) == REFERENCE_SEED_0_TEST_SHA256
    assert names_digest(train_set) == REFERENCE_SEED_0_TRAIN_SHA256


def test_short_run_of_readme_row_1_learns(real_omniglot_dir, tmp_path):
    train_set, test_set = omniglot.load(str(real_omniglot_dir), seed=0)
    rng = np.random.default_rng(0)
    shape = TaskShape(classes=5, shots=1)
    training = Training(train_shots=10, inner_batch=10, inner_iters=5, meta_step=1,
                        meta_step_final=0, meta_batch=5, meta_iters=200, eval_interval=1000)
    evaluation = Evaluation(transductive=True, samples=100)
    learner = Reptile(models.omniglot_model(5), inner_optimizer=Adam(0.001),
                      loss_reduction='sum', inner_steps=training.inner_iters,
                      inner_batch_size=training.inner_batch,
                      meta_batch_size=training.meta_batch, meta_step_size=training.meta_step,
                      meta_step_size_final=training.meta_step_final,
                      eval_steps=evaluation.inner_iters, eval_batch_size=evaluation.inner_batch,
                      transductive=evaluation.transductive)

    def tasks_of(classes, shots):
        return ClassificationTasks(classes, shape.classes, shots, replacement=shape.replacement,
                                   rng=rng)
    train(learner, tasks_of(train_set, training.train_shots),
          [('train', tasks_of(train_set, shape.shots)), ('test', tasks_of(test_set, shape.shots))],
          str(tmp_path / 'ckpt'), training.meta_iters, training.eval_interval,
          log_fn=lambda line: None)
    accuracy = learner.evaluate(tasks_of(test_set, shape.shots), evaluation.samples,
                                log_fn=lambda line: None)
    # Chance is 0.2; 200 meta-steps already reach about 0.6.
    assert accuracy.mean - accuracy.ci95 > 0.4, accuracy
