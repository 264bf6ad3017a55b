"""Pre-training the backbone (--pretrain-*); starting from a saved one (--pretrained-backbone)."""

import json
import os
import re

import keras
import numpy as np
import pytest
import tensorflow as tf

from supervised_reptile import backbone, models, pretrain
from supervised_reptile.errors import UserError
from supervised_reptile.inner_loop import Adam, gather_inputs
from supervised_reptile.reptile import Reptile

from conftest import random_classes, run_script_here, write_omniglot_tree

CLASSES = random_classes(24, 5, seed=4)
TINY = pretrain.Settings(iterations=30, learning_rate=0.01, batch_size=8, holdout_per_class=1,
                         eval_interval=2, patience=3)


def test_holdout_split_holds_out_the_same_drawings_of_every_class():
    training, held_out = pretrain.holdout_split(CLASSES, 2, np.random.default_rng(0))
    assert len(held_out.indices) == 2 * 24 and len(training.indices) == 3 * 24
    assert sorted(np.concatenate([training.indices, held_out.indices])) == list(range(5 * 24))
    positions = (held_out.indices - CLASSES.offsets[held_out.labels]).reshape(24, 2)
    assert (positions == positions[0]).all()
    np.testing.assert_array_equal(held_out.labels, np.repeat(np.arange(24), 2))


def test_holding_out_every_image_is_a_user_error():
    with pytest.raises(UserError, match='lower --pretrain-holdout'):
        pretrain.holdout_split(CLASSES, 5, np.random.default_rng(0))


def test_best_weights_are_those_of_the_lowest_finite_loss():
    model = keras.Sequential([keras.Input((1,)), keras.layers.Dense(1)])
    best = pretrain.BestWeights()
    for step, loss in enumerate([3.0, 2.0, float('nan'), 2.5, 1.0, 1.0]):
        model.layers[0].bias.assign([float(step)])
        best.update(step, (loss, 0.5), model)
    assert best.step == 4 and best.loss == 1.0 and best.weights[1] == [4.0]
    assert best.measurements_since == 1


def test_pretraining_has_a_head_per_class_and_stops_at_the_best_held_out_loss(tmp_path):
    keras.utils.set_random_seed(0)
    classifier = backbone.with_new_head(models.omniglot_model(5), len(CLASSES))
    assert classifier.output_shape == (None, 24)
    assert backbone.with_new_head(models.miniimagenet_model(5), 64).output_shape == (None, 64)
    lines = []
    record = pretrain.train_classifier(classifier, CLASSES, TINY, str(tmp_path), lines.append)
    held_out = {int(step): float(loss) for step, loss in
                re.findall(r'pretrain step (\d+): .* held-out loss=([\d.]+)', '\n'.join(lines))}
    assert record['best_holdout_loss'] == pytest.approx(min(held_out.values()), abs=1e-6)
    assert record['best_iteration'] == min(held_out, key=held_out.get)
    # Random images: memorising the training images soon stops helping the held-out ones.
    assert record['iterations'] == record['best_iteration'] + 3 * 2 < 30
    assert record['classes'] == 24 and record['holdout_images'] == 24
    assert os.listdir(tmp_path / 'train') and os.listdir(tmp_path / 'holdout')


def test_pretraining_shrinks_the_weights_then_takes_an_adam_step():
    settings = pretrain.Settings(iterations=3, learning_rate=0.01, weight_decay=5.0)
    keras.utils.set_random_seed(0)
    classifier = backbone.with_new_head(models.omniglot_model(5), len(CLASSES))
    twin = keras.models.clone_model(classifier)
    twin.set_weights(classifier.get_weights())
    indices = np.random.default_rng(0).permutation(len(CLASSES.images))[:3 * 8].reshape(3, 8)
    labels = indices // 5  # five images a class

    pretrain.ClassifierSteps(classifier, settings, CLASSES.images).train(indices, labels)
    optimizer = keras.optimizers.Adam(0.01, beta_1=0.9, beta_2=0.999, epsilon=1e-7)
    for batch, batch_labels in zip(indices, labels):
        for variable in twin.trainable_variables:
            variable.assign(variable * (1 - 0.01 * 5.0))
        with tf.GradientTape() as tape:
            logits = twin(gather_inputs(CLASSES.images, batch), training=True)
            loss = tf.reduce_sum(
                tf.nn.sparse_softmax_cross_entropy_with_logits(batch_labels, logits))
        optimizer.apply_gradients(zip(tape.gradient(loss, twin.trainable_variables),
                                      twin.trainable_variables))
    # The logits, not the weights: Adam turns the conv biases' gradients, zero but for float
    # rounding, into whole steps, which the batch normalization after them cancels.
    images = gather_inputs(CLASSES.images, indices[0])
    np.testing.assert_allclose(classifier(images, training=True), twin(images, training=True),
                               rtol=1e-4, atol=1e-5)


def weights(variables):
    return [v.numpy().copy() for v in variables]


def reptile_of(seed, freeze_blocks=0):
    keras.utils.set_random_seed(seed)
    model = models.omniglot_model(5)
    backbone.freeze(model, freeze_blocks)
    return Reptile(model, Adam(0.001))


def head(model):
    return model.get_layer('logits').variables


def test_a_run_starts_from_the_saved_backbone_with_its_own_fresh_head(tmp_path):
    trained = reptile_of(0, freeze_blocks=1)
    head_before = weights(head(trained.model))
    record = pretrain.prepare_backbone(trained, CLASSES, str(tmp_path), settings=TINY,
                                       log_fn=lambda line: None)
    assert not record['pretraining']['loaded'] and record['pretraining']['iterations'] <= 30
    assert record['meta_trained_parameters'] == 113221 - (9 * 64 + 64 + 2 * 64)
    blocks = backbone.block_variables(trained.model, 4)
    for before, variable in zip(head_before, head(trained.model)):
        np.testing.assert_array_equal(before, variable.numpy())

    fresh = reptile_of(1)
    fresh_head = weights(head(fresh.model))
    source = str(tmp_path / backbone.DIRECTORY)
    loaded = pretrain.prepare_backbone(fresh, CLASSES, str(tmp_path / 'other'), source=source)
    assert loaded['pretraining']['loaded'] and loaded['pretraining']['path'] == source
    assert loaded['pretraining']['best_holdout_loss'] == record['pretraining']['best_holdout_loss']
    for want, variable in zip(weights(blocks), backbone.block_variables(fresh.model, 4)):
        np.testing.assert_array_equal(want, variable.numpy())
    for want, variable in zip(fresh_head, head(fresh.model)):
        np.testing.assert_array_equal(want, variable.numpy())
    assert not os.path.exists(tmp_path / 'other')


def test_a_missing_or_unfitting_backbone_is_a_user_error(tmp_path):
    with pytest.raises(UserError, match='no pre-trained backbone in'):
        backbone.load(models.omniglot_model(5), str(tmp_path / 'nowhere'))
    backbone.save(models.miniimagenet_model(5), str(tmp_path / 'mini'), {})
    with pytest.raises(UserError, match='pre-trained for the miniimagenet model, not the omniglot'):
        backbone.load(models.omniglot_model(5), str(tmp_path / 'mini'))
    record_path = tmp_path / 'mini' / backbone.RECORD
    record_path.write_text(json.dumps({'architecture': 'omniglot'}))
    with pytest.raises(UserError, match='does not fit this model') as error:
        backbone.load(models.omniglot_model(5), str(tmp_path / 'mini'))
    assert '\n' not in str(error.value)


@pytest.fixture(scope='module')
def workdir(tmp_path_factory):
    """Enough synthetic characters for the 1200-character training split, three drawings each:
    one held out of pre-training, and 1-shot tasks."""
    root = tmp_path_factory.mktemp('work')
    write_omniglot_tree(root / 'data' / 'omniglot', alphabets=11, characters=110, drawings=3)
    return root


@pytest.mark.slow
def test_run_script_pretrains_freezes_and_records_it(workdir):
    result = run_script_here(workdir, '--shots', '1', '--train-shots', '2', '--inner-iters', '1',
                             '--meta-iters', '2', '--eval-samples', '2', '--pretrain-iters', '4',
                             '--pretrain-eval-interval', '2', '--pretrain-batch', '16',
                             '--pretrain-holdout', '1', '--freeze-blocks', '1',
                             '--checkpoint', 'ckpt')
    assert result.returncode == 0, result.stderr
    assert 'pretrain step 2: train loss=' in result.stdout and 'Test accuracy: ' in result.stdout
    ckpt = workdir / 'ckpt'
    config = json.loads((ckpt / 'config.json').read_text())
    pretraining = config['backbone']['pretraining']
    assert pretraining['classes'] == 4800 and pretraining['holdout_images'] == 4800
    assert pretraining['path'] == os.path.join('ckpt', backbone.DIRECTORY)
    assert config['flags']['freeze-blocks'] == 1 and config['flags']['pretrain-iters'] == 4
    assert (ckpt / backbone.DIRECTORY / backbone.RECORD).is_file()
    assert os.listdir(ckpt / 'pretrain' / 'train') and os.listdir(ckpt / 'pretrain' / 'holdout')


@pytest.mark.slow
def test_run_script_refuses_a_missing_backbone_in_one_line(workdir):
    result = run_script_here(workdir, '--meta-iters', '1', '--shots', '1',
                             '--pretrained-backbone', 'nowhere', '--checkpoint', 'refused')
    assert result.returncode == 2 and 'Traceback' not in result.stderr
    assert result.stderr.strip().splitlines()[-1].startswith(
        'error: no pre-trained backbone in nowhere; point --pretrained-backbone at')
    assert not (workdir / 'refused').exists()
