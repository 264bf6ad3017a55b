"""
A Keras model's forward pass for k tasks side by side, each task with its own copy of the
variables the inner loop trains.

Those copies are given as one tensor [k, *shape] per trained variable, in the order of
model.trainable_variables. The model's other trainable variables (those left out of the
training at hand) can be given as values shared by the tasks, for a pass that must not read
variables another thread is updating; by default they are read as they are, as are the
non-trainable ones (frozen layers, batch-norm statistics).

State a layer changes as it runs (non-trainable variables that a call assigns) cannot be kept
per task. Keras' BatchNormalization in training mode normalises with the batch's statistics and
updates its moving averages: the updates are dropped, so every task starts from the model's
statistics, as the reference's batch norm does (it never updates them). Any other layer that
changes its state (Dropout's seed state, a layer of one's own) is refused, by name, when the
pass is traced. The pass runs the model's own layers, in one of two layouts:

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
  CPU kernels cannot group convolutions; oneDNN's can (TF_ENABLE_ONEDNN_OPTS=1). It takes a
  Sequential model of the layers it knows (grouped_layout_obstacle); for any other model the
  pass falls back to the per-task layout, with a one-line note.
"""

import inspect
import sys

import keras
import tensorflow as tf

from . import models
from .errors import UserError

# Weightless layers that act on each channel apart (or each value), so on each task apart in
# the grouped layout.
_PER_CHANNEL_LAYERS = (keras.layers.ReLU, keras.layers.LeakyReLU, keras.layers.ELU,
                       keras.layers.MaxPooling2D, keras.layers.AveragePooling2D)


class TaskNetwork:
    """The forward pass of model for a batch of tasks, training `trained` (a subset of
    model.trainable_variables; by default all of them)."""

    def __init__(self, model, trained=None, grouped=False):
        self.model = model
        trained_ids = {id(v) for v in (model.trainable_variables if trained is None else trained)}
        self._is_trained = [id(v) in trained_ids for v in model.trainable_variables]
        self.variables = [v for v in model.trainable_variables if id(v) in trained_ids]
        self.shared_variables = [v for v in model.trainable_variables if id(v) not in trained_ids]
        self.shapes = [tuple(v.shape) for v in self.variables]
        # Keras passes `training` only to a call() that takes it.
        parameters = inspect.signature(model.call).parameters
        self._call_options = {'training': True} if 'training' in parameters or any(
            p.kind == p.VAR_KEYWORD for p in parameters.values()) else {}
        obstacle = grouped and grouped_layout_obstacle(model)
        if obstacle:
            print('note: %s; its tasks run one by one (the per-task layout)' % obstacle,
                  file=sys.stderr)
        self.grouped = grouped and not obstacle

    def read(self):
        """The trained variables' current values."""
        return [v.value for v in self.variables]

    def assign(self, values):
        for variable, value in zip(self.variables, values):
            variable.assign(value)

    def __call__(self, weights, inputs, shared=()):
        """Outputs [k, batch, ...] of inputs [k, batch, ...] under weights (one [k, *shape]
        tensor per trained variable); shared, if given, holds the values of shared_variables."""
        shared = list(shared) or [v.value for v in self.shared_variables]
        if self.grouped and inputs.shape[0] > 1:
            return self._grouped_outputs(weights, inputs, shared)
        # Unstacked, not sliced: the gradient of an unstack is one stack, where each slice's
        # would be a zero-filled tensor of all the tasks.
        return tf.stack([self._task_outputs(task_weights, task_inputs, shared)
                         for task_weights, task_inputs
                         in zip(zip(*[tf.unstack(w) for w in weights]), tf.unstack(inputs))])

    def check_state(self, inputs):
        """Raise a ValueError naming a layer that changes its state as it runs (see
        _check_no_state_kept), from one call of the model on inputs [batch, ...] as the inner
        loop calls it: before anything is compiled, so that the error is a plain one."""
        self._task_outputs([v.value for v in self.variables], inputs,
                           [v.value for v in self.shared_variables])

    def _task_outputs(self, weights, inputs, shared):
        """One task's outputs [batch, ...] of inputs [batch, ...] under its weights."""
        trained, others = iter(weights), iter(shared)
        values = [next(trained) if is_trained else next(others) for is_trained in self._is_trained]
        fixed = [v.value for v in self.model.non_trainable_variables]
        outputs, updated = self.model.stateless_call(values, fixed, inputs, **self._call_options)
        _check_no_state_kept(self.model, fixed, updated)
        return outputs

    def _grouped_outputs(self, weights, images, shared):
        num_tasks, batch_size = images.shape[:2]
        per_task = {id(v): value for v, value in zip(self.variables + self.shared_variables,
                                                     weights + [tf.broadcast_to(value, [
                                                         num_tasks, *value.shape])
                                                                for value in shared])}
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
            x = tf.matmul(x, per_task[id(layer.kernel)])
            if layer.use_bias:
                x += per_task[id(layer.bias)][:, None]
        return x


def grouped_layout_obstacle(model):
    """Why the grouped layout cannot run model, or None if it can: it takes a Sequential model
    of channels-last convolutions without activation, BatchStatsNormalization and per-channel
    weightless layers, then a Flatten and dense layers without activation, on inputs of rank 4."""
    if not isinstance(model, keras.Sequential):
        return 'the grouped layout takes Sequential models, not %s' % type(model).__name__
    try:
        inputs = model.inputs
    except AttributeError:  # built without an Input
        inputs = None
    if not inputs or len(inputs[0].shape) != 4:
        return 'the grouped layout takes images [batch, height, width, channels], not the ' \
               'inputs of %s' % model.name
    layers = list(model.layers)
    flatten = [i for i, layer in enumerate(layers) if isinstance(layer, keras.layers.Flatten)]
    if not flatten:
        return 'the grouped layout needs a Flatten layer in %s' % model.name
    for layer in layers[:flatten[0]]:
        if not _groups_by_channel(layer):
            return 'the grouped layout does not support layer %s as it is set up' % layer.name
    for layer in layers[flatten[0] + 1:]:
        if not (isinstance(layer, keras.layers.Dense) and _linear(layer)):
            return 'the grouped layout does not support layer %s after the Flatten' % layer.name
    return None


def _groups_by_channel(layer):
    if isinstance(layer, keras.layers.Conv2D):
        # Layers of the project's own whose grouped pass is the convolution_op below.
        known = (type(layer).convolution_op in (keras.layers.Conv2D.convolution_op,
                                                models.ImageConv2D.convolution_op)
                 and type(layer).call in (keras.layers.Conv2D.call, models.SplitBiasConv2D.call))
        return known and _linear(layer) and layer.use_bias and layer.groups == 1 and (
            layer.data_format == 'channels_last')
    if isinstance(layer, models.BatchStatsNormalization):
        return True
    return isinstance(layer, _PER_CHANNEL_LAYERS) and not layer.weights


def _grouped_layer(layer, x, folded):
    """A layer before the flatten on folded activations, given the folded values of its
    variables (layer.weights)."""
    if isinstance(layer, keras.layers.Conv2D):
        kernel, bias = folded
        # The kernel's input depth is a task's channels: the convolution is grouped by task.
        return tf.nn.bias_add(layer.convolution_op(x, kernel), bias)
    if isinstance(layer, models.BatchStatsNormalization):
        gamma, beta = folded[:2]
        return models.batch_statistics_normalization(x, gamma, beta, layer.epsilon)
    return layer(x)  # ReLU, pooling: per channel, so per task already


def _check_no_state_kept(model, before, after):
    """Raise a ValueError naming the first layer whose call changed a non-trainable variable
    (after is not the tensor given), Keras' BatchNormalization excepted (see the module's
    docstring)."""
    owner = {}  # variable -> the innermost layer holding it (layers come parents first)
    for layer in model._flatten_layers():  # pylint: disable=protected-access
        owner.update((id(v), layer) for v in layer.variables)
    for variable, old, new in zip(model.non_trainable_variables, before, after):
        layer = owner.get(id(variable), model)
        if new is not old and not isinstance(layer, keras.layers.BatchNormalization):
            raise UserError(
                'layer %s changes its state (%s) at every call, and the inner loop cannot keep '
                'it per task: remove the layer from the model, or make it stateless in training '
                'mode' % (layer.name, variable.path))


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
