"""
Finished runs beside the published accuracies:

    python -m supervised_reptile.compare ckpt_o15t/ ckpt_o55/ ...

prints a markdown table with, for every results file in the given checkpoint directories, the
test accuracy beside each published cell of the same setting (dataset, ways, shots,
transduction, algorithm, inner optimizer; published.py), the difference and whether it lies
within the combined interval. It refuses, naming the run, a directory without results, a run
whose setting has no published cell, and a run whose setting is not the one its preset
reproduces. With --plot FILE.png it also draws every run's test accuracy and interval beside
the published numbers of its setting, with theirs (plot.comparison_figure).
"""

import argparse
import math
import os
import sys

from . import plot, presets, published, results
from .errors import UserError

# What this command reads from a results file (experiment.Run writes more).
REQUIRED = ('dataset', 'ways', 'shots', 'transductive', 'algorithm', 'inner_optimizer', 'preset',
            'iterations', 'accuracy', 'flags')

HEADER = ('run', 'preset', 'setting', 'iterations', 'test accuracy (%)', 'published (%)',
          'source', 'difference', 'combined interval', 'within')

NOTE = ('Difference: run minus published, in percentage points. Combined interval: the '
        "half-widths of the run's 95% interval over its test tasks and of the published +/- "
        '(the Reptile paper: standard deviation over three seeds; the review gives none) added '
        'in quadrature, sqrt(a^2 + b^2). "(preset)" marks the cell the run\'s preset reproduces.')


def combined_half_width(run_half_width, published_half_width):
    """The half-width of the interval of a difference of two independent estimates: the
    half-widths add in quadrature. A published number without an interval adds nothing; a run
    without one (a single task) gives None."""
    if run_half_width is None:
        return None
    return math.hypot(run_half_width, published_half_width or 0.0)


def within(difference, half_width):
    """'yes' if the difference lies within the interval, 'no' if not, 'n/a' without one."""
    if half_width is None:
        return 'n/a'
    return 'yes' if abs(difference) <= half_width else 'no'


def run_setting(record):
    """The setting a results record measures."""
    return published.Setting(record['dataset'], record['ways'], record['shots'],
                             record['transductive'], record['algorithm'],
                             record['inner_optimizer'])


def matching_cells(label, record):
    """The published cells to set beside a run: none for a folder of one's own images; a
    UserError if there are none for a benchmark's run, or if the run is not the setting of its
    preset's cell."""
    setting = run_setting(record)
    if setting.dataset == 'folder':
        return []
    preset = record.get('preset')
    if preset is not None:
        if preset not in presets.PRESETS:
            raise UserError('%s: ran preset %s, which this version does not know'
                            % (label, preset))
        target = presets.PRESETS[preset].setting
        if target != setting:
            raise UserError('%s: ran preset %s, which reproduces %s, but measured %s; '
                            'mismatched settings are not compared'
                            % (label, preset, target.describe(), setting.describe()))
    cells = published.cells_for(setting)
    if not cells:
        raise UserError('%s: nothing is published for %s' % (label, setting.describe()))
    return cells


def preset_deviations(record):
    """'--flag value (preset value)' for each value of the run's preset that the run changed."""
    preset = presets.PRESETS.get(record.get('preset'))
    if preset is None:
        return []
    return ['--%s %s (preset: %s)' % (name, record['flags'][name], value)
            for name, value in preset.flags.items()
            if name != 'checkpoint' and record['flags'].get(name) != value]


def load_runs(directories):
    """(label, record) of every results file in the directories; a UserError for a directory
    without one."""
    runs = []
    for directory in directories:
        paths = results.result_files(directory)
        if not paths:
            raise UserError('%s holds no %s; a run writes it after its final evaluation'
                            % (directory, results.RESULTS))
        label = os.path.normpath(directory)
        runs.extend((label if os.path.basename(path) == results.RESULTS
                     else '%s (--pretrained)' % label, _read_record(path)) for path in paths)
    return runs


def _read_record(path):
    try:
        record = results.read(path)
    except (OSError, ValueError) as exc:
        raise UserError('cannot read %s (%s)' % (path, exc)) from exc
    missing = [key for key in REQUIRED if key not in record]
    if missing:
        raise UserError('%s is not a results file of this version: it has no %s'
                        % (path, ', '.join(missing)))
    return record


def _run_columns(label, record):
    test = record['accuracy']['test']
    accuracy = '%.2f' % (100 * test['mean'])
    if test['ci95'] is not None:
        accuracy += ' ± %.2f' % (100 * test['ci95'])
    return [label, record.get('preset') or '-', run_setting(record).describe(),
            str(record['iterations']), '%s (%d tasks)' % (accuracy, test['num_tasks'])]


def _cell_columns(record, cell):
    test = record['accuracy']['test']
    run_half_width = None if test['ci95'] is None else 100 * test['ci95']
    difference = 100 * test['mean'] - cell.accuracy
    half_width = combined_half_width(run_half_width, cell.half_width)
    return [cell.describe_value(), _source(record, cell), '%+.2f' % difference,
            'n/a' if half_width is None else '± %.2f' % half_width,
            within(difference, half_width)]


def _source(record, cell):
    """Where a cell is published, marked if the run's preset reproduces it."""
    preset = presets.PRESETS.get(record.get('preset'))
    if preset is not None and preset.cell() == cell:
        return cell.describe_source() + ' (preset)'
    return cell.describe_source()


def table(runs):
    """The markdown comparison of (label, record) runs, with its notes."""
    lines = ['| %s |' % ' | '.join(HEADER), '|' + ' --- |' * len(HEADER)]
    notes = []
    for label, record in runs:
        cells = matching_cells(label, record)
        if not cells:
            lines.append('| %s |' % ' | '.join(_run_columns(label, record) + ['-'] * 5))
        for i, cell in enumerate(cells):
            run_columns = _run_columns(label, record) if i == 0 else [''] * 5
            lines.append('| %s |' % ' | '.join(run_columns + _cell_columns(record, cell)))
        deviations = preset_deviations(record)
        if deviations:
            notes.append('- %s: preset %s with %s' % (label, record['preset'],
                                                      ', '.join(deviations)))
    return '\n'.join(lines + [''] + notes + ([''] if notes else []) + [NOTE, ''] + _sources())


def _sources():
    return ['- %s: %s' % (published.SHORT_SOURCES[key], citation)
            for key, citation in published.SOURCES.items()]


def figure_panels(runs):
    """The panels of plot.comparison_figure for (label, record) runs: a title (the run, then
    what it measured), the run's test accuracy and the published cells of its setting, in
    percent."""
    panels = []
    for label, record in runs:
        test = record['accuracy']['test']
        run_half_width = None if test['ci95'] is None else 100 * test['ci95']
        run = plot.Estimate('this run (%s tasks)' % format(test['num_tasks'], ','),
                            100 * test['mean'], run_half_width)
        cells = [plot.Estimate('published: ' + _source(record, cell), cell.accuracy,
                               cell.half_width, cell.decimals)
                 for cell in matching_cells(label, record)]
        title = '%s\n%s, %s meta-iterations' % (label, run_setting(record).describe(),
                                                 format(record['iterations'], ','))
        panels.append((title, run, cells))
    return panels


def main(argv=None):
    parser = argparse.ArgumentParser(
        prog='python -m supervised_reptile.compare',
        description='Compare finished runs with the published accuracies (markdown table).')
    parser.add_argument('directories', nargs='+', metavar='CHECKPOINT_DIR',
                        help='checkpoint directories of finished runs')
    parser.add_argument('--plot', metavar='FILE.png',
                        help='also draw the comparison into this picture (its extension names '
                             'the format)')
    options = parser.parse_args(argv)
    try:
        runs = load_runs(options.directories)
        comparison = table(runs)
        # Drawn before the table is printed: a picture that cannot be made is the only output.
        if options.plot:
            plot.save(plot.comparison_figure(figure_panels(runs)), options.plot)
        print(comparison)
    except UserError as exc:
        print('error: %s' % exc, file=sys.stderr)
        return 2
    return 0


if __name__ == '__main__':
    sys.exit(main())
