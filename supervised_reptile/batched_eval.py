"""
Evaluation of many tasks at once: a batch of tasks fine-tuned side by side in one compiled call.

Every evaluation task starts from the same weights and optimizer state and never affects another,
so a batch of tasks can be fine-tuned together, each with its own copy of the fine-tuned weights
and of their optimizer slots. The forward pass is derived from the Keras model's layers, in one of
two layouts:

- grouped (on a GPU): a variable's copies are one tensor with the tasks folded into its channel
  axis, activations are [batch, height, width, tasks x channels], and one grouped convolution
  convolves every task with its own kernel; the per-channel statistics of batch normalization
  are then per-task statistics, so batch normalization, ReLU and pooling run unchanged. From the
  flatten on, activations are task-major, [tasks, batch, features], for batched matrix products.
- per task (on a CPU): every task runs its own kernels, those of the sequential path. One core
  is then as fast as one task at a time (folded, Mini-ImageNet took ~1.4x as long, and
  TensorFlow's own CPU kernels cannot group), and the executor spreads the tasks over the cores.

The arithmetic is Reptile.evaluate's, step for step: weight decay, summed cross-entropy, the
same fused Adam (or plain SGD) kernels, on reptile.fine_tuned_variables only; the logits equal
evaluating the tasks one by one up to float rounding. The model and its optimizer are only
read: the copies are this module's own variables.

The host side packs each task's images (support, then queries) into one small uint8 array, so
tasks of different image sets (training and test classes) can share a batch.
"""

import functools
import math
import weakref

import keras
import numpy as np
import tensorflow as tf

from . import models
from .reptile import summed_cross_entropy

# Memory for one batch's activations and their gradients; the default batch size is as many
# tasks as fit (1-shot Mini-ImageNet: ~34 MB a task, 5-shot ~150 MB), at most
# MAX_TASKS_PER_BATCH, beyond which larger batches measured no faster.
ACTIVATION_BUDGET_BYTES = 1 << 30
MAX_TASKS_PER_BATCH = 16


def query_logits(reptile, jobs, tasks_per_batch=None):
    """Fine-tune on each (images, sampling.EvaluationTask) of jobs and return the logits of its
    queries, [tasks, classes, classes].

    The tasks are computed tasks_per_batch at a time, a short last batch padded with copies of
    its last task so that every call has the compiled shape; by default, all of jobs at once
    up to default_tasks_per_batch.
    """
    size = tasks_per_batch or min(len(jobs), default_tasks_per_batch(
        reptile.model, largest_batch(jobs[0][1])))
    logits = []
    for start in range(0, len(jobs), size):
        chunk = jobs[start:start + size]
        padded = chunk + [chunk[-1]] * (size - len(chunk))
        logits.append(_evaluator(reptile)(*_pack(padded))[:len(chunk)])
    return np.concatenate(logits)


def evaluate(reptile, jobs, tasks_per_batch=None):
    """The number of queries predicted right in each task of jobs (see query_logits)."""
    predictions = np.argmax(query_logits(reptile, jobs, tasks_per_batch), axis=-1)
    return [int(np.sum(p == task.query_labels)) for p, (_, task) in zip(predictions, jobs)]


def largest_batch(task):
    """The most images a task's network sees at once: a fine-tuning mini-batch, or the
    support set and one query of non-transductive prediction."""
    return max(task.batch_indices.shape[1], len(task.support_indices) + 1)


def default_tasks_per_batch(model, batch_size):
    """As many tasks as ACTIVATION_BUDGET_BYTES holds at batch_size images a task, between 1
    and MAX_TASKS_PER_BATCH."""
    values = sum(math.prod(layer.output.shape[1:]) for layer in model.layers)
    task_bytes = 2 * 4 * batch_size * values  # the activations, and as much for their gradients
    return int(np.clip(ACTIVATION_BUDGET_BYTES // task_bytes, 1, MAX_TASKS_PER_BATCH))


def _pack(jobs):
    """Stack the tasks of jobs as arrays of task-local image positions."""
    pools, batch_positions = [], []
    for images, task in jobs:
        pool = np.concatenate([task.support_indices, task.query_indices])
        pools.append(images[pool])
        batch_positions.append(_positions_in(task.support_indices, task.batch_indices))
    num_support = len(jobs[0][1].support_indices)
    num_queries = len(jobs[0][1].query_indices)
    return (np.stack(pools), np.stack(batch_positions).astype(np.int32),
            np.stack([task.batch_labels for _, task in jobs]).astype(np.int32),
            np.arange(num_support, dtype=np.int32),
            np.arange(num_support, num_support + num_queries, dtype=np.int32))


def _positions_in(pool, values):
    """Where each of values sits in pool (pool's entries are distinct)."""
    order = np.argsort(pool)
    return order[np.searchsorted(pool, values, sorter=order)]


_EVALUATORS = weakref.WeakKeyDictionary()


def _evaluator(reptile):
    """The compiled evaluator of reptile, built once: tracing takes seconds. A reptile that
    shares tasks out over several replicas (parallel.ParallelMetaBatch) brings its own."""
    own = getattr(reptile, 'replica_evaluator', None)
    if own is not None:
        return own
    if reptile not in _EVALUATORS:
        _EVALUATORS[reptile] = _BatchedEvaluator(reptile)
    return _EVALUATORS[reptile]


def grouped_convolutions():
    """Whether to fold the tasks into grouped convolutions: on a GPU, where one large kernel
    beats many small ones (see the module's docstring for CPUs)."""
    return bool(tf.config.list_logical_devices('GPU'))


class _BatchedEvaluator:
    """The compiled fine-tuning and prediction of a batch of tasks, for one Reptile object.

    The per-task copies of the fine-tuned variables and of their optimizer slots are
    tf.Variables of this object's own, so that the optimizer's fused kernels (the ones the
    sequential path runs) update them in place; each call first copies the model's and the
    optimizer's current values into them.
    """

    def __init__(self, reptile):
        self.reptile = reptile
        self.network = _TaskBatchNetwork(reptile.model, grouped_convolutions())
        self.optimizer = _inner_optimizer(reptile.optimizer)
        self._copies = {}
        self._logits = tf.function(self._logits_graph, jit_compile=reptile.jit_compile)

    def __call__(self, pools, batch_positions, batch_labels, support_positions, query_positions):
        settings = self._settings()
        key = (len(pools), settings)
        if key not in self._copies:
            self._copies[key] = self._make_copies(len(pools))
        return self._logits(pools, batch_positions, batch_labels, support_positions,
                            query_positions, settings).numpy()

    def _settings(self):
        """What the trace reads from reptile, passed to the tf.function as a Python value, so
        that a change (freezing other variables, say) makes a new trace."""
        return (self.reptile.transductive, float(self.reptile.weight_decay_rate),
                tuple(id(v) for v in self.reptile.fine_tuned_variables))

    def _make_copies(self, num_tasks):
        """For each variable of the network: None if frozen, else (its copies, their slots)."""
        tuned = {id(v) for v in self.reptile.fine_tuned_variables}
        copies = []
        for variable in self.network.variables:
            if id(variable) not in tuned:
                copies.append(None)
                continue
            values = self.network.per_task(variable, num_tasks)
            copies.append(([tf.Variable(value) for value in values],
                           [[tf.Variable(value) for _ in self.optimizer.slots(variable)]
                            for value in values]))
        return copies

    # Graph code: everything below runs inside tf.function.

    def _logits_graph(self, pools, batch_positions, batch_labels, support_positions,
                      query_positions, settings):
        images = tf.cast(pools, tf.float32) / 255.0
        copies = self._copies[(pools.shape[0], settings)]
        params = self._reset(copies, pools.shape[0])
        step_count = tf.cast(self.reptile.optimizer.iterations, tf.float32)
        for step in tf.range(tf.shape(batch_positions)[1]):
            batch = tf.gather(images, batch_positions[:, step], batch_dims=1)
            self._inner_step(params, copies, batch, batch_labels[:, step],
                             step_count + tf.cast(step, tf.float32) + 1)
        return self._predict(params, images, support_positions, query_positions)

    def _reset(self, copies, num_tasks):
        """Copy the model's and the optimizer's state into the task copies; return the network's
        parameters: the copies' variables, and the values of the frozen variables."""
        params = []
        for variable, copy in zip(self.network.variables, copies):
            values = self.network.per_task(variable, num_tasks)
            if copy is None:
                params.append(values)
                continue
            task_params, task_slots = copy
            slot_values = [self.network.per_task(slot, num_tasks)
                           for slot in self.optimizer.slots(variable)]
            for index, (param, slots) in enumerate(zip(task_params, task_slots)):
                param.assign(values[index])
                for slot, source in zip(slots, slot_values):
                    slot.assign(source[index])
            params.append(task_params)
        return params

    def _inner_step(self, params, copies, batch, labels, step_number):
        """Weight decay and one optimizer step of every task, on its fine-tuned copies."""
        tuned = [copy for copy in copies if copy is not None]
        variables = [v for task_params, _ in tuned for v in task_params]
        rate = self.reptile.weight_decay_rate
        if rate != 1:
            for variable in variables:
                variable.assign(variable * rate)
        with tf.GradientTape(watch_accessed_variables=False) as tape:
            tape.watch(variables)
            logits = self.network(params, batch)
            loss = summed_cross_entropy(labels, logits)
        gradients = iter(tape.gradient(loss, variables))
        for task_params, task_slots in tuned:
            for variable, slots in zip(task_params, task_slots):
                self.optimizer.apply(variable, next(gradients), slots, step_number)

    def _predict(self, params, images, support_positions, query_positions):
        queries = tf.gather(images, query_positions, axis=1)
        if self.reptile.transductive:
            return self.network(params, queries)
        support = tf.gather(images, support_positions, axis=1)
        return tf.stack([self.network(params, tf.concat([support, queries[:, q:q + 1]], 1))[:, -1]
                         for q in range(queries.shape[1])], axis=1)


class _TaskBatchNetwork:
    """A Keras model's forward pass on a batch of tasks, each with its own weights.

    Built from the model's layers (Conv2D, batch normalization on batch statistics, ReLU,
    MaxPooling2D, Flatten, Dense); other layers raise NotImplementedError. The per-task copies
    of a variable are made by per_task(). Grouped: one tensor, the tasks folded into its last
    axis (a dense kernel, the only matrix, stacked on a new first axis instead), and one op per
    layer for all tasks. Otherwise: one tensor per task, each task computed by its own ops.
    """

    def __init__(self, model, grouped):
        self.variables = []
        self._layers = []
        self._grouped = grouped
        task_major = False
        for layer in model.layers:
            if task_major and not isinstance(layer, (keras.layers.Dense, keras.layers.ReLU)):
                raise NotImplementedError('%s after Flatten' % type(layer).__name__)
            self._layers.append(self._layer_function(layer))
            task_major = task_major or isinstance(layer, keras.layers.Flatten)

    def per_task(self, value, num_tasks):
        """The per-task copies of a variable's value (or of an optimizer slot of its shape),
        as the list of tensors __call__ takes for that variable."""
        value = tf.convert_to_tensor(value)
        if not self._grouped:
            return [value] * num_tasks
        if len(value.shape) == 2:
            return [tf.tile(value[None], [num_tasks, 1, 1])]
        return [tf.tile(value, [1] * (len(value.shape) - 1) + [num_tasks])]

    def __call__(self, params, images):
        """Logits [tasks, batch, classes] of images [tasks, batch, height, width, channels]."""
        if self._grouped:
            return self._forward([p[0] for p in params], images)
        return tf.stack([self._forward(task_params, task_images[None])[0] for task_params,
                         task_images in zip(zip(*params), tf.unstack(images))])

    def _forward(self, params, images):
        num_tasks, batch_size = images.shape[:2]
        x = tf.reshape(tf.transpose(images, [1, 2, 3, 0, 4]),
                       [batch_size] + images.shape[2:4] + [num_tasks * images.shape[4]])
        for function, indices in self._layers:
            x = function(x, *[params[i] for i in indices], num_tasks=num_tasks)
        return x

    def _register(self, *variables):
        indices = []
        for variable in variables:
            indices.append(len(self.variables))
            self.variables.append(variable)
        return indices

    def _layer_function(self, layer):
        """(function(x, *per-task params, num_tasks), indices of those params) for a layer."""
        if isinstance(layer, models.BatchStatsNormalization):
            _require(layer.center and layer.scale, layer)
            return (functools.partial(_batch_norm, epsilon=layer.epsilon),
                    self._register(layer.gamma, layer.beta))
        if isinstance(layer, keras.layers.Conv2D):
            _require(_linear(layer) and layer.use_bias and layer.groups == 1
                     and layer.dilation_rate == (1, 1) and layer.data_format == 'channels_last',
                     layer)
            return (functools.partial(_convolution, strides=layer.strides,
                                      padding=layer.padding.upper()),
                    self._register(layer.kernel, layer.bias))
        if isinstance(layer, keras.layers.ReLU):
            _require(layer.max_value is None and not layer.negative_slope and not layer.threshold,
                     layer)
            return _relu, []
        if isinstance(layer, keras.layers.MaxPooling2D):
            _require(layer.data_format == 'channels_last', layer)
            return (functools.partial(_max_pool, pool_size=layer.pool_size, strides=layer.strides,
                                      padding=layer.padding.upper()), [])
        if isinstance(layer, keras.layers.Flatten):
            return _task_major, []
        if isinstance(layer, keras.layers.Dense):
            _require(_linear(layer) and layer.use_bias, layer)
            return _dense, self._register(layer.kernel, layer.bias)
        raise NotImplementedError('batched evaluation of a %s layer' % type(layer).__name__)


def _require(condition, layer):
    if not condition:
        raise NotImplementedError('batched evaluation of %s with its settings' % layer.name)


def _linear(layer):
    return layer.activation in (None, keras.activations.linear)


# The layers on folded activations [batch, height, width, tasks x channels].

def _convolution(x, kernel, bias, num_tasks, strides, padding):
    del num_tasks  # a grouped convolution when the kernel's input depth is the channels' share
    return tf.nn.bias_add(tf.nn.conv2d(x, kernel, strides, padding), bias)


def _batch_norm(x, gamma, beta, num_tasks, epsilon):
    del num_tasks
    return tf.compat.v1.nn.fused_batch_norm(x, gamma, beta, epsilon=epsilon, is_training=True)[0]


def _relu(x, num_tasks):
    del num_tasks
    return tf.nn.relu(x)


def _max_pool(x, num_tasks, pool_size, strides, padding):
    del num_tasks
    return tf.nn.max_pool2d(x, pool_size, strides, padding)


def _task_major(x, num_tasks):
    """Folded [batch, height, width, tasks x channels] to [tasks, batch, features], the
    features in the order of Keras' Flatten."""
    batch_size, height, width, channels = x.shape
    x = tf.reshape(x, [batch_size, height, width, num_tasks, channels // num_tasks])
    return tf.reshape(tf.transpose(x, [3, 0, 1, 2, 4]), [num_tasks, batch_size, -1])


def _dense(x, kernel, bias, num_tasks):
    if len(kernel.shape) == 2:  # one task's own kernel
        kernel = kernel[None]
    return tf.matmul(x, kernel) + tf.reshape(bias, [num_tasks, 1, -1])


# The inner optimizers, on per-task copies: the fused kernels of models.FusedAdam and Keras' SGD.

def _inner_optimizer(optimizer):
    if isinstance(optimizer, keras.optimizers.Adam):
        _require_plain(optimizer, not optimizer.amsgrad)
        return _Adam(optimizer)
    if isinstance(optimizer, keras.optimizers.SGD):
        _require_plain(optimizer, optimizer.momentum == 0)
        return _SGD(optimizer)
    raise NotImplementedError('batched evaluation with %s' % type(optimizer).__name__)


def _require_plain(optimizer, condition):
    if not (condition and optimizer.weight_decay is None and optimizer.clipnorm is None
            and optimizer.clipvalue is None and optimizer.global_clipnorm is None
            and not optimizer.use_ema):
        raise NotImplementedError('batched evaluation with %s and its settings'
                                  % type(optimizer).__name__)


class _Adam:
    """Adam as ResourceApplyAdam computes it (models.FusedAdam; Keras' Adam has the same
    arithmetic)."""

    def __init__(self, optimizer):
        self.optimizer = optimizer

    def slots(self, variable):
        """The optimizer's slots [m, v] of a variable."""
        index = self.optimizer._get_variable_index(variable)  # pylint: disable=protected-access
        return [self.optimizer._momentums[index],  # pylint: disable=protected-access
                self.optimizer._velocities[index]]  # pylint: disable=protected-access

    def apply(self, variable, gradient, slots, step_number):
        """One step of variable and its slots [m, v], in place."""
        beta_1 = tf.constant(self.optimizer.beta_1, tf.float32)
        beta_2 = tf.constant(self.optimizer.beta_2, tf.float32)
        m, v = slots
        tf.raw_ops.ResourceApplyAdam(
            var=variable.handle, m=m.handle, v=v.handle, beta1_power=tf.pow(beta_1, step_number),
            beta2_power=tf.pow(beta_2, step_number),
            lr=tf.cast(self.optimizer.learning_rate, tf.float32), beta1=beta_1, beta2=beta_2,
            epsilon=tf.constant(self.optimizer.epsilon, tf.float32), grad=gradient)


class _SGD:
    """Plain gradient descent, as Keras' SGD without momentum: variable -= gradient x rate."""

    def __init__(self, optimizer):
        self.optimizer = optimizer

    def slots(self, variable):
        del variable
        return []

    def apply(self, variable, gradient, slots, step_number):
        del slots, step_number
        tf.raw_ops.ResourceApplyGradientDescent(
            var=variable.handle, alpha=tf.cast(self.optimizer.learning_rate, tf.float32),
            delta=gradient)
