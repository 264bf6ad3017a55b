"""
Evaluation of a meta-learned initialization: the one path every caller uses (the run scripts'
final evaluation, the periodic train/test pair during training, adaptation, the benchmark and
the tests).

Every evaluation task starts from the same weights and optimizer state (a reptile.Snapshot, by
default of the state as it is when the evaluation starts) and never affects another, so tasks
are fine-tuned side by side in one compiled call, k at a time (one task is the case k = 1), with
the inner loop of inner_loop.py, in an inner state of the evaluation's own: the model and the
optimizer state are only read. On a GPU the tasks run in the grouped-convolution layout (see
networks.py); with a tf.distribute strategy of several replicas, each replica takes its share
of the k tasks.

The host side packs each task's inputs (support, then queries) into one small array, so tasks of
different sources (training and test classes) can share a call. A task's score is its source's
(tasks.py): the fraction of its queries predicted right (one query per class per task, as in the
reference), or its mean query loss for regression; an evaluation reports the mean score over
tasks with a 95% confidence interval.
"""

import math

import numpy as np
import tensorflow as tf

from . import sampling
from .inner_loop import InnerLoop, InnerState, gather_task_inputs
from .networks import TaskNetwork
from .parallel import split_over_replicas
from .progress import Progress
from .reptile import Snapshot
from .statistics import Estimate

# Memory for one call's activations and their gradients; the default k is as many tasks as fit
# (1-shot Mini-ImageNet: ~34 MB a task, 5-shot ~150 MB), at most MAX_TASKS_PER_BATCH, beyond
# which larger batches measured no faster.
ACTIVATION_BUDGET_BYTES = 1 << 30
MAX_TASKS_PER_BATCH = 16


class Evaluator:
    """Fine-tunes tasks from reptile's state with the settings of an evaluation
    (settings.Evaluation) and predicts their queries.

    grouped chooses the layout of networks.TaskNetwork (by default: grouped on a GPU); a
    strategy of several replicas shares the tasks of each call out over them. Calls share the
    evaluator's inner states: one call at a time.
    """

    def __init__(self, reptile, settings, strategy=None, grouped=None):
        self.reptile = reptile
        self.settings = settings
        self.strategy = strategy if strategy and strategy.num_replicas_in_sync > 1 else None
        if grouped is None:
            grouped = bool(tf.config.list_logical_devices('GPU'))
        self.network = TaskNetwork(reptile.model, reptile.fine_tuned_variables, grouped)
        index = {id(v): i for i, v in enumerate(reptile.meta_trained_variables)}
        self._fine_tuned = [index[id(v)] for v in self.network.variables]
        self._fine_tuned_ids = {id(v) for v in self.network.variables}
        self._shared = [index[id(v)] for v in self.network.shared_variables]
        self.inner_loop = InnerLoop(self.network, reptile.rule, reptile.weight_decay, reptile.loss,
                                    reptile.reduction)
        self._states = {}  # per (tasks in a call on a replica, distributed): the inner state
        self._default_sizes = {}  # batch size -> default_tasks_per_batch
        self._logits = tf.function(self._logits_graph, jit_compile=reptile.jit_compile)
        self._distributed_logits = tf.function(self._distributed_logits_graph)
        self._fine_tune = tf.function(self._fine_tune_graph)

    def jobs(self, source, count):
        """count (inputs, sampling.EvaluationTask) pairs drawn from source (tasks.py), with this
        evaluation's fine-tuning mini-batches."""
        return source.evaluation_jobs(count, self.settings.inner_batch, self.settings.inner_iters)

    def query_logits(self, jobs, size=None, start=None):
        """Fine-tune on each (inputs, sampling.EvaluationTask) of jobs from start (a
        reptile.Snapshot; by default the state as it is now) and return the outputs of its
        queries, [tasks, queries, ...].

        The tasks are computed size at a time (by default tasks_per_batch(), at most all of
        jobs), a short last batch padded with copies of its last task so that every call has
        the compiled shape.
        """
        size = size or min(len(jobs), self.tasks_per_batch(largest_batch(jobs[0][1]),
                                                           jobs[0][0].shape[1:]))
        start, shared = self._split(self.reptile.snapshot() if start is None else start)
        logits = []
        for first in range(0, len(jobs), size):
            chunk = jobs[first:first + size]
            padded = chunk + [chunk[-1]] * (size - len(chunk))
            logits.append(self._call(start, shared, *pack(padded))[:len(chunk)])
        return np.concatenate(logits)

    def count_correct(self, jobs, size=None, start=None):
        """The number of queries predicted right in each task of jobs (see query_logits)."""
        predictions = np.argmax(self.query_logits(jobs, size, start), axis=-1)
        return [int(np.sum(p == task.query_labels)) for p, (_, task) in zip(predictions, jobs)]

    def evaluate(self, source, num_tasks, name='evaluation', log_fn=print):
        """The mean score of num_tasks independent tasks drawn from source (a statistics.Estimate
        over tasks), with a line to log_fn after every tenth of them.

        The tasks are drawn in the order one-by-one evaluation would draw them, since
        fine-tuning draws no random numbers: how many run side by side does not change which
        tasks are evaluated.
        """
        source.check('evaluation')
        size = min(num_tasks, self.tasks_per_batch(
            max(self.settings.inner_batch, source.support_size + 1),
            source.example_inputs().shape[1:]))
        progress = Progress(num_tasks)
        report_every = max(1, num_tasks // 10)
        start = self.reptile.snapshot()
        scores = []
        while len(scores) < num_tasks:
            jobs = self.jobs(source, min(size, num_tasks - len(scores)))
            outputs = self.query_logits(jobs, size, start)
            scores.extend(source.task_scores(outputs, jobs, self.reptile.loss))
            reports_before = progress.done // report_every
            progress.advance(len(jobs))
            if progress.done // report_every > reports_before and progress.done < num_tasks:
                log_fn('  %s: %s, %s so far %f' % (
                    name, progress.describe('tasks'),
                    'accuracy' if source.classification else 'query loss', np.mean(scores)))
        return Estimate.from_task_values(scores)

    def fine_tuned_weights(self, job, start=None):
        """The weights of the model's trainable variables after fine-tuning on one (inputs,
        sampling.EvaluationTask) from start (by default the state as it is now)."""
        start, shared = self._split(self.reptile.snapshot() if start is None else start)
        pools, positions, labels = pack([job])[:3]
        self._state(1, distributed=False)  # one task: no replica would have a share
        tuned = iter(self._fine_tune(start, shared, pools, positions, labels))
        others = iter(shared)
        return [next(tuned)[0] if id(v) in self._fine_tuned_ids else next(others)
                for v in self.network.model.trainable_variables]

    def tasks_per_batch(self, batch_size, input_shape):
        """k: settings.tasks_per_batch, or as many tasks of batch_size inputs of input_shape at
        most at once as ACTIVATION_BUDGET_BYTES holds (at most MAX_TASKS_PER_BATCH)."""
        if self.settings.tasks_per_batch:
            return self.settings.tasks_per_batch
        if batch_size not in self._default_sizes:  # tracing a subclassed model takes a while
            self._default_sizes[batch_size] = default_tasks_per_batch(
                self.reptile.model, batch_size, input_shape)
        return self._default_sizes[batch_size]

    def _state(self, num_tasks, distributed):
        """The inner state of num_tasks tasks, made on first use (outside compiled code): one
        copy per replica of the strategy when distributed."""
        key = (num_tasks, distributed)
        if key not in self._states:
            self._states[key] = InnerState(self.reptile.rule, num_tasks, self.network.shapes,
                                           self.strategy if distributed else None)
        return self._states[key]

    def _split(self, snapshot):
        """Of a snapshot, the part evaluation fine-tunes from (a Snapshot of the fine-tuned
        variables) and the values of the other meta-trained variables, which it reads from the
        snapshot too, never from the model that training may be updating."""
        return (Snapshot([snapshot.weights[i] for i in self._fine_tuned],
                         [snapshot.slots[i] for i in self._fine_tuned], snapshot.step),
                [snapshot.weights[i] for i in self._shared])

    def _call(self, start, shared, pools, batch_positions, batch_labels, support_positions,
              query_positions):
        if self.strategy is None:
            self._state(len(pools), distributed=False)
            return self._logits(start, shared, pools, batch_positions, batch_labels,
                                support_positions, query_positions).numpy()
        num_tasks = len(pools)
        replicas = self.strategy.num_replicas_in_sync
        padding = -num_tasks % replicas  # copies of the last task, dropped from the result
        self._state((num_tasks + padding) // replicas, distributed=True)
        tasks = split_over_replicas(self.strategy, [
            np.concatenate([array, np.repeat(array[-1:], padding, axis=0)])
            for array in (pools, batch_positions, batch_labels)])
        logits = self._distributed_logits(start, shared, tasks, tf.constant(support_positions),
                                          tf.constant(query_positions))
        return logits.numpy()[:num_tasks]

    # Graph code: everything below runs inside tf.function.

    def _distributed_logits_graph(self, start, shared, tasks, support_positions,
                                  query_positions):
        per_replica = self.strategy.run(self._logits_graph, args=(
            start, shared, *tasks, support_positions, query_positions))
        return self.strategy.gather(per_replica, axis=0)

    def _logits_graph(self, start, shared, pools, batch_positions, batch_labels,
                      support_positions, query_positions):
        state = self._fine_tuned_state(start, shared, pools, batch_positions, batch_labels)

        def every_task(positions):
            return gather_task_inputs(pools, tf.tile(positions[None], [pools.shape[0], 1]))
        return self.inner_loop.predict(state, every_task(support_positions),
                                       every_task(query_positions), self.settings.transductive,
                                       shared)

    def _fine_tune_graph(self, start, shared, pools, batch_positions, batch_labels):
        state = self._fine_tuned_state(start, shared, pools, batch_positions, batch_labels)
        return state.read_weights()

    def _fine_tuned_state(self, start, shared, pools, batch_positions, batch_labels):
        state = self._states[(pools.shape[0], tf.distribute.has_strategy())]
        state.start(*start)

        def batch(step):
            return gather_task_inputs(pools, batch_positions[:, step]), batch_labels[:, step]
        self.inner_loop.fine_tune(state, batch, tf.shape(batch_positions)[1], shared)
        return state


def largest_batch(task):
    """The most images a task's network sees at once: a fine-tuning mini-batch, or the
    support set and one query of non-transductive prediction."""
    return max(task.batch_indices.shape[1], len(task.support_indices) + 1)


def default_tasks_per_batch(model, batch_size, input_shape):
    """As many tasks as ACTIVATION_BUDGET_BYTES holds at batch_size inputs of input_shape a
    task, between 1 and MAX_TASKS_PER_BATCH."""
    values = activation_values(model, input_shape)
    task_bytes = 2 * 4 * batch_size * values  # the activations, and as much for their gradients
    return int(np.clip(ACTIVATION_BUDGET_BYTES // task_bytes, 1, MAX_TASKS_PER_BATCH))


def activation_values(model, input_shape):
    """How many values the model computes for one input of input_shape: the sum of its layers'
    output sizes or, for a model whose layers record no output (a subclassed one), of every
    floating-point tensor its traced call computes (an overestimate: it counts the weights)."""
    try:
        return sum(math.prod(layer.output.shape[1:]) for layer in model.layers)
    except (AttributeError, ValueError):
        pass
    call = tf.function(lambda inputs: model(inputs, training=False))
    graph = call.get_concrete_function(tf.TensorSpec([1, *input_shape], tf.float32)).graph
    return sum(math.prod(tensor.shape) for op in graph.get_operations() for tensor in op.outputs
               if tensor.dtype.is_floating and tensor.shape.is_fully_defined())


def pack(jobs):
    """The tasks of jobs as arrays of task-local input positions: (pools [k, n, ...],
    fine-tuning batch positions [k, steps, batch], their targets, support positions [s], query
    positions [q])."""
    pools, batch_positions = [], []
    for images, task in jobs:
        pool = np.concatenate([task.support_indices, task.query_indices])
        pools.append(images[pool])
        batch_positions.append(_positions_in(task.support_indices, task.batch_indices))
    num_support = len(jobs[0][1].support_indices)
    num_queries = len(jobs[0][1].query_indices)
    return (np.stack(pools), np.stack(batch_positions).astype(np.int32),
            sampling.compact(np.stack([task.batch_labels for _, task in jobs])),
            np.arange(num_support, dtype=np.int32),
            np.arange(num_support, num_support + num_queries, dtype=np.int32))


def _positions_in(pool, values):
    """Where each of values sits in pool (pool's entries are distinct)."""
    order = np.argsort(pool)
    return order[np.searchsorted(pool, values, sorter=order)]
