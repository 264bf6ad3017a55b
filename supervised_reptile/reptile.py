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
    """

    def __init__(self, model, optimizer, transductive=False, weight_decay_rate=1):
        self.model = model
        self.optimizer = optimizer
        self.transductive = transductive
        self.weight_decay_rate = weight_decay_rate
        # Build the optimizer's slots now, so that they exist to be snapshotted and checkpointed.
        optimizer.build(model.trainable_variables)
        self._train_step = tf.function(self._train_step_graph)
        self._evaluate = tf.function(self._evaluate_graph)

    @property
    def meta_trained_variables(self):
        """The variables the inner loop trains and the meta-update moves."""
        return self.model.trainable_variables

    @property
    def fine_tuned_variables(self):
        """The variables an evaluation task fine-tunes."""
        return self.model.trainable_variables

    @property
    def full_state(self):
        """Every variable an evaluation task may touch: weights, BN statistics, optimizer state."""
        return self.model.variables + self.optimizer.variables

    def train_step(self, images, meta_batch, meta_step_size):
        """One meta-step on a meta-batch of tasks (a stacked sampling.TrainingTask)."""
        self._train_step(images, meta_batch.head_indices, meta_batch.head_labels,
                         meta_batch.last_indices, meta_batch.last_labels,
                         tf.constant(meta_step_size, tf.float32))

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
        num_tasks = tf.shape(head_indices)[0]
        for task in tf.range(num_tasks):
            total = variables.add(total, self._task_update(
                images, head_indices[task], head_labels[task], last_indices[task],
                last_labels[task]))
            variables.assign(trainable, old)
        mean = variables.scale(total, 1 / tf.cast(num_tasks, tf.float32))
        variables.assign(trainable, self._meta_update(old, mean, meta_step_size))

    def _task_update(self, images, head_indices, head_labels, last_indices, last_labels):
        """Train on one task; Reptile's update is where the weights end up."""
        trainable = self.meta_trained_variables
        self._train_on_batches(images, head_indices, head_labels, trainable)
        self._inner_step(images, last_indices, last_labels, trainable)
        return variables.snapshot(trainable)

    def _meta_update(self, old, mean_update, meta_step_size):
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
        with tf.GradientTape() as tape:
            logits = self.model(gather_images(images, indices), training=True)
            loss = _summed_cross_entropy(labels, logits)
        self.optimizer.apply_gradients(zip(tape.gradient(loss, trainable), trainable))


def _summed_cross_entropy(labels, logits):
    """Cross-entropy SUMMED over the batch, as the reference minimises it (it matters for SGD)."""
    return tf.reduce_sum(tf.nn.sparse_softmax_cross_entropy_with_logits(labels=labels,
                                                                        logits=logits))


class FOML(Reptile):
    """First-order MAML: the update is the displacement of each task's last inner step."""

    def _task_update(self, images, head_indices, head_labels, last_indices, last_labels):
        trainable = self.meta_trained_variables
        self._train_on_batches(images, head_indices, head_labels, trainable)
        before_last = variables.snapshot(trainable)
        self._inner_step(images, last_indices, last_labels, trainable)
        return variables.subtract(variables.snapshot(trainable), before_last)

    def _meta_update(self, old, mean_update, meta_step_size):
        return variables.add_scaled(old, mean_update, meta_step_size)
