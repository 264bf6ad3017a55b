"""Progress: the rate and time left of a long loop, measured without its warm-up (the tracing
of its compiled functions, and what is done once after the first unit)."""

import pytest

from supervised_reptile import progress as progress_module
from supervised_reptile.progress import Progress


class Clock:
    """time.monotonic for progress.py, moved by hand."""

    def __init__(self):
        self.now = 1000.0

    def __call__(self):
        return self.now


@pytest.fixture
def clock(monkeypatch):
    clock = Clock()
    monkeypatch.setattr(progress_module.time, 'monotonic', clock)
    return clock


def run_steps(progress, clock, count, seconds_each):
    for _ in range(count):
        clock.now += seconds_each
        progress.advance()


def test_the_warm_up_is_left_out_of_the_rate(clock):
    progress = Progress(1000)
    run_steps(progress, clock, 1, 600.0)  # tracing
    assert progress.rate() == 0.0
    assert progress.describe('steps') == '1/1000 steps, estimating the time left'
    run_steps(progress, clock, 1, 30.0)  # the first checkpoint and periodic evaluation, say
    assert progress.describe('steps') == '2/1000 steps, estimating the time left'
    run_steps(progress, clock, 100, 0.5)
    assert progress.rate() == pytest.approx(2.0)
    assert progress.describe('steps') == '102/1000 steps, 2.00 steps/s, 7m29s left'


def test_a_training_runs_first_estimates_agree_despite_tracing(clock):
    """train.py's checkpoint lines: the first after step 0, then every 100 steps. A 100,000-step
    run at 0.1 s a step whose first step traces for a minute, and whose first periodic
    evaluation traces for 20 s more: the first estimate is within 3 times the second, and both
    are about the 2.8 hours left."""
    progress = Progress(100000)
    run_steps(progress, clock, 1, 60.0)
    assert 'estimating' in progress.describe('steps')
    clock.now += 20.0
    estimates = []
    for _ in range(2):
        run_steps(progress, clock, 100, 0.1)
        estimates.append((progress.total - progress.done) / progress.rate())
    assert estimates[0] / 3 <= estimates[1] <= estimates[0] * 3
    for estimate in estimates:
        assert estimate == pytest.approx(10000, rel=0.01)


def test_a_resumed_loop_counts_its_rate_from_its_own_steps(clock):
    progress = Progress(1000, done=900)
    run_steps(progress, clock, 2, 30.0)
    run_steps(progress, clock, 8, 1.0)
    assert progress.done == 910
    assert progress.describe('steps') == '910/1000 steps, 1.00 steps/s, 1m30s left'


def test_units_advanced_in_batches_count_after_the_second_batch(clock):
    progress = Progress(10000)
    for seconds in (100.0, 20.0, 10.0):
        clock.now += seconds
        progress.advance(50)
    assert progress.rate() == pytest.approx(5.0)
    assert progress.describe('tasks') == '150/10000 tasks, 5.00 tasks/s, 32m50s left'


def test_a_loop_done_during_its_warm_up_says_so_without_an_estimate(clock):
    progress = Progress(10)
    clock.now += 3.0
    progress.advance(10)
    assert progress.describe('steps') == '10/10 steps'
