"""Task sampling and inner mini-batching follow the reference's rules."""

import numpy as np
import pytest

from supervised_reptile import sampling
from supervised_reptile.errors import UserError

from conftest import random_classes


def test_mini_batches_carry_partial_batches_across_epochs():
    rng = np.random.default_rng(0)
    batches = sampling.mini_batches(75, 10, 8, False, rng)
    stream = batches.reshape(-1)
    assert sorted(stream[:75]) == list(range(75))
    # The 8th batch is the last 5 samples of epoch 1 and the first 5 of a fresh shuffle.
    assert len(set(stream[75:80])) == 5
    assert list(batches[7]) == list(stream[70:80])


def test_batch_larger_than_task_repeats_each_sample():
    batches = sampling.mini_batches(5, 15, 2, False, np.random.default_rng(0))
    for batch in batches:
        assert sorted(np.bincount(batch, minlength=5)) == [3] * 5


def test_epochs_are_fresh_permutations():
    batches = sampling.mini_batches(6, 4, 6, False, np.random.default_rng(1))
    epochs = batches.reshape(-1, 6)
    assert all(sorted(e) == list(range(6)) for e in epochs)
    assert len({tuple(e) for e in epochs}) > 1


def test_replacement_draws_independent_batches_of_distinct_samples():
    batches = sampling.mini_batches(10, 4, 50, True, np.random.default_rng(0))
    assert batches.shape == (50, 4)
    assert all(len(set(b)) == 4 for b in batches)
    # Independent draws: some sample shows up in consecutive batches.
    assert any(set(a) & set(b) for a, b in zip(batches[:-1], batches[1:]))


def test_replacement_batch_larger_than_task_is_an_error():
    with pytest.raises(UserError, match='replacement'):
        sampling.mini_batches(5, 6, 1, True, np.random.default_rng(0))


def test_zero_batches_is_empty_not_endless():
    assert sampling.mini_batches(5, 3, 0, False, np.random.default_rng(0)).shape == (0, 3)


def test_task_has_distinct_classes_and_distinct_images_per_class():
    classes = random_classes(30, 20)
    rng = np.random.default_rng(0)
    for _ in range(20):
        task = sampling.sample_task(classes, 5, 10, rng)
        owners = np.searchsorted(classes.offsets, task, side='right') - 1
        assert all(len(set(row)) == 1 for row in owners)
        assert len(set(owners[:, 0])) == 5
        assert all(len(set(row)) == 10 for row in task)


def test_training_task_labels_follow_the_class_order_of_the_task():
    classes = random_classes(30, 20)
    task = sampling.training_task(classes, 5, 10, 10, 5, False, np.random.default_rng(0))
    indices = np.concatenate([task.head_indices.reshape(-1), task.last_indices])
    labels = np.concatenate([task.head_labels.reshape(-1), task.last_labels])
    # One epoch of 50 samples: every image once, each with the label of its class's slot.
    assert len(set(indices)) == 50
    owner = np.searchsorted(classes.offsets, indices, side='right') - 1
    assert all(len(set(owner[labels == label])) == 1 for label in range(5))


def test_foml_tail_is_held_out_and_shot_major():
    classes = random_classes(30, 20)
    task = sampling.training_task(classes, 5, 6, 10, 4, False, np.random.default_rng(0),
                                  tail_shots=2)
    assert task.head_indices.shape == (3, 10)
    assert task.last_indices.shape == (10,)
    assert list(task.last_labels) == [0, 1, 2, 3, 4] * 2
    assert not set(task.last_indices) & set(task.head_indices.reshape(-1))


def test_evaluation_task_holds_out_one_query_per_class():
    classes = random_classes(30, 20)
    task = sampling.evaluation_task(classes, 5, 3, 5, 7, False, np.random.default_rng(0))
    assert list(task.query_labels) == [0, 1, 2, 3, 4]
    assert task.support_indices.shape == (15,)
    assert not set(task.query_indices) & set(task.support_indices)
    assert task.batch_indices.shape == (7, 5)
    assert set(task.batch_indices.reshape(-1)) <= set(task.support_indices)
    owner = lambda i: np.searchsorted(classes.offsets, i, side='right') - 1  # noqa: E731
    for label in range(5):
        support_of_label = task.support_indices[label * 3:(label + 1) * 3]
        assert set(owner(support_of_label)) == {owner(task.query_indices[label])}
    for batch, labels in zip(task.batch_indices, task.batch_labels):
        for index, label in zip(batch, labels):
            assert owner(index) == owner(task.query_indices[label])


def test_too_few_images_or_classes_is_an_error():
    classes = random_classes(4, 3)
    with pytest.raises(UserError, match='only 4 classes'):
        classes.check_task_size(5, 1, 'test')
    with pytest.raises(UserError, match='needs 4 images per class'):
        classes.check_task_size(2, 4, 'test')


def test_stack_tasks_makes_one_array_per_field():
    classes = random_classes(30, 20)
    rng = np.random.default_rng(0)
    stacked = sampling.stack_tasks([sampling.training_task(classes, 5, 10, 10, 5, False, rng)
                                    for _ in range(3)])
    assert stacked.head_indices.shape == (3, 4, 10)
    assert stacked.last_labels.shape == (3, 10)
    assert stacked.head_indices.dtype == np.int32
