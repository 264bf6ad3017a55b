"""
Reptile and first-order MAML meta-learning, and the evaluation of one task.

A meta-step and an evaluation task each run as one compiled TensorFlow function: the inner
loop is a graph loop, and the snapshots and restores of the weights and the optimizer state
are tensors on the device. The host only draws index arrays (see sampling.py).

Optimizer state follows the reference on purpose: one optimizer (Adam with beta1 = 0) whose
second-moment estimates and step count carry over from task to task, within a meta-batch and
across meta-steps; an evaluation task fine-tunes from that state and then restores everything.
"""

import numpy as np
import tensorflow as tf

from . import variables


def gather_images(images, indices):
    """Look up uint8 images by index and scale them to floats in [0, 1]."""
    return tf.cast(tf.gather(images, indices), tf.float32) / 255.0


class Reptile:
    """Reptile: move the initialization towards the weights each task's training ends at.

    Prediction is either transductive (the query images of a task form one batch, so batch
    normalization shares statistics among them) or not (each query is classified in a batch
    with the whole support set, on its own).

    Frozen layers (Keras `trainable = False` before Reptile is built) are left out of everything:
    the inner loop, the meta-update, evaluation, and the optimizer's state. Variables in
    frozen_in_evaluation are left out of evaluation fine-tuning only.
    """

    def __init__(self, model, optimizer, transductive=False, weight_decay_rate=1,
                 frozen_in_evaluation=(), jit_compile=False):
        self.model = model
        self.optimizer = optimizer
        self.transductive = transductive
        self.weight_decay_rate = weight_decay_rate
        # XLA: several times slower on CPUs (benchmarks/speed.py --xla), so off by default.
        self.jit_compile = jit_compile
        self._frozen_in_evaluation = {id(variable) for variable in frozen_in_evaluation}
        # Build the optimizer's slots now, so that they exist to be snapshotted and checkpointed.
        optimizer.build(model.trainable_variables)
        self._train_step = tf.function(self._train_step_graph, jit_compile=jit_compile)
        self._evaluate = tf.function(self._evaluate_graph, jit_compile=jit_compile)

    @property
    def meta_trained_variables(self):
        """The variables the inner loop trains and the meta-update moves."""
        return self.model.trainable_variables

    @property
    def fine_tuned_variables(self):
        """The variables an evaluation task fine-tunes."""
        return [variable for variable in self.model.trainable_variables
                if id(variable) not in self._frozen_in_evaluation]

    @property
    def full_state(self):
        """Every variable an evaluation task may touch: weights, BN statistics, optimizer state."""
        return self.model.variables + self.optimizer.variables

    def train_step(self, images, meta_batch, meta_step_size):
        """One meta-step on a meta-batch of tasks (a stacked sampling.TrainingTask).

        Returns the loss of the tasks' last inner mini-batches (mean over tasks) and whether
        every weight is still finite afterwards.
        """
        loss, finite = self._train_step(images, meta_batch.head_indices, meta_batch.head_labels,
                                        meta_batch.last_indices, meta_batch.last_labels,
                                        tf.constant(meta_step_size, tf.float32))
        return float(loss), bool(finite)

    def query_logits(self, images, task):
        """Fine-tune on an evaluation task, return the logits of its queries [classes, classes],
        and restore the full state."""
        return self._evaluate(images, task.batch_indices, task.batch_labels,
                              task.support_indices, task.query_indices).numpy()

    def evaluate(self, images, task):
        """The number of queries of an evaluation task (a sampling.EvaluationTask) predicted right."""
        predictions = np.argmax(self.query_logits(images, task), axis=-1)
        return int(np.sum(predictions == task.query_labels))

    # Graph code: everything below runs inside tf.function.

    def _train_step_graph(self, images, head_indices, head_labels, last_indices, last_labels,
                          meta_step_size):
        trainable = self.meta_trained_variables
        old = variables.snapshot(trainable)
        total = variables.zeros_like(old)
        total_loss = tf.constant(0.0)
        num_tasks = tf.shape(head_indices)[0]
        for task in tf.range(num_tasks):
            update, last_loss = self._task_update(images, head_indices[task], head_labels[task],
                                                  last_indices[task], last_labels[task])
            total = variables.add(total, update)
            total_loss += last_loss
            variables.assign(trainable, old)
        mean = variables.scale(total, 1 / tf.cast(num_tasks, tf.float32))
        variables.assign(trainable, self.meta_update(old, mean, meta_step_size))
        return total_loss / tf.cast(num_tasks, tf.float32), variables.all_finite(trainable)

    def _task_update(self, images, head_indices, head_labels, last_indices, last_labels):
        """Train on one task; return its update (see task_update) and the loss of its last
        inner mini-batch."""
        trainable = self.meta_trained_variables
        self._train_on_batches(images, head_indices, head_labels, trainable)
        before_last = variables.snapshot(trainable)
        last_loss = self._inner_step(images, last_indices, last_labels, trainable)
        return self.task_update(before_last, variables.snapshot(trainable)), last_loss

    @staticmethod
    def task_update(before_last, after_last):
        """What a task contributes to the meta-update, given its weights before and after its
        last inner step: Reptile takes where the weights end up."""
        del before_last
        return after_last

    @staticmethod
    def meta_update(old, mean_update, meta_step_size):
        """The new initialization from the old one and the mean of the tasks' updates."""
        return variables.interpolate(old, mean_update, meta_step_size)

    def _evaluate_graph(self, images, batch_indices, batch_labels, support_indices, query_indices):
        backup = variables.snapshot(self.full_state)
        self._train_on_batches(images, batch_indices, batch_labels, self.fine_tuned_variables)
        logits = self._query_logits(images, support_indices, query_indices)
        variables.assign(self.full_state, backup)
        return logits

    def _query_logits(self, images, support_indices, query_indices):
        queries = gather_images(images, query_indices)
        if self.transductive:
            return self.model(queries, training=True)
        support = gather_images(images, support_indices)
        return tf.stack([
            self.model(tf.concat([support, queries[query:query + 1]], 0), training=True)[-1]
            for query in range(query_indices.shape[0])])

    def _train_on_batches(self, images, indices, labels, trainable):
        for step in tf.range(tf.shape(indices)[0]):
            self._inner_step(images, indices[step], labels[step], trainable)

    def _inner_step(self, images, indices, labels, trainable):
        variables.weight_decay(trainable, self.weight_decay_rate)
        # Only what is trained is watched: the layers before the first trained one (frozen
        # blocks) then stay off the tape, and no gradient op is built for them.
        with tf.GradientTape(watch_accessed_variables=False) as tape:
            tape.watch([variable.value for variable in trainable])  # Keras' own tf.Variables
            logits = self.model(gather_images(images, indices), training=True)
            loss = summed_cross_entropy(labels, logits)
        self.optimizer.apply_gradients(zip(tape.gradient(loss, trainable), trainable))
        return loss


def summed_cross_entropy(labels, logits):
    """Cross-entropy SUMMED over the batch, as the reference minimises it (it matters for SGD)."""
    return tf.reduce_sum(tf.nn.sparse_softmax_cross_entropy_with_logits(labels=labels,
                                                                        logits=logits))


class FOML(Reptile):
    """First-order MAML: the update is the displacement of each task's last inner step."""

    @staticmethod
    def task_update(before_last, after_last):
        return variables.subtract(after_last, before_last)

    @staticmethod
    def meta_update(old, mean_update, meta_step_size):
        return variables.add_scaled(old, mean_update, meta_step_size)
