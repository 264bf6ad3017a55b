"""Frozen conv blocks (--freeze-blocks, --freeze-eval-blocks): left out of meta-training, of
evaluation fine-tuning and of the optimizer's state, and of the gradient computation."""

from absl import flags
import keras
import numpy as np
import pytest
import tensorflow as tf

from supervised_reptile import args, backbone, models, recipes, sampling
from supervised_reptile.errors import UserError
from supervised_reptile.evaluation import Evaluator
from supervised_reptile.inner_loop import SGD, Adam, gather_inputs
from supervised_reptile.reptile import FOML, Reptile
from supervised_reptile.settings import Evaluation

from conftest import random_classes

CLASSES = random_classes(12, 8, seed=3)
IMAGES = tf.constant(CLASSES.images)
EVALUATION = Evaluation(inner_batch=4, inner_iters=5, transductive=True)


def frozen_reptile(blocks, eval_blocks=None, algorithm=Reptile, rule=None, decay=1.0):
    keras.utils.set_random_seed(1)
    model = models.omniglot_model(3)
    backbone.freeze(model, blocks)
    frozen_in_evaluation = backbone.block_variables(
        model, blocks if eval_blocks is None else eval_blocks)
    return algorithm(model, rule or Adam(0.01), weight_decay=decay,
                     frozen_in_evaluation=frozen_in_evaluation)


def meta_batch(seed=0, iters=3):
    rng = np.random.default_rng(seed)
    return sampling.stack_tasks([sampling.training_task(CLASSES, 3, 4, 6, iters, False, rng)
                                 for _ in range(2)])


def evaluation_job():
    return CLASSES.images, sampling.evaluation_task(
        CLASSES, 3, 2, EVALUATION.inner_batch, EVALUATION.inner_iters, False,
        np.random.default_rng(0))


def values(variables):
    return [v.numpy().copy() for v in variables]


def ids(variables):
    return {id(v) for v in variables}


@pytest.mark.parametrize('algorithm', [Reptile, FOML])
def test_frozen_blocks_stay_bit_for_bit_unchanged_while_the_rest_trains(algorithm):
    reptile = frozen_reptile(2, algorithm=algorithm, decay=0.5)
    frozen = backbone.block_variables(reptile.model, 2)
    frozen_before = values(frozen)
    kernels = [v for v in reptile.meta_trained_variables if v.name == 'kernel']
    kernels_before = values(kernels)
    for seed in range(2):
        reptile.train_step(IMAGES, meta_batch(seed), 0.5)
    Evaluator(reptile, EVALUATION).count_correct([evaluation_job()])
    for before, variable in zip(frozen_before, frozen):
        np.testing.assert_array_equal(before, variable.numpy())
    assert len(kernels) == 3  # two unfrozen conv blocks and the head
    for before, variable in zip(kernels_before, kernels):
        assert not np.allclose(before, variable.numpy())


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
    expected = [v - 0.01 * np.mean(g, axis=0)
                for v, g in zip(values(head.variables), zip(*gradients))]

    reptile.train_step(IMAGES, batch, 1.0)
    for got, want in zip(values(head.variables), expected):
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
    for before, after in zip(blocks_before, values(backbone.block_variables(reptile.model, 4))):
        np.testing.assert_array_equal(before, after)


def eager_fine_tune(model, optimizer, task, trained):
    """Fine-tune as an evaluation task does, step by step, training only `trained`; return the
    transductive query logits."""
    for indices, labels in zip(task.batch_indices, task.batch_labels):
        with tf.GradientTape() as tape:
            logits = model(gather_inputs(IMAGES, indices), training=True)
            loss = tf.reduce_sum(tf.nn.sparse_softmax_cross_entropy_with_logits(labels, logits))
        optimizer.apply_gradients(zip(tape.gradient(loss, trained), trained))
    return model(gather_inputs(IMAGES, task.query_indices), training=True).numpy()


def test_evaluation_only_freezing_fine_tunes_the_rest():
    # A large epsilon keeps compiled and eager steps comparable (see test_reptile.smooth_adam).
    job = evaluation_job()
    reptile = frozen_reptile(0, eval_blocks=2, rule=Adam(0.01, epsilon=0.1))
    got = Evaluator(reptile, EVALUATION).query_logits([job], 1)[0]
    twin = frozen_reptile(0).model
    trained = [v for v in twin.trainable_variables
               if id(v) not in ids(backbone.block_variables(twin, 2))]
    optimizer = keras.optimizers.Adam(0.01, beta_1=0.0, beta_2=0.999, epsilon=0.1)
    optimizer.build(twin.trainable_variables)
    np.testing.assert_allclose(got, eager_fine_tune(twin, optimizer, job[1], trained),
                               rtol=1e-4, atol=1e-5)
    unfrozen = frozen_reptile(0, rule=Adam(0.01, epsilon=0.1))
    assert not np.allclose(got, Evaluator(unfrozen, EVALUATION).query_logits([job], 1)[0])


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
