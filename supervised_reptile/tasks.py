"""
Task distributions: where the few-shot tasks of meta-training and evaluation come from.

    tasks = from_arrays(x, y, ways=5, shots=1, query_shots=1, seed=0)     # classification
    tasks = from_dataset(dataset, ways=5, shots=1, query_shots=1, seed=0) # a tf.data.Dataset
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

Inputs reach the model with the values given, as float32 (token ids too: an Embedding casts
them back). Image sources (from_folder, and the Omniglot and Mini-ImageNet loaders of the run
scripts) store uint8 pixels and scale them to [0, 1] in the compiled step. Non-finite values are
refused when a source is built (or, for a function, when it draws them).
"""

import os

import numpy as np
import tensorflow as tf

from . import folder, sampling
from .errors import UserError, WrongType


class ClassificationTasks:
    """Few-shot classification tasks drawn from labelled examples (sampling.ImageClasses)."""

    classification = True

    def __init__(self, classes, ways, shots, query_shots=1, replacement=False, seed=0, rng=None,
                 names=None):
        _require_positive(ways=ways, shots=shots, query_shots=query_shots)
        self.classes = classes
        # What messages call the task's sizes: the library's arguments, or the run scripts' flags.
        self.names = names or LIBRARY_NAMES
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

    def example_batch(self):
        """(inputs, targets) of one example of each of a task's classes (or fewer, if the
        source has fewer), as the compiled step gets them; draws nothing."""
        count = min(self.ways, len(self.classes))
        return self.classes.images[self.classes.offsets[:count]], np.arange(count)

    def check(self, what, queries=True):
        """Raise a UserError, naming the source as `what`, if it cannot give tasks of its size
        (with their queries, or for training without)."""
        needed = self.shots + (self.query_shots if queries else 0)
        names = dict(self.names)
        if queries and 'query_shots' in names:
            names['shots'] = '%s or %s' % (names['shots'], names['query_shots'])
        self.classes.check_task_size(self.ways, needed, what, names)

    def check_tail_shots(self, tail_shots, inner_steps):
        """Raise a UserError unless tail_shots (first-order MAML's held-out examples per class)
        leaves examples for the task's other inner steps (all of them, with one step)."""
        if tail_shots is None:
            return
        most = self.shots if inner_steps == 1 else self.shots - 1
        if most < 1:
            raise UserError('tail_shots needs training tasks of at least 2 shots (or '
                            'inner_steps=1); these have %d: raise shots, or pass '
                            'tail_shots=None' % self.shots)
        if not (isinstance(tail_shots, (int, np.integer)) and 1 <= tail_shots <= most):
            raise UserError('tail_shots is %r, but it must be between 1 and %d: a training task '
                            'of %d shots holds that many examples per class out for its last '
                            'inner step and needs the rest for the %d before it (all %d only '
                            'with inner_steps=1); pass tail_shots=None for an ordinary last step'
                            % (tail_shots, most, self.shots, inner_steps - 1, self.shots))

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
        return self.example_batch()[0]

    def example_batch(self):
        """(inputs, targets) of a task drawn from a generator of its own: the source's is left
        as it was."""
        return self._draw(self.shots, np.random.default_rng(0))

    def check(self, what, queries=True):
        del what, queries  # a function gives tasks of any size

    def check_tail_shots(self, tail_shots, inner_steps):
        del inner_steps
        if tail_shots is not None:
            raise UserError('tail_shots is for classification tasks; pass tail_shots=None for '
                            'regression')

    def training_tasks(self, count, batch_size, num_batches, tail_shots=None):
        """As ClassificationTasks.training_tasks; the pool holds the points of all count tasks."""
        if tail_shots is not None:
            self.check_tail_shots(tail_shots, num_batches)
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

    def _draw(self, n, rng=None):
        """n points of a new task (drawn from rng, by default the source's), as arrays: x as
        model inputs, y as float32 [n, ...] (a column for scalar targets)."""
        x, y = self.sample_task(self.rng if rng is None else rng, n)
        x, y = np.asarray(x, np.float32), np.asarray(y, np.float32)
        if y.ndim == 1:
            y = y[:, None]
        if len(x) != n or len(y) != n:
            raise UserError('sample_task(rng, %d) returned %d inputs and %d targets; it must '
                            'return n of each' % (n, len(x), len(y)))
        if not (np.all(np.isfinite(x)) and np.all(np.isfinite(y))):
            raise UserError('sample_task(rng, %d) returned values that are not finite (NaN or '
                            'infinity); it must return finite inputs and targets' % n)
        return x, y


def from_arrays(x, y, ways=5, shots=1, query_shots=1, seed=0, rng=None, replacement=False):
    """Classification tasks from examples x [n, ...] (any numeric array: the model gets its
    values as float32) and their class labels y [n] (any values: each distinct one is a class,
    in sorted order)."""
    x, y = model_inputs(x, 'x'), np.asarray(y)
    if len(x) != len(y) or y.ndim != 1:
        raise UserError('from_arrays takes x [n, ...] and labels y [n]; got %s and %s'
                        % (x.shape, y.shape))
    names = np.unique(y)
    classes = sampling.ImageClasses.from_arrays([x[y == name] for name in names],
                                                [str(name) for name in names])
    return ClassificationTasks(classes, ways, shots, query_shots, replacement, seed, rng)


def from_dataset(dataset, ways=5, shots=1, query_shots=1, seed=0, rng=None, replacement=False):
    """Classification tasks from a finite tf.data.Dataset of (x, y) examples, or of batches of
    them (y [batch]): from_arrays on its elements, in order."""
    if not isinstance(dataset, tf.data.Dataset):
        raise WrongType('from_dataset takes a tf.data.Dataset, not %s; for arrays use '
                        'sr.tasks.from_arrays(x, y, ...)' % type(dataset).__name__)
    if int(dataset.cardinality()) == int(tf.data.INFINITE_CARDINALITY):
        raise UserError('from_dataset needs a finite dataset, and this one repeats forever; '
                        'give it without .repeat(), or cut it with .take(n)')
    spec = dataset.element_spec
    if not (isinstance(spec, tuple) and len(spec) == 2):
        raise UserError('from_dataset takes a dataset of (x, y) pairs, not of %s; map it to '
                        '(inputs, label) pairs first' % (spec,))
    pairs = list(dataset.as_numpy_iterator())
    if not pairs:
        raise UserError('the dataset given to from_dataset is empty')
    join = np.concatenate if spec[1].shape.rank == 1 else np.stack  # batches, or examples
    x, y = (join([pair[i] for pair in pairs]) for i in (0, 1))
    return from_arrays(x, y, ways, shots, query_shots, seed, rng, replacement)


def from_folder(path, ways=5, shots=1, query_shots=1, seed=0, rng=None, split=None,
                image_size=28, channels=1, replacement=False):
    """Classification tasks from a folder of <class>/<images>, the images squashed to
    image_size and converted to grey (channels 1) or RGB (3), as run_folder.py reads them.

    A folder with train/ and test/ (and val/) of <class>/<images> needs split: 'train', 'val'
    or 'test'. A folder of classes alone is all one source, or with split 'train' or 'test'
    the part of it run_folder.py trains or tests on (the classes split by seed, 1,200 of every
    1,623 for training, as Omniglot's)."""
    if not os.path.isdir(path):
        raise UserError('no folder %s; give a folder of <class>/<images>' % path)
    if not (isinstance(image_size, (int, np.integer)) and image_size >= 1):
        raise UserError('image_size must be a positive number of pixels, not %r' % (image_size,))
    if channels not in (1, 3):
        raise UserError('channels must be 1 (grey) or 3 (RGB), not %r' % (channels,))
    splits = [name for name in folder.SPLITS if os.path.isdir(os.path.join(path, name))]
    if split is not None and split not in folder.SPLITS:
        raise UserError('split must be one of %s, not %r' % (', '.join(folder.SPLITS), split))
    if splits and split not in splits:
        raise UserError('%s holds the folders %s: pass split=%s' % (
            path, ', '.join(name + '/' for name in splits), ' or '.join(map(repr, splits))))
    if splits:
        classes = folder.read_classes(os.path.join(path, split), image_size, channels)
    else:
        if split == 'val':
            raise UserError("%s holds classes alone, which split='train' and 'test' divide; "
                            "there is no 'val'" % path)
        classes = folder.read_classes(path, image_size, channels)
        if split is not None:
            train, test = folder.split_classes(classes, seed, folder.TRAIN_FRACTION)
            classes = train if split == 'train' else test
    return ClassificationTasks(classes, ways, shots, query_shots, replacement, seed, rng,
                               dict(LIBRARY_NAMES, examples='images'))


def from_function(sample_task, shots=10, query_shots=None, seed=0, rng=None):
    """Regression tasks: sample_task(rng, n) -> (x, y) gives n points (x [n, ...], y [n] or
    [n, ...]) of a newly drawn task, rng a numpy Generator; query_shots defaults to shots."""
    if not callable(sample_task):
        raise WrongType('from_function takes a function sample_task(rng, n) -> (x, y)')
    return RegressionTasks(sample_task, shots, query_shots, seed, rng)


def model_inputs(x, name):
    """x as float32 model inputs; a UserError, naming the argument, for values that are not
    numbers or not finite."""
    x = np.asarray(x)
    if x.dtype.kind not in 'biuf':
        raise WrongType('%s must be an array of numbers, not of %s' % (name, x.dtype))
    x = x.astype(np.float32)
    if not np.all(np.isfinite(x)):
        raise UserError('%s holds values that are not finite (NaN or infinity); remove or '
                        'replace them' % name)
    return x


def require_source(tasks, argument):
    """Raise a TypeError unless tasks, given as `argument`, is a task source of this module."""
    if not isinstance(tasks, (ClassificationTasks, RegressionTasks)):
        raise WrongType('%s must be a task source, not %s: build one with '
                        'sr.tasks.from_arrays(x, y, ways=..., shots=...), from_dataset, '
                        'from_folder or from_function' % (argument, type(tasks).__name__))


# What messages call a task's sizes (see ClassificationTasks.names).
LIBRARY_NAMES = {'ways': 'ways', 'shots': 'shots', 'query_shots': 'query_shots',
                 'examples': 'examples'}


def _require_positive(**counts):
    for name, value in counts.items():
        if not (isinstance(value, (int, np.integer)) and value >= 1):
            raise UserError('%s must be a positive integer, not %r' % (name, value))
