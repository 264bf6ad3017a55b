"""
Parallel meta-batches: the tasks of a meta-step trained side by side, on tf.distribute replicas.

The reference trains the tasks of a meta-batch one after another with ONE Adam state that
carries from task to task (reptile.py does the same). Tasks chained through a shared state
cannot run at the same time, so this mode (--parallel-meta-batch) changes the algorithm, on
purpose and only when asked:

- every task starts from the meta-step's weights and from a copy of the optimizer state;
- the weights move by Reptile's (or first-order MAML's) meta-update, as in the default mode;
- the optimizer state becomes the mean over tasks of the states the tasks ended with, and its
  step count advances by one task's inner steps, not by the whole meta-batch's.

Each replica trains its share of the tasks (meta-batch / replicas of them, in task order) as a
pure function of tensors through Keras' stateless_call. The per-task results are gathered in
task order and averaged the same way whatever the number of replicas, so one device and several
give the same numbers.
"""

import keras
import numpy as np
import tensorflow as tf

from . import variables
from .errors import UserError
from .reptile import gather_images, summed_cross_entropy


class ParallelMetaBatch:
    """A Reptile or FOML whose meta-step trains its tasks side by side on strategy's replicas;
    everything else (evaluation, the model, the optimizer) is the wrapped algorithm's."""

    def __init__(self, reptile, strategy):
        self.reptile = reptile
        self.strategy = strategy
        self._rule = _optimizer_rule(reptile.optimizer, reptile.model.trainable_variables)
        self._replica_images = (None, None)
        self._train_step = tf.function(self._train_step_graph)
        self._evaluate = tf.function(self._evaluate_graph)

    def __getattr__(self, name):
        return getattr(self.reptile, name)

    def train_step(self, images, meta_batch, meta_step_size):
        """One meta-step, as Reptile.train_step: returns (mean last-batch loss, weights finite)."""
        fields = (meta_batch.head_indices, meta_batch.head_labels, meta_batch.last_indices,
                  meta_batch.last_labels)
        inner_steps = meta_batch.head_indices.shape[1] + 1
        tasks = self._split_over_replicas(fields)
        loss, finite = self._train_step(self._images_on_replicas(images), tasks,
                                        tf.constant(meta_step_size, tf.float32),
                                        tf.constant(inner_steps, tf.int64))
        return float(loss), bool(finite)

    def _split_over_replicas(self, arrays):
        replicas = self.strategy.num_replicas_in_sync
        num_tasks = len(arrays[0])
        if num_tasks % replicas:
            raise UserError('a meta-batch of %d tasks cannot be shared evenly by %d replicas; make '
                            '--meta-batch a multiple of %d' % (num_tasks, replicas, replicas))
        share = num_tasks // replicas

        def replica_share(context):
            first = context.replica_id_in_sync_group * share
            return tuple(tf.constant(array[first:first + share]) for array in arrays)
        return self.strategy.experimental_distribute_values_from_function(replica_share)

    def _images_on_replicas(self, images):
        """images copied to every replica's device once, not at every step."""
        source, copies = self._replica_images
        if source is not images:
            copies = self.strategy.experimental_distribute_values_from_function(
                lambda context: tf.identity(images))
            self._replica_images = (images, copies)
        return copies

    @property
    def replica_evaluator(self):
        """With several replicas, the function batched_eval calls to fine-tune a packed batch of
        evaluation tasks and return their query logits: the tasks are shared out like a
        meta-batch's. With one, None: batched_eval's own evaluator is faster."""
        if self.strategy.num_replicas_in_sync == 1:
            return None
        return self._evaluate_on_replicas

    def _evaluate_on_replicas(self, pools, batch_positions, batch_labels, support_positions,
                              query_positions):
        num_tasks = len(pools)
        replicas = self.strategy.num_replicas_in_sync
        padding = -num_tasks % replicas  # copies of the last task, dropped from the result
        tasks = [np.concatenate([array, np.repeat(array[-1:], padding, axis=0)])
                 for array in (pools, batch_positions, batch_labels)]
        logits = self._evaluate(self._split_over_replicas(tasks), tf.constant(support_positions),
                                tf.constant(query_positions))
        return logits.numpy()[:num_tasks]

    # Graph code: everything below runs inside tf.function.

    def _evaluate_graph(self, tasks, support_positions, query_positions):
        reptile = self.reptile
        start = (variables.snapshot(reptile.model.trainable_variables),
                 variables.snapshot(self._rule.slot_variables),
                 variables.snapshot(reptile.model.non_trainable_variables),
                 tf.cast(reptile.optimizer.iterations, tf.float32))
        per_replica = self.strategy.run(self._evaluate_tasks,
                                        args=(tasks, support_positions, query_positions) + start)
        return self.strategy.gather(per_replica, axis=0)

    def _evaluate_tasks(self, tasks, support_positions, query_positions, weights, slots, frozen,
                        step):
        """One replica's share of the evaluation tasks, each fine-tuned from the same start:
        their query logits, stacked."""
        tuned_ids = {id(v) for v in self.reptile.fine_tuned_variables}
        tuned = [id(v) in tuned_ids for v in self.reptile.model.trainable_variables]
        pools, batch_positions, batch_labels = tasks
        logits = []
        for task in range(pools.shape[0]):
            task_weights, task_slots, task_step = weights, slots, step
            for batch in tf.range(tf.shape(batch_positions)[1]):
                task_step += 1
                task_weights, task_slots, _ = self._inner_step(
                    pools[task], batch_positions[task, batch], batch_labels[task, batch],
                    task_weights, task_slots, frozen, task_step, tuned)
            logits.append(self._query_logits(pools[task], task_weights, frozen,
                                             support_positions, query_positions))
        return tf.stack(logits)

    def _query_logits(self, images, weights, frozen, support_positions, query_positions):
        """Reptile._query_logits with the weights as tensors."""
        queries = gather_images(images, query_positions)
        if self.reptile.transductive:
            return self._logits(weights, frozen, queries)
        support = gather_images(images, support_positions)
        return tf.stack([
            self._logits(weights, frozen, tf.concat([support, queries[query:query + 1]], 0))[-1]
            for query in range(query_positions.shape[0])])

    def _train_step_graph(self, images, tasks, meta_step_size, inner_steps):
        reptile = self.reptile
        trainable = reptile.model.trainable_variables
        old = variables.snapshot(trainable)
        start = (old, variables.snapshot(self._rule.slot_variables),
                 variables.snapshot(reptile.model.non_trainable_variables),
                 tf.cast(reptile.optimizer.iterations, tf.float32))
        per_replica = self.strategy.run(self._train_tasks, args=(images, tasks) + start)
        # One gather of one packed tensor: separate collectives per variable may be matched up
        # in a different order on different replicas.
        mean = tf.reduce_mean(self.strategy.gather(per_replica, axis=0), axis=0)
        updates, slots, loss = _unpack(mean, old, self._rule.slot_variables)
        variables.assign(trainable, reptile.meta_update(old, updates, meta_step_size))
        variables.assign(self._rule.slot_variables, slots)
        reptile.optimizer.iterations.assign_add(
            tf.cast(inner_steps, reptile.optimizer.iterations.dtype))
        return loss, variables.all_finite(trainable)

    def _train_tasks(self, images, tasks, weights, slots, frozen, step):
        """One replica's share of the tasks, each from the same start: a row per task packing its
        update, its final optimizer state and the loss of its last mini-batch."""
        head_indices, head_labels, last_indices, last_labels = tasks
        rows = []
        for task in range(head_indices.shape[0]):
            update, end_slots, loss = self._train_task(
                images, head_indices[task], head_labels[task], last_indices[task],
                last_labels[task], weights, slots, frozen, step)
            rows.append(_pack(update + end_slots + [loss]))
        return tf.stack(rows)

    def _train_task(self, images, head_indices, head_labels, last_indices, last_labels, weights,
                    slots, frozen, step):
        for batch in tf.range(tf.shape(head_indices)[0]):
            step += 1
            weights, slots, _ = self._inner_step(images, head_indices[batch], head_labels[batch],
                                                 weights, slots, frozen, step)
        end, slots, loss = self._inner_step(images, last_indices, last_labels, weights, slots,
                                            frozen, step + 1)
        return self.reptile.task_update(weights, end), slots, loss

    def _inner_step(self, images, indices, labels, weights, slots, frozen, step, tuned=None):
        """Reptile._inner_step on tensors: weight decay, then one optimizer step on the summed
        loss; step counts from 1 as the optimizer's bias correction does. Weights whose flag in
        tuned is False stay as they are (their optimizer state is of no further use)."""
        tuned = tuned or [True] * len(weights)
        rate = self.reptile.weight_decay_rate
        if rate != 1:
            weights = [w * rate if tune else w for w, tune in zip(weights, tuned)]
        with tf.GradientTape() as tape:
            tape.watch(weights)
            logits = self._logits(weights, frozen, gather_images(images, indices))
            loss = summed_cross_entropy(labels, logits)
        updated, slots = self._rule.apply(weights, slots, tape.gradient(loss, weights), step)
        return [u if tune else w for u, w, tune in zip(updated, weights, tuned)], slots, loss

    def _logits(self, weights, frozen, images):
        return self.reptile.model.stateless_call(weights, frozen, images, training=True)[0]


def _pack(tensors):
    return tf.concat([tf.reshape(tensor, [-1]) for tensor in tensors], axis=0)


def _unpack(row, weights, slots):
    """(weights-shaped, slots-shaped, scalar) tensors from a row packed by _pack."""
    shapes = [w.shape for w in weights] + [s.shape for s in slots] + [tf.TensorShape([])]
    parts = tf.split(row, [shape.num_elements() for shape in shapes])
    tensors = [tf.reshape(part, shape) for part, shape in zip(parts, shapes)]
    return tensors[:len(weights)], tensors[len(weights):-1], tensors[-1]


def _optimizer_rule(optimizer, trainable):
    if isinstance(optimizer, keras.optimizers.Adam):
        return AdamRule(optimizer, trainable)
    if isinstance(optimizer, keras.optimizers.SGD) and not optimizer.momentum:
        return SGDRule(optimizer)
    raise ValueError('no parallel update rule for %s' % type(optimizer).__name__)


class AdamRule:
    """The update of models.FusedAdam (TensorFlow's ResourceApplyAdam kernel) on tensors; the
    state is the first-moment slots followed by the second-moment slots."""

    def __init__(self, optimizer, trainable):
        # pylint: disable=protected-access  # Keras keeps the slots by variable index only
        indices = [optimizer._get_variable_index(variable) for variable in trainable]
        self.slot_variables = ([optimizer._momentums[i] for i in indices] +
                               [optimizer._velocities[i] for i in indices])
        self.optimizer = optimizer

    def apply(self, weights, slots, gradients, step):
        beta_1, beta_2 = self.optimizer.beta_1, self.optimizer.beta_2
        rate = (tf.cast(self.optimizer.learning_rate, tf.float32) *
                tf.sqrt(1 - beta_2 ** step) / (1 - beta_1 ** step))
        count = len(weights)
        firsts = [m + (g - m) * (1 - beta_1) for m, g in zip(slots[:count], gradients)]
        seconds = [v + (g * g - v) * (1 - beta_2) for v, g in zip(slots[count:], gradients)]
        weights = [w - rate * m / (tf.sqrt(v) + self.optimizer.epsilon)
                   for w, m, v in zip(weights, firsts, seconds)]
        return weights, firsts + seconds


class SGDRule:
    """Plain gradient descent on tensors; it has no state."""

    slot_variables = []

    def __init__(self, optimizer):
        self.optimizer = optimizer

    def apply(self, weights, slots, gradients, step):
        del step
        rate = tf.cast(self.optimizer.learning_rate, tf.float32)
        return [w - rate * g for w, g in zip(weights, gradients)], slots
