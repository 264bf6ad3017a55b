"""
Summary statistics of evaluations: the mean over tasks of a task's score (its accuracy, or its
mean query loss) with a 95% confidence interval.

Plain numpy, so that code without a model (sine/, the comparison with the paper) can use it
without loading Keras.
"""

from dataclasses import dataclass
import math

import numpy as np


def ci95_half_width(samples, axis=-1):
    """Half-width of the 95% confidence interval of the mean of samples along axis: the normal
    approximation, 1.96 standard errors from the sample standard deviation (NaN for one sample)."""
    samples = np.asarray(samples, dtype=np.float64)
    count = samples.shape[axis]
    if count < 2:
        return np.full(np.delete(samples.shape, axis), np.nan)[()]
    return 1.96 * samples.std(axis=axis, ddof=1) / math.sqrt(count)


@dataclass(frozen=True)
class Estimate:
    """The mean of a score over tasks, the half-width of its 95% confidence interval, and the
    task count."""
    mean: float
    ci95: float
    num_tasks: int

    @classmethod
    def from_task_values(cls, values):
        values = np.asarray(values, dtype=np.float64)
        return cls(float(values.mean()), float(ci95_half_width(values)), len(values))

    def __str__(self):
        return '%f +/- %f (95%% CI, %d tasks)' % (self.mean, self.ci95, self.num_tasks)
