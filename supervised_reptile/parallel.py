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

Each replica trains its share of the tasks (meta-batch / replicas of them, in task order) side by
side with the inner loop of inner_loop.py, in an inner state of its own. The per-task results
are gathered in task order and averaged the same way whatever the number of replicas, so one
device and several give the same numbers.
"""

import tensorflow as tf

from .errors import UserError
from .inner_loop import InnerState


class ParallelMetaBatch:
    """The meta-step of a Reptile or FOML (`reptile`) with its tasks trained side by side on
    strategy's replicas."""

    def __init__(self, reptile, strategy):
        self.reptile = reptile
        self.strategy = strategy
        self._replica_images = (None, None)
        self._states = {}  # per tasks on a replica: the replicas' inner states
        self._train_step = tf.function(self._train_step_graph)

    def train_step(self, images, meta_batch, meta_step_size):
        """One meta-step, as Reptile.train_step: returns (mean last-batch loss, weights finite)."""
        tasks = split_over_replicas(self.strategy, (
            meta_batch.head_indices, meta_batch.head_labels, meta_batch.last_indices,
            meta_batch.last_labels))
        share = len(meta_batch.head_indices) // self.strategy.num_replicas_in_sync
        if share not in self._states:
            self._states[share] = InnerState(self.reptile.rule, share,
                                             self.reptile.network.shapes, self.strategy)
        inner_steps = meta_batch.head_indices.shape[1] + 1
        loss, finite = self._train_step(self._images_on_replicas(images), tasks,
                                        tf.constant(meta_step_size, tf.float32),
                                        tf.constant(inner_steps, tf.int64))
        return float(loss), bool(finite)

    def _images_on_replicas(self, images):
        """images copied to every replica's device once, not at every step."""
        source, copies = self._replica_images
        if source is not images:
            copies = self.strategy.experimental_distribute_values_from_function(
                lambda context: tf.identity(images))
            self._replica_images = (images, copies)
        return copies

    # Graph code: everything below runs inside tf.function.

    def _train_step_graph(self, images, tasks, meta_step_size, inner_steps):
        reptile = self.reptile
        old = [tf.identity(value) for value in reptile.network.read()]
        slots = [[tf.identity(slot[0]) for slot in variable_slots]
                 for variable_slots in reptile.optimizer.slots]
        step = tf.identity(reptile.optimizer.iterations)
        per_replica = self.strategy.run(self._train_tasks, args=(images, tasks, old, slots, step))
        # One gather of one packed tensor: separate collectives per variable may be matched up
        # in a different order on different replicas.
        mean = tf.reduce_mean(self.strategy.gather(per_replica, axis=0), axis=0)
        update, mean_slots, loss = _unpack(mean, old, slots)
        new = reptile.meta_update(old, update, meta_step_size)
        reptile.network.assign(new)
        for variables, values in zip(reptile.optimizer.slots, mean_slots):
            for variable, value in zip(variables, values):
                variable.assign(value[None])
        reptile.optimizer.iterations.assign(step + inner_steps)
        return loss, tf.reduce_all([tf.reduce_all(tf.math.is_finite(value)) for value in new])

    def _train_tasks(self, images, tasks, weights, slots, step):
        """One replica's share of the tasks, each from the same start: their rows (see _pack)."""
        state = self._states[tasks[0].shape[0]]
        state.start(weights, slots, step)
        update, losses = self.reptile.train_tasks(state, images, *tasks)
        final_slots = [[slot.read_value() for slot in variable_slots]
                       for variable_slots in state.optimizer.slots]
        return _pack(update, final_slots, losses)


def _pack(update, slots, losses):
    """A row per task: its update, its final optimizer slots and the loss of its last
    mini-batch, flattened one after the other."""
    num_tasks = losses.shape[0]
    parts = update + [slot for variable_slots in slots for slot in variable_slots]
    return tf.concat([tf.reshape(part, [num_tasks, -1]) for part in parts] + [losses[:, None]],
                     axis=1)


def _unpack(row, weights, slots):
    """(update, slots, loss) from a row packed by _pack, shaped like one task's weights and
    slots."""
    like = weights + [slot for variable_slots in slots for slot in variable_slots]
    parts = tf.split(row, [value.shape.num_elements() for value in like] + [1])
    values = iter(tf.reshape(part, value.shape) for part, value in zip(parts, like))
    update = [next(values) for _ in weights]
    unpacked_slots = [[next(values) for _ in variable_slots] for variable_slots in slots]
    return update, unpacked_slots, parts[-1][0]


def split_over_replicas(strategy, arrays):
    """Distributed values giving each replica its share of the rows of each array, in order;
    a UserError if the rows cannot be shared evenly."""
    replicas = strategy.num_replicas_in_sync
    num_rows = len(arrays[0])
    if num_rows % replicas:
        raise UserError('a meta-batch of %d tasks cannot be shared evenly by %d replicas; make '
                        '--meta-batch a multiple of %d' % (num_rows, replicas, replicas))
    share = num_rows // replicas

    def replica_share(context):
        first = context.replica_id_in_sync_group * share
        return tuple(tf.constant(array[first:first + share]) for array in arrays)
    return strategy.experimental_distribute_values_from_function(replica_share)
