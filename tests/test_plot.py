"""python -m supervised_reptile.plot: learning curves of runs, read back from their event files,
with their final evaluation and the published accuracy of their setting."""

import os
import subprocess
import sys

import numpy as np
from PIL import Image
import pytest
import tensorflow as tf

from supervised_reptile import plot, published, results, summaries

from conftest import REPO_DIR, SHARED_DIR

FULL_RUN = SHARED_DIR / 'runs' / 'o15t-full'
TAB_BLUE, TAB_ORANGE = (31, 119, 180), (255, 127, 14)


def flags(iterations, **changed):
    """A run's flags, as results.json and config.json record them (a few of them)."""
    values = {'seed': 0, 'classes': 5, 'shots': 1, 'train-shots': 10, 'meta-iters': iterations,
              'eval-interval': 10, 'eval-samples': 100, 'transductive': True, 'foml': False,
              'sgd': False, 'preset': None}
    values.update(changed)
    return values


def results_record(iterations, train=(0.9, 0.012), test=(0.85, 0.014), preset=None):
    """results.json as a run writes it (shaped like ../shared/runs/o15t-full's)."""
    return {'dataset': 'omniglot', 'ways': 5, 'shots': 1, 'transductive': True,
            'algorithm': 'reptile', 'inner_optimizer': 'adam', 'preset': preset,
            'pretrained': False, 'iterations': iterations,
            'checkpoint': 'model.ckpt-%d' % (iterations - 1),
            'accuracy': {split: {'mean': mean, 'ci95': ci95, 'num_tasks': 100}
                         for split, (mean, ci95) in (('train', train), ('test', test))},
            'wall_time_seconds': {'training': 10.0, 'evaluation': 2.0, 'total': 12.5},
            'config': 'config.json', 'flags': flags(iterations, preset=preset)}


def write_run(directory, iterations=400, interval=10, with_results=True, seed=0, **record):
    """A tiny finished run: periodic accuracies (one 5-way task each: 0, 0.2, ..., 1) logged
    by the training's own writer, config.json and, unless told otherwise, results.json.
    Returns the logged accuracies of each split."""
    rng = np.random.default_rng(seed)
    steps = list(range(0, iterations, interval))
    logged = {}
    for split in plot.SPLITS:
        logged[split] = rng.integers(3, 6, len(steps)) / 5
        writer = summaries.ScalarWriter(str(directory / split))
        for step, accuracy in zip(steps, logged[split]):
            writer.scalars(step, accuracy=accuracy, loss=1.0)
    results.write(directory, results.CONFIG, {'dataset': 'omniglot', 'preset': None,
                                              'flags': flags(iterations)})
    if with_results:
        results.write(directory, results.RESULTS, results_record(iterations, **record))
    return steps, logged


def write_raw_events(path, scalars):
    """An event file of (step, tag, value) scalars stored as simple values, as TensorFlow 1's
    summaries stored them."""
    with tf.io.TFRecordWriter(str(path)) as writer:
        for step, tag, value in scalars:
            summary = tf.compat.v1.Summary(value=[tf.compat.v1.Summary.Value(
                tag=tag, simple_value=value)])
            writer.write(tf.compat.v1.Event(step=step, summary=summary).SerializeToString())


def legend(axes):
    return [text.get_text() for text in axes.get_legend().get_texts()]


def assert_picture(path, width, min_height):
    """path is a PNG of width pixels, at least min_height high, with both curves' colours."""
    with Image.open(path) as image:
        assert image.format == 'PNG'
        assert image.width == width and min_height <= image.height <= 3 * min_height
        pixels = np.asarray(image.convert('RGB')).reshape(-1, 3).astype(int)
    for colour in (TAB_BLUE, TAB_ORANGE):
        assert np.sum(np.abs(pixels - colour).sum(axis=1) < 30) > 100, colour


# Smoothing and the y range.

def test_the_moving_average_is_centred_and_uses_fewer_values_at_the_ends():
    np.testing.assert_allclose(plot.moving_average([1, 2, 3, 4, 5, 6], 3),
                               [1.5, 2, 3, 4, 5, 5.5])
    np.testing.assert_allclose(plot.moving_average([0, 0, 6, 0, 0], 5), [2, 1.5, 1.2, 1.5, 2])
    np.testing.assert_allclose(plot.moving_average([4, 1, 7], 1), [4, 1, 7])
    np.testing.assert_allclose(plot.moving_average([1, 2, 3, 4], 10), [2.5] * 4)


def test_the_moving_average_does_not_lag_a_trend():
    ramp = np.arange(100.0)
    np.testing.assert_allclose(plot.moving_average(ramp, 21)[10:-10], ramp[10:-10])


def test_the_y_range_holds_the_lines_and_the_curves_but_their_start():
    start_then_flat = np.concatenate([np.linspace(20, 95, 10), np.full(90, 95.0)])
    assert plot.accuracy_range([start_then_flat], [97.6, 97.7]) == (90, 100)
    assert plot.accuracy_range([np.full(50, 48.0)], [47.0]) == (40, 50)
    assert plot.accuracy_range([np.full(50, 0.5)], []) == (0, 5)


# Reading event files.

def test_scalars_are_read_from_tensors_and_simple_values_by_step(tmp_path):
    writer = summaries.ScalarWriter(str(tmp_path))
    for step in (0, 10, 20):
        writer.scalars(step, accuracy=step / 100, loss=5.0)
    write_raw_events(tmp_path / 'events.out.tfevents.9999999999.old', [
        (20, 'accuracy', 0.75), (30, 'accuracy', 0.5), (30, 'loss', 1.0)])
    steps, values = summaries.read_scalars(str(tmp_path), 'accuracy')
    # Step 20 is in both files: the later file's value is kept.
    assert steps == [0, 10, 20, 30]
    np.testing.assert_allclose(values, [0.0, 0.1, 0.75, 0.5], rtol=1e-6)
    assert summaries.last_logged_step(str(tmp_path)) == 30


def test_a_record_cut_short_ends_the_reading_of_its_file(tmp_path):
    path = tmp_path / 'events.out.tfevents.1.cut'
    write_raw_events(path, [(step, 'accuracy', 0.5) for step in range(5)])
    path.write_bytes(path.read_bytes()[:-10])
    assert summaries.read_scalars(str(tmp_path), 'accuracy')[0] == [0, 1, 2, 3]
    assert summaries.last_logged_step(str(tmp_path)) == 3


@pytest.mark.slow
def test_event_files_are_read_without_a_deprecation_notice(tmp_path):
    write_raw_events(tmp_path / 'events.out.tfevents.1.x', [(7, 'accuracy', 0.5)])
    code = ('from supervised_reptile import summaries; '
            'print(summaries.last_logged_step(%r))' % str(tmp_path))
    process = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True,
                             env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL='2'), timeout=120,
                             check=True)
    assert process.stdout == '7\n'
    assert 'deprecat' not in process.stderr.lower(), process.stderr


# The picture.

def test_a_run_is_drawn_with_its_smoothed_curves_final_lines_and_published_number(tmp_path):
    steps, logged = write_run(tmp_path / 'ckpt', preset='o15t')
    figure = plot.curves_figure([plot.load_run(str(tmp_path / 'ckpt'))], window=5)
    axes, = figure.axes
    curves = {line.get_label().split(':')[0]: line for line in axes.lines
              if 'periodic' in line.get_label()}
    for split in plot.SPLITS:
        np.testing.assert_array_equal(curves[split].get_xdata(), steps)
        np.testing.assert_allclose(curves[split].get_ydata(),
                                   100 * plot.moving_average(logged[split], 5), rtol=1e-6)
    labels = legend(axes)
    assert 'train: periodic evaluation, one task each, mean of 5 around each point (50 ' \
           'meta-iterations)' in labels
    assert 'train: final evaluation, 90.00 ± 1.20 (100 tasks, 95% interval)' in labels
    assert 'test: final evaluation, 85.00 ± 1.40 (100 tasks, 95% interval)' in labels
    assert 'test, published (final version, Table 2): 97.68 ± 0.04' in labels
    assert axes.get_xlim() == (0, 400)
    assert 'Omniglot 1-shot 5-way, transductive, 400 meta-iterations' in axes.get_title()


def test_the_published_number_is_that_of_the_preset_or_the_final_version():
    setting = published.Setting('omniglot', 5, 1, True)
    assert plot.drawn_cell(setting, None).source == published.FINAL
    assert plot.drawn_cell(setting, 'early-o15t').source == published.EARLY
    assert plot.drawn_cell(setting, 'review-o15t').source == published.REVIEW
    # A preset of another setting does not pick the cell; a setting without cells has none.
    assert plot.drawn_cell(setting, 'o55').source == published.FINAL
    assert plot.drawn_cell(published.Setting('omniglot', 5, 2, True), 'o15t') is None


def test_a_run_without_results_is_drawn_without_final_lines(tmp_path, capsys):
    write_run(tmp_path / 'running', with_results=False)
    run = plot.load_run(str(tmp_path / 'running'))
    axes, = plot.curves_figure([run]).axes
    assert not [label for label in legend(axes) if 'final evaluation' in label]
    assert 'test, published (final version, Table 2): 97.68 ± 0.04' in legend(axes)
    assert axes.get_title().endswith('no final evaluation yet')
    output = tmp_path / 'running.png'
    assert plot.main([str(tmp_path / 'running'), '--output', str(output)]) == 0
    assert capsys.readouterr().err == ('note: %s has no results.json yet; drawn without its '
                                       'final evaluation\n' % (tmp_path / 'running'))
    assert_picture(output, 1200, 600)


@pytest.mark.slow
def test_the_command_writes_a_png_of_a_panel_per_run(tmp_path):
    first, second = tmp_path / 'first', tmp_path / 'second'
    write_run(first)
    write_run(second, iterations=200, interval=5, seed=1, test=(0.7, None))
    output = tmp_path / 'curves.png'
    process = subprocess.run([sys.executable, '-m', 'supervised_reptile.plot', str(first),
                              str(second), '--output', str(output), '--window', '10'],
                             cwd=REPO_DIR, capture_output=True, text=True, timeout=300,
                             check=False)
    assert process.returncode == 0, process.stderr
    # TensorFlow's start-up lines are filtered out, and nothing else is said.
    assert process.stdout == process.stderr == ''
    assert_picture(output, 1200, 1200)


# Bad input: one line, exit code 2.

def refused(capsys, *argv):
    """The one line main printed refusing argv."""
    assert plot.main(list(argv)) == 2
    captured = capsys.readouterr()
    assert captured.out == '' and captured.err.count('\n') == 1, captured
    return captured.err


def test_a_directory_that_does_not_exist_is_refused(tmp_path, capsys):
    err = refused(capsys, str(tmp_path / 'nothing'), '--output', str(tmp_path / 'x.png'))
    assert err == 'error: %s: no such directory; give the --checkpoint directory of a run\n' % (
        tmp_path / 'nothing')


def test_a_directory_without_event_files_is_refused(tmp_path, capsys):
    results.write(tmp_path / 'run', results.RESULTS, results_record(100))
    err = refused(capsys, str(tmp_path / 'run'), '--output', str(tmp_path / 'x.png'))
    assert err.startswith('error: %s holds no TensorBoard event files in train/ or test/'
                          % (tmp_path / 'run'))


def test_event_files_without_accuracies_are_refused(tmp_path, capsys):
    (tmp_path / 'run' / 'train').mkdir(parents=True)
    write_raw_events(tmp_path / 'run' / 'train' / 'events.out.tfevents.1.x', [(0, 'loss', 1.0)])
    err = refused(capsys, str(tmp_path / 'run'), '--output', str(tmp_path / 'x.png'))
    assert "hold no 'accuracy' scalars" in err


def test_an_unreadable_results_file_is_refused(tmp_path, capsys):
    write_run(tmp_path / 'run', with_results=False)
    (tmp_path / 'run' / results.RESULTS).write_text('{"accuracy": ')
    err = refused(capsys, str(tmp_path / 'run'), '--output', str(tmp_path / 'x.png'))
    assert err.startswith('error: cannot read %s' % (tmp_path / 'run' / results.RESULTS))


def test_an_output_that_cannot_be_written_is_refused(tmp_path, capsys):
    write_run(tmp_path / 'run')
    err = refused(capsys, str(tmp_path / 'run'), '--output', str(tmp_path / 'no' / 'x.png'))
    assert err == 'error: cannot write %s: there is no directory %s; create it first\n' % (
        tmp_path / 'no' / 'x.png', tmp_path / 'no')
    assert 'is not supported' in refused(capsys, str(tmp_path / 'run'), '--output',
                                         str(tmp_path / 'x.nope'))
    assert refused(capsys, str(tmp_path / 'run'), '--output', str(tmp_path / 'x.png'),
                   '--window', '0') == 'error: --window 0: give 1 or more evaluations\n'


@pytest.mark.slow
def test_without_matplotlib_the_error_says_how_to_install_it(tmp_path, capsys, monkeypatch):
    write_run(tmp_path / 'run')
    for name in [name for name in sys.modules if name.startswith('matplotlib')]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, 'matplotlib', None)
    err = refused(capsys, str(tmp_path / 'run'), '--output', str(tmp_path / 'x.png'))
    assert err == ('error: drawing needs matplotlib, which is not installed: pip install '
                   'matplotlib\n')


def test_the_modules_import_without_matplotlib_and_compare_without_tensorflow():
    code = ('import sys; sys.modules["matplotlib"] = None; '
            'import supervised_reptile.plot, supervised_reptile.compare; '
            'print("tensorflow" in sys.modules)')
    process = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True,
                             timeout=120, check=True)
    assert process.stdout == 'False\n'


# The full-length run of README row 1, written by an earlier release.

@pytest.fixture
def full_run():
    if not FULL_RUN.is_dir():
        pytest.skip('the full-length run (../shared/runs/o15t-full) is not here')
    return str(FULL_RUN)


@pytest.mark.slow
def test_the_full_length_run_of_an_earlier_release_is_drawn(full_run, tmp_path):
    run = plot.load_run(full_run)
    for split in plot.SPLITS:
        steps, values = run.curves[split]
        assert steps == list(range(0, 100000, 100))
        assert set(np.round(np.array(values) * 5, 4)) <= {0, 1, 2, 3, 4, 5}
    assert run.record['iterations'] == 100000
    assert run.cell == published.cell(published.FINAL, run.setting)
    output = tmp_path / 'o15t-full.png'
    assert plot.main([full_run, '--output', str(output)]) == 0
    assert_picture(output, 1200, 600)
