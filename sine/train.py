"""
Meta-training: the compiled loop over meta-iterations, and the host loop that drives it.

One call of the compiled function runs many meta-iterations in a graph loop: each samples its
tasks and mini-batches from the trainer's tf.random.Generator and applies the update. The host
only calls it chunk by chunk, for progress reports and evaluations in between.
"""

from dataclasses import dataclass

import tensorflow as tf

from supervised_reptile.progress import Progress


@dataclass(frozen=True)
class Schedule:
    """The meta-iterations and the per-iteration data of a training run.

    The step size (Reptile's and MAML's meta step, or joint training's learning rate) goes
    linearly from step_size at iteration 0 towards step_size_final at num_iterations.
    """
    num_iterations: int
    step_size: float
    step_size_final: float
    meta_batch: int
    inner_batches: int
    inner_batch_size: int


class Trainer:
    """Owns the meta-parameters, the inner optimiser's carried-over state and the task stream.

    update(phi, state, xs, ys, step_size) -> (phi, state, loss) is one meta-update (see
    algorithms.py). With reset_state, every meta-iteration starts a fresh optimiser state;
    without it, the state of the last iteration carries over, as a long-lived optimiser object
    would in an eager implementation (the review's Figure 2).
    """

    def __init__(self, family, update, optimizer, initial_params, schedule, seed,
                 reset_state=True, jit_compile=True):
        self.family = family
        self.optimizer = optimizer
        self.schedule = schedule
        self.reset_state = reset_state
        self._update = update
        self.params = [tf.Variable(p) for p in initial_params]
        self._state = tf.nest.map_structure(tf.Variable, optimizer.init(initial_params))
        self.generator = tf.random.Generator.from_seed(seed)
        self.iteration = tf.Variable(0, dtype=tf.int64)
        self._run = tf.function(self._run_graph, jit_compile=jit_compile)

    @property
    def state(self):
        """The inner optimiser state a test task starts from."""
        if self.reset_state:
            return self.optimizer.init(self.params)
        return tf.nest.map_structure(tf.convert_to_tensor, self._state)

    def train(self, num_iterations):
        """Run num_iterations meta-iterations; return their mean inner-loop loss."""
        return float(self._run(tf.constant(num_iterations, tf.int64)))

    # Graph code.

    def _run_graph(self, num_iterations):
        phi = [tf.convert_to_tensor(p) for p in self.params]
        state = tf.nest.map_structure(tf.convert_to_tensor, self._state)
        total_loss = tf.zeros([], phi[0].dtype)
        for _ in tf.range(num_iterations):
            if self.reset_state:
                state = self.optimizer.init(phi)
            xs, ys = self._sample_batch()
            phi, state, loss = self._update(phi, state, xs, ys, self._step_size())
            total_loss += loss
            self.iteration.assign_add(1)
        for variable, value in zip(self.params, phi):
            variable.assign(value)
        tf.nest.map_structure(lambda variable, value: variable.assign(value), self._state, state)
        return total_loss / tf.cast(num_iterations, total_loss.dtype)

    def _sample_batch(self):
        schedule = self.schedule
        tasks = self.family.sample_tasks(self.generator, schedule.meta_batch)
        xs = self.family.training_inputs(self.generator, schedule.meta_batch,
                                         schedule.inner_batches, schedule.inner_batch_size)
        return xs, self.family.targets(tasks, xs)

    def _step_size(self):
        schedule = self.schedule
        done = tf.cast(self.iteration, tf.float32) / schedule.num_iterations
        return schedule.step_size + done * (schedule.step_size_final - schedule.step_size)


def train(trainer, name, chunk_size, evaluate_at=(), on_evaluate=None, log_fn=print):
    """Run the trainer's whole schedule, chunk_size meta-iterations per compiled call, with a
    progress line after each chunk; call on_evaluate(iteration) after each iteration listed in
    evaluate_at. Returns the training curve: (iterations done, mean inner-loop loss) per chunk.
    """
    total = trainer.schedule.num_iterations
    stops = sorted({i for i in evaluate_at if 0 < i < total} | {total})
    progress = Progress(total)
    curve = []
    for stop in stops:
        while progress.done < stop:
            count = min(chunk_size, stop - progress.done)
            loss = trainer.train(count)
            progress.advance(count)
            curve.append((progress.done, loss))
            log_fn('%s: %s, inner-loop loss %.4f' % (name, progress.describe('iterations'), loss))
        if on_evaluate and stop in evaluate_at:
            on_evaluate(stop)
    return curve
