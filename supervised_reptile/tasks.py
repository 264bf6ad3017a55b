"""
Task distributions: where the few-shot tasks of meta-training and evaluation come from.

    tasks = from_arrays(x, y, ways=5, shots=1, query_shots=1, seed=0)     # classification
    tasks = from_folder('my_classes', ways=5, shots=1, seed=0)            # images, <class>/<files>
    tasks = from_function(sample_task, shots=10, query_shots=10, seed=0)  # regression

A source draws every task from its own numpy Generator (seed), so the same seed replays the same
tasks, in meta-training and in evaluation alike; sources built with one `rng` share it. Host-side
numpy only: a task is index arrays into a pool of inputs that the compiled step gathers from.

The rules of classification tasks are the reference's (sampling.py): `ways` distinct classes in
random order, labelled 0..ways-1 in that order; `shots` distinct examples of each; inner
mini-batches walk through reshuffled epochs of the task's examples. A training task has `shots`
examples per class; an evaluation task `shots` support examples and `query_shots` queries per
class, disjoint. A task's score is its query accuracy.

A regression task is `shots` points of a function drawn afresh (sample_task(rng, n) -> (x, y),
n points of one newly drawn task), plus `query_shots` query points of the same function in
evaluation. A task's score is its mean query loss.

Inputs: a uint8 array is taken as images and scaled to [0, 1] in the compiled step (as the run
scripts' images are); any other array is passed to the model as float32, unchanged.
"""

import os

import numpy as np
import tensorflow as tf

from . import folder, sampling
from .errors import UserError


class ClassificationTasks:
    """Few-shot classification tasks drawn from labelled examples (sampling.ImageClasses)."""

    classification = True

    def __init__(self, classes, ways, shots, query_shots=1, replacement=False, seed=0, rng=None):
        _require_positive(ways=ways, shots=shots, query_shots=query_shots)
        self.classes = classes
        self.ways = ways
        self.shots = shots
        self.query_shots = query_shots
        self.replacement = replacement
        self.rng = np.random.default_rng(seed) if rng is None else rng
        self._pool = None

    @property
    def support_size(self):
        return self.ways * self.shots

    def example_inputs(self):
        """A few inputs, to build a model that has not seen any."""
        return self.classes.images[:1]

    def check(self, what, queries=True):
        """Raise a UserError, naming the source as `what`, if it cannot give tasks of its size
        (with their queries, or for training without)."""
        self.classes.check_task_size(self.ways, self.shots + (self.query_shots if queries else 0),
                                     what)

    def training_tasks(self, count, batch_size, num_batches, tail_shots=None):
        """(pool, a sampling.TrainingTask of count tasks stacked): the inputs and the indices
        into them of each task's num_batches inner mini-batches of batch_size."""
        if self._pool is None:  # kept on the device: only indices change from task to task
            self._pool = tf.constant(self.classes.images)
        return self._pool, sampling.stack_tasks([
            sampling.training_task(self.classes, self.ways, self.shots, batch_size, num_batches,
                                   self.replacement, self.rng, tail_shots)
            for _ in range(count)])

    def evaluation_jobs(self, count, batch_size, num_batches):
        """count (inputs, sampling.EvaluationTask) pairs, each task fine-tuned on num_batches
        mini-batches of batch_size."""
        return [(self.classes.images, sampling.evaluation_task(
            self.classes, self.ways, self.shots, batch_size, num_batches, self.replacement,
            self.rng, self.query_shots)) for _ in range(count)]

    @staticmethod
    def task_scores(outputs, jobs, loss):
        """Each task's query accuracy, from the query outputs [tasks, queries, classes]."""
        del loss
        predictions = np.argmax(outputs, axis=-1)
        return np.array([np.mean(p == task.query_labels) for p, (_, task) in zip(predictions, jobs)])


class RegressionTasks:
    """Few-shot regression tasks: points of functions drawn by sample_task(rng, n) -> (x, y)."""

    classification = False

    def __init__(self, sample_task, shots, query_shots=None, seed=0, rng=None):
        query_shots = shots if query_shots is None else query_shots
        _require_positive(shots=shots, query_shots=query_shots)
        self.sample_task = sample_task
        self.shots = shots
        self.query_shots = query_shots
        self.rng = np.random.default_rng(seed) if rng is None else rng

    @property
    def support_size(self):
        return self.shots

    def example_inputs(self):
        return self._draw(1)[0]

    def check(self, what, queries=True):
        del what, queries  # a function gives tasks of any size

    def training_tasks(self, count, batch_size, num_batches, tail_shots=None):
        """As ClassificationTasks.training_tasks; the pool holds the points of all count tasks."""
        if tail_shots is not None:
            raise UserError('tail_shots is for classification tasks; drop it for regression')
        pools, tasks = [], []
        for task in range(count):
            x, y = self._draw(self.shots)
            positions = sampling.mini_batches(self.shots, batch_size, num_batches, False,
                                              self.rng)
            indices = positions + task * self.shots
            tasks.append(sampling.TrainingTask(indices[:-1], y[positions[:-1]], indices[-1],
                                               y[positions[-1]]))
            pools.append(x)
        return np.concatenate(pools), sampling.stack_tasks(tasks)

    def evaluation_jobs(self, count, batch_size, num_batches):
        jobs = []
        for _ in range(count):
            x, y = self._draw(self.shots + self.query_shots)
            positions = sampling.mini_batches(self.shots, batch_size, num_batches, False,
                                              self.rng)
            jobs.append((x, sampling.EvaluationTask(
                positions, y[positions], np.arange(self.shots),
                np.arange(self.shots, len(x)), y[self.shots:])))
        return jobs

    @staticmethod
    def task_scores(outputs, jobs, loss):
        """Each task's mean query loss, from the query outputs [tasks, queries, ...]."""
        return np.array([float(tf.reduce_mean(loss(tf.constant(task.query_labels),
                                                   tf.constant(task_outputs))))
                         for task_outputs, (_, task) in zip(outputs, jobs)])

    def _draw(self, n):
        """n points of a new task, as arrays: x as model inputs, y as float32 [n, ...] (a
        column for scalar targets)."""
        x, y = self.sample_task(self.rng, n)
        x, y = stored_inputs(x), np.asarray(y, np.float32)
        if y.ndim == 1:
            y = y[:, None]
        if len(x) != n or len(y) != n:
            raise UserError('sample_task(rng, %d) returned %d inputs and %d targets; it must '
                            'return n of each' % (n, len(x), len(y)))
        return x, y


def from_arrays(x, y, ways=5, shots=1, query_shots=1, seed=0, rng=None, replacement=False):
    """Classification tasks from examples x [n, ...] (any float or int array) and their class
    labels y [n] (any values: each distinct one is a class, in sorted order)."""
    x, y = stored_inputs(x), np.asarray(y)
    if len(x) != len(y) or y.ndim != 1:
        raise UserError('from_arrays takes x [n, ...] and labels y [n]; got %s and %s'
                        % (x.shape, y.shape))
    names = np.unique(y)
    classes = sampling.ImageClasses.from_arrays([x[y == name] for name in names],
                                                [str(name) for name in names])
    return ClassificationTasks(classes, ways, shots, query_shots, replacement, seed, rng)


def from_folder(path, ways=5, shots=1, query_shots=1, seed=0, rng=None, split=None,
                image_size=28, channels=1, replacement=False):
    """Classification tasks from a folder of <class>/<images>, the images squashed to
    image_size and converted to grey (channels 1) or RGB (3), as run_folder.py reads them.

    A folder with train/ and test/ (and val/) of <class>/<images> needs split: 'train', 'val'
    or 'test'. A folder of classes alone is all one source, or with split 'train' or 'test'
    the part of it run_folder.py trains or tests on (the classes split by seed)."""
    if not os.path.isdir(path):
        raise UserError('no folder %s; give a folder of <class>/<images>' % path)
    layered = os.path.isdir(os.path.join(path, 'train'))
    if layered and split is None:
        raise UserError('%s holds train/, val/ and test/ folders: pass split=\'train\', \'val\' '
                        'or \'test\'' % path)
    if split not in (None,) + folder.SPLITS or (split == 'val' and not layered):
        raise UserError('split must be one of %s, not %r' % (', '.join(folder.SPLITS), split))
    if layered:
        classes = folder.read_classes(os.path.join(path, split), image_size, channels)
    else:
        classes = folder.read_classes(path, image_size, channels)
        if split is not None:
            train, test = folder.split_classes(classes, seed, folder.TRAIN_FRACTION)
            classes = train if split == 'train' else test
    return ClassificationTasks(classes, ways, shots, query_shots, replacement, seed, rng)


def from_function(sample_task, shots=10, query_shots=None, seed=0, rng=None):
    """Regression tasks: sample_task(rng, n) -> (x, y) gives n points (x [n, ...], y [n] or
    [n, ...]) of a newly drawn task, rng a numpy Generator; query_shots defaults to shots."""
    if not callable(sample_task):
        raise UserError('from_function takes a function sample_task(rng, n) -> (x, y)')
    return RegressionTasks(sample_task, shots, query_shots, seed, rng)


def stored_inputs(x):
    """x as a source stores inputs: uint8 kept (images), anything else as float32."""
    x = np.asarray(x)
    return x if x.dtype == np.uint8 else x.astype(np.float32)


def _require_positive(**counts):
    for name, value in counts.items():
        if not (isinstance(value, (int, np.integer)) and value >= 1):
            raise UserError('%s must be a positive integer, not %r' % (name, value))
