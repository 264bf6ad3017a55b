"""The FLOP counts of the benchmark, against counts by hand."""

import sys

from supervised_reptile import models

from conftest import REPO_DIR

sys.path.insert(0, str(REPO_DIR / 'benchmarks'))
import flops  # pylint: disable=wrong-import-position,wrong-import-order

# Omniglot, per image: output pixels x output channels x 3x3 x input channels x 2.
OMNIGLOT_CONVS = [14 * 14 * 64 * 9 * 1 * 2, 7 * 7 * 64 * 9 * 64 * 2, 4 * 4 * 64 * 9 * 64 * 2,
                  2 * 2 * 64 * 9 * 64 * 2]
OMNIGLOT_DENSE = 256 * 5 * 2


def test_layer_flops_of_omniglot_by_hand():
    assert flops.layer_flops(models.omniglot_model(5)) == OMNIGLOT_CONVS + [OMNIGLOT_DENSE]
    assert sum(OMNIGLOT_CONVS) + OMNIGLOT_DENSE == 5315584


def test_miniimagenet_convolutions_see_the_pooled_sizes():
    counts = flops.layer_flops(models.miniimagenet_model(5))
    assert counts == [84 * 84 * 32 * 27 * 2, 42 * 42 * 32 * 288 * 2, 21 * 21 * 32 * 288 * 2,
                      11 * 11 * 32 * 288 * 2, 6 * 6 * 32 * 5 * 2]


def test_a_step_counts_weight_gradients_everywhere_and_input_gradients_past_the_first_layer():
    forward = sum(OMNIGLOT_CONVS) + OMNIGLOT_DENSE
    step = flops.training_step_flops(models.omniglot_model(5), 10)
    assert step == 10 * (forward + forward + forward - OMNIGLOT_CONVS[0])
    assert flops.meta_iteration_flops(models.omniglot_model(5), 5, 5, 10) == 25 * step


def test_evaluation_task_adds_the_prediction_of_its_mode():
    model = models.omniglot_model(5)
    tuning = 50 * flops.training_step_flops(model, 5)
    assert flops.evaluation_task_flops(model, 5, 1, 5, 50, True) == tuning + 5 * 5315584
    assert flops.evaluation_task_flops(model, 5, 1, 5, 50, False) == tuning + 5 * 6 * 5315584
