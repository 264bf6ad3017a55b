"""
An experiment: its methods trained and evaluated end to end, then the figures and the metrics
(host-side bookkeeping; run() is the recipe).

A method is a meta-learning run, or a baseline: training from scratch (the initialisation
every run starts from, adapted at test time) and joint training (plain training on the
expected loss, then adapted at test time). Every method is evaluated on the same held-out
tasks, with the run's inner optimiser at test time.
"""

from dataclasses import dataclass, field
import os
import time

import numpy as np

from . import algorithms, evaluate, model, plots, report
from .optimizers import SGD
from .train import Trainer, train


def run(settings, log_fn=print):
    """Train and evaluate every method of the settings; write the figures and metrics.json
    into settings.output_dir and print the summary. Returns the metrics."""
    start = time.monotonic()
    for note in settings.notes:
        log_fn(note)
    os.makedirs(settings.output_dir, exist_ok=True)
    held_out = evaluate.held_out_tasks(settings.family, settings.eval_samples, settings.num_shots,
                                       settings.seed)
    evaluator = evaluate.Evaluator(settings.family, held_out, settings.record_steps)
    initial_params = model.init_mlp(settings.layer_sizes, settings.seed)
    experiment = Experiment(settings, initial_params, evaluator, log_fn)

    runs = [experiment.meta_learning(run_settings) for run_settings in settings.runs]
    scratch = experiment.from_scratch()
    joint = experiment.joint_training() if settings.joint_baseline else []
    results = runs + scratch + joint

    paths = _write_figures(settings, held_out, experiment.examples, runs, scratch, results)
    metrics = report.metrics(settings, results, model.num_parameters(initial_params),
                             time.monotonic() - start)
    paths.append(os.path.join(settings.output_dir, 'metrics.json'))
    report.write_json(paths[-1], metrics)
    log_fn('\n'.join(report.summary(settings, results, paths)))
    return metrics


def _write_figures(settings, held_out, examples, runs, scratch, results):
    """Write the figures; return their paths."""
    def path(name):
        return os.path.join(settings.output_dir, name)

    plots.fits(path('fits.png'), settings, held_out, examples, runs, scratch)
    plots.mse_curves(path('mse_vs_steps.png'), settings, results)
    plots.training_curves(path('training.png'), [r for r in results if r.training_curve])
    written = [path('fits.png'), path('mse_vs_steps.png'), path('training.png')]
    if settings.eval_at:
        plots.checkpoint_curves(path('checkpoints.png'), settings, runs)
        plots.snapshots(path('snapshots.png'), settings, held_out, examples, runs)
        written += [path('checkpoints.png'), path('snapshots.png')]
    return written


@dataclass
class Evaluation:
    """The test-MSE curve after some meta-iterations, and the example tasks' predictions
    [record steps, examples, grid, 1]."""
    meta_iterations: int
    curve: evaluate.Curve
    examples: np.ndarray


@dataclass
class Result:
    """One method's evaluations (the last is the final one) and its training record."""
    name: str
    kind: str
    algorithm: str
    optimizer: object
    evaluations: list = field(default_factory=list)
    training_curve: list = field(default_factory=list)
    train_seconds: float = 0.0

    @property
    def final(self):
        return self.evaluations[-1]


def _label(method, optimizer, settings):
    """A method's name, with its inner optimiser when the experiment compares several."""
    return '%s (%s)' % (method, optimizer.name) if len(settings.optimizers) > 1 else method


class Experiment:
    """What the methods share: the settings, the initial parameters, the evaluator and the
    indices of the example tasks the figures draw."""

    def __init__(self, settings, initial_params, evaluator, log_fn=print):
        self.settings = settings
        self.initial_params = initial_params
        self.evaluator = evaluator
        self.examples = settings.family.examples(evaluator.held_out.tasks)
        self.log = log_fn

    def meta_learning(self, run):
        """Meta-train one run, evaluating it at the settings' checkpoints and at the end; test
        tasks start from the inner optimiser state that training leaves (see Trainer)."""
        settings = self.settings
        result = Result(_label(run.algorithm, run.optimizer, settings), 'meta-learning',
                        run.algorithm, run.optimizer)
        trainer = Trainer(settings.family, algorithms.meta_update_fn(run.algorithm, run.optimizer),
                          run.optimizer, self.initial_params, settings.schedule, settings.seed,
                          reset_state=settings.reset_state)

        def evaluate(iteration):
            self._evaluate(result, trainer.params, trainer.state, iteration)

        self._train(trainer, result, settings.eval_at, evaluate)
        evaluate(settings.schedule.num_iterations)
        return result

    def joint_training(self):
        """Train on the expected loss once; return one Result per inner optimiser used at test
        time, each test task starting from a fresh optimiser state."""
        settings = self.settings
        # Plain SGD on the tasks' pooled points; its step size is the schedule's.
        trainer = Trainer(settings.family, algorithms.joint_update_fn(),
                          SGD(settings.joint_schedule.step_size), self.initial_params,
                          settings.joint_schedule, settings.seed)
        results = [Result(_label('joint training', optimizer, settings), 'baseline', 'joint',
                          optimizer) for optimizer in settings.optimizers]
        self._train(trainer, results[0])
        for result in results:
            result.training_curve = results[0].training_curve
            result.train_seconds = results[0].train_seconds
            self._evaluate(result, trainer.params, result.optimizer.init(trainer.params),
                           trainer.schedule.num_iterations)
        return results

    def from_scratch(self):
        """The initialisation adapted at test time, one Result per inner optimiser."""
        results = []
        for optimizer in self.settings.optimizers:
            result = Result(_label('scratch', optimizer, self.settings), 'baseline', 'scratch',
                            optimizer)
            self._evaluate(result, self.initial_params, optimizer.init(self.initial_params), 0)
            results.append(result)
        return results

    def _train(self, trainer, result, evaluate_at=(), evaluate=None):
        """Run the trainer's schedule, calling evaluate(iteration) at the iterations of
        evaluate_at; record the training curve and time (evaluations excluded) in result."""
        evaluation_seconds = []

        def timed_evaluate(iteration):
            start = time.monotonic()
            evaluate(iteration)
            evaluation_seconds.append(time.monotonic() - start)

        start = time.monotonic()
        result.training_curve = train(trainer, result.name, self.settings.chunk, evaluate_at,
                                      timed_evaluate, self.log)
        result.train_seconds = time.monotonic() - start - sum(evaluation_seconds)

    def _evaluate(self, result, params, state, meta_iterations):
        predictions = self.evaluator.predictions(result.optimizer, params, state)
        curve = self.evaluator.curve(predictions)
        result.evaluations.append(Evaluation(meta_iterations, curve,
                                             predictions[:, self.examples]))
        mean, ci95 = curve.at(self.settings.eval_iters)
        self.log('%s after %d meta-iterations: test MSE after %d steps %.4f +/- %.4f'
                 % (result.name, meta_iterations, self.settings.eval_iters, mean, ci95))
