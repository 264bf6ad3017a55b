"""
The arithmetic of training and evaluation, counted from a model's layer shapes.

Only convolutions and dense layers are counted, at two floating-point operations per
multiply-add: they hold nearly all the arithmetic, while batch normalization, ReLU and pooling
are a few operations per value and are bound by memory traffic, not arithmetic. The backward
pass counts what a gradient step computes: the weight gradient of every layer, and the input
gradient of every layer but the first (nothing needs the gradient of the images).
"""

import math

import keras


def layer_flops(model):
    """Forward FLOPs per image of each convolution and dense layer, in order."""
    counts = []
    for layer in model.layers:
        if isinstance(layer, keras.layers.Conv2D):
            kernel_size = math.prod(layer.kernel.shape[:-1])
            counts.append(2 * kernel_size * math.prod(layer.output.shape[1:]))
        elif isinstance(layer, keras.layers.Dense):
            counts.append(2 * math.prod(layer.kernel.shape))
    return counts


def forward_flops(model, batch_size):
    """FLOPs of one forward pass on a batch."""
    return batch_size * sum(layer_flops(model))


def training_step_flops(model, batch_size):
    """FLOPs of one gradient step on a batch: the forward pass, the weight gradients (as many
    FLOPs as the forward pass) and the input gradients of all layers but the first."""
    counts = layer_flops(model)
    return batch_size * (3 * sum(counts) - counts[0])


def meta_iteration_flops(model, meta_batch_size, inner_iters, inner_batch_size):
    """FLOPs of one meta-iteration: every task's inner steps (the meta-update is negligible)."""
    return meta_batch_size * inner_iters * training_step_flops(model, inner_batch_size)


def evaluation_task_flops(model, num_classes, num_shots, eval_inner_batch_size,
                          eval_inner_iters, transductive):
    """FLOPs of one evaluation task: the fine-tuning steps, then the prediction (one batch of
    the queries, or one batch of the support set and one query per class)."""
    tuning = eval_inner_iters * training_step_flops(model, eval_inner_batch_size)
    if transductive:
        return tuning + forward_flops(model, num_classes)
    return tuning + num_classes * forward_flops(model, num_classes * num_shots + 1)
