"""
Evaluation of a meta-learned initialization over many sampled tasks.

Accuracy is the fraction of query images predicted right, over all tasks (one query per class
per task, as in the reference). Beyond the reference, it comes with a 95% confidence interval
over tasks.
"""

from dataclasses import dataclass
import math

import numpy as np

from . import batched_eval, sampling
from .progress import Progress


def ci95_half_width(samples, axis=-1):
    """Half-width of the 95% confidence interval of the mean of samples along axis: the normal
    approximation, 1.96 standard errors from the sample standard deviation (NaN for one sample)."""
    samples = np.asarray(samples, dtype=np.float64)
    count = samples.shape[axis]
    if count < 2:
        return np.full(np.delete(samples.shape, axis), np.nan)[()]
    return 1.96 * samples.std(axis=axis, ddof=1) / math.sqrt(count)


@dataclass
class Accuracy:
    """Mean accuracy over tasks, the half-width of its 95% confidence interval, and the task count."""
    mean: float
    ci95: float
    num_tasks: int

    @classmethod
    def from_task_accuracies(cls, accuracies):
        accuracies = np.asarray(accuracies, dtype=np.float64)
        return cls(float(accuracies.mean()), float(ci95_half_width(accuracies)), len(accuracies))

    def __str__(self):
        return '%f +/- %f (95%% CI, %d tasks)' % (self.mean, self.ci95, self.num_tasks)


def sample_task(classes, rng, num_classes=5, num_shots=5, eval_inner_batch_size=5,
                eval_inner_iters=50, replacement=False):
    """Sample one evaluation task (a sampling.EvaluationTask) from classes."""
    return sampling.evaluation_task(classes, num_classes, num_shots, eval_inner_batch_size,
                                    eval_inner_iters, replacement, rng)


def evaluate(reptile, classes, rng, num_classes=5, num_shots=5, eval_inner_batch_size=5,
             eval_inner_iters=50, replacement=False, num_samples=10000, log_fn=print,
             name='evaluation', tasks_per_batch=None):
    """Accuracy over num_samples independent tasks drawn from classes, fine-tuned
    tasks_per_batch at a time (see batched_eval; by default as many as memory allows).

    The tasks are drawn in the order one-by-one evaluation would draw them, since fine-tuning
    draws no random numbers: the batch size does not change which tasks are evaluated.
    """
    classes.check_task_size(num_classes, num_shots + 1, name)
    task_kwargs = dict(num_classes=num_classes, num_shots=num_shots,
                       eval_inner_batch_size=eval_inner_batch_size,
                       eval_inner_iters=eval_inner_iters, replacement=replacement)
    tasks_per_batch = min(num_samples, tasks_per_batch or batched_eval.default_tasks_per_batch(
        reptile.model, max(eval_inner_batch_size, num_classes * num_shots + 1)))
    progress = Progress(num_samples)
    report_every = max(1, num_samples // 10)
    correct = []
    while len(correct) < num_samples:
        count = min(tasks_per_batch, num_samples - len(correct))
        jobs = [(classes.images, sample_task(classes, rng, **task_kwargs)) for _ in range(count)]
        correct.extend(batched_eval.evaluate(reptile, jobs, tasks_per_batch))
        reports_before = progress.done // report_every
        progress.advance(count)
        if progress.done // report_every > reports_before and progress.done < num_samples:
            log_fn('  %s: %s, accuracy so far %f'
                   % (name, progress.describe('tasks'), sum(correct) / (len(correct) * num_classes)))
    return Accuracy.from_task_accuracies(np.array(correct) / num_classes)
