"""
Few-shot tasks drawn from a set of image classes, as index arrays.

Everything here is host-side numpy and knows nothing of models: a task is a set of image indices
into one array that stays resident on the device, so the graph gathers the pixels itself.
The sampling rules are those of the reference implementation:

- a task takes `num_classes` distinct classes in random order (labels 0..N-1 in that order)
  and `num_shots` distinct images of each;
- an evaluation task holds out query images, one per class by default (the reference's rule);
- inner mini-batches walk through reshuffled epochs of the task's samples, and a batch that is
  still partial at the end of an epoch is completed from the next one (see `mini_batches`).
"""

from dataclasses import dataclass

import numpy as np

from .errors import UserError


@dataclass
class ImageClasses:
    """Classes of images in one array: class c owns images[offsets[c]:offsets[c] + counts[c]]."""
    images: np.ndarray
    offsets: np.ndarray
    counts: np.ndarray
    names: list

    @classmethod
    def from_arrays(cls, arrays, names):
        """Build from one image array per class."""
        counts = np.array([len(a) for a in arrays], dtype=np.int64)
        offsets = np.concatenate([[0], np.cumsum(counts)[:-1]]).astype(np.int64)
        return cls(np.concatenate(arrays), offsets, counts, list(names))

    def __len__(self):
        return len(self.names)

    def class_images(self, class_id):
        start = self.offsets[class_id]
        return self.images[start:start + self.counts[class_id]]

    def check_task_size(self, num_classes, num_shots, what, names=None):
        """Raise a UserError if tasks of this size cannot be drawn from these classes; names
        says what the caller calls the classes per task ('ways'), the examples per class
        ('shots') and the examples ('examples'): by default the run scripts' flags."""
        names = names or FLAG_NAMES
        if num_classes > len(self):
            raise UserError('%d classes per task but the %s set has only %d classes; lower %s'
                            % (num_classes, what, len(self), names['ways']))
        smallest = int(np.argmin(self.counts))
        if num_shots > self.counts[smallest]:
            raise UserError('%s %s task needs %d %s per class but class %s has only %d; lower %s'
                            % ('an' if what[0] in 'aeiou' else 'a', what, num_shots,
                               names['examples'], self.names[smallest], self.counts[smallest],
                               names['shots']))


# What the run scripts' messages call a task's sizes: their flags.
FLAG_NAMES = {'ways': '--classes', 'shots': '--shots or --train-shots', 'examples': 'images'}


@dataclass
class TrainingTask:
    """One task's inner-loop data: `head` mini-batches, then one `last` mini-batch.

    Reptile trains on all of them; first-order MAML takes its update from the last step only,
    which is why that step is kept apart.
    """
    head_indices: np.ndarray
    head_labels: np.ndarray
    last_indices: np.ndarray
    last_labels: np.ndarray


@dataclass
class EvaluationTask:
    """A support set to fine-tune on (as mini-batches, and whole) and queries with their
    targets."""
    batch_indices: np.ndarray
    batch_labels: np.ndarray
    support_indices: np.ndarray
    query_indices: np.ndarray
    query_labels: np.ndarray


def sample_task(classes, num_classes, num_shots, rng):
    """Draw a task: image indices of shape [num_classes, num_shots]; row i has label i."""
    chosen = rng.choice(len(classes), size=num_classes, replace=False)
    rows = [classes.offsets[c] + rng.choice(classes.counts[c], size=num_shots, replace=False)
            for c in chosen]
    return np.stack(rows)


def mini_batches(num_samples, batch_size, num_batches, replacement, rng):
    """Positions into a task's samples, shape [num_batches, batch_size].

    Without replacement, the samples are visited epoch after epoch, each epoch in a new random
    order, and cut into consecutive batches. A batch may therefore straddle two epochs, and when
    batch_size exceeds num_samples it holds some samples more than once. With replacement, each
    batch is an independent draw of distinct samples.
    """
    if num_batches == 0:  # first-order MAML's tail can be the whole task
        return np.zeros((0, batch_size), np.int64)
    if replacement:
        if batch_size > num_samples:
            raise UserError('a mini-batch of %d drawn with replacement needs at least that many '
                            'examples per task, but a task has %d; lower the batch size'
                            % (batch_size, num_samples))
        draws = [rng.choice(num_samples, size=batch_size, replace=False) for _ in range(num_batches)]
        return np.array(draws, dtype=np.int64).reshape(num_batches, batch_size)
    needed = batch_size * num_batches
    epochs = -(-needed // num_samples)
    stream = np.concatenate([np.zeros(0, np.int64)] +
                            [rng.permutation(num_samples) for _ in range(epochs)])
    return stream[:needed].reshape(num_batches, batch_size)


def _labelled(task):
    """Flatten a [classes, shots] task into (indices, labels), grouped by class."""
    num_classes, num_shots = task.shape
    return task.reshape(-1), np.repeat(np.arange(num_classes), num_shots)


def _batched(indices, labels, batch_size, num_batches, replacement, rng):
    positions = mini_batches(len(indices), batch_size, num_batches, replacement, rng)
    return indices[positions], labels[positions]


def training_task(classes, num_classes, num_shots, batch_size, num_batches, replacement, rng,
                  tail_shots=None):
    """Sample a training task and its inner mini-batches.

    With tail_shots T, T images per class are held out and form the last mini-batch on their own
    (first-order MAML's disjoint final batch); the other num_batches - 1 batches come from the rest.
    """
    task = sample_task(classes, num_classes, num_shots, rng)
    if tail_shots is None:
        indices, labels = _batched(*_labelled(task), batch_size, num_batches, replacement, rng)
        return TrainingTask(indices[:-1], labels[:-1], indices[-1], labels[-1])
    head_indices, head_labels = _batched(*_labelled(task[:, tail_shots:]), batch_size,
                                         num_batches - 1, replacement, rng)
    tail = task[:, :tail_shots]
    tail_labels = np.broadcast_to(np.arange(num_classes)[:, None], tail.shape)
    # The tail is ordered shot-major (one image of every class, then the next), as the
    # reference's train/test splitter leaves it.
    return TrainingTask(head_indices, head_labels, tail.T.reshape(-1), tail_labels.T.reshape(-1))


def evaluation_task(classes, num_classes, num_shots, batch_size, num_batches, replacement, rng,
                    query_shots=1):
    """Sample an evaluation task: num_shots support images and query_shots query images per
    class (the queries grouped by class)."""
    task = sample_task(classes, num_classes, num_shots + query_shots, rng)
    support_indices, support_labels = _labelled(task[:, query_shots:])
    batch_indices, batch_labels = _batched(support_indices, support_labels, batch_size,
                                           num_batches, replacement, rng)
    query_indices, query_labels = _labelled(task[:, :query_shots])
    return EvaluationTask(batch_indices, batch_labels, support_indices, query_indices,
                          query_labels)


def stack_tasks(tasks):
    """Stack same-shaped task records field by field (a meta-batch as one set of arrays);
    integers become int32, other targets float32."""
    first = tasks[0]
    return type(first)(*[compact(np.stack([getattr(t, f) for t in tasks]))
                         for f in first.__dataclass_fields__])


def compact(array):
    """An index or target array as the compiled steps take it: int32, or float32."""
    return array.astype(np.int32 if np.issubdtype(array.dtype, np.integer) else np.float32)
