"""Features that docs/library.md, docs/own-images.md and docs/demo.md promise, each checked
against what a correct implementation must give: a folder source through fit and evaluate, the
progress bar, val_loss on regression, TrainingDiverged from a real overflow, batch statistics
when predicting and adapting, mini-batches drawn with replacement, jit_compile and a
two-replica strategy through the learner, `adapt --transductive`, and the demo serving
`--checkpoint DIR`.

Covered elsewhere, in test_library_rules.py, so not here: stop_training set by a callback
(test_stop_training_stops_after_the_current_meta_iteration) and a loss function saved and
loaded (test_a_function_loss_is_saved_by_name_and_asked_for_at_load).
"""

import base64
import io
import json
import os
import re
import shutil
import subprocess
import sys
import urllib.request

import keras
import numpy as np
from PIL import Image
import pytest
import tensorflow as tf

import supervised_reptile as sr
from supervised_reptile.adapt import Adapter
from supervised_reptile.demo import SHIPPED_MODEL

from conftest import REPO_DIR, blobs, sine, sine_model
from demo_server import running_demo


def mlp(seed=0, inputs=(8,)):
    keras.utils.set_random_seed(seed)
    return keras.Sequential([keras.Input(inputs), keras.layers.Flatten(),
                             keras.layers.Dense(16, activation='relu'), keras.layers.Dense(3)])


def small_learner(model, **settings):
    options = dict(inner_optimizer=sr.Adam(0.01), inner_steps=2, inner_batch_size=4,
                   meta_batch_size=2, eval_steps=3, eval_batch_size=3)
    options.update(settings)
    return sr.Reptile(model, **options)


def weights_of(learner):
    return [keras.ops.convert_to_numpy(v) for v in learner.model.trainable_variables]


# Task sources.

def write_class_folders(root, num_classes=6, per_class=4, seed=0):
    """<class>/<images>: 8x8 RGB PNGs of grey 2x2 blocks, so that squashing them to 4x4 grey
    (nearest neighbour) gives each block's value whatever pixel it samples. Returns the images
    as a model takes them, [n, 4, 4, 1] floats in [0, 1], and their class labels."""
    rng = np.random.default_rng(seed)
    arrays, labels = [], []
    for label in range(num_classes):
        (root / ('class%d' % label)).mkdir(parents=True)
        for index in range(per_class):
            blocks = rng.integers(0, 256, (4, 4), dtype=np.uint8)
            pixels = np.repeat(np.repeat(blocks, 2, axis=0), 2, axis=1)
            Image.fromarray(np.stack([pixels] * 3, axis=-1), 'RGB').save(
                root / ('class%d' % label) / ('%d.png' % index))
            arrays.append(blocks[..., None])
            labels.append(label)
    return np.stack(arrays).astype(np.float32) / np.float32(255), np.array(labels)


def test_a_folder_of_class_folders_trains_and_evaluates_as_its_images_would(tmp_path):
    """from_folder squashes and greys the images, scales them to [0, 1] and labels the classes
    in the order of their names: fit and evaluate then do what they do on those arrays."""
    x, y = write_class_folders(tmp_path / 'classes')
    outcomes = []
    for source in (
            lambda seed, shots: sr.tasks.from_folder(tmp_path / 'classes', ways=3, shots=shots,
                                                     seed=seed, image_size=4, channels=1),
            lambda seed, shots: sr.tasks.from_arrays(x, y, ways=3, shots=shots, seed=seed)):
        learner = small_learner(mlp(inputs=(4, 4, 1)))
        learner.fit(source(1, 2), 3, verbose=0)
        outcomes.append((weights_of(learner),
                         learner.evaluate(source(2, 1), num_tasks=10, verbose=0).mean))
    (folder_weights, folder_score), (array_weights, array_score) = outcomes
    assert not np.allclose(folder_weights[0], mlp(inputs=(4, 4, 1)).get_weights()[0])
    for a, b in zip(folder_weights, array_weights):
        assert np.allclose(a, b, rtol=1e-5, atol=1e-7)
    assert folder_score == array_score


# fit's progress bar and validation.

def test_the_progress_bar_shows_every_epochs_loss_and_verbose_0_prints_nothing(capsys):
    x, y = blobs(per_class=6)
    learner = small_learner(mlp())
    history = learner.fit(sr.tasks.from_arrays(x, y, ways=3, shots=2), 6, steps_per_epoch=3,
                          verbose=1)
    shown = re.sub(r'\x1b\[[0-9;]*m', '', capsys.readouterr().out)  # the bar's colours
    assert 'Epoch 1/2' in shown and 'Epoch 2/2' in shown
    # Keras' bar ends each epoch with its steps and the epoch's logs, as it does in model.fit.
    finals = re.findall(r'3/3 .*? - loss: ([\d.]+)', shown)
    assert finals == ['%.4f' % loss for loss in history.history['loss']]
    learner.fit(sr.tasks.from_arrays(x, y, ways=3, shots=2), 12, steps_per_epoch=3, verbose=0)
    assert capsys.readouterr().out == ''


def test_validation_on_regression_tasks_reports_the_val_loss_evaluate_gives():
    learner = small_learner(sine_model(), loss='mse', inner_optimizer=sr.SGD(0.02),
                            transductive=True)
    history = learner.fit(sr.tasks.from_function(sine, shots=5, seed=0), 4, steps_per_epoch=2,
                          validation_tasks=sr.tasks.from_function(sine, shots=5, query_shots=5,
                                                                  seed=3),
                          validation_num_tasks=6, verbose=0)
    assert 'val_accuracy' not in history.history
    first, last = history.history['val_loss']
    assert first != pytest.approx(last)  # the learner moved between the two epochs
    # The validation tasks are the first 6 of their source, scored after the last epoch.
    expected = learner.evaluate(sr.tasks.from_function(sine, shots=5, query_shots=5, seed=3),
                                6, verbose=0).mean
    assert last == pytest.approx(expected, rel=1e-5)


# Divergence.

class LossRecorder(keras.callbacks.Callback):
    """The loss of every meta-iteration that fit finished."""

    def __init__(self):
        super().__init__()
        self.losses = []

    def on_train_batch_end(self, batch, logs=None):
        self.losses.append(logs['loss'])


def diverging_fit(**settings):
    """Fit on lines of slope 5 for up to 50 meta-iterations, expecting TrainingDiverged: (the
    meta-iteration its message names, the rest of its message, the losses logged before it,
    the learner)."""
    def line(rng, n):
        points = rng.uniform(-3, 3, size=(n, 1))
        return points, 5.0 * points[:, 0] + rng.uniform(-5, 5)

    recorder = LossRecorder()
    learner = small_learner(sine_model(), loss='mse', inner_steps=5, **settings)
    with pytest.raises(sr.TrainingDiverged) as diverged:
        learner.fit(sr.tasks.from_function(line, shots=8, seed=0), 50, callbacks=[recorder],
                    verbose=0)
    assert isinstance(diverged.value, sr.UserError)
    iteration, problem = re.match(r'meta-iteration (\d+): (.*)', str(diverged.value)).groups()
    return int(iteration), problem, recorder.losses, learner


def test_an_inner_learning_rate_that_overflows_the_loss_raises_training_diverged():
    """SGD too fast for the lines: every inner step multiplies the error, until the loss, its
    square, overflows float32 while the weights are still finite."""
    iteration, problem, losses, learner = diverging_fit(inner_optimizer=sr.SGD(1.0))
    assert problem.startswith('the training loss is inf')
    # It stops at the meta-iteration that overflowed; those before it logged finite losses.
    assert 0 < iteration == learner.iteration == len(losses)
    assert np.all(np.isfinite(losses))


def test_a_meta_step_that_overflows_the_weights_raises_training_diverged_at_once():
    """A sane inner loop, but a meta step that throws the weights past float32's largest value
    on the first meta-iteration, whose loss (of the inner loop, before the step) is finite."""
    iteration, problem, losses, learner = diverging_fit(
        inner_optimizer=sr.SGD(0.1), meta_step_size=3e38, meta_step_size_final=3e38)
    assert problem.startswith('a weight is no longer finite')
    assert iteration == learner.iteration == len(losses) == 0


# Batch statistics, sampling, compilation and devices when predicting.

def batch_norm_model():
    """Dense -> Keras BatchNormalization -> Dense, its moving statistics far from any batch's:
    outputs normalised with them would be nothing like those of batch statistics."""
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((8,)), keras.layers.Dense(4),
                              keras.layers.BatchNormalization(epsilon=1e-3),
                              keras.layers.Dense(3)])
    model.layers[1].moving_mean.assign(np.full(4, 50.0, np.float32))
    model.layers[1].moving_variance.assign(np.full(4, 0.01, np.float32))
    return model


def batch_norm_forward(weights, x):
    """The model of batch_norm_model() on the batch x, normalised with x's statistics."""
    kernel, bias, gamma, beta, head, head_bias = weights
    hidden = x @ kernel + bias
    mean = tf.reduce_mean(hidden, axis=0)
    variance = tf.reduce_mean((hidden - mean) ** 2, axis=0)
    return ((hidden - mean) / tf.sqrt(variance + 1e-3) * gamma + beta) @ head + head_bias


@pytest.mark.parametrize('transductive', [False, True])
def test_prediction_and_adaptation_normalise_with_the_batch_statistics(transductive):
    """Fine-tuning (2 SGD steps on the whole support set, eval_batch_size being its size) and
    prediction normalise each batch with its own statistics, the queries all in one batch
    (transductive) or each with the support set: followed here in float64, with the batch
    statistics written out."""
    x, _ = blobs(per_class=6)
    support_x, support_y, queries = x[[0, 6, 12]], np.arange(3), x[[1, 7, 13, 2]]
    learner = sr.Reptile(batch_norm_model(), inner_optimizer=sr.SGD(0.5), eval_steps=2,
                         eval_batch_size=3, transductive=transductive)
    weights = [tf.Variable(w.astype(np.float64)) for w in learner.model.get_weights()[:4]
               + learner.model.get_weights()[6:]]  # the moving statistics left out
    support = tf.constant(support_x, tf.float64)
    for _ in range(2):
        with tf.GradientTape() as tape:
            loss = tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(
                support_y, batch_norm_forward(weights, support)))
        for weight, gradient in zip(weights, tape.gradient(loss, weights)):
            weight.assign_sub(0.5 * gradient)
    query = tf.constant(queries, tf.float64)
    if transductive:
        expected = batch_norm_forward(weights, query).numpy()
    else:
        expected = np.stack([batch_norm_forward(weights, tf.concat([support, query[q:q + 1]], 0))
                             [-1].numpy() for q in range(len(queries))])

    assert np.allclose(learner.predict(support_x, support_y, queries), expected, atol=1e-4)
    adapted = learner.adapt(support_x, support_y)
    for value, want in zip(adapted.trainable_variables, weights):
        assert np.allclose(value, want.numpy(), atol=1e-5)
    norm = learner.model.layers[1]
    assert np.array_equal(norm.moving_mean, np.full(4, 50.0))  # the learner's model untouched


# The plane of four points: the support set; a fifth, the query.
PLANE_X = np.array([[0.5, -1.0], [1.5, 0.25], [-0.75, 2.0], [0.1, 0.3]], np.float32)
PLANE_Y = np.array([1.0, -0.5, 2.5, 0.2], np.float32)
PLANE_QUERY = np.array([[0.7, -0.4]], np.float32)
PLANE_WEIGHTS = [np.array([[0.3], [-0.2]], np.float32), np.array([0.1], np.float32)]


def test_mini_batches_drawn_with_replacement_are_of_distinct_examples():
    """adapt and predict's replacement=True draws each mini-batch afresh, of distinct examples
    (the reference's --replacement): a batch the size of the support set is the whole set, so
    fine-tuning is full-batch gradient descent, and a larger batch cannot be drawn."""
    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
    model.set_weights(PLANE_WEIGHTS)
    learner = sr.Reptile(model, loss='mse', inner_optimizer=sr.SGD(0.05), eval_steps=3,
                         eval_batch_size=4)
    w, b = (value.astype(np.float64) for value in PLANE_WEIGHTS)
    for _ in range(3):
        residual = PLANE_X @ w + b - PLANE_Y[:, None]
        w, b = (w - 0.05 * 2 * PLANE_X.T @ residual / 4, b - 0.05 * 2 * residual.sum(0) / 4)
    predicted = learner.predict(PLANE_X, PLANE_Y, PLANE_QUERY, replacement=True)
    assert predicted[:, 0] == pytest.approx((PLANE_QUERY @ w + b)[:, 0], rel=1e-5)
    learner.adapt(PLANE_X[:3], PLANE_Y[:3])  # epochs of 3 examples fill a batch of 4
    with pytest.raises(ValueError, match='with replacement'):
        learner.adapt(PLANE_X[:3], PLANE_Y[:3], replacement=True)


@pytest.mark.slow
def test_xla_compiled_steps_give_the_weights_and_scores_of_the_plain_ones():
    """jit_compile=True compiles meta-training and evaluation with XLA, which fuses and
    reorders the float operations: the same numbers to float tolerance."""
    x, y = blobs(per_class=6)
    outcomes = []
    for jit_compile in (False, True):
        learner = small_learner(mlp(), jit_compile=jit_compile, transductive=True)
        learner.fit(sr.tasks.from_arrays(x, y, ways=3, shots=2, seed=1), 3, verbose=0)
        outcomes.append((weights_of(learner),
                         learner.evaluate(sr.tasks.from_arrays(x, y, ways=3, shots=1, seed=2), 6,
                                          verbose=0).mean))
    (plain_weights, plain_score), (xla_weights, xla_score) = outcomes
    assert not np.allclose(plain_weights[0], mlp().get_weights()[0])
    for a, b in zip(plain_weights, xla_weights):
        assert np.allclose(a, b, rtol=1e-5, atol=1e-6)
    assert xla_score == plain_score


FIT_AND_EVALUATE_ON_TWO_REPLICAS = '''
import json
import numpy as np
import tensorflow as tf
cpu, = tf.config.list_physical_devices('CPU')
tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
import keras
import supervised_reptile as sr

devices = set()


class DeviceRecordingDense(keras.layers.Dense):
    """A Dense layer that notes the devices it is traced on."""

    def call(self, inputs):
        devices.add(tf.identity(inputs).device.rsplit('device:', 1)[-1])
        return super().call(inputs)


rng = np.random.default_rng(0)
y = np.repeat(np.arange(12), 6)
x = ((3 * rng.normal(size=(12, 8)))[y] + rng.normal(size=(len(y), 8))).astype(np.float32)
strategy = tf.distribute.MirroredStrategy(['/cpu:0', '/cpu:1'])
outcomes = {}
for name, chosen in (('one device', None), ('two replicas', strategy)):
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((8,)), DeviceRecordingDense(16, activation='relu'),
                              keras.layers.Dense(3)])
    learner = sr.Reptile(model, inner_optimizer=sr.Adam(0.01), inner_steps=2, inner_batch_size=4,
                         meta_batch_size=2, eval_steps=3, eval_batch_size=3, strategy=chosen)
    devices.clear()
    history = learner.fit(sr.tasks.from_arrays(x, y, ways=3, shots=2, seed=1), 4,
                          steps_per_epoch=2, verbose=0, validation_num_tasks=5,
                          validation_tasks=sr.tasks.from_arrays(x, y, ways=3, shots=1, seed=2))
    # 7 tasks: the two replicas get 4 each, the last task twice.
    score = learner.evaluate(sr.tasks.from_arrays(x, y, ways=3, shots=1, seed=3), 7, verbose=0)
    adapted = learner.adapt(x[:3], np.arange(3))(x[:3]).numpy()
    predicted = learner.predict(x[:3], np.arange(3), x[3:6])
    outcomes[name] = {'val_accuracy': history.history['val_accuracy'], 'score': score.mean,
                      'weights': [w.tolist() for w in model.get_weights()],
                      'adapted': adapted.tolist(), 'predicted': np.asarray(predicted).tolist(),
                      'devices': sorted(devices - {''})}
print(json.dumps(outcomes))
'''


@pytest.mark.slow
def test_a_two_replica_strategy_evaluates_validates_and_adapts_as_one_device():
    result = subprocess.run([sys.executable, '-c', FIT_AND_EVALUATE_ON_TWO_REPLICAS],
                            capture_output=True, text=True, check=False, cwd=REPO_DIR,
                            env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL='3'), timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    one, two = (json.loads(result.stdout)[name] for name in ('one device', 'two replicas'))
    assert one['devices'] == ['CPU:0'] and two['devices'] == ['CPU:0', 'CPU:1']
    assert two['val_accuracy'] == one['val_accuracy'] and two['score'] == one['score']
    for key in ('weights', 'adapted', 'predicted'):
        for a, b in zip(one[key], two[key], strict=True):
            assert np.array_equal(a, b), key


# The commands.

def ink_image(pixels):
    """An ink array drawn black on white, as the demo's page and people's scans give them."""
    return Image.fromarray(np.where(pixels, 0, 255).astype(np.uint8), 'L')


def write_png(path, pixels):
    path.parent.mkdir(parents=True, exist_ok=True)
    ink_image(pixels).save(path)


def random_drawings(count, seed):
    """Ink arrays of 28x28 pixels, Omniglot's input size, so that reading them raw is exact."""
    rng = np.random.default_rng(seed)
    return [rng.random((28, 28)) < 0.2 for _ in range(count)]


def softmax(logits):
    shifted = np.exp(logits - logits.max(axis=-1, keepdims=True))
    return shifted / shifted.sum(axis=-1, keepdims=True)


def python_path_env():
    """The environment, with this repository first on the module path."""
    paths = [str(REPO_DIR)] + [p for p in os.environ.get('PYTHONPATH', '').split(os.pathsep) if p]
    return dict(os.environ, TF_CPP_MIN_LOG_LEVEL='3', PYTHONPATH=os.pathsep.join(paths))


@pytest.mark.slow
def test_adapt_transductive_classifies_the_queries_as_one_batch(tmp_path):
    """`adapt --transductive` fine-tunes as the run's evaluation does and then normalises the
    queries together, not each with the support set (the shipped model's recorded mode)."""
    drawings = random_drawings(6, seed=3)
    for label, pixels in enumerate(drawings[:3]):
        write_png(tmp_path / 'support' / ('class%d' % label) / 'a.png', pixels)
    for index, pixels in enumerate(drawings[3:]):
        write_png(tmp_path / 'queries' / ('q%d.png' % index), pixels)
    command = subprocess.run(
        [sys.executable, '-m', 'supervised_reptile.adapt', '--support', 'support', '--query',
         'queries', '--transductive', '--preprocess', 'raw', '--json'], cwd=tmp_path,
        env=python_path_env(), capture_output=True, text=True, check=False, timeout=600)
    assert command.returncode == 0, command.stderr[-3000:]
    answer = np.array([[p['probabilities']['class%d' % c] for c in range(3)]
                       for p in json.loads(command.stdout)])

    learner = Adapter.from_checkpoint(SHIPPED_MODEL, preprocess='raw').learner
    # Read raw, a 28x28 drawing is its pixels: ink 0.0, paper 1.0.
    inputs = np.stack([1.0 - pixels[..., None] for pixels in drawings]).astype(np.float32)
    support, queries = inputs[:3], inputs[3:]
    adapted = learner.adapt(support, np.arange(3))
    together = softmax(adapted(queries, training=True).numpy()[:, :3])
    each_with_support = softmax(np.stack([
        adapted(np.concatenate([support, queries[q:q + 1]]), training=True).numpy()[-1, :3]
        for q in range(3)]))
    assert np.allclose(answer, together, atol=1e-4)
    assert not np.allclose(answer, each_with_support, atol=1e-2)


def png_url(pixels):
    buffer = io.BytesIO()
    ink_image(pixels).save(buffer, 'PNG')
    return 'data:image/png;base64,' + base64.b64encode(buffer.getvalue()).decode('ascii')


@pytest.mark.slow
def test_the_demo_serves_the_model_of_its_checkpoint_directory(tmp_path):
    """A run directory holding the shipped run's record with other weights (a fresh
    initialization): `demo --checkpoint DIR` answers with those weights' adaptation."""
    adapter = Adapter.from_checkpoint(SHIPPED_MODEL, preprocess='raw', transductive=False)
    drawings = random_drawings(4, seed=5)
    # Named as the demo names a request's classes, so that they sort in class order.
    support = {'%03d' % label: [ink_image(pixels)] for label, pixels in enumerate(drawings[:3])}
    query = ink_image(drawings[3])
    shipped = adapter.fit(support).predict([query])[0].probabilities

    learner = adapter.learner
    keras.utils.set_random_seed(1)
    learner.model.set_weights(sr.models.omniglot_model(5).get_weights())
    mine = adapter.fit(support).predict([query])[0].probabilities
    expected = [mine[name] for name in sorted(support)]
    assert not np.allclose(expected, [shipped[name] for name in sorted(support)], atol=1e-2)
    run = tmp_path / 'my_run'
    tf.train.CheckpointManager(
        tf.train.Checkpoint(model=learner.model, optimizer=learner.algorithm.optimizer), str(run),
        max_to_keep=1, checkpoint_name='model.ckpt').save(7)
    for name in ('config.json', 'results.json'):
        shutil.copyfile(os.path.join(SHIPPED_MODEL, name), run / name)

    request = json.dumps({'support': [[png_url(pixels)] for pixels in drawings[:3]],
                          'query': png_url(drawings[3])}).encode()
    with running_demo('--checkpoint', str(run), '--preprocess', 'raw') as url:
        with urllib.request.urlopen(url + 'info', timeout=60) as response:
            info = json.load(response)
        with urllib.request.urlopen(urllib.request.Request(
                url + 'predict', data=request, method='POST',
                headers={'Content-Type': 'application/json'}), timeout=120) as response:
            answer = json.load(response)
    assert info['model'].endswith(str(run))
    assert np.allclose(answer['probabilities'], expected, atol=1e-5)
    assert answer['predicted'] == int(np.argmax(expected))
