"""The library's rules as a Keras user relies on them: the meta-updates and the inner loss against
NumPy, the training state across fits and saves, Keras' optimizers and stop_training, values
that reach the model as given, task sources from tf.data."""

import json
import random
import subprocess
import sys

import keras
import numpy as np
import pytest
import tensorflow as tf

import supervised_reptile as sr

from conftest import REPO_DIR, blobs, sine, sine_model

# One regression task, the same at every draw: 4 points of a plane, so that every inner
# mini-batch of 4 is the whole task (in some order) and NumPy can follow the algorithm.
POINTS = np.array([[0.5, -1.0], [1.5, 0.25], [-0.75, 2.0], [0.1, 0.3]], np.float32)
TARGETS = np.array([1.0, -0.5, 2.5, 0.2], np.float32)
WEIGHTS = [np.array([[0.3], [-0.2]], np.float32), np.array([0.1], np.float32)]


def the_plane(rng, n):
    del rng  # the task never changes
    return POINTS[:n], TARGETS[:n]


def linear_model():
    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
    model.set_weights(WEIGHTS)
    return model


def numpy_meta_training(algorithm, iterations, first, learning_rate, steps, step_size,
                        final_step_size, weight_decay, reduction):
    """The weights after meta-iterations first..iterations-1 of Reptile or FOMAML with SGD on
    the_plane, in float64 NumPy: the algorithm as the paper and the reference define it."""
    w, b = (value.astype(np.float64) for value in WEIGHTS)
    scale = 1.0 if reduction == 'mean' else len(POINTS)
    for iteration in range(first, iterations):
        fraction = iteration / iterations
        epsilon = fraction * final_step_size + (1 - fraction) * step_size
        task_w, task_b = w.copy(), b.copy()
        for _ in range(steps):
            previous = task_w.copy(), task_b.copy()
            task_w, task_b = task_w * (1 - weight_decay), task_b * (1 - weight_decay)
            residual = POINTS @ task_w + task_b - TARGETS[:, None]
            task_w = task_w - learning_rate * scale * 2 * POINTS.T @ residual / len(POINTS)
            task_b = task_b - learning_rate * scale * 2 * residual.sum(0) / len(POINTS)
        if algorithm == 'reptile':
            w, b = w + epsilon * (task_w - w), b + epsilon * (task_b - b)
        else:  # first-order MAML: the last step's displacement
            w, b = w + epsilon * (task_w - previous[0]), b + epsilon * (task_b - previous[1])
    return w, b


@pytest.mark.parametrize('algorithm, reduction, weight_decay, iterations, first', [
    ('reptile', 'mean', 0.0, 3, None),
    ('fomaml', 'mean', 0.0, 3, None),
    ('reptile', 'sum', 0.1, 3, None),
    ('fomaml', 'sum', 0.1, 5, 3),
])
def test_meta_training_follows_the_algorithm_step_by_step(algorithm, reduction, weight_decay,
                                                          iterations, first):
    learner_class = sr.Reptile if algorithm == 'reptile' else sr.FOMAML
    learning_rate = 0.05 if reduction == 'mean' else 0.0125
    learner = learner_class(linear_model(), loss='mse', inner_optimizer=sr.SGD(learning_rate),
                            loss_reduction=reduction, inner_steps=3, inner_batch_size=4,
                            meta_batch_size=2, meta_step_size=1.0, meta_step_size_final=0.2,
                            weight_decay=weight_decay)
    learner.fit(sr.tasks.from_function(the_plane, shots=4), iterations, initial_iteration=first,
                verbose=0)
    expected = numpy_meta_training(algorithm, iterations, first or 0, learning_rate, 3, 1.0, 0.2,
                                   weight_decay, reduction)
    for value, want in zip(learner.model.get_weights(), expected):
        assert np.allclose(value, want, rtol=1e-5, atol=1e-6)
    assert learner.iteration == iterations


def test_a_summed_loss_with_sgd_is_a_mean_loss_with_the_rate_times_the_batch():
    x, y = blobs()
    trained = []
    for reduction, learning_rate in (('sum', 0.01), ('mean', 0.01 * 4)):
        model = mlp()
        model.set_weights(mlp(seed=1).get_weights())
        learner = sr.Reptile(model, inner_optimizer=sr.SGD(learning_rate),
                             loss_reduction=reduction, inner_steps=3, inner_batch_size=4,
                             meta_batch_size=2)
        learner.fit(sr.tasks.from_arrays(x, y, ways=3, shots=2, seed=1), 4, verbose=0)
        trained.append(model.get_weights())
    assert not np.allclose(trained[0][0], mlp(seed=1).get_weights()[0], atol=1e-3)
    for summed, averaged in zip(*trained):
        assert np.allclose(summed, averaged, rtol=1e-5, atol=1e-6)


def mlp(seed=0, outputs=3):
    keras.utils.set_random_seed(seed)
    return keras.Sequential([keras.Input((8,)), keras.layers.Dense(16, activation='relu'),
                             keras.layers.Dense(outputs)])


def small_learner(model, learner_class=sr.Reptile, **settings):
    options = dict(inner_optimizer=sr.Adam(0.01), inner_steps=2, inner_batch_size=4,
                   meta_batch_size=2, eval_steps=3, eval_batch_size=3, meta_step_size=1.0,
                   meta_step_size_final=0.0)
    options.update(settings)
    return learner_class(model, **options)


class StopAt(keras.callbacks.Callback):
    """Sets model.stop_training (or the learner's) once learner.iteration reaches `at`."""

    def __init__(self, learner, at, through_learner=False):
        super().__init__()
        self.learner, self.at, self.through_learner = learner, at, through_learner
        self.epochs_ended = 0

    def on_train_batch_end(self, batch, logs=None):
        if self.learner.iteration == self.at:
            if self.through_learner:
                self.learner.stop_training = True
            else:
                self.model.stop_training = True

    def on_epoch_end(self, epoch, logs=None):
        self.epochs_ended += 1


def classification_source(seed=0):
    x, y = blobs()
    return sr.tasks.from_arrays(x, y, ways=3, shots=2, seed=seed)


def sine_source(seed=0):
    return sr.tasks.from_function(sine, shots=5, seed=seed)


@pytest.mark.parametrize('kind', ['classification', 'regression'])
@pytest.mark.parametrize('algorithm', [sr.Reptile, sr.FOMAML])
def test_a_fit_stopped_and_fitted_again_ends_as_one_fit(kind, algorithm):
    source, model, loss = ((classification_source, mlp, 'sparse_categorical_crossentropy')
                           if kind == 'classification' else (sine_source, sine_model, 'mse'))
    whole = small_learner(model(), algorithm, loss=loss)
    whole.fit(source(), 8, steps_per_epoch=3, verbose=0)
    split = small_learner(model(), algorithm, loss=loss)
    tasks = source()
    split.evaluate(source(seed=5), 2, verbose=0)  # evaluation between fits changes nothing
    split.fit(tasks, 8, steps_per_epoch=3, callbacks=[StopAt(split, 5)], verbose=0)
    assert split.iteration == 5
    split.evaluate(source(seed=5), 2, verbose=0)
    split.fit(tasks, 8, steps_per_epoch=3, verbose=0)  # goes on at 5, annealing over 8
    assert split.iteration == 8
    for a, b in zip(whole.model.get_weights(), split.model.get_weights()):
        assert np.array_equal(a, b)


@pytest.mark.parametrize('source', [classification_source, sine_source])
def test_fit_draws_from_its_source_only_the_tasks_it_trains_on(source):
    learner = small_learner(sine_model() if source is sine_source else mlp(),
                            loss='mse' if source is sine_source else
                            'sparse_categorical_crossentropy')
    tasks = source()
    learner.fit(tasks, 3, verbose=0)
    learner.fit(tasks, 5, verbose=0)
    drawn_by_hand = source()
    for _ in range(5):
        drawn_by_hand.training_tasks(learner.meta_batch_size, learner.inner_batch_size,
                                     learner.inner_steps)
    assert tasks.rng.bit_generator.state == drawn_by_hand.rng.bit_generator.state


@pytest.mark.parametrize('through_learner', [False, True])
def test_stop_training_stops_after_the_current_meta_iteration(through_learner):
    learner = small_learner(mlp())
    stop = StopAt(learner, 2, through_learner)
    history = learner.fit(classification_source(), 20, steps_per_epoch=5, callbacks=[stop],
                          verbose=0)
    assert learner.iteration == 2
    assert stop.epochs_ended == 1 and len(history.history['loss']) == 1


def test_fit_again_with_the_same_total_says_how_to_go_on():
    learner = small_learner(mlp())
    learner.fit(classification_source(), 3, verbose=0)
    with pytest.raises(ValueError, match='initial_iteration=0'):
        learner.fit(classification_source(), 3, verbose=0)
    learner.fit(classification_source(), 3, initial_iteration=0, verbose=0)
    assert learner.iteration == 3


def test_a_saved_learner_goes_on_from_its_iteration(tmp_path):
    tasks = classification_source()
    whole = small_learner(mlp())
    whole.fit(classification_source(), 7, verbose=0)
    first = small_learner(mlp())
    first.fit(tasks, 7, callbacks=[StopAt(first, 4)], verbose=0)
    first.save(tmp_path / 'saved')
    loaded = sr.load(tmp_path / 'saved')
    assert loaded.iteration == 4
    loaded.fit(tasks, 7, verbose=0)
    for a, b in zip(whole.model.get_weights(), loaded.model.get_weights()):
        assert np.array_equal(a, b)


@pytest.mark.parametrize('keras_optimizer, rule', [
    (lambda: keras.optimizers.Adam(1e-3, beta_1=0.0, epsilon=1e-8), sr.Adam(1e-3)),
    (lambda: keras.optimizers.Adam(0.02), sr.Adam(0.02, beta_1=0.9, epsilon=1e-7)),
    (lambda: keras.optimizers.SGD(0.05), sr.SGD(0.05)),
])
def test_a_keras_adam_or_sgd_is_the_fused_rule_with_its_hyper_parameters(keras_optimizer, rule):
    learners = [small_learner(mlp(), inner_optimizer=optimizer)
                for optimizer in (keras_optimizer(), rule)]
    assert learners[0].inner_optimizer == rule
    for learner in learners:
        learner.fit(classification_source(), 3, verbose=0)
    for a, b in zip(*(learner.model.get_weights() for learner in learners)):
        assert np.array_equal(a, b)


@pytest.mark.parametrize('optimizer, named', [
    (lambda: keras.optimizers.SGD(0.1, momentum=0.9), 'momentum'),
    (lambda: keras.optimizers.Adam(1e-3, amsgrad=True), 'amsgrad'),
    (lambda: keras.optimizers.Adam(1e-3, clipnorm=1.0), 'clipnorm'),
    (lambda: keras.optimizers.SGD(0.1, weight_decay=0.01), 'weight_decay'),
    (lambda: keras.optimizers.Adam(keras.optimizers.schedules.ExponentialDecay(1e-3, 10, 0.9)),
     'schedule'),
    (lambda: keras.optimizers.RMSprop(), 'RMSprop'),
])
def test_what_the_fused_rules_cannot_do_is_refused_by_name(optimizer, named):
    with pytest.raises((ValueError, TypeError), match=named):
        sr.Reptile(mlp(), inner_optimizer=optimizer())


def test_settings_cannot_change_behind_the_compiled_steps():
    learner = small_learner(mlp())
    for name, value in (('eval_steps', 10), ('transductive', True), ('loss', 'mse'),
                        ('inner_optimizer', sr.SGD(0.1)), ('loss_reduction', 'sum')):
        with pytest.raises(AttributeError, match=name):
            setattr(learner, name, value)
    assert learner.eval_steps == 3 and learner.evaluation_settings().inner_iters == 3


def embedding_model():
    keras.utils.set_random_seed(0)
    return keras.Sequential([keras.Input((4,)), keras.layers.Embedding(40, 8),
                             keras.layers.Flatten(), keras.layers.Dense(3)])


def test_uint8_token_ids_reach_the_model_as_given():
    rng = np.random.default_rng(0)
    ids = rng.integers(0, 40, size=(30, 4))
    labels = np.repeat(np.arange(10), 3)
    source = sr.tasks.from_arrays(ids.astype(np.uint8), labels, ways=3, shots=1)
    assert np.array_equal(source.classes.images, ids[np.argsort(labels, kind='stable')])
    learner = small_learner(embedding_model(), transductive=True)
    outputs = [learner.predict(ids[:3].astype(dtype), np.arange(3), ids[3:6].astype(dtype))
               for dtype in (np.uint8, np.int32, np.float32)]
    assert np.array_equal(outputs[0], outputs[1]) and np.array_equal(outputs[0], outputs[2])
    # Ids divided by 255 would all fall on id 0: the queries' outputs would be equal.
    assert not np.allclose(outputs[0][0], outputs[0][1])
    scores = [learner.evaluate(sr.tasks.from_arrays(ids.astype(dtype), labels, ways=3, shots=1,
                                                    seed=2), 6, verbose=0).mean
              for dtype in (np.uint8, np.int64)]
    assert scores[0] == scores[1]


def test_a_folder_source_scales_its_pixels_to_the_unit_interval(tmp_path):
    from PIL import Image  # pylint: disable=import-outside-toplevel
    for c in range(3):
        (tmp_path / ('c%d' % c)).mkdir()
        for n in range(2):
            Image.fromarray(np.full((6, 6), 100 * c + n, np.uint8)).save(
                tmp_path / ('c%d' % c) / ('%d.png' % n))
    source = sr.tasks.from_folder(tmp_path, ways=3, shots=1, image_size=4)
    assert source.classes.images.dtype == np.uint8
    model = keras.Sequential([keras.Input((4, 4, 1)), keras.layers.Flatten(),
                              keras.layers.Dense(3)])
    model.set_weights([np.ones((16, 3), np.float32), np.zeros(3, np.float32)])
    learner = small_learner(model, eval_steps=0, transductive=True)
    job = source.evaluation_jobs(1, 3, 0)[0]
    outputs = learner.evaluator.query_logits([job])[0]
    # Each query's score is the sum of its 16 pixels, scaled to [0, 1]: 16 * value / 255.
    values = job[0][job[1].query_indices].reshape(3, -1)[:, 0].astype(np.float64)
    assert np.allclose(outputs[:, 0], 16 * values / 255.0, rtol=1e-6)
    assert len(set(values)) == 3


@pytest.mark.parametrize('batched', [False, True])
def test_a_dataset_gives_the_tasks_of_its_arrays(batched):
    x, y = blobs()
    dataset = tf.data.Dataset.from_tensor_slices((x, y))
    if batched:
        dataset = dataset.batch(7)
    sources = [sr.tasks.from_dataset(dataset, ways=3, shots=2, seed=4),
               sr.tasks.from_arrays(x, y, ways=3, shots=2, seed=4)]
    assert np.array_equal(sources[0].classes.images, sources[1].classes.images)
    draws = [source.training_tasks(2, 4, 3)[1] for source in sources]
    assert np.array_equal(draws[0].head_indices, draws[1].head_indices)
    assert np.array_equal(draws[0].last_labels, draws[1].last_labels)


PREDICT_AFTER_LOADING = '''
import json
import sys
import numpy as np
import supervised_reptile as sr
support = np.ones((5, 28, 28, 1), np.float32) * np.arange(5)[:, None, None, None] / 4
print(json.dumps(sr.load(sys.argv[1]).predict(support, np.arange(5), np.full(
    (1, 28, 28, 1), 0.3, np.float32)).tolist()))
'''


@pytest.mark.slow
def test_the_package_models_save_and_load_without_custom_objects(tmp_path):
    learner = sr.Reptile(sr.models.omniglot_model(5), eval_steps=2)
    learner.save(tmp_path / 'omniglot')
    support = np.ones((5, 28, 28, 1), np.float32) * np.arange(5)[:, None, None, None] / 4
    expected = learner.predict(support, np.arange(5), np.full((1, 28, 28, 1), 0.3, np.float32))
    # A fresh process: nothing registered but what importing the package registers.
    loaded = subprocess.run([sys.executable, '-c', PREDICT_AFTER_LOADING,
                             str(tmp_path / 'omniglot')], capture_output=True, text=True,
                            check=False, cwd=REPO_DIR)
    assert loaded.returncode == 0, loaded.stderr[-2000:]
    assert np.array_equal(np.array(json.loads(loaded.stdout), np.float32), expected)


def test_a_function_loss_is_saved_by_name_and_asked_for_at_load(tmp_path):
    def squared_error(targets, outputs):
        return tf.reduce_sum((targets - outputs) ** 2, axis=-1)

    learner = small_learner(sine_model(), loss=squared_error)
    learner.fit(sine_source(), 2, verbose=0)
    learner.save(tmp_path / 'saved')
    with pytest.raises(ValueError, match='squared_error.*loss='):
        sr.load(tmp_path / 'saved')
    loaded = sr.load(tmp_path / 'saved', loss=squared_error)
    assert loaded.evaluate(sine_source(3), 3, verbose=0).mean == learner.evaluate(
        sine_source(3), 3, verbose=0).mean


def test_save_replaces_an_earlier_save_and_refuses_a_foreign_directory(tmp_path):
    learner = small_learner(mlp())
    learner.save(tmp_path / 'saved')
    learner.fit(classification_source(), 2, verbose=0)
    learner.save(tmp_path / 'saved')
    assert sr.load(tmp_path / 'saved').iteration == 2
    foreign = tmp_path / 'photos'
    foreign.mkdir()
    (foreign / 'holiday.jpg').write_bytes(b'not a learner')
    with pytest.raises(ValueError, match='not a saved learner'):
        learner.save(foreign)
    assert (foreign / 'holiday.jpg').read_bytes() == b'not a learner'


def test_a_frozen_batch_statistics_layer_is_kept_and_a_frozen_keras_one_refused():
    keras_norm = keras.layers.BatchNormalization(name='frozen_norm')
    keras_norm.trainable = False
    with pytest.raises(ValueError, match='frozen_norm'):
        sr.Reptile(keras.Sequential([keras.Input((8,)), keras.layers.Dense(4), keras_norm,
                                     keras.layers.Dense(3)]))
    ours = sr.models.BatchStatsNormalization()
    ours.trainable = False
    learner = small_learner(keras.Sequential([keras.Input((8,)), keras.layers.Dense(4), ours,
                                              keras.layers.Dense(3)]))
    learner.fit(classification_source(), 2, verbose=0)


def test_adapt_leaves_the_callers_random_draws_as_they_were():
    learner = small_learner(mlp())
    random.seed(1)
    expected = [random.random() for _ in range(3)]
    random.seed(1)
    learner.adapt(blobs()[0][:3], np.arange(3))
    assert [random.random() for _ in range(3)] == expected


# Evaluation: the plane's four points are the support, a fifth point the query.
QUERY, QUERY_TARGET = np.array([[0.7, -0.4]], np.float32), np.array([0.9], np.float32)


def the_plane_and_a_query(rng, n):
    del rng  # the learner also draws a support set alone, to check the source
    return np.concatenate([POINTS, QUERY])[:n], np.concatenate([TARGETS, QUERY_TARGET])[:n]


@pytest.mark.parametrize('reduction, weight_decay', [('mean', 0.0), ('sum', 0.1)])
def test_evaluation_takes_its_own_steps_on_its_own_batches_then_scores_the_query(reduction,
                                                                                 weight_decay):
    """eval_steps (3, not the training's 5) steps on mini-batches of eval_batch_size (4: the
    whole support set, in some order), then the query's squared error, in float64 NumPy."""
    learning_rate = 0.05 if reduction == 'mean' else 0.0125
    learner = sr.Reptile(linear_model(), loss='mse', inner_optimizer=sr.SGD(learning_rate),
                         loss_reduction=reduction, inner_steps=5, inner_batch_size=2,
                         eval_steps=3, eval_batch_size=4, weight_decay=weight_decay)
    source = sr.tasks.from_function(the_plane_and_a_query, shots=4, query_shots=1)
    score = learner.evaluate(source, num_tasks=1, verbose=0)
    w, b = (value.astype(np.float64) for value in WEIGHTS)
    scale = 1.0 if reduction == 'mean' else len(POINTS)
    for _ in range(3):
        w, b = w * (1 - weight_decay), b * (1 - weight_decay)
        residual = POINTS @ w + b - TARGETS[:, None]
        w = w - learning_rate * scale * 2 * POINTS.T @ residual / len(POINTS)
        b = b - learning_rate * scale * 2 * residual.sum(0) / len(POINTS)
    expected = float(((QUERY @ w + b - QUERY_TARGET) ** 2).mean())
    assert score.mean == pytest.approx(expected, rel=1e-5)
    assert learner.model.get_weights()[0] == pytest.approx(WEIGHTS[0])  # evaluation keeps none


def recording_draws(source):
    """source, keeping in source.meta_batches every meta-batch the learner draws from it."""
    draw, source.meta_batches = source.training_tasks, []

    def training_tasks(*arguments):
        pool, meta_batch = draw(*arguments)
        source.meta_batches.append(meta_batch)
        return pool, meta_batch
    source.training_tasks = training_tasks
    return source


def test_fomamls_last_inner_mini_batch_is_its_held_out_tail():
    """sr.FOMAML(tail_shots=1) trains each task's last step on an image of each class held out
    of the other mini-batches (the reference's --foml-tail), not on an ordinary mini-batch."""
    source = recording_draws(classification_source())
    learner = small_learner(mlp(), sr.FOMAML, inner_steps=3, inner_batch_size=2, tail_shots=1)
    learner.fit(source, 2, verbose=0)
    assert len(source.meta_batches) == 2
    for meta_batch in source.meta_batches:
        assert meta_batch.last_indices.shape == (2, 3)  # tasks x (3 ways x 1 tail shot)
        assert meta_batch.head_indices.shape == (2, 2, 2)
        for head, last, labels in zip(meta_batch.head_indices, meta_batch.last_indices,
                                      meta_batch.last_labels):
            assert sorted(labels) == [0, 1, 2]  # one of each class, as the reference's tail
            assert not set(last) & set(head.reshape(-1))
