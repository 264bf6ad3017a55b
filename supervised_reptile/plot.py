"""
Pictures of runs: learning curves, and final accuracies beside the published ones.

    python -m supervised_reptile.plot RUN_DIR [RUN_DIR ...] --output curves.png [--window 100]

draws a panel per run, against meta-iterations: the accuracies of training's periodic evaluation
(the TensorBoard scalars 'accuracy' in RUN_DIR/train and RUN_DIR/test), smoothed by a moving
average since each is the accuracy on one task; the final evaluation's mean and 95% interval
(RUN_DIR/results.json) as a line and a band, for the training and the test classes; and the
published accuracy of the run's setting as a dashed line (its preset's cell, or the final paper
version's). A run without results.json, one still training say, is drawn without its final
evaluation. `python -m supervised_reptile.compare --plot` draws with comparison_figure.

matplotlib is imported when a picture is drawn, and TensorFlow when event files are read, so
that importing this module needs neither. Pictures are drawn on Agg's canvas: no display needed,
and pyplot's global state is left alone.
"""

# pylint: disable=wrong-import-position
if __name__ == '__main__':
    from . import cli  # as a command, TensorFlow loads through cli, quietly

import argparse
from dataclasses import dataclass
import math
import os
import sys
from typing import Optional

import numpy as np

from . import presets, published, results
from .errors import UserError

WINDOW = 100  # periodic evaluations per point of a smoothed curve
SPLITS = ('train', 'test')
COLOURS = {'train': 'tab:blue', 'test': 'tab:orange'}
PUBLISHED_COLOUR = 'black'


@dataclass
class RunCurves:
    """What a run's panel shows: its label, the periodic accuracies of each split ((steps,
    values) by split name), its final results record (None before the final evaluation), the
    published cell it is drawn against and its setting (None where there is none)."""
    label: str
    curves: dict
    record: Optional[dict]
    cell: Optional[published.Cell]
    setting: Optional[published.Setting]


@dataclass(frozen=True)
class Estimate:
    """An accuracy in percent, the half-width of its interval (None if it has none), what it
    is, and the decimals to print it with, for comparison_figure."""
    label: str
    value: float
    half_width: Optional[float]
    decimals: int = 2

    def describe(self):
        if self.half_width is None:
            return '%.*f' % (self.decimals, self.value)
        return '%.*f ± %.*f' % (self.decimals, self.value, self.decimals, self.half_width)


def moving_average(values, window):
    """Each value averaged with its neighbours: the window values centred on it (window // 2
    after it, the rest before), fewer at the ends, where there are fewer. Centred, the mean
    does not lag behind the curve, as a trailing one would by half a window."""
    values = np.asarray(values, dtype=float)
    sums = np.concatenate([[0.0], np.cumsum(values)])
    positions = np.arange(len(values))
    starts = np.maximum(positions - (window - 1) // 2, 0)
    ends = np.minimum(positions + window // 2 + 1, len(values))
    return (sums[ends] - sums[starts]) / (ends - starts)


# Reading a run.

def load_run(directory):
    """The RunCurves of a checkpoint directory; a UserError if it is not a training run's."""
    if not os.path.isdir(directory):
        raise UserError('%s: no such directory; give the --checkpoint directory of a run'
                        % directory)
    label = os.path.normpath(directory)
    curves = _read_curves(directory)
    record = _read_if_present(directory, results.RESULTS)
    # Before the final evaluation, the run's configuration tells its setting.
    setting, preset = _setting(record or _read_if_present(directory, results.CONFIG))
    cell = drawn_cell(setting, preset) if setting else None
    return RunCurves(label, curves, record, cell, setting)


def _read_curves(directory):
    # TensorFlow loads here only: compare's picture, which reads no event files, needs none.
    from . import summaries  # pylint: disable=import-outside-toplevel
    log_dirs = {split: os.path.join(directory, split) for split in SPLITS}
    if not any(summaries.event_files(log_dir) for log_dir in log_dirs.values()):
        raise UserError('%s holds no TensorBoard event files in train/ or test/; give the '
                        '--checkpoint directory of a training run' % directory)
    curves = {split: summaries.read_scalars(log_dir, 'accuracy')
              for split, log_dir in log_dirs.items()}
    if not any(steps for steps, _ in curves.values()):
        raise UserError("%s: its event files hold no 'accuracy' scalars; a training run logs "
                        'them every --eval-interval meta-iterations from the first' % directory)
    return curves


def _setting(record):
    """(published.Setting, preset name) of a results or configuration record; (None, None)
    without one."""
    if record is None:
        return None, None
    return published.Setting.from_flags(record['dataset'], record['flags']), record.get('preset')


def _read_if_present(directory, name):
    try:
        return results.read_if_present(directory, name)
    except (OSError, ValueError) as exc:
        raise UserError('cannot read %s (%s)' % (os.path.join(directory, name), exc)) from exc


def drawn_cell(setting, preset_name):
    """The published cell a run's curves are drawn against: the cell its preset reproduces if
    the run measured that setting, else the first published for its setting (the final paper
    version's where it has one), else None."""
    cells = published.cells_for(setting)
    preset = presets.PRESETS.get(preset_name)
    if preset is not None and preset.cell() in cells:
        return preset.cell()
    return cells[0] if cells else None


# Drawing.

def new_figure(width, height):
    """An empty matplotlib Figure on an Agg canvas; a UserError if matplotlib is missing."""
    try:
        # pylint: disable=import-outside-toplevel
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError as exc:
        raise UserError('drawing needs matplotlib, which is not installed: pip install '
                        'matplotlib') from exc
    figure = Figure(figsize=(width, height), layout='constrained')
    FigureCanvasAgg(figure)
    return figure


def save(figure, path):
    """Write the figure to path, in the format its extension names."""
    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(folder):
        raise UserError('cannot write %s: there is no directory %s; create it first'
                        % (path, folder))
    try:
        figure.savefig(path, dpi=120)
    except (OSError, ValueError) as exc:
        raise UserError('cannot write %s (%s)' % (path, exc)) from exc


def _percent(fraction):
    return None if fraction is None else 100 * fraction


def curves_figure(runs, window=WINDOW):
    """A figure of the RunCurves runs, a panel each, above one another."""
    figure = new_figure(10, 5.6 * len(runs))
    for axes, run in zip(figure.subplots(len(runs), 1, squeeze=False)[:, 0], runs):
        _draw_run(axes, run, window)
    return figure


def _draw_run(axes, run, window):
    smoothed = _draw_curves(axes, run.curves, window)
    levels = []
    if run.record is not None:
        for split in SPLITS:
            levels.extend(_draw_final(axes, split, run.record['accuracy'][split]))
    if run.cell is not None:
        axes.axhline(run.cell.accuracy, color=PUBLISHED_COLOUR, linestyle='--', linewidth=1.2,
                     label='test, published (%s): %s' % (run.cell.describe_source(),
                                                         run.cell.describe_value()))
        levels.append(run.cell.accuracy)
    axes.set_ylim(*accuracy_range(smoothed, levels))
    last_step = max(steps[-1] for steps, _ in run.curves.values() if steps)
    axes.set_xlim(0, max(last_step, run.record['iterations'] if run.record else 1))
    axes.xaxis.set_major_formatter('{x:,.0f}')
    axes.set_xlabel('meta-iteration')
    axes.set_ylabel('accuracy (%)')
    axes.set_title(_run_title(run))
    axes.grid(alpha=0.3)
    # Below the panel, where it hides no line.
    axes.legend(loc='upper left', bbox_to_anchor=(0, -0.14), fontsize='small', frameon=False)


def _draw_curves(axes, curves, window):
    """Draw each split's smoothed periodic accuracies; return the curves drawn, in %."""
    smoothed = []
    for split in SPLITS:
        steps, values = curves[split]
        if steps:
            smoothed.append(100 * moving_average(values, window))
            axes.plot(steps, smoothed[-1], color=COLOURS[split], linewidth=1.2,
                      label='%s: periodic evaluation, %s' % (split, _smoothing(steps, window)))
    return smoothed


def _smoothing(steps, window):
    """How a curve is smoothed, in evaluations and meta-iterations."""
    if window == 1 or len(steps) < 2:
        return 'not smoothed'
    spacing = (steps[-1] - steps[0]) / (len(steps) - 1)
    return 'one task each, mean of %d around each point (%s meta-iterations)' % (
        window, format(round(window * spacing), ','))


def _draw_final(axes, split, accuracy):
    """Draw the final evaluation of a split as a line and a band; return the levels drawn."""
    mean, half_width = _percent(accuracy['mean']), _percent(accuracy['ci95'])
    tasks = '%s tasks' % format(accuracy['num_tasks'], ',')
    if half_width is not None:
        tasks += ', 95% interval'
    axes.axhline(mean, color=COLOURS[split], linewidth=1, label='%s: final evaluation, %s (%s)'
                 % (split, Estimate(split, mean, half_width).describe(), tasks))
    if half_width is None:
        return [mean]
    axes.axhspan(mean - half_width, mean + half_width, color=COLOURS[split], alpha=0.25,
                 linewidth=0)
    return [mean - half_width, mean + half_width]


def _run_title(run):
    title = run.label if run.setting is None else '%s: %s' % (run.label, run.setting.describe())
    if run.record is None:
        return title + ', no final evaluation yet'
    return title + ', %s meta-iterations' % format(run.record['iterations'], ',')


def accuracy_range(curves, levels):
    """The y range of a panel, in %: from the lowest, to the highest, of the lines drawn and of
    the smoothed curves after their first tenth, with a point to spare, rounded outwards to
    tens at the bottom and fives at the top. Below it the curves' steep start is cut off: shown
    in full, it would squeeze what a reader compares, the end of training and the lines, into a
    few pixels."""
    values = [value for curve in curves for value in curve[len(curve) // 10:]] + list(levels)
    low = max(0, 10 * math.floor((min(values) - 1) / 10))
    high = min(100, 5 * math.ceil((max(values) + 1) / 5))
    return low, high


def comparison_figure(panels):
    """A figure of (title, run Estimate, published Estimates) panels, above one another: each
    a row per accuracy, the run's first, with its interval as a bar, and the run's interval as a
    band through the panel. A title may have two lines: the panel is narrower than the figure."""
    heights = [len(cells) + 1 for _, _, cells in panels]
    figure = new_figure(10, 1.1 + 0.55 * sum(heights) + 0.85 * len(panels))
    axes_list = figure.subplots(len(panels), 1, squeeze=False, height_ratios=heights)[:, 0]
    for axes, (title, run, cells) in zip(axes_list, panels):
        _draw_comparison(axes, title, run, cells)
    figure.supxlabel('Run: mean and 95% interval over its test tasks. Published: the '
                     "Reptile paper's ± (standard deviation over three seeds); the 2022 review "
                     'gives none.', fontsize='small')
    return figure


def _draw_comparison(axes, title, run, cells):
    rows = [run] + list(cells)
    positions = list(range(len(rows)))[::-1]
    if run.half_width is not None:
        axes.axvspan(run.value - run.half_width, run.value + run.half_width,
                     color=COLOURS['test'], alpha=0.15, linewidth=0)
    for position, row in zip(positions, rows):
        colour = COLOURS['test'] if row is run else PUBLISHED_COLOUR
        axes.errorbar(row.value, position, xerr=row.half_width, fmt='o' if row is run else 's',
                      color=colour, capsize=4, markersize=6)
        axes.annotate(row.describe(), (row.value, position),
                      xytext=(0, 7), textcoords='offset points', ha='center', fontsize='small')
    axes.set_yticks(positions, [row.label for row in rows])
    axes.set_ylim(-0.7, len(rows) - 0.3)
    axes.set_xlim(*_value_range(rows))
    axes.set_xlabel('test accuracy (%)')
    axes.set_title(title)
    axes.grid(axis='x', alpha=0.3)


def _value_range(rows):
    """An x range holding every row's interval, with room for the labels."""
    low = min(row.value - (row.half_width or 0) for row in rows)
    high = max(row.value + (row.half_width or 0) for row in rows)
    margin = max(0.25 * (high - low), 0.2)
    return low - margin, high + margin


def main(argv=None):
    parser = argparse.ArgumentParser(
        prog='python -m supervised_reptile.plot',
        description="Draw runs' learning curves, final evaluations and published accuracies.")
    parser.add_argument('directories', nargs='+', metavar='RUN_DIR',
                        help='checkpoint directories of training runs')
    parser.add_argument('--output', required=True, metavar='FILE.png',
                        help='the picture to write (its extension names the format)')
    parser.add_argument('--window', type=int, default=WINDOW,
                        help='periodic evaluations averaged per point of a curve (default: '
                             '%(default)s)')
    options = parser.parse_args(argv)
    try:
        if options.window < 1:
            raise UserError('--window %d: give 1 or more evaluations' % options.window)
        runs = [load_run(directory) for directory in options.directories]
        for run in runs:
            if run.record is None:
                print('note: %s has no %s yet; drawn without its final evaluation'
                      % (run.label, results.RESULTS), file=sys.stderr)
        save(curves_figure(runs, options.window), options.output)
    except UserError as exc:
        print('error: %s' % exc, file=sys.stderr)
        return 2
    return 0


if __name__ == '__main__':
    sys.exit(main())
