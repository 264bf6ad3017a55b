"""benchmarks/speed.py runs, and reports every number it promises."""

import json
import os
import subprocess
import sys

from conftest import REPO_DIR


def test_quick_benchmark_of_omniglot_reports_positive_numbers(tmp_path):
    path = tmp_path / 'speed.json'
    subprocess.run([sys.executable, str(REPO_DIR / 'benchmarks' / 'speed.py'), '--quick',
                    '--configs', 'omniglot', '--json', str(path)], check=True, timeout=300)
    result = json.loads(path.read_text())['results']['omniglot']
    timings = [result['meta_iteration']] + [
        result['evaluation'][mode][way] for mode in ('transductive', 'non_transductive')
        for way in ('sequential', 'batched')]
    for timing in timings:
        assert timing['seconds'] > 0 and timing['gflop'] > 0 and timing['gflops'] > 0
    for key in ('matmul_gflops', 'matmul_bfloat16_gflops', 'peak_memory_mb',
                'projected_final_evaluation_s'):
        assert result[key] > 0
    assert result['evaluation']['transductive']['tasks_per_batch'] >= 1
    assert result['cores'] == len(os.sched_getaffinity(0))
    assert result['periodic_pair']['seconds'] > 0
    assert result['training_run']['seconds'] > 0 and result['training_run']['iterations'] == 2
    assert result['projected_training_s'] == 100000 * result['training_run']['seconds']
    assert result['projected_full_run_s'] == (result['projected_training_s']
                                              + result['projected_final_evaluation_s'])
    passes = result['model_pass']
    assert passes['training_batch']['batch_size'] == 10
    assert passes['evaluation_batch']['batch_size'] == 5
    # README row 1: 5 tasks x 5 steps, and a pair of 50-step tasks every 10 meta-iterations.
    assert result['floor_evaluation_task_s'] == 50 * passes['evaluation_batch']['seconds'] > 0
    assert result['floor_meta_iteration_s'] == (25 * passes['training_batch']['seconds']
                                                + 2 * result['floor_evaluation_task_s'] / 10)
