"""Mistakes a library user makes, each refused before any training with a ValueError or
TypeError that names the argument and the fix, never a run script's flag and never from inside a
compiled trace."""

import keras
import numpy as np
import pytest
import tensorflow as tf

import supervised_reptile as sr


def blobs(num_classes=12, per_class=8, seed=0):
    rng = np.random.default_rng(seed)
    y = np.repeat(np.arange(num_classes), per_class)
    x = (3 * rng.normal(size=(num_classes, 8)))[y] + rng.normal(size=(len(y), 8))
    return x.astype(np.float32), y


X, Y = blobs()


def dense(outputs=3, inputs=8, *middle):
    return keras.Sequential([keras.Input((inputs,)), *middle, keras.layers.Dense(outputs)])


def learner(model=None, **settings):
    return sr.Reptile(dense() if model is None else model, inner_steps=2, inner_batch_size=4,
                      meta_batch_size=2, eval_steps=2, **settings)


def source(**options):
    settings = dict(ways=3, shots=2)
    settings.update(options)
    return sr.tasks.from_arrays(X, Y, **settings)


def sine(rng, n):
    points = rng.uniform(-3, 3, size=(n, 1))
    return points, np.sin(points[:, 0] + rng.uniform(0, 3))


def with_nan(array, where):
    array = np.array(array, np.float32)
    array[where] = np.nan
    return array


MISTAKES = {
    'NaN in the examples': (
        lambda: sr.tasks.from_arrays(with_nan(X, (3, 2)), Y),
        ValueError, 'x holds values that are not finite'),
    'NaN from a task function': (
        lambda: learner(dense(1, 1), loss='mse').fit(sr.tasks.from_function(
            lambda rng, n: (with_nan(np.ones((n, 1)), (0, 0)), np.ones(n)), shots=4), 2,
            verbose=0),
        ValueError, 'not finite'),
    'NaN in a support set': (
        lambda: learner().adapt(with_nan(X[:3], (1, 1)), np.arange(3)),
        ValueError, 'support_x holds values that are not finite'),
    'negative meta-iterations': (
        lambda: learner().fit(source(), -5, verbose=0), ValueError, 'meta_iterations'),
    'no evaluation task': (
        lambda: learner().evaluate(source(shots=1), 0, verbose=0), ValueError, 'num_tasks'),
    'a fractional count': (
        lambda: learner().fit(source(), 2.5, verbose=0), TypeError, 'meta_iterations'),
    'a zero inner batch': (
        lambda: sr.Reptile(dense(), inner_batch_size=0), ValueError, 'inner_batch_size'),
    'a tuple for tasks': (
        lambda: learner().fit((X, Y), 2, verbose=0), TypeError, r'sr\.tasks\.from_arrays'),
    'a dataset for tasks': (
        lambda: learner().fit(tf.data.Dataset.from_tensor_slices((X, Y)), 2, verbose=0),
        TypeError, r'from_dataset'),
    'a function for tasks': (
        lambda: learner().evaluate(sine, 2, verbose=0), TypeError, 'from_function'),
    'a dataset that never ends': (
        lambda: sr.tasks.from_dataset(tf.data.Dataset.from_tensor_slices((X, Y)).repeat()),
        ValueError, 'finite'),
    'a dataset of single tensors': (
        lambda: sr.tasks.from_dataset(tf.data.Dataset.from_tensor_slices(X)), ValueError,
        r'\(x, y\) pairs'),
    'mse with class labels': (
        lambda: learner(loss='mse').fit(source(), 2, verbose=0), ValueError,
        "loss 'mse' takes targets.*sparse_categorical_crossentropy"),
    'cross-entropy with regression targets': (
        lambda: learner(dense(1, 1)).fit(sr.tasks.from_function(sine, shots=4), 2, verbose=0),
        ValueError, "takes class labels.*loss='mse'"),
    'fewer outputs than ways': (
        lambda: learner(dense(3)).fit(source(ways=5), 2, verbose=0), ValueError,
        '3 outputs per example, but the tasks have 5 classes'),
    'more outputs than ways': (
        lambda: learner(dense(10)).evaluate(source(shots=1), 2, verbose=0), ValueError,
        '10 outputs per example, but the tasks have 3 classes'),
    'labels beyond the outputs': (
        lambda: learner().adapt(X[:4], np.arange(4)), ValueError,
        'class labels must be 0 to 2 for a model of 3 outputs'),
    'regression outputs of the wrong width': (
        lambda: learner(dense(2, 1), loss='mse').fit(sr.tasks.from_function(sine, shots=4), 2,
                                                     verbose=0),
        ValueError, r'outputs of shape \(2,\) for targets of shape \(1,\)'),
    'inputs of the wrong shape': (
        lambda: learner(dense(3, 5)).fit(source(), 2, verbose=0), ValueError,
        r'cannot take the inputs of shape \(8,\)'),
    'a dropout layer': (
        lambda: learner(dense(3, 8, keras.layers.Dropout(0.5, name='my_dropout'))).fit(
            source(), 2, verbose=0),
        ValueError, 'my_dropout'),
    'uint8 support with float queries': (
        lambda: learner().predict(np.zeros((3, 8), np.uint8), np.arange(3), X[:2]), TypeError,
        'support_x holds uint8 and query_x float32'),
    'float support with integer queries': (
        lambda: learner().predict(X[:3], np.arange(3), np.zeros((2, 8), np.int32)), TypeError,
        'give both alike'),
    'no tail left for FOMAML': (
        lambda: sr.FOMAML(dense(), tail_shots=0), ValueError, 'tail_shots must be at least 1'),
    'a tail of the whole task': (
        lambda: sr.FOMAML(dense(), tail_shots=2).fit(source(shots=2), 2, verbose=0), ValueError,
        'tail_shots is 2, but it must be between 1 and 1: a training task of 2 shots'),
    'a tail of the whole task with one inner step': (
        lambda: sr.FOMAML(dense(), tail_shots=3, inner_steps=1).fit(source(shots=2), 2,
                                                                     verbose=0),
        ValueError, 'tail_shots is 3, but it must be between 1 and 2'),
    'a tail for Reptile': (
        lambda: sr.Reptile(dense(), tail_shots=1), ValueError, 'setting of FOMAML'),
    'a task larger than the data': (
        lambda: learner().fit(source(ways=3, shots=9), 2, verbose=0), ValueError,
        'needs 9 examples per class but class .* has only 8; lower shots'),
    'more ways than classes': (
        lambda: learner(dense(20)).evaluate(source(ways=20, shots=1), 2, verbose=0), ValueError,
        '20 classes per task but the evaluation set has only 12 classes; lower ways'),
    'an unknown reduction': (
        lambda: learner(loss_reduction='average'), ValueError, "'mean'.*'sum'"),
    'a rate for weight decay': (
        lambda: learner(weight_decay=1.0), ValueError, 'weight_decay'),
    'a model that is not a keras.Model': (
        lambda: sr.Reptile(lambda x: x), TypeError, 'keras.Model'),
    'a loss that is not one': (
        lambda: learner(loss=3), TypeError, 'loss must be'),
    'fitting a finished schedule again': (
        lambda: _fitted(3).fit(source(), 3, verbose=0), ValueError, 'initial_iteration=0'),
    'an initial iteration past the end': (
        lambda: learner().fit(source(), 3, initial_iteration=3, verbose=0), ValueError,
        'initial_iteration'),
    "Keras' BackupAndRestore": (
        lambda: learner().fit(source(), 2, verbose=0,
                              callbacks=[keras.callbacks.BackupAndRestore('backup')]),
        ValueError, r'sr\.callbacks\.BackupAndRestore'),
    'a learning-rate scheduler': (
        lambda: learner().fit(source(), 2, verbose=0, callbacks=[
            keras.callbacks.ReduceLROnPlateau(monitor='loss')]),
        ValueError, 'meta_step_size_final'),
    'one-hot labels': (
        lambda: learner().adapt(X[:3], np.eye(3, dtype=np.int64)), ValueError, 'np.argmax'),
    'no queries': (
        lambda: learner().predict(X[:3], np.arange(3), X[:0]), ValueError, 'query_x holds no'),
    'a loss with its arguments swapped': (
        lambda: learner(loss=lambda outputs, labels: keras.ops.sparse_categorical_crossentropy(
            labels, outputs, from_logits=True)).fit(source(), 2, verbose=0),
        ValueError, 'targets first'),
    'a loss that is not per example': (
        lambda: learner(loss=lambda labels, outputs: keras.ops.sum(
            keras.ops.sparse_categorical_crossentropy(labels, outputs, from_logits=True))).fit(
                source(), 2, verbose=0),
        ValueError, 'one loss per example'),
    'a variable frozen in evaluation that the model does not have': (
        lambda: learner(frozen_in_evaluation=['dense']), ValueError, 'frozen_in_evaluation'),
    'a negative meta step': (
        lambda: learner(meta_step_size=-1.0), ValueError, 'meta_step_size'),
    'a package model of no class': (
        lambda: sr.models.omniglot_model(0), ValueError, 'ways'),
    'BackupAndRestore with no directory': (
        lambda: sr.callbacks.BackupAndRestore(''), ValueError, 'directory'),
    'BackupAndRestore saving every 0 meta-iterations': (
        lambda: sr.callbacks.BackupAndRestore('backup', save_freq=0), ValueError, 'save_freq'),
}


def _fitted(iterations):
    fitted = learner()
    fitted.fit(source(), iterations, verbose=0)
    return fitted


@pytest.mark.parametrize('mistake', sorted(MISTAKES))
def test_a_mistake_is_refused_with_an_error_that_names_it(mistake):
    call, error_type, message = MISTAKES[mistake]
    with pytest.raises(error_type, match=message) as refused:
        call()
    text = str(refused.value)
    assert isinstance(refused.value, sr.UserError)
    assert '--' not in text and '\n' not in text  # no run script's flag; one line
    assert 'autograph' not in text.lower()


def test_a_refused_fit_leaves_the_model_as_it_was():
    model = dense(3, 8, keras.layers.Dropout(0.5))
    before = model.get_weights()
    with pytest.raises(ValueError):
        learner(model).fit(source(), 2, verbose=0)
    assert all(np.array_equal(a, b) for a, b in zip(before, model.get_weights()))


def test_a_model_computing_in_half_precision_is_refused_by_layer():
    keras.mixed_precision.set_global_policy('mixed_float16')
    try:
        model = keras.Sequential([keras.Input((8,)), keras.layers.Dense(3, name='half')])
    finally:
        keras.mixed_precision.set_global_policy('float32')
    with pytest.raises(ValueError, match="layer half computes in mixed_float16.*'float32'"):
        learner(model)


def image_folder(root, classes=4, per_class=3, size=6):
    """<root>/<class>/<n>.png: grey images whose pixels say their class."""
    from PIL import Image  # pylint: disable=import-outside-toplevel
    for c in range(classes):
        (root / ('class%d' % c)).mkdir(parents=True)
        for n in range(per_class):
            Image.fromarray(np.full((size, size), 40 * c + n, np.uint8)).save(
                root / ('class%d' % c) / ('%d.png' % n))
    return root


@pytest.mark.parametrize('layout, arguments, message', [
    ('classes', dict(split='val'), "no 'val'"),
    ('classes', dict(split='validation'), 'split must be one of'),
    ('train-test', dict(), r"holds the folders train/, test/: pass split='train' or 'test'"),
    ('train-test', dict(split='val'), r"pass split='train' or 'test'"),
    ('classes', dict(channels=2), 'channels must be 1'),
    ('classes', dict(image_size=0), 'image_size must be'),
])
def test_a_folder_source_says_what_it_needs(tmp_path, layout, arguments, message):
    if layout == 'classes':
        root = image_folder(tmp_path / 'images')
    else:
        root = tmp_path / 'images'
        image_folder(root / 'train')
        image_folder(root / 'test')
    with pytest.raises(ValueError, match=message):
        sr.tasks.from_folder(root, ways=2, **arguments)
