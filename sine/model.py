"""
The regressor: a tanh MLP written as a pure function of a list of parameter tensors.

A pure function, not a Keras model, because every algorithm here needs parameters as values:
MAML differentiates through the inner updates, and evaluation adapts a thousand copies of the
network at once by giving each parameter a leading tasks axis. Parameters are
[w1, b1, w2, b2, ...]; a stack of tasks is the same list with a leading axis on each tensor.
"""

import math

import tensorflow as tf


def init_mlp(sizes, seed, dtype=tf.float32):
    """Initial parameters of an MLP with layer widths `sizes`, input width first.

    Every weight and bias is drawn from U(-1/sqrt(fan_in), 1/sqrt(fan_in)), PyTorch's default
    for a linear layer, which the authors' demo of Figure 1 used. With one input, the first
    layer's biases spread the tanh units over the whole interval, which the sine tasks need.
    """
    params = []
    for layer, (fan_in, fan_out) in enumerate(zip(sizes[:-1], sizes[1:])):
        bound = 1 / math.sqrt(fan_in)
        for part, shape in enumerate([(fan_in, fan_out), (fan_out,)]):
            params.append(tf.random.stateless_uniform(shape, seed=[seed, 2 * layer + part],
                                                      minval=-bound, maxval=bound, dtype=dtype))
    return params


def mlp(params, inputs):
    """Outputs [..., points, 1] for inputs [..., points, in]: tanh hidden layers, linear output.

    With a leading tasks axis on the parameters, inputs [tasks, points, in] go through each
    task's own network.
    """
    hidden = inputs
    num_layers = len(params) // 2
    for layer in range(num_layers):
        weights, bias = params[2 * layer], params[2 * layer + 1]
        hidden = tf.matmul(hidden, weights) + tf.expand_dims(bias, -2)
        if layer < num_layers - 1:
            hidden = tf.tanh(hidden)
    return hidden


def task_mse(params, inputs, targets):
    """Mean squared error of each task, shape [...] for inputs [..., points, in]."""
    return tf.reduce_mean(tf.square(mlp(params, inputs) - targets), axis=[-2, -1])


def tile(tensors, num_tasks):
    """Each tensor repeated along a new leading tasks axis."""
    return [tf.broadcast_to(t, [num_tasks] + t.shape.as_list()) for t in tensors]


def task_mean(tensors):
    return [tf.reduce_mean(t, axis=0) for t in tensors]


def num_parameters(params):
    return sum(int(tf.size(p)) for p in params)
