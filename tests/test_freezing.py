"""Frozen conv blocks (--freeze-blocks, --freeze-eval-blocks): left out of meta-training, of
evaluation fine-tuning and of the optimizer's state, and of the gradient computation.

A meta-step with a frozen block is followed in NumPy in test_reptile.py (among the algorithm's
tests that tools/mutants.py runs); evaluation with a block frozen in it, here."""

from absl import flags
import keras
import numpy as np
import pytest
import tensorflow as tf

from supervised_reptile import args, backbone, models, recipes, sampling
from supervised_reptile.errors import UserError
from supervised_reptile.evaluation import Evaluator
from supervised_reptile.inner_loop import SGD, Adam, gather_inputs
from supervised_reptile.reptile import Reptile
from supervised_reptile.settings import Evaluation

from conftest import random_classes
from numpy_reference import CLASSES as SMALL_CLASSES
from numpy_reference import (NETWORK_ROUNDINGS, ROUNDING, NumpyAdam, assert_rounded, f32,
                             numpy_evaluation, numpy_meta_step, small_model, training_tasks,
                             values)

CLASSES = random_classes(12, 8, seed=3)
IMAGES = tf.constant(CLASSES.images)
EVALUATION = Evaluation(inner_batch=4, inner_iters=5, transductive=True)


def frozen_reptile(blocks, eval_blocks=None, rule=None):
    keras.utils.set_random_seed(1)
    model = models.omniglot_model(3)
    backbone.freeze(model, blocks)
    frozen_in_evaluation = backbone.block_variables(
        model, blocks if eval_blocks is None else eval_blocks)
    return Reptile(model, rule or Adam(0.01), frozen_in_evaluation=frozen_in_evaluation)


def meta_batch(seed=0, iters=3):
    rng = np.random.default_rng(seed)
    return sampling.stack_tasks([sampling.training_task(CLASSES, 3, 4, 6, iters, False, rng)
                                 for _ in range(2)])


def evaluation_job():
    return CLASSES.images, sampling.evaluation_task(
        CLASSES, 3, 2, EVALUATION.inner_batch, EVALUATION.inner_iters, False,
        np.random.default_rng(0))


def ids(variables):
    return {id(v) for v in variables}


def test_meta_training_and_evaluation_train_no_frozen_variable():
    reptile = frozen_reptile(1, eval_blocks=3)
    in_block = {k: ids(backbone.block_variables(reptile.model, k)) for k in (1, 3)}
    meta_trained = ids(reptile.meta_trained_variables)
    fine_tuned = ids(reptile.fine_tuned_variables)
    assert not meta_trained & in_block[1] and not fine_tuned & in_block[3]
    assert fine_tuned < meta_trained
    # Blocks 2-3 are meta-trained, only the last block and the head are fine-tuned.
    assert len(meta_trained) == 14 and len(fine_tuned) == 6


def test_the_inner_loops_hold_only_the_variables_they_train():
    reptile = frozen_reptile(1, eval_blocks=3)
    assert ids(reptile.network.variables) == ids(reptile.meta_trained_variables)
    assert reptile.network.shapes == [tuple(v.shape) for v in reptile.meta_trained_variables]
    evaluator = Evaluator(reptile, EVALUATION)
    assert ids(evaluator.network.variables) == ids(reptile.fine_tuned_variables)


def assert_gradients_only_of(asked, trained):
    """Each gradient asked for since the last call was of the trained variables, in their
    order, one for each (its tasks stacked before its shape); forget them."""
    assert asked
    for shapes in asked:
        assert len(shapes) == len(trained)
        assert [shape[len(shape) - len(v.shape):] for shape, v in zip(shapes, trained)] == [
            tuple(v.shape) for v in trained]
    asked.clear()


def test_no_gradient_is_taken_of_a_frozen_variable(monkeypatch):
    """Every gradient meta-training and evaluation ask for is of the weights they train, so no
    backward pass is built for the frozen blocks' weights, and those stay bit for bit as they
    were. The first block (frozen in both) holds the only kernel of one input channel."""
    asked = []

    class RecordingTape(tf.GradientTape):
        def gradient(self, target, sources, *more, **options):
            asked.append([tuple(source.shape) for source in tf.nest.flatten(sources)])
            return super().gradient(target, sources, *more, **options)

    monkeypatch.setattr(tf, 'GradientTape', RecordingTape)
    reptile = frozen_reptile(1, eval_blocks=3)
    first_kernel = tuple(backbone.blocks(reptile.model)[0][0].kernel.shape)
    frozen = backbone.block_variables(reptile.model, 1)
    frozen_before = values(frozen)
    reptile.train_step(IMAGES, meta_batch(), 0.5)
    assert all(shape[-4:] != first_kernel for shapes in asked for shape in shapes)
    assert_gradients_only_of(asked, reptile.meta_trained_variables)
    Evaluator(reptile, EVALUATION).count_correct([evaluation_job()])
    assert_gradients_only_of(asked, reptile.fine_tuned_variables)
    for before, variable in zip(frozen_before, frozen):
        np.testing.assert_array_equal(before, variable.numpy())


def test_adam_holds_no_state_for_frozen_variables():
    reptile = frozen_reptile(2)
    slots = reptile.optimizer.slots
    # A momentum and a velocity for each trained variable, of its shape.
    assert [[tuple(slot.shape) for slot in pair] for pair in slots] == [
        [(1, *v.shape)] * 2 for v in reptile.meta_trained_variables]
    first_kernel = backbone.blocks(reptile.model)[0][0].kernel
    assert (1, *first_kernel.shape) not in [tuple(slot.shape) for pair in slots for slot in pair]


def test_with_every_block_frozen_a_meta_step_trains_the_head_alone():
    """One inner SGD step: the head moves by the gradient of its own loss on the frozen
    features, and nothing else moves."""
    reptile = frozen_reptile(4, rule=SGD(0.01))
    head = reptile.model.get_layer('logits')
    assert ids(reptile.meta_trained_variables) == ids(head.variables)
    blocks_before = values(backbone.block_variables(reptile.model, 4))
    batch = meta_batch(iters=1)
    gradients = []
    for indices, labels in zip(batch.last_indices, batch.last_labels):
        with tf.GradientTape() as tape:
            logits = reptile.model(gather_inputs(IMAGES, indices), training=True)
            loss = tf.reduce_sum(tf.nn.sparse_softmax_cross_entropy_with_logits(labels, logits))
        gradients.append(values(tape.gradient(loss, head.variables)))
    old = values(head.variables)

    reptile.train_step(IMAGES, batch, 1.0)
    for got, o, g in zip(values(head.variables), old, zip(*gradients), strict=True):
        # The inner step, the sum and mean over two tasks and the interpolation round at the
        # weights' scale; the gradients, scaled by 0.01, at the network's.
        np.testing.assert_allclose(got, o - f32(0.01) * np.mean(g, axis=0), rtol=0,
                                   atol=ROUNDING * (5 * np.abs(o).max()
                                                    + 0.01 * NETWORK_ROUNDINGS * np.abs(g).max()))
    for before, after in zip(blocks_before, values(backbone.block_variables(reptile.model, 4))):
        np.testing.assert_array_equal(before, after)


def test_evaluation_only_freezing_fine_tunes_the_rest_from_the_meta_trained_state():
    """Meta-training trains everything; evaluation, with the first block frozen in it,
    fine-tunes the rest from the meta-trained weights and Adam state and reads the first
    block's meta-trained values as constants: the reference's evaluation with that block
    fixed."""
    model = small_model()
    reptile = Reptile(model, Adam(0.01), weight_decay=0.9,
                      frozen_in_evaluation=backbone.block_variables(model, 1))
    weights = values(model.trainable_variables)
    optimizer = NumpyAdam([w.shape for w in weights], 0.01)
    rng = np.random.default_rng(1)
    tasks = training_tasks(rng, count=2)
    reptile.train_step(tf.constant(SMALL_CLASSES.images), sampling.stack_tasks(tasks), 0.3)
    weights = numpy_meta_step(weights, optimizer, tasks, 0.3, weight_decay=0.9)
    job = (SMALL_CLASSES.images, sampling.evaluation_task(
        SMALL_CLASSES, 3, 2, EVALUATION.inner_batch, EVALUATION.inner_iters, False, rng))

    got = Evaluator(reptile, EVALUATION).query_logits([job])[0]
    # All but the first block's kernel, gamma and beta.
    want = numpy_evaluation(weights, optimizer, job[1], 0.9, trained=range(3, len(weights)))[True]
    assert_rounded(got, want, NETWORK_ROUNDINGS)


@pytest.fixture
def parse_flags():
    """Parse run_omniglot.py's flags and resolve them as the run script does."""
    def parse(*argv):
        args.FLAGS.unparse_flags()
        args.FLAGS(['run_omniglot.py', *argv])
        args.resolve('omniglot')
    yield parse
    args.FLAGS.unparse_flags()


def test_flags_build_reptile_with_frozen_blocks(parse_flags):
    parse_flags('--freeze-blocks', '1', '--freeze-eval-blocks', '2')
    reptile = recipes.build_learner(models.omniglot_model(5), args.flag_values()).algorithm
    blocks = backbone.blocks(reptile.model)
    assert [layer.trainable for layer in blocks[0]] == [False] * 3
    assert all(layer.trainable for block in blocks[1:] for layer in block)
    assert len(reptile.meta_trained_variables) == 14 and len(reptile.fine_tuned_variables) == 10
    parse_flags('--freeze-blocks', '3')
    learner = recipes.build_learner(models.omniglot_model(5), args.flag_values())
    assert len(learner.algorithm.fine_tuned_variables) == 6


@pytest.mark.parametrize('argv, error, message', [
    (['--freeze-blocks', '5'], flags.IllegalFlagValueError, 'freeze-blocks'),
    (['--freeze-blocks', '2', '--freeze-eval-blocks', '1'], UserError,
     'at least --freeze-blocks'),
    (['--pretrain-iters', '10', '--pretrained-backbone', 'x'], UserError,
     'drop it or --pretrain-iters'),
])
def test_inconsistent_flags_are_refused(parse_flags, argv, error, message):
    with pytest.raises(error, match=message):
        parse_flags(*argv)
