"""
The figures: fits to example tasks (the paper's Figure 1), test MSE against inner steps, the
training curves, and, with evaluations during training, the review's Figures 2-3 and 8.

Each function writes one PNG from results (experiment.Result). `examples` are the indices,
among the held-out tasks, of the example tasks whose predictions the results keep.
"""

import math

import matplotlib

matplotlib.use('Agg')  # files only: no display is needed, or wanted, on a server

import matplotlib.pyplot as plt  # pylint: disable=wrong-import-position
from matplotlib import ticker  # pylint: disable=wrong-import-position
import numpy as np  # pylint: disable=wrong-import-position

PANEL = 4.0  # inches


def fits(path, settings, held_out, examples, runs, scratch):
    """Per run and example task: the target, the points the learner sees and the fit after 0
    and after eval_iters steps, from the meta-learned initialisation and, for contrast, from
    the random one (the scratch result with the run's optimiser)."""
    indices = [0, settings.record_steps.index(settings.eval_iters)]  # after 0 and all steps
    rows = [(run, example) for run in runs for example in range(len(examples))]
    two_d = settings.family.input_dim == 2
    columns = 5 if two_d else 2
    figure, axes = plt.subplots(len(rows), columns, squeeze=False,
                                figsize=(PANEL * columns, 0.8 * PANEL * len(rows)))
    for (run, example), row_axes in zip(rows, axes):
        task = examples[example]
        support = held_out.support_x[task], held_out.support_y[task]
        starts = [('%s init.' % run.name, run.final.examples[:, example]),
                  ('random init.', _matching(scratch, run).final.examples[:, example])]
        if two_d:
            panels = [('target', held_out.grid_y[task])] + [
                ('%s, %d steps' % (name, settings.record_steps[i]), predictions[i])
                for name, predictions in starts for i in indices]
            for ax, (title, values) in zip(row_axes, panels):
                _heatmap(ax, settings, values, support[0], title)
        else:
            for ax, (name, predictions) in zip(row_axes, starts):
                fitted = [(predictions[i], 'after %d steps' % settings.record_steps[i])
                          for i in indices]
                _fit_1d(ax, settings, held_out.grid_y[task], support, 'from the ' + name, fitted)
    _save(figure, path)


def mse_curves(path, settings, results):
    """Final test MSE against inner steps at test time, one line per method, with 95% bands."""
    figure, ax = plt.subplots(figsize=(1.5 * PANEL, PANEL))
    for result in results:
        curve = result.final.curve
        mean, ci95 = np.array(curve.mean), np.array(curve.ci95)
        style = '-' if result.kind == 'meta-learning' else '--'
        line, = ax.plot(curve.steps, mean, style, label=result.name)
        ax.fill_between(curve.steps, mean - ci95, mean + ci95, color=line.get_color(), alpha=0.2)
    _mse_axes(ax, settings)
    ax.set_title('%d held-out tasks, %d points each' % (settings.eval_samples, settings.num_shots))
    ax.legend()
    _save(figure, path)


def training_curves(path, results):
    """Mean inner-loop training loss against meta-iterations, one line per trained method."""
    figure, ax = plt.subplots(figsize=(1.5 * PANEL, PANEL))
    for result in results:
        iterations, losses = zip(*result.training_curve)
        ax.plot(iterations, losses, label=result.name)
    ax.set_xlabel('meta-iterations')
    ax.set_ylabel('inner-loop training loss (MSE)')
    _log_y(ax)
    ax.legend()
    _save(figure, path)


def checkpoint_curves(path, settings, runs):
    """Per run, test MSE against inner steps after each evaluated number of meta-iterations,
    from purple (early) to yellow (late): the review's Figures 2 and 3."""
    figure, axes = plt.subplots(1, len(runs), squeeze=False, sharey=True,
                                figsize=(PANEL * len(runs), PANEL))
    colours = plt.get_cmap('viridis')
    for run, ax in zip(runs, axes[0]):
        last = run.final.meta_iterations
        for evaluation in run.evaluations:
            ax.plot(evaluation.curve.steps, evaluation.curve.mean,
                    color=colours(evaluation.meta_iterations / last),
                    label='%d meta-iterations' % evaluation.meta_iterations)
        _mse_axes(ax, settings)
        ax.set_title(run.name)
    axes[0][-1].legend(fontsize='small')
    _save(figure, path)


def snapshots(path, settings, held_out, examples, runs):
    """Per run, the first example's fit after eval_iters steps from the initialisation of each
    evaluation during training (in 2-D after the target): the review's Figure 8."""
    task = examples[0]
    support = held_out.support_x[task], held_out.support_y[task]
    last = settings.record_steps.index(settings.eval_iters)
    two_d = settings.family.input_dim == 2
    columns = max(len(run.evaluations) for run in runs) + two_d
    figure, axes = plt.subplots(len(runs), columns, squeeze=False,
                                figsize=(PANEL * columns, 0.8 * PANEL * len(runs)))
    for run, row_axes in zip(runs, axes):
        if two_d:
            _heatmap(row_axes[0], settings, held_out.grid_y[task], support[0], 'target')
        for evaluation, ax in zip(run.evaluations, row_axes[two_d:]):
            title = '%s, %d meta-iterations, %d steps' % (run.name, evaluation.meta_iterations,
                                                          settings.eval_iters)
            predictions = evaluation.examples[last, 0]
            if two_d:
                _heatmap(ax, settings, predictions, support[0], title)
            else:
                _fit_1d(ax, settings, held_out.grid_y[task], support, title,
                        [(predictions, 'after %d steps' % settings.eval_iters)])
    _save(figure, path)


def _matching(results, run):
    return next(result for result in results if result.optimizer is run.optimizer)


def _fit_1d(ax, settings, target, support, title, fitted):
    grid = settings.family.grid.numpy()[:, 0]
    ax.plot(grid, target[:, 0], color='black', label='target')
    ax.plot(support[0][:, 0], support[1][:, 0], 'o', color='black',
            label='%d points seen' % len(support[0]))
    for (predictions, label), style in zip(fitted, (':', '-')):
        ax.plot(grid, predictions[:, 0], style, label=label)
    ax.set_title(title)
    ax.legend(fontsize='small')


def _heatmap(ax, settings, values, support_x, title):
    family = settings.family
    size = len(family.grid_axes[0])
    limit = max(abs(a) for a in family.amplitude) or 1.0
    width = family.half_width
    image = ax.imshow(np.reshape(values, (size, size)), origin='lower', cmap='coolwarm',
                      vmin=-limit, vmax=limit, extent=(-width, width, -width, width))
    ax.plot(support_x[:, 0], support_x[:, 1], 'k.', markersize=4)
    ax.set_title(title, fontsize='small')
    ax.figure.colorbar(image, ax=ax, shrink=0.8)


def _mse_axes(ax, settings):
    ax.set_xlabel('inner steps at test time')
    ax.set_ylabel('test MSE')
    _log_y(ax)
    ax.set_xlim(0, settings.eval_iters)


def _log_y(ax):
    """A log scale, labelled 0.1, 0.2, 0.3, 0.5, 1, 2, ... rather than in powers of ten."""
    ax.set_yscale('log')
    ax.yaxis.set_major_formatter(ticker.FuncFormatter(_tick_label))
    ax.yaxis.set_minor_formatter(ticker.FuncFormatter(_tick_label))


def _tick_label(value, _):
    mantissa = value / 10 ** math.floor(math.log10(value))
    return '%g' % value if round(mantissa) in (1, 2, 3, 5) else ''


def _save(figure, path):
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)
