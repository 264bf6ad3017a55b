"""The training loop's schedule."""

import pytest

from supervised_reptile.train import annealed_meta_step_size


def test_meta_step_anneals_linearly_and_never_reaches_the_final_value():
    assert annealed_meta_step_size(0, 100000, 1.0, 0.0) == 1.0
    assert annealed_meta_step_size(50000, 100000, 1.0, 0.0) == pytest.approx(0.5)
    assert annealed_meta_step_size(99999, 100000, 1.0, 0.0) == pytest.approx(1e-5)
    assert annealed_meta_step_size(7, 10, 0.1, 0.1) == pytest.approx(0.1)
