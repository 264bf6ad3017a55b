"""
The backbone of models.py's classifiers (their conv blocks): freezing blocks, building a classifier
of the same architecture with another head, and saving and loading backbone weights.

A block is a convolution and the layers after it up to the next convolution (batch norm, ReLU,
max-pooling); the backbone ends where the features are flattened for the 'logits' head.

A saved backbone is a directory with a tf.train.Checkpoint of the blocks ('backbone.*') and a
record of where the weights come from ('backbone.json'). The record is written last, so a
directory that has one holds a whole backbone.
"""

import os

import keras
import numpy as np
import tensorflow as tf

from . import results
from .errors import UserError

# Where a run saves the backbone it pre-trained, inside its checkpoint directory.
DIRECTORY = 'pretrained_backbone'
CHECKPOINT_PREFIX = 'backbone'
RECORD = 'backbone.json'


def blocks(model):
    """The model's conv blocks in order, each the list of its layers."""
    found = []
    for layer in model.layers:
        if isinstance(layer, keras.layers.Flatten):
            break
        if isinstance(layer, keras.layers.Conv2D):
            found.append([])
        found[-1].append(layer)
    return found


def block_variables(model, count):
    """The variables of the first count blocks (weights and batch-norm statistics)."""
    return [variable for block in blocks(model)[:count] for layer in block
            for variable in layer.variables]


def freeze(model, count):
    """Freeze the first count blocks: they leave model.trainable_variables, so an optimizer built
    afterwards creates no state for them and no gradient is computed for them.

    The batch-norm layers still normalise with batch statistics (models.BatchStatsNormalization
    ignores `trainable`, where Keras' own layer would switch to its moving averages)."""
    for block in blocks(model)[:count]:
        for layer in block:
            layer.trainable = False


def parameter_count(variables):
    return int(sum(np.prod(variable.shape) for variable in variables))


def with_new_head(model, num_classes):
    """A new model of model's architecture with a 'logits' head of num_classes outputs, every
    weight freshly initialized and nothing frozen."""
    def fresh_copy(layer):
        config = {**layer.get_config(), 'trainable': True}
        if layer.name == 'logits':
            config['units'] = num_classes
        return layer.__class__.from_config(config)
    return keras.models.clone_model(model, clone_function=fresh_copy)


def copy_weights(source, target):
    """Give target's blocks the weights of source's (models of the same architecture)."""
    for source_block, target_block in zip(blocks(source), blocks(target)):
        for source_layer, target_layer in zip(source_block, target_block):
            target_layer.set_weights(source_layer.get_weights())


def save(model, directory, record):
    """Save model's blocks into directory with record (a JSON-able dict), which also names the
    architecture."""
    os.makedirs(directory, exist_ok=True)
    _checkpoint(model).write(os.path.join(directory, CHECKPOINT_PREFIX))
    results.write(directory, RECORD, {**record, 'architecture': model.name})


def load(model, directory):
    """Load the backbone saved in directory into model's blocks, leaving the head alone; return
    its record. A missing or unfitting backbone is a UserError."""
    record_path = os.path.join(directory, RECORD)
    if not os.path.isfile(record_path):
        raise UserError('no pre-trained backbone in %s; point --pretrained-backbone at the %s '
                        'directory of a run with --pretrain-iters' % (directory, DIRECTORY))
    record = results.read(record_path)
    if record.get('architecture') != model.name:
        raise UserError('the backbone in %s was pre-trained for the %s model, not the %s model; '
                        'use one pre-trained with this script' % (directory,
                                                                  record.get('architecture'),
                                                                  model.name))
    try:
        _checkpoint(model).read(os.path.join(directory, CHECKPOINT_PREFIX)).assert_consumed()
    except (AssertionError, ValueError, tf.errors.OpError) as exc:
        raise UserError('the backbone in %s does not fit this model (%s)'
                        % (directory, str(exc).splitlines()[0])) from None
    return record


def _checkpoint(model):
    return tf.train.Checkpoint(blocks=blocks(model))
