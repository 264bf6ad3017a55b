"""
The reference's few-shot classifiers as Keras models (public as sr.models).

Batch normalization always normalises with the statistics of the batch at hand, in training,
in fine-tuning and in prediction: that is the reference's behaviour, and what makes transductive
prediction differ from non-transductive (the query images share their statistics or not).

The layers of the project's own are registered Keras serializables, so that a saved model of
them loads (keras.models.load_model, sr.load) with no custom_objects.
"""

import numbers

import keras
import tensorflow as tf

from .errors import UserError

# Conv blocks of both models: what --freeze-blocks counts and backbone.py saves.
NUM_BLOCKS = 4

serializable = keras.saving.register_keras_serializable(package='supervised_reptile')


@serializable
class BatchStatsNormalization(keras.layers.BatchNormalization):
    """Batch normalization that always uses the current batch's statistics (eps 1e-3), frozen
    or not, in training and in prediction.

    On images it runs TensorFlow's fused batch-norm kernel in training mode, the op the
    reference's graph used, and it leaves the moving averages alone (at 0 and 1), as the
    reference did.
    """

    def call(self, inputs, training=None, mask=None):
        return batch_statistics_normalization(inputs, self.gamma, self.beta, self.epsilon)


def batch_statistics_normalization(inputs, gamma, beta, epsilon):
    """Batch normalization of inputs [batch, ..., channels] with the batch's own per-channel
    statistics: for images [batch, height, width, channels] the fused kernel in training mode,
    the reference's op (it takes nothing else)."""
    if len(inputs.shape) == 4:
        return tf.compat.v1.nn.fused_batch_norm(inputs, gamma, beta, epsilon=epsilon,
                                                is_training=True)[0]
    mean, variance = tf.nn.moments(inputs, axes=list(range(len(inputs.shape) - 1)))
    return tf.nn.batch_normalization(inputs, mean, variance, beta, gamma, epsilon)


@serializable
class ImageConv2D(keras.layers.Conv2D):
    """A convolution of the input images (the Omniglot model's first layer), with its kernel's
    gradient computed as one matrix product: the images' patches (one row of height x width x
    channels values per output position) times the output gradient.

    With one input channel, TensorFlow's kernel-gradient kernels, oneDNN's included, run far
    below the CPU's matrix product: on a README row 1 mini-batch (10 images) the kernel gradient
    took 235 us, the patches and the product 64 us, and an Omniglot meta-iteration became 5-9%
    faster. On Mini-ImageNet's 84x84 colour images the patches are large and its meta-iteration
    was 9% slower, so that model keeps Keras' convolution. The forward pass is the usual
    convolution, and the images get no gradient (nothing trains them). The result is the same
    sum, its float rounding in another order."""

    def convolution_op(self, inputs, kernel):
        if kernel.shape[-2] != inputs.shape[-1]:  # the grouped layout (networks.py)
            return super().convolution_op(inputs, kernel)
        return image_convolution(inputs, tf.convert_to_tensor(kernel), self.strides,
                                 self.padding.upper())


def image_convolution(images, kernel, strides, padding):
    """tf.nn.conv2d of images [batch, height, width, channels] (which get no gradient) with
    kernel, differentiated as ImageConv2D says."""
    @tf.custom_gradient
    def convolve(kernel):
        def kernel_gradient(output_gradient):
            height, width, channels, filters = kernel.shape
            taps = height * width * channels
            # Convolving with one-hot kernels copies each tap's value to a channel of its own:
            # the patches, exactly.
            one_hot = tf.reshape(tf.eye(taps), [height, width, channels, taps])
            patches = tf.nn.conv2d(images, one_hot, strides, padding)
            product = tf.matmul(tf.reshape(patches, [-1, taps]),
                                tf.reshape(output_gradient, [-1, filters]), transpose_a=True)
            return tf.reshape(product, kernel.shape)
        return tf.nn.conv2d(images, kernel, strides, padding), kernel_gradient
    return convolve(kernel)


@serializable
class SplitBiasConv2D(keras.layers.Conv2D):
    """A convolution of the input images (the Mini-ImageNet model's first layer) whose bias
    gradient is summed apart from its kernel gradient.

    TensorFlow's oneDNN rewrite merges a convolution's kernel and bias gradients into one
    kernel, which on 84x84 colour images runs at half the speed of the two apart: on a README
    row 2 mini-batch (10 images) 1.29 ms against 0.61 ms for the kernel gradient alone and
    0.18 ms for the bias gradient as a row of ones times the output gradient (a product the
    rewrite leaves alone), and a Mini-ImageNet meta-iteration became about 5% faster. The
    forward pass and the kernel gradient are TensorFlow's own; the bias gradient is the same
    sum, rounded in another order. The other layers, and Omniglot's, gained too little to
    matter."""

    def call(self, inputs):
        return split_bias_convolution(inputs, tf.convert_to_tensor(self.kernel),
                                      tf.convert_to_tensor(self.bias), self.strides,
                                      self.padding.upper())


def split_bias_convolution(images, kernel, bias, strides, padding):
    """tf.nn.conv2d of images (which get no gradient) with kernel, plus bias, differentiated as
    SplitBiasConv2D says."""
    @tf.custom_gradient
    def convolve(kernel, bias):
        def gradients(output_gradient):
            kernel_gradient = tf.raw_ops.Conv2DBackpropFilter(
                input=images, filter_sizes=tf.shape(kernel), out_backprop=output_gradient,
                strides=[1, *strides, 1], padding=padding)
            rows = tf.reshape(output_gradient, [-1, bias.shape[0]])
            bias_gradient = tf.matmul(tf.ones([1, tf.shape(rows)[0]]), rows)
            return kernel_gradient, tf.reshape(bias_gradient, bias.shape)
        return tf.nn.bias_add(tf.nn.conv2d(images, kernel, strides, padding), bias), gradients
    return convolve(kernel, bias)


def _classifier(name, input_shape, blocks, num_classes):
    if isinstance(num_classes, bool) or not (isinstance(num_classes, numbers.Integral)
                                             and num_classes >= 1):
        raise UserError('the number of classes (ways) must be a positive integer, not %r'
                        % (num_classes,))
    layers = [keras.Input(input_shape)]
    for block in blocks:
        layers.extend(block)
    layers += [keras.layers.Flatten(), keras.layers.Dense(num_classes, name='logits')]
    return keras.Sequential(layers, name=name)


def omniglot_model(num_classes, image_shape=(28, 28, 1)):
    """4 x [conv 64 3x3 stride 2 'same' -> BN -> ReLU] -> dense, on images in [0, 1]."""
    convolutions = [ImageConv2D] + [keras.layers.Conv2D] * (NUM_BLOCKS - 1)
    blocks = [[convolution(64, 3, strides=2, padding='same'),
               BatchStatsNormalization(epsilon=1e-3),
               keras.layers.ReLU()] for convolution in convolutions]
    return _classifier('omniglot', image_shape, blocks, num_classes)


def miniimagenet_model(num_classes, image_shape=(84, 84, 3)):
    """4 x [conv 32 3x3 'same' -> BN -> max-pool 2x2 'same' -> ReLU] -> dense, on images in
    [0, 1]."""
    convolutions = [SplitBiasConv2D] + [keras.layers.Conv2D] * (NUM_BLOCKS - 1)
    blocks = [[convolution(32, 3, padding='same'),
               BatchStatsNormalization(epsilon=1e-3),
               keras.layers.MaxPooling2D(2, strides=2, padding='same'),
               keras.layers.ReLU()] for convolution in convolutions]
    return _classifier('miniimagenet', image_shape, blocks, num_classes)


# The two architectures by name, as --model names them.
FAMILIES = {'omniglot': omniglot_model, 'miniimagenet': miniimagenet_model}
