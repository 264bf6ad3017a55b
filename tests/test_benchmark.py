"""benchmarks/speed.py runs, and what it measures is plausible: every figure positive and
finite, and the figures consistent with one another (more work takes no less time, the
projection is built from the measured per-unit figures)."""

import json
import math
import os
import subprocess
import sys

import pytest

from conftest import REPO_DIR

FULL_RUN_ITERATIONS = 100000  # README row 1
FINAL_EVALUATION_TASKS = 2 * 10000  # two splits of --eval-samples' default
# Slack for timings of two repetitions on a busy machine, where "not less" is asserted.
NOISE = 0.5


@pytest.fixture(scope='module')
def omniglot(tmp_path_factory):
    path = tmp_path_factory.mktemp('speed') / 'speed.json'
    subprocess.run([sys.executable, str(REPO_DIR / 'benchmarks' / 'speed.py'), '--quick',
                    '--configs', 'omniglot', '--json', str(path)], check=True, timeout=600)
    return json.loads(path.read_text())['results']['omniglot']


def numbers(value, path=''):
    """(path, number) of every number in a JSON value, booleans aside."""
    if isinstance(value, dict):
        return [item for key, inner in value.items() for item in numbers(inner, path + '/' + key)]
    if isinstance(value, list):
        return [item for i, inner in enumerate(value)
                for item in numbers(inner, '%s/%d' % (path, i))]
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return [(path, value)]
    return []


def test_every_figure_is_positive_and_finite(omniglot):
    figures = numbers(omniglot)
    assert figures
    for path, value in figures:
        assert math.isfinite(value) and value > 0, (path, value)
    assert omniglot['cores'] == len(os.sched_getaffinity(0))


def test_the_first_call_which_traces_is_timed_apart_and_is_the_slowest(omniglot):
    timings = [omniglot['meta_iteration'], omniglot['periodic_pair']] + [
        omniglot['evaluation'][mode][way] for mode in ('transductive', 'non_transductive')
        for way in ('sequential', 'batched')]
    for timing in timings:
        assert timing['trace_seconds'] > timing['seconds']
    run = omniglot['training_run']
    assert run['iterations'] == 2 and run['first_seconds'] > run['seconds']


def test_more_work_takes_no_less_time(omniglot):
    passes = omniglot['model_pass']
    evaluation = omniglot['evaluation']['transductive']
    # A meta-iteration is 5 tasks of 5 inner steps, each at least a forward and backward pass.
    assert omniglot['meta_iteration']['seconds'] >= NOISE * 25 * passes['training_batch'][
        'seconds']
    # An evaluation task is 50 steps; the periodic pair is two tasks in one call.
    assert evaluation['sequential']['seconds'] >= NOISE * omniglot['floor_evaluation_task_s']
    assert omniglot['periodic_pair']['seconds'] >= NOISE * evaluation['sequential']['seconds']
    # A training run's iteration adds the periodic pair and checkpoints to a meta-iteration.
    assert omniglot['training_run']['seconds'] >= NOISE * omniglot['meta_iteration']['seconds']
    assert passes['training_batch']['batch_size'] > passes['evaluation_batch']['batch_size']


def test_the_projection_is_made_of_the_measured_figures(omniglot):
    """The full run is projected from the training run's time per iteration (with its periodic
    evaluation and checkpoints) and the batched evaluation's time per task."""
    assert omniglot['final_evaluation_tasks'] == FINAL_EVALUATION_TASKS
    training = omniglot['projected_training_s']
    evaluation = omniglot['projected_final_evaluation_s']
    assert training == pytest.approx(
        FULL_RUN_ITERATIONS * omniglot['training_run']['seconds'], rel=1e-6)
    assert evaluation == pytest.approx(
        FINAL_EVALUATION_TASKS * omniglot['evaluation']['transductive']['batched']['seconds'],
        rel=1e-6)
    assert omniglot['projected_full_run_s'] == pytest.approx(training + evaluation, rel=1e-6)
    # No faster than the model's passes alone allow.
    assert training >= NOISE * FULL_RUN_ITERATIONS * omniglot['floor_meta_iteration_s']


def test_the_models_gflops_stay_below_what_the_yardstick_makes_plausible(omniglot):
    """Small convolutions run below a large matrix product's GFLOP/s; far above it, a time or
    a FLOP count would be wrong."""
    matmul = max(omniglot['matmul_gflops'], omniglot['matmul_bfloat16_gflops'])
    timings = [omniglot['meta_iteration']] + [
        omniglot['evaluation'][mode][way] for mode in ('transductive', 'non_transductive')
        for way in ('sequential', 'batched')]
    for timing in timings:
        assert timing['gflops'] < 4 * matmul
