"""
The reference's few-shot classifiers as Keras models.

Batch normalization always normalises with the statistics of the batch at hand, in training,
in fine-tuning and in prediction: that is the reference's behaviour, and what makes transductive
prediction differ from non-transductive (the query images share their statistics or not).
"""

import keras
import tensorflow as tf

# Conv blocks of both models: what --freeze-blocks counts and backbone.py saves.
NUM_BLOCKS = 4


class BatchStatsNormalization(keras.layers.BatchNormalization):
    """Batch normalization that always uses the current batch's statistics (eps 1e-3).

    It runs TensorFlow's fused batch-norm kernel in training mode, the op the reference's
    graph used, and leaves the moving averages alone (at 0 and 1), as the reference did.
    """

    def call(self, inputs, training=None, mask=None):
        return batch_statistics_normalization(inputs, self.gamma, self.beta, self.epsilon)


def batch_statistics_normalization(inputs, gamma, beta, epsilon):
    """Batch normalization of inputs [batch, height, width, channels] with the batch's own
    per-channel statistics: the fused kernel in training mode."""
    return tf.compat.v1.nn.fused_batch_norm(inputs, gamma, beta, epsilon=epsilon,
                                            is_training=True)[0]


def _classifier(name, input_shape, blocks, num_classes):
    layers = [keras.Input(input_shape)]
    for block in blocks:
        layers.extend(block)
    layers += [keras.layers.Flatten(), keras.layers.Dense(num_classes, name='logits')]
    return keras.Sequential(layers, name=name)


def omniglot_model(num_classes, image_shape=(28, 28, 1)):
    """4 x [conv 64 3x3 stride 2 'same' -> BN -> ReLU] -> dense, on images in [0, 1]."""
    blocks = [[keras.layers.Conv2D(64, 3, strides=2, padding='same'),
               BatchStatsNormalization(epsilon=1e-3),
               keras.layers.ReLU()] for _ in range(NUM_BLOCKS)]
    return _classifier('omniglot', image_shape, blocks, num_classes)


def miniimagenet_model(num_classes, image_shape=(84, 84, 3)):
    """4 x [conv 32 3x3 'same' -> BN -> max-pool 2x2 'same' -> ReLU] -> dense, on images in
    [0, 1]."""
    blocks = [[keras.layers.Conv2D(32, 3, padding='same'),
               BatchStatsNormalization(epsilon=1e-3),
               keras.layers.MaxPooling2D(2, strides=2, padding='same'),
               keras.layers.ReLU()] for _ in range(NUM_BLOCKS)]
    return _classifier('miniimagenet', image_shape, blocks, num_classes)


# The two architectures by name, as --model names them.
FAMILIES = {'omniglot': omniglot_model, 'miniimagenet': miniimagenet_model}
