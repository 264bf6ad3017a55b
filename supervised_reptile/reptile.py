"""
Reptile and first-order MAML meta-learning.

A meta-step runs as one compiled TensorFlow function: the inner loops (inner_loop.py) are graph
loops on the inner loop's own variables, and only the new initialization is written back to the
model. The host only draws index arrays (see sampling.py).

Optimizer state follows the reference on purpose: one optimizer (Adam with beta1 = 0) whose
second-moment estimates and step count carry over from task to task, within a meta-batch and
across meta-steps; evaluation fine-tunes every task from that state (evaluation.py).
"""

from typing import NamedTuple

import tensorflow as tf

from .inner_loop import InnerLoop, InnerState, gather_inputs, sparse_softmax_cross_entropy
from .networks import TaskNetwork
from .parallel import ParallelMetaBatch


class Snapshot(NamedTuple):
    """The meta-learned state at one moment, as tensors: the meta-trained variables' values, each
    one's optimizer slots (of its shape) and the optimizer's step count. Later updates of the
    variables leave a snapshot as it was (TensorFlow copies a variable's buffer before updating
    it in place while a tensor still refers to it)."""
    weights: list
    slots: list
    step: tf.Tensor


class Reptile:
    """Reptile: move the initialization towards the weights each task's training ends at.

    The inner loop trains the model's trainable variables with `rule` (inner_loop.Adam or SGD)
    on the per-example `loss` of (targets, outputs) reduced over each mini-batch (`reduction`,
    inner_loop.reduced_loss), multiplying them by weight_decay (a rate: 1 is none) before each
    step. Frozen layers (Keras `trainable = False` before Reptile is built) are left out of everything: the inner loop, the meta-update,
    evaluation, and the optimizer's state. Variables in frozen_in_evaluation are left out of
    evaluation fine-tuning only.

    With a tf.distribute strategy, the tasks of a meta-batch are trained side by side on its
    replicas, each from a copy of the optimizer state (see parallel.py); by default they are
    trained one after the other, as in the reference.
    """

    def __init__(self, model, rule, weight_decay=1.0, frozen_in_evaluation=(),
                 parallel_strategy=None, jit_compile=False, loss=sparse_softmax_cross_entropy,
                 reduction='sum'):
        self.model = model
        self.rule = rule
        self.weight_decay = weight_decay
        self.loss = loss
        self.reduction = reduction
        # XLA: several times slower on CPUs (benchmarks/speed.py --xla), so off by default.
        self.jit_compile = jit_compile
        self.network = TaskNetwork(model)
        frozen = {id(variable) for variable in frozen_in_evaluation}
        self.fine_tuned_variables = [v for v in self.network.variables if id(v) not in frozen]
        self.inner_loop = InnerLoop(self.network, rule, weight_decay, loss, reduction)
        # One task's inner loop; its optimizer state is the one that carries over.
        self._task = InnerState(rule, 1, self.network.shapes)
        self.optimizer = self._task.optimizer
        self._parallel = parallel_strategy and ParallelMetaBatch(self, parallel_strategy)
        self._train_step = tf.function(self._train_step_graph, jit_compile=jit_compile)
        self._snapshot = tf.function(self._snapshot_graph)

    @property
    def meta_trained_variables(self):
        """The variables the inner loop trains and the meta-update moves."""
        return self.network.variables

    def train_step(self, images, meta_batch, meta_step_size):
        """One meta-step on a meta-batch of tasks (a stacked sampling.TrainingTask of indices into
        images, the pool of inputs, and of their targets).

        Returns the loss of the tasks' last inner mini-batches (mean over tasks) and whether
        every weight is still finite afterwards.
        """
        if self._parallel:
            return self._parallel.train_step(images, meta_batch, meta_step_size)
        loss, finite = self._train_step(images, meta_batch.head_indices, meta_batch.head_labels,
                                        meta_batch.last_indices, meta_batch.last_labels,
                                        tf.constant(meta_step_size, tf.float32))
        return float(loss), bool(finite)

    def snapshot(self):
        """A Snapshot of the weights and optimizer state as they are now: what evaluation
        fine-tunes from."""
        return self._snapshot()

    # Graph code: everything below runs inside tf.function.

    def _snapshot_graph(self):
        return Snapshot(self.network.read(),
                        [[slot[0] for slot in slots] for slots in self.optimizer.slots],
                        self.optimizer.iterations.read_value())

    def _train_step_graph(self, images, head_indices, head_labels, last_indices, last_labels,
                          meta_step_size):
        old = [tf.identity(value) for value in self.network.read()]
        total = [tf.zeros_like(value) for value in old]
        total_loss = tf.constant(0.0)
        num_tasks = tf.shape(head_indices)[0]
        # One task at a time, each from the initialization, the optimizer state chained through.
        for task in tf.range(num_tasks):
            for variable, value in zip(self._task.weights, old):
                variable.assign(value[None])
            update, loss = self.train_tasks(
                self._task, images, head_indices[task][None], head_labels[task][None],
                last_indices[task][None], last_labels[task][None])
            total = [t + u[0] for t, u in zip(total, update)]
            total_loss += loss[0]
        mean = [t / tf.cast(num_tasks, tf.float32) for t in total]
        new = self.meta_update(old, mean, meta_step_size)
        self.network.assign(new)
        finite = tf.reduce_all([tf.reduce_all(tf.math.is_finite(value)) for value in new])
        return total_loss / tf.cast(num_tasks, tf.float32), finite

    def train_tasks(self, state, images, head_indices, head_labels, last_indices, last_labels):
        """Train the k tasks of an inner state side by side, from where it stands: their head
        mini-batches [k, steps, batch] and last mini-batches [k, batch], indices into images.
        Returns each task's update (see task_update; one [k, *shape] tensor per variable) and
        each task's loss on its last mini-batch [k]."""
        def head_batch(index):
            return gather_inputs(images, head_indices[:, index]), head_labels[:, index]
        self.inner_loop.fine_tune(state, head_batch, tf.shape(head_indices)[1])
        before_last = state.read_weights()
        losses, _ = self.inner_loop.step(state, gather_inputs(images, last_indices), last_labels)
        return self.task_update(before_last, state.read_weights()), losses

    @staticmethod
    def task_update(before_last, after_last):
        """What a task contributes to the meta-update, given its weights before and after its
        last inner step: Reptile takes where the weights end up."""
        del before_last
        return after_last

    @staticmethod
    def meta_update(old, mean_update, meta_step_size):
        """The new initialization from the old one and the mean of the tasks' updates:
        old + meta_step_size * (mean_update - old), variable by variable."""
        return [o + meta_step_size * (m - o) for o, m in zip(old, mean_update)]


class FOML(Reptile):
    """First-order MAML: the update is the displacement of each task's last inner step."""

    @staticmethod
    def task_update(before_last, after_last):
        return [a - b for a, b in zip(after_last, before_last)]

    @staticmethod
    def meta_update(old, mean_update, meta_step_size):
        """old + meta_step_size * mean_update, variable by variable."""
        return [o + meta_step_size * m for o, m in zip(old, mean_update)]
