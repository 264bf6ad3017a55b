"""python -m supervised_reptile.compare: runs beside the published cells of their setting."""

import math
import os
import subprocess
import sys

from PIL import Image
import pytest

from supervised_reptile import compare, presets, results
from supervised_reptile.errors import UserError

from conftest import REPO_DIR, SHARED_DIR

FULL_RUN = SHARED_DIR / 'runs' / 'o15t-full'


def record(test_mean=0.95, test_ci95=0.028, preset=None, **setting):
    """A results record of a finished run, as experiment.Run writes it."""
    fields = dict(dataset='omniglot', ways=5, shots=1, transductive=True, algorithm='reptile',
                  inner_optimizer='adam')
    fields.update(setting)
    flags = dict(presets.PRESETS[preset].flags) if preset else {}
    flags.update({'classes': fields['ways'], 'shots': fields['shots'], 'meta-iters': 200})
    return dict(fields, preset=preset, pretrained=False, iterations=200,
                checkpoint='model.ckpt-199', config='config.json', flags=flags,
                accuracy={'train': {'mean': 0.9, 'ci95': 0.01, 'num_tasks': 100},
                          'test': {'mean': test_mean, 'ci95': test_ci95, 'num_tasks': 100}},
                wall_time_seconds={'training': 1.0, 'evaluation': 1.0, 'total': 2.0})


def cells(**setting):
    return [(cell.source, cell.accuracy) for cell in
            compare.matching_cells('run', record(**setting))]


def test_combined_interval_adds_half_widths_in_quadrature():
    assert compare.combined_half_width(3.0, 4.0) == 5.0
    assert compare.combined_half_width(0.5, None) == 0.5
    assert compare.combined_half_width(None, 0.3) is None
    assert math.isclose(compare.combined_half_width(2.8, 0.08), math.sqrt(2.8 ** 2 + 0.08 ** 2))


def test_within_compares_the_size_of_the_difference():
    assert compare.within(-5.0, 5.0) == 'yes' and compare.within(5.0, 5.0) == 'yes'
    assert compare.within(-5.01, 5.0) == 'no'
    assert compare.within(1.0, None) == 'n/a'


def test_a_run_is_matched_to_the_cells_of_its_setting():
    assert cells() == [('final', 97.68), ('early', 97.97), ('review', 97.7)]
    assert cells(transductive=False) == [('final', 95.39), ('early', 95.32)]
    assert cells(shots=5, ways=20) == [('final', 97.12), ('early', 97.47)]
    assert cells(shots=5, ways=20, transductive=False) == [('final', 96.65), ('early', 97.07)]
    assert cells(inner_optimizer='sgd') == [('review', 97.4)]
    assert cells(dataset='miniimagenet') == [('final', 49.97), ('early', 48.21),
                                             ('review', 51.6)]
    assert cells(dataset='miniimagenet', shots=5, transductive=False) == [('final', 62.74),
                                                                          ('early', 61.98)]
    assert cells(dataset='miniimagenet', shots=10) == [('review', 72.6)]


@pytest.mark.parametrize('setting', [dict(shots=2), dict(ways=10), dict(algorithm='fomaml'),
                                     dict(dataset='miniimagenet', ways=20),
                                     dict(dataset='miniimagenet', shots=10, transductive=False)])
def test_a_setting_nothing_is_published_for_is_refused(setting):
    with pytest.raises(UserError, match='nothing is published for'):
        compare.matching_cells('run', record(**setting))


@pytest.mark.parametrize('setting', [dict(shots=5), dict(transductive=False),
                                     dict(algorithm='fomaml'), dict(inner_optimizer='sgd')])
def test_a_run_that_is_not_its_presets_setting_is_refused(setting):
    with pytest.raises(UserError, match='mismatched settings'):
        compare.matching_cells('run', record(preset='o15t', **setting))


def test_table_shows_difference_interval_and_verdict_per_cell():
    lines = compare.table([('ckpt_o15t', record(preset='o15t'))]).splitlines()
    assert lines[0].startswith('| run | preset | setting | iterations | test accuracy (%) |')
    rows = [line.split(' | ') for line in lines[2:5]]
    assert rows[0][:5] == ['| ckpt_o15t', 'o15t', 'Omniglot 1-shot 5-way, transductive', '200',
                           '95.00 ± 2.80 (100 tasks)']
    # published, source, difference, combined interval, within
    assert rows[0][5:] == ['97.68 ± 0.04', 'final version, Table 2 (preset)', '-2.68', '± 2.80',
                           'yes |']
    assert rows[1][5:] == ['97.97 ± 0.08', 'early version, Table 2', '-2.97', '± 2.80', 'no |']
    assert rows[2][5:] == ['97.7', '2022 review, Table 3', '-2.70', '± 2.80', 'yes |']
    assert '- ckpt_o15t: preset o15t with --meta-iters 200 (preset: 100000)' in lines


def write_run(directory, run_record, name=results.RESULTS):
    results.write(directory, name, run_record)
    return str(directory)


def test_command_prints_markdown_and_exits_zero(tmp_path, capsys):
    first = write_run(tmp_path / 'ckpt_o15t', record(preset='o15t'))
    second = write_run(tmp_path / 'ckpt_o55', record(shots=5, transductive=False, test_mean=0.99))
    write_run(second, record(shots=5, test_mean=0.992), name=results.EVAL_RESULTS)
    assert compare.main([first + '/', second]) == 0
    out = capsys.readouterr().out
    assert out.count('| %s | o15t |' % os.path.normpath(first)) == 1
    assert '| %s | - | Omniglot 5-shot 5-way, non-transductive |' % second in out
    assert '| %s (--pretrained) | - | Omniglot 5-shot 5-way, transductive |' % second in out


def test_command_refuses_with_one_line_and_exit_2(tmp_path, capsys):
    good = write_run(tmp_path / 'good', record())
    mismatched = write_run(tmp_path / 'bad', record(preset='o15t', shots=5))
    assert compare.main([good, mismatched]) == 2
    captured = capsys.readouterr()
    assert captured.out == ''
    assert captured.err.startswith('error: %s: ran preset o15t' % mismatched)
    assert compare.main([str(tmp_path / 'empty')]) == 2
    assert 'holds no results.json' in capsys.readouterr().err


@pytest.mark.slow
def test_runs_as_a_module(tmp_path):
    directory = write_run(tmp_path / 'ckpt', record())
    result = subprocess.run([sys.executable, '-m', 'supervised_reptile.compare', directory],
                            cwd=REPO_DIR, capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith('| run |')


def test_a_file_that_is_not_a_results_record_is_refused(tmp_path):
    directory = write_run(tmp_path / 'old', {'dataset': 'omniglot'})
    with pytest.raises(UserError, match='not a results file of this version: it has no ways'):
        compare.load_runs([directory])


def test_figure_panels_hold_the_run_and_the_published_cells_of_its_setting():
    (title, run, cells), = compare.figure_panels([('ckpt_o15t', record(preset='o15t'))])
    assert title == 'ckpt_o15t\nOmniglot 1-shot 5-way, transductive, 200 meta-iterations'
    assert (run.label, run.describe()) == ('this run (100 tasks)', '95.00 ± 2.80')
    assert [(cell.label, cell.describe()) for cell in cells] == [
        ('published: final version, Table 2 (preset)', '97.68 ± 0.04'),
        ('published: early version, Table 2', '97.97 ± 0.08'),
        ('published: 2022 review, Table 3', '97.7')]
    (_, run, cells), = compare.figure_panels([('mine', record(dataset='folder', test_ci95=None))])
    assert run.half_width is None and cells == []


def test_plot_draws_every_run_beside_its_published_numbers(tmp_path, capsys):
    first = write_run(tmp_path / 'ckpt_o15t', record(preset='o15t'))
    second = write_run(tmp_path / 'ckpt_o55', record(shots=5, transductive=False, test_mean=0.99))
    output = tmp_path / 'compare.png'
    assert compare.main([first, second, '--plot', str(output)]) == 0
    assert capsys.readouterr().out.startswith('| run |')
    with Image.open(output) as image:
        assert image.format == 'PNG' and image.width == 1200 and 600 <= image.height <= 2000
        colours = image.convert('RGB').getcolors(maxcolors=1 << 20)
    assert len(colours) > 50  # text, markers and the bands, not an empty canvas


def test_a_plot_that_cannot_be_written_is_refused_with_one_line_and_no_table(tmp_path, capsys):
    directory = write_run(tmp_path / 'ckpt', record())
    output = tmp_path / 'missing' / 'compare.png'
    assert compare.main([directory, '--plot', str(output)]) == 2
    captured = capsys.readouterr()
    assert captured.out == ''
    assert captured.err == 'error: cannot write %s: there is no directory %s; create it first\n' % (
        output, tmp_path / 'missing')


@pytest.mark.slow
def test_the_full_length_run_of_an_earlier_release_is_compared_and_drawn(tmp_path):
    if not FULL_RUN.is_dir():
        pytest.skip('the full-length run (../shared/runs/o15t-full) is not here')
    output = tmp_path / 'compare.png'
    result = subprocess.run([sys.executable, '-m', 'supervised_reptile.compare', str(FULL_RUN),
                             '--plot', str(output)], cwd=REPO_DIR, capture_output=True,
                            text=True, timeout=120, check=False)
    assert result.returncode == 0 and result.stderr == '', result.stderr
    assert '| 97.63 ± 0.14 (10000 tasks) | 97.68 ± 0.04 | final version, Table 2 | -0.05 |' \
        in result.stdout
    with Image.open(output) as image:
        assert image.format == 'PNG' and image.width == 1200 and image.height >= 300
