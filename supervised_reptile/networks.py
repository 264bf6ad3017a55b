"""
A Keras model's forward pass for k tasks side by side, each task with its own copy of the
variables the inner loop trains.

Those copies are given as one tensor [k, *shape] per trained variable, in the order of
model.trainable_variables; the model's other variables (frozen layers, batch-norm statistics)
are read as they are. The pass runs the model's own layers, in one of two layouts:

- per task (the default, for CPUs): every task runs the model on its own, through Keras'
  stateless_call, with the kernels of a single model. On a CPU
  one large kernel is no faster than several small ones, and the executor spreads the tasks'
  independent kernels over the cores.
- grouped (for GPUs, where one large kernel beats many small ones): the tasks are folded into
  the channel axis, [batch, height, width, tasks x channels], and each convolution's kernels are
  folded the same way, so that one convolution grouped k ways convolves each task with its own
  kernel. Per-channel batch normalization is then per-task normalization, and ReLU and pooling
  act per channel anyway. From the flatten on, activations are task-major,
  [tasks, batch, features], and the dense head is one batched matrix product. TensorFlow's own
  CPU kernels cannot group convolutions; oneDNN's can (TF_ENABLE_ONEDNN_OPTS=1).
"""

import keras
import tensorflow as tf

from . import models


class TaskNetwork:
    """The forward pass of model for a batch of tasks, training `trained` (a subset of
    model.trainable_variables; by default all of them)."""

    def __init__(self, model, trained=None, grouped=False):
        self.model = model
        trained_ids = {id(v) for v in (model.trainable_variables if trained is None else trained)}
        self._is_trained = [id(v) in trained_ids for v in model.trainable_variables]
        self.variables = [v for v in model.trainable_variables if id(v) in trained_ids]
        self.shapes = [tuple(v.shape) for v in self.variables]
        self.grouped = grouped

    def read(self):
        """The trained variables' current values."""
        return [v.value for v in self.variables]

    def assign(self, values):
        for variable, value in zip(self.variables, values):
            variable.assign(value)

    def __call__(self, weights, images):
        """Logits [k, batch, classes] of images [k, batch, ...] under weights (one [k, *shape]
        tensor per trained variable)."""
        if self.grouped and images.shape[0] > 1:
            return self._grouped_logits(weights, images)
        # Unstacked, not sliced: the gradient of an unstack is one stack, where each slice's
        # would be a zero-filled tensor of all the tasks.
        return tf.stack([self._task_logits(task_weights, task_images) for task_weights, task_images
                         in zip(zip(*[tf.unstack(w) for w in weights]), tf.unstack(images))])

    def _task_logits(self, weights, images):
        """One task's logits [batch, classes] of images [batch, ...] under its weights."""
        trained = iter(weights)
        values = [next(trained) if is_trained else v.value
                  for v, is_trained in zip(self.model.trainable_variables, self._is_trained)]
        fixed = [v.value for v in self.model.non_trainable_variables]
        return self.model.stateless_call(values, fixed, images, training=True)[0]

    def _grouped_logits(self, weights, images):
        num_tasks, batch_size = images.shape[:2]
        per_task = {id(v): value for v, value in zip(self.variables, weights)}
        for variable in self.model.variables:  # the rest, shared by the tasks
            if id(variable) not in per_task:
                per_task[id(variable)] = tf.broadcast_to(variable.value,
                                                         [num_tasks, *variable.shape])
        x = tf.reshape(tf.transpose(images, [1, 2, 3, 0, 4]),
                       [batch_size, *images.shape[2:4], num_tasks * images.shape[4]])
        layers = iter(self.model.layers)
        for layer in layers:
            if isinstance(layer, keras.layers.Flatten):
                break
            x = _grouped_layer(layer, x, [_fold(per_task[id(v)]) for v in layer.weights])
        x = _task_major(x, num_tasks)
        for layer in layers:
            _require(isinstance(layer, keras.layers.Dense) and _linear(layer), layer)
            x = tf.matmul(x, per_task[id(layer.kernel)]) + per_task[id(layer.bias)][:, None]
        return x


def _grouped_layer(layer, x, folded):
    """A layer before the flatten on folded activations, given the folded values of its
    variables (layer.weights)."""
    if isinstance(layer, keras.layers.Conv2D):
        _require(_linear(layer) and layer.use_bias and layer.data_format == 'channels_last', layer)
        kernel, bias = folded
        # The kernel's input depth is a task's channels: the convolution is grouped by task.
        return tf.nn.bias_add(layer.convolution_op(x, kernel), bias)
    if isinstance(layer, models.BatchStatsNormalization):
        gamma, beta = folded[:2]
        return models.batch_statistics_normalization(x, gamma, beta, layer.epsilon)
    _require(not layer.weights, layer)  # ReLU, pooling: per channel, so per task already
    return layer(x)


def _require(condition, layer):
    if not condition:
        raise NotImplementedError('the grouped layout does not support %s as it is set up'
                                  % layer.name)


def _linear(layer):
    return layer.activation in (None, keras.activations.linear)


def _fold(value):
    """A variable's per-task values [k, *shape] folded for the grouped layout: the tasks side by
    side along the last (output channel) axis."""
    rank = len(value.shape)
    moved = tf.transpose(value, list(range(1, rank - 1)) + [0, rank - 1])
    return tf.reshape(moved, [*value.shape[1:-1], -1])


def _task_major(x, num_tasks):
    """Folded [batch, height, width, tasks x channels] to [tasks, batch, features], the features
    in the order of Keras' Flatten."""
    batch_size, height, width, channels = x.shape
    x = tf.reshape(x, [batch_size, height, width, num_tasks, channels // num_tasks])
    return tf.reshape(tf.transpose(x, [3, 0, 1, 2, 4]), [num_tasks, batch_size, -1])
