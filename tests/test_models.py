"""The Keras models have the reference's architecture."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from supervised_reptile import models


def trainable_count(model):
    return sum(int(np.prod(v.shape)) for v in model.trainable_variables)


def test_omniglot_model_parameter_counts():
    assert trainable_count(models.omniglot_model(5)) == 113221
    assert trainable_count(models.omniglot_model(20)) == 117076


def test_miniimagenet_model_parameter_count_and_features():
    model = models.miniimagenet_model(5)
    assert trainable_count(model) == 34661
    assert model.get_layer(index=-2).output.shape[-1] == 6 * 6 * 32


def test_omniglot_blocks_are_conv_stride_2_then_batch_norm_then_relu():
    model = models.omniglot_model(5)
    kinds = [type(layer).__name__ for layer in model.layers]
    assert kinds == (['ImageConv2D', 'BatchStatsNormalization', 'ReLU']
                     + ['Conv2D', 'BatchStatsNormalization', 'ReLU'] * 3 + ['Flatten', 'Dense'])
    assert all(layer.strides == (2, 2) for layer in model.layers if hasattr(layer, 'strides'))
    assert model.get_layer(index=-2).output.shape[-1] == 256


def test_miniimagenet_blocks_put_batch_norm_before_max_pool():
    kinds = [type(layer).__name__ for layer in models.miniimagenet_model(5).layers]
    assert kinds[:4] == ['SplitBiasConv2D', 'BatchStatsNormalization', 'MaxPooling2D', 'ReLU']
    assert kinds[4:8] == ['Conv2D', 'BatchStatsNormalization', 'MaxPooling2D', 'ReLU']


@pytest.mark.parametrize('size, channels, strides', [(28, 1, 2), (28, 1, 1), (21, 3, 1),
                                                     (21, 3, 2)])
def test_the_image_convolution_is_a_convolution_and_so_is_its_kernel_gradient(size, channels,
                                                                               strides):
    rng = np.random.default_rng(3)
    images = tf.constant(rng.random((5, size, size, channels), np.float32))
    kernel = tf.constant(rng.normal(size=(3, 3, channels, 8)).astype(np.float32))
    output_gradient = tf.constant(rng.normal(size=(5, -(-size // strides), -(-size // strides),
                                                   8)).astype(np.float32))
    results = []
    for convolve in (models.image_convolution, tf.nn.conv2d):
        with tf.GradientTape() as tape:
            tape.watch(kernel)
            outputs = convolve(images, kernel, strides, 'SAME')
        results.append((outputs, tape.gradient(outputs, kernel, output_gradient)))
    (outputs, gradient), (expected_outputs, expected_gradient) = results
    np.testing.assert_array_equal(outputs, expected_outputs)
    np.testing.assert_allclose(gradient, expected_gradient, rtol=1e-5,
                               atol=1e-5 * np.abs(expected_gradient).max())


@pytest.mark.parametrize('strides', [1, 2])
def test_the_split_bias_convolution_is_a_keras_convolution_and_so_are_its_gradients(strides):
    rng = np.random.default_rng(4)
    images = rng.random((6, 21, 21, 3), np.float32)
    split = models.SplitBiasConv2D(8, 3, strides=strides, padding='same')
    plain = keras.layers.Conv2D.from_config(split.get_config())
    split.build(images.shape)
    plain.build(images.shape)
    weights = [rng.normal(size=w.shape).astype(np.float32) for w in split.weights]
    split.set_weights(weights)
    plain.set_weights(weights)
    output_gradient = rng.normal(size=(6, -(-21 // strides), -(-21 // strides), 8))

    @tf.function  # compiled, as training runs it: TensorFlow's graph rewrites apply
    def outputs_and_gradients(layer):
        with tf.GradientTape() as tape:
            outputs = layer(images)
        return outputs, tape.gradient(outputs, [layer.kernel, layer.bias],
                                      tf.constant(output_gradient, tf.float32))
    (outputs, gradients), (expected_outputs, expected_gradients) = (
        outputs_and_gradients(split), outputs_and_gradients(plain))
    np.testing.assert_array_equal(outputs, expected_outputs)
    np.testing.assert_array_equal(gradients[0], expected_gradients[0])
    # The bias gradient is each channel's sum of the output gradient. A float32 sum of n terms
    # summed in a tree is right to log2(n) roundings of the sum of their magnitudes, per channel.
    terms = output_gradient.astype(np.float32).astype(np.float64).reshape(-1, 8)
    bound = np.ceil(np.log2(len(terms))) * 2.0 ** -24 * np.abs(terms).sum(axis=0)
    for bias_gradient in (gradients[1], expected_gradients[1]):
        assert np.all(np.abs(bias_gradient.numpy() - terms.sum(axis=0)) <= bound)


def test_batch_norm_uses_batch_statistics_even_when_asked_not_to():
    model = models.omniglot_model(5)
    batch = np.random.default_rng(0).random((4, 28, 28, 1)).astype(np.float32)
    alone = model(batch[:1], training=False).numpy()
    together = model(batch, training=False).numpy()[:1]
    assert model.get_layer(index=1).epsilon == 1e-3
    # With batch statistics, an image's logits depend on the other images in its batch.
    assert not np.allclose(alone, together)


def test_batch_norm_moving_averages_are_left_at_zero_and_one():
    model = models.omniglot_model(5)
    model(np.random.default_rng(0).random((4, 28, 28, 1)).astype(np.float32), training=True)
    for layer in model.layers:
        if isinstance(layer, models.BatchStatsNormalization):
            assert np.all(layer.moving_mean.numpy() == 0)
            assert np.all(layer.moving_variance.numpy() == 1)

