"""
Export a meta-trained model's initialization as a Keras 3 file that needs nothing of this
project to load.

    python -m supervised_reptile.export --checkpoint DIR --output FILE.keras

The file holds the model with Keras' own layers: its batch normalization is Keras'
BatchNormalization, which normalises with the batch's statistics only when called with
training=True, as this project's always does. Fine-tuning it as the paper did takes the settings
printed after the export. The meta-learned optimizer state, from which the run's evaluation
starts fine-tuning, is not in the file: a fresh optimizer gives close but not equal numbers.
"""

# pylint: disable=wrong-import-position
if __name__ == '__main__':
    from . import cli  # as a command, TensorFlow loads through cli, quietly

import os

import keras

from . import models, recipes
from .adapt import Adapter
from .errors import UserError


def plain_keras_model(model):
    """A copy of model built from Keras' own layers, with its weights."""
    layers = []
    for layer in model.layers:
        if isinstance(layer, models.BatchStatsNormalization):
            # Trainable: a frozen Keras BatchNormalization uses its moving statistics even in
            # training mode.
            layers.append(keras.layers.BatchNormalization.from_config(
                dict(layer.get_config(), trainable=True)))
        elif isinstance(layer, keras.layers.Conv2D):  # Keras' own gradients are the same sums
            layers.append(keras.layers.Conv2D.from_config(layer.get_config()))
        else:
            layers.append(type(layer).from_config(layer.get_config()))
    plain = keras.Sequential([keras.Input(model.inputs[0].shape[1:])] + layers, name=model.name)
    plain.set_weights(model.get_weights())
    return plain


def fine_tuning_settings(adapter):
    """How the run's evaluation fine-tunes, as lines of text."""
    settings, values = adapter.learner.evaluation_settings(), adapter.values
    rule = recipes.inner_rule(values)
    optimizer = ('plain gradient descent, step %g' % rule.learning_rate if values['sgd'] else
                 'Adam, learning rate %g, beta_1 %g, beta_2 %g, epsilon %g'
                 % (rule.learning_rate, rule.beta_1, rule.beta_2, rule.epsilon))
    return [
        'input: %s images, values in [0, 1] (uint8 / 255), squashed with nearest-neighbour '
        'sampling' % 'x'.join(str(n) for n in adapter.image_shape),
        'call the model with training=True, in fine-tuning and in prediction: batch '
        'normalization uses the batch\'s statistics',
        'fine-tune: %d steps on mini-batches of %d support images (epochs of the support set, '
        'reshuffled), cross-entropy summed over the mini-batch' % (settings.inner_iters,
                                                                    settings.inner_batch),
        'optimizer: %s; multiply the weights by %g before each step'
        % (optimizer, values['weight-decay']),
        'predict: %s' % ('all queries in one batch (transductive)' if settings.transductive else
                         'each query in a batch with the whole support set, its row last'),
        'ways: at most %d classes' % adapter.ways,
    ] + _frozen_line(values)


def _frozen_line(values):
    blocks = values['freeze-eval-blocks']
    blocks = values['freeze-blocks'] if blocks is None else blocks
    if not blocks:
        return []
    return ['keep the first %d conv blocks (conv, batch norm and what follows, up to the next '
            'conv) fixed while fine-tuning' % blocks]


def main(argv):
    del argv
    values = args.flag_values()
    output = values['output']
    if not output.endswith('.keras'):
        raise UserError('--output %s must end in .keras, the Keras 3 format' % output)
    adapter = Adapter.from_checkpoint(values['checkpoint'])
    plain = plain_keras_model(adapter.learner.model)
    os.makedirs(os.path.dirname(os.path.abspath(output)), exist_ok=True)
    partial = output[:-len('.keras')] + '.partial.keras'  # a file that is there is whole
    plain.save(partial)
    os.replace(partial, output)
    print('wrote %s (%d parameters)' % (output, plain.count_params()))
    print('\n'.join(fine_tuning_settings(adapter)))


if __name__ == '__main__':
    from . import args  # the command's flags, defined only when it runs
    args.define_export_flags()
    cli.run(main)
