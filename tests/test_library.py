"""The library API (import supervised_reptile as sr): its contract, its rules, its examples."""

import os
import re
import subprocess
import sys

import keras
import numpy as np
import pytest
import tensorflow as tf

import supervised_reptile as sr
from supervised_reptile import networks
from supervised_reptile.summaries import read_scalars

from conftest import REPO_DIR, run_script

DOC = REPO_DIR / 'docs' / 'library.md'
EXAMPLES = REPO_DIR / 'examples'


def blobs(num_classes=30, per_class=10, dims=8, seed=0):
    """Classes of points around random centres: (x [n, dims] float32, y [n])."""
    rng = np.random.default_rng(seed)
    y = np.repeat(np.arange(num_classes), per_class)
    x = (3 * rng.normal(size=(num_classes, dims)))[y] + rng.normal(size=(len(y), dims))
    return x.astype(np.float32), y


def mlp(outputs=3, dims=8, **dense):
    return keras.Sequential([keras.Input((dims,)), keras.layers.Dense(16, activation='relu'),
                             keras.layers.Dense(outputs, **dense)])


def small_learner(model, **settings):
    options = dict(inner_steps=2, inner_batch_size=4, meta_batch_size=2, eval_steps=3,
                   eval_batch_size=3)
    options.update(settings)
    return sr.Reptile(model, **options)


def values(variables):
    return [keras.ops.convert_to_numpy(v) for v in variables]


@pytest.mark.slow
def test_importing_the_package_defines_no_flag_and_changes_no_setting():
    code = '''
import tensorflow as tf
from absl import flags, logging
before = set(flags.FLAGS)
tf32 = tf.config.experimental.tensor_float_32_execution_enabled()
import supervised_reptile as sr
import supervised_reptile.adapt, supervised_reptile.export, supervised_reptile.demo.server
import supervised_reptile.demo.ship, supervised_reptile.recipes
sr.Reptile, sr.tasks, sr.load
assert set(flags.FLAGS) == before, set(flags.FLAGS) - before
assert tf.config.experimental.tensor_float_32_execution_enabled() == tf32
print('ok')
'''
    result = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True,
                            cwd=REPO_DIR, check=False)
    assert result.stdout.strip() == 'ok', result.stderr


@pytest.mark.slow
def test_importing_the_package_does_not_load_tensorflow():
    result = subprocess.run([sys.executable, '-c', 'import sys, supervised_reptile; '
                             'print("tensorflow" in sys.modules)'],
                            capture_output=True, text=True, check=False)
    assert result.stdout.strip() == 'False'


def test_fit_calls_keras_callbacks_and_returns_a_history():
    x, y = blobs()
    events = []

    class Recorder(keras.callbacks.Callback):
        def on_train_begin(self, logs=None):
            events.append('begin')

        def on_train_batch_end(self, batch, logs=None):
            events.append(logs['loss'])

        def on_train_end(self, logs=None):
            events.append('end')

    learner = small_learner(mlp())
    history = learner.fit(sr.tasks.from_arrays(x, y, ways=3, shots=2), meta_iterations=7,
                          callbacks=[Recorder()], steps_per_epoch=3, verbose=0)
    assert events[0] == 'begin' and events[-1] == 'end'
    losses = events[1:-1]
    assert len(losses) == 7 and all(np.isfinite(loss) for loss in losses)
    assert isinstance(history, keras.callbacks.History)
    assert np.allclose(history.history['loss'], [np.mean(losses[:3]), np.mean(losses[3:6]),
                                                 losses[6]])
    assert learner.iteration == 7


def test_keras_tensorboard_callback_writes_the_epoch_loss(tmp_path):
    x, y = blobs()
    small_learner(mlp()).fit(sr.tasks.from_arrays(x, y, ways=3, shots=2), 4, steps_per_epoch=2,
                             callbacks=[keras.callbacks.TensorBoard(str(tmp_path))], verbose=0)
    steps, losses = read_scalars(str(tmp_path / 'train'), 'epoch_loss')
    assert steps == [0, 1] and all(np.isfinite(losses))


def test_validation_tasks_are_drawn_once_and_scored_as_evaluate_scores_them():
    x, y = blobs()
    # A meta step of 0 and SGD (no optimizer state) leave the learner as it was: a score that
    # moved from epoch to epoch would come from redrawn tasks.
    learner = small_learner(mlp(), inner_optimizer=sr.SGD(0.05), meta_step_size=0.0,
                            meta_step_size_final=0.0)
    history = learner.fit(sr.tasks.from_arrays(x, y, ways=3, shots=2), 6,
                          validation_tasks=sr.tasks.from_arrays(x, y, ways=3, shots=1, seed=3),
                          validation_num_tasks=7, steps_per_epoch=2, verbose=0)
    scores = history.history['val_accuracy']
    expected = learner.evaluate(sr.tasks.from_arrays(x, y, ways=3, shots=1, seed=3), 7,
                                verbose=0).mean
    assert scores == [expected] * 3


def test_the_same_seed_gives_the_same_tasks():
    x, y = blobs()

    def draws(seed):
        tasks = sr.tasks.from_arrays(x, y, ways=3, shots=2, seed=seed)
        _, meta_batch = tasks.training_tasks(2, 4, 3)
        (_, job), = tasks.evaluation_jobs(1, 3, 2)
        return meta_batch.head_indices, job.support_indices, job.query_indices

    for first, again in zip(draws(5), draws(5)):
        assert np.array_equal(first, again)
    assert not np.array_equal(draws(5)[0], draws(6)[0])


def test_evaluation_and_adaptation_leave_the_learner_as_it_was():
    x, y = blobs()
    learner = small_learner(mlp())
    learner.fit(sr.tasks.from_arrays(x, y, ways=3, shots=2), 3, verbose=0)
    before = values(learner.model.variables) + values(
        v for slots in learner.algorithm.optimizer.slots for v in slots)
    learner.evaluate(sr.tasks.from_arrays(x, y, ways=3, shots=1), 4, verbose=0)
    learner.adapt(x[:6], np.arange(6) % 3)
    after = values(learner.model.variables) + values(
        v for slots in learner.algorithm.optimizer.slots for v in slots)
    assert all(np.array_equal(b, a) for b, a in zip(before, after))


def test_adapt_fine_tunes_a_copy_as_evaluation_does():
    x, y = blobs()
    learner = small_learner(mlp(), transductive=True)
    learner.fit(sr.tasks.from_arrays(x, y, ways=3, shots=2), 3, verbose=0)
    support_x, support_y, queries = x[[0, 10, 20]], np.arange(3), x[[1, 11, 21]]
    adapted = learner.adapt(support_x, support_y)
    assert adapted is not learner.model
    predicted = learner.predict(support_x, support_y, queries)
    assert np.allclose(adapted(queries, training=True), predicted, atol=1e-5)


def test_regression_meta_training_lowers_the_query_loss():
    def line(rng, n):
        slope = rng.uniform(-2, 2)
        x = rng.uniform(-1, 1, size=(n, 1))
        return x, slope * x[:, 0] + 1.0

    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((1,)), keras.layers.Dense(16, activation='tanh'),
                              keras.layers.Dense(1)])
    learner = small_learner(model, loss='mse', inner_optimizer=sr.Adam(0.01), inner_steps=4,
                            eval_steps=8, eval_batch_size=5, transductive=True)
    test = sr.tasks.from_function(line, shots=5, query_shots=5, seed=1)
    before = learner.evaluate(test, 50, verbose=0)
    learner.fit(sr.tasks.from_function(line, shots=5, seed=0), 200, verbose=0)
    after = learner.evaluate(sr.tasks.from_function(line, shots=5, query_shots=5, seed=1), 50,
                             verbose=0)
    assert after.mean < before.mean / 2


def test_a_softmax_output_trains_as_its_logits_would_with_the_default_loss():
    x, y = blobs()
    logits, softmax = mlp(), mlp(activation='softmax')
    softmax.set_weights(logits.get_weights())
    initial = logits.get_weights()
    trained = []
    for model in (logits, softmax):
        small_learner(model).fit(sr.tasks.from_arrays(x, y, ways=3, shots=2, seed=4), 3,
                                 verbose=0)
        trained.append(values(model.variables))
    assert not np.allclose(trained[0][0], initial[0], atol=1e-4)
    for a, b in zip(*trained):
        assert np.allclose(a, b, atol=1e-5)


@keras.saving.register_keras_serializable(package='tests')
class SubclassedClassifier(keras.Model):
    """Two dense layers in a subclassed model, its softmax (if asked) inside call()."""

    def __init__(self, outputs=3, softmax=False, **kwargs):
        super().__init__(**kwargs)
        self.outputs_count = outputs
        self.softmax = softmax
        self.hidden = keras.layers.Dense(16, activation='relu')
        self.scores = keras.layers.Dense(outputs)

    def call(self, inputs):
        scores = self.scores(self.hidden(inputs))
        return tf.nn.softmax(scores) if self.softmax else scores

    def get_config(self):
        return {**super().get_config(), 'outputs': self.outputs_count, 'softmax': self.softmax}


def twin_of(sequential, softmax=False):
    """A SubclassedClassifier with the weights of an mlp()."""
    model = SubclassedClassifier(softmax=softmax)
    model(np.zeros((1, 8), np.float32))
    model.set_weights(sequential.get_weights())
    return model


@pytest.mark.parametrize('softmax', [False, True])
def test_a_subclassed_model_trains_evaluates_and_predicts_as_its_sequential_twin(softmax):
    x, y = blobs()
    sequential = mlp()
    subclassed = twin_of(sequential, softmax)
    outcomes = []
    for model in (sequential, subclassed):
        learner = small_learner(model, inner_optimizer=sr.Adam(0.01), transductive=True)
        history = learner.fit(sr.tasks.from_arrays(x, y, ways=3, shots=2, seed=4), 4,
                              steps_per_epoch=2, verbose=0,
                              validation_tasks=sr.tasks.from_arrays(x, y, ways=3, shots=1),
                              validation_num_tasks=4)
        score = learner.evaluate(sr.tasks.from_arrays(x, y, ways=3, shots=1, seed=5), 6,
                                 verbose=0)
        outputs = learner.predict(x[[0, 10, 20]], np.arange(3), x[[1, 11, 21]])
        outcomes.append((values(model.trainable_variables), history.history, score, outputs))
    (weights, history, score, outputs), (twin_weights, twin_history, twin_score, twin_outputs) = \
        outcomes
    for a, b in zip(weights, twin_weights):
        assert np.allclose(a, b, atol=1e-5)
    assert np.allclose(history['val_accuracy'], twin_history['val_accuracy'])
    assert score.mean == pytest.approx(twin_score.mean)
    if softmax:
        outputs = tf.nn.softmax(outputs).numpy()
    assert np.allclose(outputs, twin_outputs, atol=1e-5)


def test_an_unbuilt_subclassed_model_is_built_on_the_first_tasks(tmp_path):
    x, y = blobs()
    learner = small_learner(SubclassedClassifier())
    learner.fit(sr.tasks.from_arrays(x, y, ways=3, shots=2), 3, verbose=0)
    adapted = learner.adapt(x[:3], np.arange(3))
    assert adapted(x[:3]).shape == (3, 3)
    learner.save(tmp_path / 'saved')
    tasks = sr.tasks.from_arrays(x, y, ways=3, shots=1, seed=2)
    reloaded = sr.load(tmp_path / 'saved').evaluate(tasks, 5, verbose=0).mean
    assert reloaded == learner.evaluate(sr.tasks.from_arrays(x, y, ways=3, shots=1, seed=2), 5,
                                        verbose=0).mean


def test_batch_normalization_uses_batch_statistics_and_keeps_its_moving_statistics():
    model = keras.Sequential([keras.Input((8,)), keras.layers.Dense(16),
                              keras.layers.BatchNormalization(epsilon=1e-3),
                              keras.layers.Dense(3)])
    norm = model.layers[1]
    # Moving statistics far from any batch's: predictions made with them would differ wildly.
    norm.moving_mean.assign(np.full(16, 50.0, np.float32))
    norm.moving_variance.assign(np.full(16, 0.01, np.float32))
    x, y = blobs()
    learner = small_learner(model, transductive=True, eval_steps=0)
    queries = x[[1, 11, 21, 5]]
    outputs = learner.predict(x[[0, 10, 20]], np.arange(3), queries)
    dense, _, head = (layer.get_weights() for layer in model.layers)
    hidden = queries @ dense[0] + dense[1]
    normalised = (hidden - hidden.mean(0)) / np.sqrt(hidden.var(0) + 1e-3)
    gamma, beta = norm.get_weights()[:2]
    expected = (gamma * normalised + beta) @ head[0] + head[1]
    assert np.allclose(outputs, expected, atol=1e-4)
    learner.fit(sr.tasks.from_arrays(x, y, ways=3, shots=2), 3, verbose=0)
    assert np.array_equal(norm.moving_mean, np.full(16, 50.0))
    assert np.array_equal(norm.moving_variance, np.full(16, 0.01, np.float32))


def test_a_layer_that_changes_its_state_is_refused_by_name():
    model = keras.Sequential([keras.Input((8,)), keras.layers.Dense(16),
                              keras.layers.Dropout(0.5, name='my_dropout'), keras.layers.Dense(3)])
    x, y = blobs()
    with pytest.raises(ValueError, match='my_dropout'):
        small_learner(model).fit(sr.tasks.from_arrays(x, y, ways=3, shots=2), 1, verbose=0)


def functional_dense():
    inputs = keras.Input((8,))
    return keras.Model(inputs, keras.layers.Dense(3)(keras.layers.Dense(16)(inputs)))


def sequential_of_vectors():
    return keras.Sequential([keras.Input((8,)), keras.layers.Flatten(), keras.layers.Dense(3)])


@pytest.mark.parametrize('build, why', [
    (functional_dense, 'takes Sequential models'),
    (sequential_of_vectors, 'images [batch, height, width, channels]')])
def test_the_grouped_layout_falls_back_to_the_per_task_layout_with_a_note(capsys, build, why):
    model = build()
    network = networks.TaskNetwork(model, grouped=True)
    assert not network.grouped
    note = capsys.readouterr().err
    assert why in note and 'per-task layout' in note
    weights = [tf.stack([v.value] * 2) for v in network.variables]
    inputs = tf.random.normal([2, 4, 8])
    assert np.allclose(network(weights, inputs), tf.stack([model(inputs[0]), model(inputs[1])]),
                       atol=1e-6)


def test_the_grouped_layout_takes_a_dense_head_without_bias():
    model = keras.Sequential([keras.Input((6, 6, 1)), keras.layers.Conv2D(4, 3),
                              keras.layers.ReLU(), keras.layers.Flatten(),
                              keras.layers.Dense(3, use_bias=False)])
    grouped = networks.TaskNetwork(model, grouped=True)
    per_task = networks.TaskNetwork(model)
    assert grouped.grouped
    rng = np.random.default_rng(0)
    weights = [tf.constant(rng.normal(size=(2,) + tuple(v.shape)), tf.float32)
               for v in grouped.variables]
    inputs = tf.constant(rng.random((2, 5, 6, 6, 1)), tf.float32)
    assert np.allclose(grouped(weights, inputs), per_task(weights, inputs), atol=1e-4)


def test_weight_decay_is_a_fraction_and_a_rate_is_refused():
    with pytest.raises(ValueError, match='weight_decay'):
        sr.Reptile(mlp(), weight_decay=1.0)
    learner = sr.Reptile(mlp(), weight_decay=1e-4)
    assert learner.algorithm.weight_decay == pytest.approx(1 - 1e-4)


def test_save_and_load_keep_the_weights_the_optimizer_state_and_the_recipe(tmp_path):
    x, y = blobs()
    learner = small_learner(mlp(), inner_optimizer=sr.Adam(0.01), transductive=True)
    learner.fit(sr.tasks.from_arrays(x, y, ways=3, shots=2), 4, verbose=0)
    learner.save(tmp_path / 'saved')
    loaded = sr.load(tmp_path / 'saved')
    assert loaded.inner_optimizer == learner.inner_optimizer and loaded.transductive
    assert loaded.iteration == 4 and loaded.loss_reduction == 'mean'
    state = [learner.model.variables, [v for s in learner.algorithm.optimizer.slots for v in s]]
    reloaded = [loaded.model.variables, [v for s in loaded.algorithm.optimizer.slots for v in s]]
    for original, copy in zip(state, reloaded):
        assert all(np.array_equal(a, b) for a, b in zip(values(original), values(copy)))
    assert int(loaded.algorithm.optimizer.iterations) == int(learner.algorithm.optimizer.iterations)
    scores = [l.evaluate(sr.tasks.from_arrays(x, y, ways=3, shots=1, seed=9), 5, verbose=0).mean
              for l in (learner, loaded)]
    assert scores[0] == scores[1]


def test_bad_arguments_are_one_line_value_errors():
    x, y = blobs()
    with pytest.raises(ValueError, match='ways must be a positive integer'):
        sr.tasks.from_arrays(x, y, ways=0)
    with pytest.raises(ValueError, match='from_arrays takes'):
        sr.tasks.from_arrays(x, y[:-1])
    with pytest.raises(ValueError, match='sample_task'):
        sr.tasks.from_function(lambda rng, n: (np.zeros((n, 1)), np.zeros(n + 1))
                               ).example_inputs()
    with pytest.raises(ValueError, match='no Keras loss'):
        sr.Reptile(mlp(), loss='no_such_loss')


def test_periodic_evaluation_reads_blocks_frozen_in_evaluation_from_its_snapshot():
    x, y = blobs()
    model = mlp()
    frozen = model.layers[0].trainable_variables
    learner = small_learner(model, frozen_in_evaluation=frozen)
    tasks = sr.tasks.from_arrays(x, y, ways=3, shots=2)
    learner.fit(tasks, 2, verbose=0)
    snapshot = learner.algorithm.snapshot()
    jobs = learner.evaluator.jobs(sr.tasks.from_arrays(x, y, ways=3, shots=1), 2)
    expected = learner.evaluator.query_logits(jobs)
    learner.fit(tasks, 3, initial_iteration=2, verbose=0)  # moves the frozen layer too
    assert np.array_equal(learner.evaluator.query_logits(jobs, start=snapshot), expected)


# The examples of docs/library.md: the doc shows each file whole, and each runs.

def test_the_doc_shows_every_example_whole():
    doc = DOC.read_text(encoding='utf-8')
    blocks = re.findall(r'```python\n# (examples/\S+)\n(.*?)```', doc, re.S)
    assert sorted(name for name, _ in blocks) == sorted(
        'examples/' + path.name for path in EXAMPLES.glob('*.py'))
    for name, code in blocks:
        assert code == (REPO_DIR / name).read_text(encoding='utf-8')


def run_example(name, *arguments, cwd=None):
    result = subprocess.run([sys.executable, str(EXAMPLES / name), *arguments],
                            cwd=cwd or REPO_DIR, capture_output=True, text=True, timeout=900,
                            env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL='3'), check=False)
    assert result.returncode == 0, result.stderr[-2000:]
    return result.stdout


@pytest.mark.slow
def test_own_arrays_example_beats_the_unmeta_trained_start_by_a_wide_margin(tmp_path):
    output = run_example('own_arrays.py', '400', cwd=tmp_path)
    before, after = [float(v) for v in re.findall(r'meta-training: +([\d.]+)', output)]
    assert after > before + 0.15
    assert float(re.search(r'reloaded: ([\d.]+)', output).group(1)) == after


@pytest.mark.slow
def test_sine_example_lowers_the_query_error(tmp_path):
    output = run_example('sine.py', '1500', cwd=tmp_path)
    before, after = [float(v) for v in re.findall(r'meta-training: +([\d.]+)', output)]
    assert after < before / 2


@pytest.mark.slow
def test_omniglot_example_gives_the_run_scripts_numbers(real_omniglot_dir, tmp_path):
    (tmp_path / 'data').mkdir()
    (tmp_path / 'data' / 'omniglot').symlink_to(real_omniglot_dir)
    script = run_script(tmp_path, '--preset', 'o15t', '--meta-iters', '21', '--eval-samples',
                        '8', '--checkpoint', 'ckpt')
    assert script.returncode == 0, script.stderr[-2000:]
    example = run_example('omniglot_row1.py', '21', '8', cwd=tmp_path)

    def numbers(output):
        return [line for line in output.splitlines()
                if line.startswith('batch ') or ' accuracy: ' in line]
    assert len(numbers(example)) == 5
    assert numbers(example) == numbers(script.stdout)

