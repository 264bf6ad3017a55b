"""
Evaluation over held-out tasks: the test MSE after each number of inner steps.

Every method is evaluated on the same held-out tasks (drawn once, from their own seed), so
their curves are paired. All tasks adapt at once: the parameters get a leading tasks axis, and
one compiled graph loop takes the inner steps and records the predictions on the grid.
"""

from dataclasses import dataclass

import numpy as np
import tensorflow as tf

from supervised_reptile.statistics import ci95_half_width

from .algorithms import inner_step
from .model import mlp, tile
from .optimizers import tile_state

# Bounds the activations of one chunk of tasks on the grid (tasks x grid points x width).
MAX_ACTIVATIONS = 2 ** 24


@dataclass
class HeldOutTasks:
    """Task parameters [tasks, params], the points each task shows the learner
    [tasks, shots, in] with their targets, and the targets on the grid [tasks, grid, 1]."""
    tasks: np.ndarray
    support_x: np.ndarray
    support_y: np.ndarray
    grid_y: np.ndarray

    def __len__(self):
        return len(self.tasks)


def held_out_tasks(family, num_tasks, num_shots, seed):
    """Draw the held-out tasks, from a stream split off the one a Trainer with the same seed
    draws its training tasks from, so that the two are independent."""
    generator = tf.random.Generator.from_seed(seed).split(1)[0]
    tasks = family.sample_tasks(generator, num_tasks)
    support_x = family.support_inputs(generator, num_tasks, num_shots)
    grid_y = family.targets(tasks, tile([family.grid], num_tasks)[0])
    return HeldOutTasks(tasks.numpy(), support_x.numpy(),
                        family.targets(tasks, support_x).numpy(), grid_y.numpy())


@dataclass
class Curve:
    """Test MSE after each number of inner steps: mean over tasks and the half-width of its
    95% confidence interval (1.96 standard errors)."""
    steps: list
    mean: list
    ci95: list

    @classmethod
    def from_task_errors(cls, steps, errors):
        """errors [steps, tasks]: the MSE of every task after each number of steps."""
        errors = np.asarray(errors, dtype=np.float64)
        return cls(list(steps), errors.mean(axis=1).tolist(),
                   ci95_half_width(errors, axis=1).tolist())

    def at(self, step):
        index = self.steps.index(step)
        return self.mean[index], self.ci95[index]


class Evaluator:
    """Adapts any initial parameters to every held-out task with an inner optimiser, by
    full-batch steps on each task's support points, and records the predictions on the grid
    after each number of steps in record_steps (0 among them)."""

    def __init__(self, family, held_out, record_steps, jit_compile=True):
        self.family = family
        self.held_out = held_out
        self.record_steps = sorted(set(record_steps) | {0})
        self._adapt_fns = {}
        self._jit_compile = jit_compile

    def predictions(self, optimizer, params, state):
        """Grid predictions [record steps, tasks, grid, 1], the tasks adapting from params and
        state (a state without a tasks axis, shared by all tasks as their start). The tasks
        go through in chunks that keep the activations on the grid under MAX_ACTIVATIONS."""
        adapt_fn = self._adapt_fn(optimizer)
        params = [tf.convert_to_tensor(p) for p in params]
        width = max(int(p.shape[-1]) for p in params)
        chunk = max(1, MAX_ACTIVATIONS // (self.family.grid.shape[0] * width))
        held_out = self.held_out
        return np.concatenate([
            adapt_fn(params, state, held_out.support_x[start:start + chunk],
                     held_out.support_y[start:start + chunk]).numpy()
            for start in range(0, len(held_out), chunk)], axis=1)

    def curve(self, predictions):
        errors = np.mean(np.square(predictions - self.held_out.grid_y[None]), axis=(2, 3))
        return Curve.from_task_errors(self.record_steps, errors)

    def _adapt_fn(self, optimizer):
        """One compiled function per optimiser: the optimiser's settings are baked into it."""
        if optimizer not in self._adapt_fns:
            self._adapt_fns[optimizer] = tf.function(
                lambda params, state, support_x, support_y: self._adapt_graph(
                    optimizer, params, state, support_x, support_y),
                jit_compile=self._jit_compile)
        return self._adapt_fns[optimizer]

    # Graph code.

    def _adapt_graph(self, optimizer, params, state, support_x, support_y):
        num_tasks = support_x.shape[0]
        params = tile(params, num_tasks)
        state = tile_state(state, num_tasks)
        grid = tile([self.family.grid], num_tasks)[0]
        # Between two recorded step counts, a graph loop over the steps in between.
        gaps = tf.constant(np.diff(self.record_steps), tf.int32)
        recorded = tf.TensorArray(grid.dtype, size=len(self.record_steps))
        for slot in tf.range(len(self.record_steps) - 1):
            recorded = recorded.write(slot, mlp(params, grid))
            # A while loop, not tf.range: XLA cannot build a range of a computed length.
            step = tf.constant(0)
            while step < gaps[slot]:
                params, state, _ = inner_step(optimizer, params, state, support_x, support_y)
                step += 1
        return recorded.write(len(self.record_steps) - 1, mlp(params, grid)).stack()
