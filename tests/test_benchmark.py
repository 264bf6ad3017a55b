"""benchmarks/speed.py runs, and its report is well made: every figure positive and finite,
the first (tracing) call timed apart from the repetitions, and the derived figures (GFLOP/s,
the full run's projection) computed from the measured ones. No assertion compares measured
durations: on a loaded machine any of them can stretch."""

import json
import math
import os
import subprocess
import sys

import pytest

from conftest import REPO_DIR

pytestmark = pytest.mark.slow  # the speed benchmark in a subprocess

FULL_RUN_ITERATIONS = 100000  # README row 1
FINAL_EVALUATION_TASKS = 2 * 10000  # two splits of --eval-samples' default


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


def timings(omniglot):
    return [omniglot['meta_iteration'], omniglot['periodic_pair']] + [
        omniglot['evaluation'][mode][way] for mode in ('transductive', 'non_transductive')
        for way in ('sequential', 'batched')]


def test_the_first_call_which_traces_is_timed_apart(omniglot):
    for timing in timings(omniglot):
        assert set(timing) >= {'seconds', 'cpu_seconds', 'trace_seconds'}
    run = omniglot['training_run']
    assert run['iterations'] == 2 and set(run) >= {'first_seconds', 'seconds'}


def test_gflops_are_the_flops_of_a_call_over_its_seconds(omniglot):
    passes = omniglot['model_pass']
    assert passes['training_batch']['batch_size'] > passes['evaluation_batch']['batch_size']
    for timing in timings(omniglot)[:1] + timings(omniglot)[2:]:
        assert timing['gflops'] == pytest.approx(timing['gflop'] / timing['seconds'], rel=1e-9)


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
