"""Frozen conv blocks (--freeze-blocks, --freeze-eval-blocks): left out of meta-training, of
evaluation fine-tuning and of the optimizer's state, and of the gradient computation."""

from absl import flags
import keras
import numpy as np
import pytest
import tensorflow as tf

from supervised_reptile import args, backbone, models, sampling
from supervised_reptile.reptile import FOML, Reptile, gather_images

from conftest import random_classes

CLASSES = random_classes(12, 8, seed=3)
IMAGES = tf.constant(CLASSES.images)


def frozen_reptile(blocks, eval_blocks=None, algorithm=Reptile, optimizer=None, decay=1.0,
                   transductive=False):
    keras.utils.set_random_seed(1)
    model = models.omniglot_model(3)
    backbone.freeze(model, blocks)
    frozen_in_evaluation = backbone.block_variables(
        model, blocks if eval_blocks is None else eval_blocks)
    return algorithm(model, optimizer or models.adam(0.01), transductive=transductive,
                     weight_decay_rate=decay, frozen_in_evaluation=frozen_in_evaluation)


def meta_batch(seed=0):
    rng = np.random.default_rng(seed)
    return sampling.stack_tasks([sampling.training_task(CLASSES, 3, 4, 6, 3, False, rng)
                                 for _ in range(2)])


def evaluation_task():
    return sampling.evaluation_task(CLASSES, 3, 2, 4, 5, False, np.random.default_rng(0))


def values(variables):
    return [v.numpy().copy() for v in variables]


@pytest.mark.parametrize('algorithm', [Reptile, FOML])
def test_frozen_blocks_stay_bit_for_bit_unchanged_while_the_rest_trains(algorithm):
    reptile = frozen_reptile(2, algorithm=algorithm, decay=0.5)
    frozen = backbone.block_variables(reptile.model, 2)
    frozen_before = values(frozen)
    kernels = [v for v in reptile.meta_trained_variables if v.name == 'kernel']
    kernels_before = values(kernels)
    for seed in range(2):
        reptile.train_step(IMAGES, meta_batch(seed), 0.5)
    reptile.evaluate(IMAGES, evaluation_task())
    for before, variable in zip(frozen_before, frozen):
        np.testing.assert_array_equal(before, variable.numpy())
    assert len(kernels) == 3  # two unfrozen conv blocks and the head
    for before, variable in zip(kernels_before, kernels):
        assert not np.allclose(before, variable.numpy())


def test_meta_training_and_evaluation_train_no_frozen_variable():
    reptile = frozen_reptile(1, eval_blocks=3)
    in_block = {k: {id(v) for v in backbone.block_variables(reptile.model, k)} for k in (1, 3)}
    meta_trained = {id(v) for v in reptile.meta_trained_variables}
    fine_tuned = {id(v) for v in reptile.fine_tuned_variables}
    assert not meta_trained & in_block[1] and not fine_tuned & in_block[3]
    assert fine_tuned < meta_trained
    # Blocks 2-3 are meta-trained, only the last block and the head are fine-tuned.
    assert len(meta_trained) == 14 and len(fine_tuned) == 6


def test_adam_holds_no_state_for_frozen_variables():
    reptile = frozen_reptile(2)
    slots = reptile.optimizer.variables
    # One momentum and one velocity per trained variable, the step count and the learning rate.
    assert len(slots) == 2 * len(reptile.meta_trained_variables) + 2
    first_kernel = backbone.blocks(reptile.model)[0][0].kernel
    assert tuple(first_kernel.shape) not in [tuple(slot.shape) for slot in slots]
    reptile.train_step(IMAGES, meta_batch(), 0.5)
    assert len(reptile.optimizer.variables) == len(slots)


def gradient_ops(reptile, op_type):
    """How many ops of op_type the compiled meta-step holds, loop bodies included."""
    batch = meta_batch()
    graph = reptile._train_step.get_concrete_function(  # pylint: disable=protected-access
        IMAGES, batch.head_indices, batch.head_labels, batch.last_indices, batch.last_labels,
        tf.constant(0.5)).graph.as_graph_def()
    nodes = list(graph.node) + [node for function in graph.library.function
                                for node in function.node_def]
    return sum(node.op == op_type for node in nodes)


def test_frozen_blocks_cost_no_gradient_computation():
    # The meta-step takes inner steps in two places (the loop, the last step); each backpropagates
    # through every trained block and no frozen one.
    for blocks in (0, 2, 4):
        reptile = frozen_reptile(blocks)
        for op_type in ('Conv2DBackpropFilter', 'FusedBatchNormGradV3'):
            assert gradient_ops(reptile, op_type) == 2 * (4 - blocks)


def eager_fine_tune(model, optimizer, task, trained):
    """Fine-tune as an evaluation task does, step by step, training only `trained`; return the
    transductive query logits."""
    for indices, labels in zip(task.batch_indices, task.batch_labels):
        with tf.GradientTape() as tape:
            logits = model(gather_images(IMAGES, indices), training=True)
            loss = tf.reduce_sum(tf.nn.sparse_softmax_cross_entropy_with_logits(labels, logits))
        optimizer.apply_gradients(zip(tape.gradient(loss, trained), trained))
    return model(gather_images(IMAGES, task.query_indices), training=True).numpy()


def smooth_adam():
    # A large epsilon keeps compiled and eager steps comparable (see test_reptile.smooth_adam).
    return keras.optimizers.Adam(0.01, beta_1=0.0, beta_2=0.999, epsilon=0.1)


def test_evaluation_only_freezing_fine_tunes_the_rest():
    task = evaluation_task()
    reptile = frozen_reptile(0, eval_blocks=2, optimizer=smooth_adam(), transductive=True)
    got = reptile.query_logits(IMAGES, task)
    twin = frozen_reptile(0, optimizer=smooth_adam()).model
    trained = [v for v in twin.trainable_variables
               if id(v) not in {id(f) for f in backbone.block_variables(twin, 2)}]
    optimizer = smooth_adam()
    optimizer.build(twin.trainable_variables)
    np.testing.assert_allclose(got, eager_fine_tune(twin, optimizer, task, trained),
                               rtol=1e-4, atol=1e-5)
    unfrozen = frozen_reptile(0, optimizer=smooth_adam(), transductive=True)
    assert not np.allclose(got, unfrozen.query_logits(IMAGES, task))


@pytest.fixture
def parse_flags():
    def parse(*argv):
        args.FLAGS.unparse_flags()
        args.FLAGS(['run_omniglot.py', *argv])
    yield parse
    args.FLAGS.unparse_flags()


def test_flags_build_reptile_with_frozen_blocks(parse_flags):
    parse_flags('--freeze-blocks', '1', '--freeze-eval-blocks', '2')
    reptile = args.build_reptile(models.omniglot_model(5))
    blocks = backbone.blocks(reptile.model)
    assert [layer.trainable for layer in blocks[0]] == [False] * 3
    assert all(layer.trainable for block in blocks[1:] for layer in block)
    assert len(reptile.meta_trained_variables) == 14 and len(reptile.fine_tuned_variables) == 10
    parse_flags('--freeze-blocks', '3')
    assert len(args.build_reptile(models.omniglot_model(5)).fine_tuned_variables) == 6


@pytest.mark.parametrize('argv, message', [
    (['--freeze-blocks', '5'], 'freeze-blocks'),
    (['--freeze-blocks', '2', '--freeze-eval-blocks', '1'], 'at least --freeze-blocks'),
    (['--pretrain-iters', '10', '--pretrained-backbone', 'x'], 'drop it or --pretrain-iters'),
])
def test_inconsistent_flags_are_refused(parse_flags, argv, message):
    with pytest.raises(flags.IllegalFlagValueError, match=message):
        parse_flags(*argv)
