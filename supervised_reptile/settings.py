"""
A run's settings as small immutable objects, built once from the flags (args.py) or from a
run's recorded configuration, and passed to the code that needs them. Defaults are the
reference's flag defaults.
"""

from dataclasses import dataclass
from typing import Optional


@dataclass(frozen=True)
class TaskShape:
    """A few-shot task: `classes` classes (ways) of `shots` examples each (plus one query per
    class in evaluation); inner mini-batches drawn with replacement or not."""
    classes: int = 5
    shots: int = 5
    replacement: bool = False


@dataclass(frozen=True)
class Training:
    """Meta-training: examples per class in a training task, inner mini-batch size and steps,
    the meta step size (annealed linearly from meta_step to meta_step_final), tasks per
    meta-step, meta-steps, meta-steps between logged evaluations, and first-order MAML's
    disjoint final mini-batch (tail_shots examples per class, or None)."""
    train_shots: int = 5
    inner_batch: int = 5
    inner_iters: int = 20
    meta_step: float = 0.1
    meta_step_final: float = 0.1
    meta_batch: int = 1
    meta_iters: int = 400000
    eval_interval: int = 10
    tail_shots: Optional[int] = None

    def meta_step_size(self, step):
        """The meta step size at a step (see annealed)."""
        return annealed(self.meta_step, self.meta_step_final, step, self.meta_iters)


def annealed(start, final, step, total):
    """A value linear in step from start at step 0 towards final at step `total` (never
    reached: the last step is total - 1), as the reference anneals its meta step size."""
    frac_done = step / total
    return frac_done * final + (1 - frac_done) * start


@dataclass(frozen=True)
class Evaluation:
    """Evaluation of a task: fine-tuning mini-batch size and steps, the prediction mode
    (transductive or not), tasks in a final evaluation, and tasks fine-tuned side by side
    (0: as many as memory allows)."""
    inner_batch: int = 5
    inner_iters: int = 50
    transductive: bool = False
    samples: int = 10000
    tasks_per_batch: int = 0
