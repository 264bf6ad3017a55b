"""Bad input: one line naming the problem and the fix, exit code 2, nothing on disk touched."""

import os

import pytest

from supervised_reptile import args, cli

from conftest import copy_omniglot_tree, run_script_here, write_omniglot_tree

BAD_FLAGS = [
    ('--shots 0', 'flag --shots=0: 0 is not a positive integer'),
    ('--classes -1', 'flag --classes=-1: -1 is not a positive integer'),
    ('--inner-batch 0', 'flag --inner-batch=0'),
    ('--inner-iters 0', 'flag --inner-iters=0'),
    ('--meta-batch 0', 'flag --meta-batch=0'),
    ('--meta-iters 0', 'flag --meta-iters=0'),
    ('--eval-batch 0', 'flag --eval-batch=0'),
    ('--eval-iters -3', 'flag --eval-iters=-3'),
    ('--eval-samples 0', 'flag --eval-samples=0'),
    ('--eval-interval 0', 'flag --eval-interval=0'),
    ('--train-shots -1', 'flag --train-shots=-1'),
    ('--learning-rate -0.1', 'flag --learning-rate=-0.1'),
    ('--foml-tail 1', '--foml-tail needs --foml; add --foml or drop --foml-tail'),
    ('--foml --foml-tail 0', 'flag --foml-tail=0'),
    ('--foml --foml-tail 6', '--foml-tail must leave at least one training shot per class'),
    ('--foml --foml-tail 3 --train-shots 3', 'lower --foml-tail or raise --train-shots'),
    ('--learning-rate fast', "could not convert string to float: 'fast'"),
    ('--weight-decay 1.5', '--weight-decay is the rate the weights are multiplied by'),
    ('--weight-decay 0', 'give a value above 0 and at most 1'),
    ('--no-such-flag', "Unknown command line flag 'no-such-flag'"),
]


@pytest.mark.parametrize('command, message', BAD_FLAGS)
def test_bad_flags_are_one_line_with_exit_code_2(command, message, capsys):
    args.FLAGS.unparse_flags()
    with pytest.raises(SystemExit) as exited:
        cli.parse_flags(['run_omniglot.py'] + command.split(), args.resolver('omniglot'))
    assert exited.value.code == 2
    error = capsys.readouterr().err
    assert error.count('\n') == 1 and error.startswith('error: ') and message in error
    args.FLAGS.unparse_flags()


def contents(root):
    return {path: path.read_bytes() for path in root.rglob('*') if path.is_file()}


SHORT_RUN = ['--shots', '1', '--train-shots', '2', '--inner-iters', '1', '--meta-iters', '2',
             '--eval-iters', '1', '--eval-samples', '2']


@pytest.fixture(scope='module')
def workdir(tmp_path_factory, omniglot_tree):
    """Synthetic Omniglot (two drawings per character) with a finished run in 'done', and an
    unfinished one in 'half' (its results removed as if the final evaluation had been killed)."""
    root = tmp_path_factory.mktemp('bad_input')
    copy_omniglot_tree(omniglot_tree, root)
    for name in ('done', 'half'):
        assert run_script_here(root, *SHORT_RUN, '--checkpoint', name).returncode == 0
    os.remove(root / 'half' / 'results.json')
    return root


BAD_RUNS = [
    (SHORT_RUN + ['--checkpoint', 'done'], 'done holds a finished run (see its results.json); '
     'evaluate it with --pretrained, or choose another --checkpoint'),
    (SHORT_RUN + ['--checkpoint', 'half', '--inner-iters', '2'],
     'half holds a run started with other settings (--inner-iters 1 there, 2 here); rerun its '
     'command to resume it, or choose another --checkpoint'),
    (SHORT_RUN + ['--checkpoint', 'half', '--seed', '1'], '(--seed 0 there, 1 here)'),
    (['--pretrained', '--checkpoint', 'nothing_here'],
     'no checkpoint in nothing_here; train first, or point --checkpoint at a training run'),
    (['--pretrained', '--classes', '6', '--checkpoint', 'done'],
     'does not fit this model'),
    (['--classes', '5000', '--checkpoint', 'new'],
     '5000 classes per task but the training set has only 4800 classes; lower --classes'),
    (['--shots', '2', '--checkpoint', 'new'], 'needs 3 images per class but class'),
    (['--shots', '1', '--train-shots', '3', '--checkpoint', 'new'],
     'a training task needs 3 images per class'),
]


@pytest.mark.slow
@pytest.mark.parametrize('flags, message', BAD_RUNS)
def test_bad_runs_are_refused_without_touching_anything(workdir, flags, message):
    before = contents(workdir)
    result = run_script_here(workdir, *flags)
    assert result.returncode == 2
    assert 'Traceback' not in result.stderr
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith('error: ') and message in last
    assert contents(workdir) == before
    assert not (workdir / 'new').exists()


@pytest.mark.slow
def test_missing_empty_and_corrupt_data_are_named(tmp_path):
    assert run_script_here(tmp_path, '--meta-iters', '1').stderr.strip().splitlines()[-1] == (
        'error: no Omniglot data in data/omniglot; run ./fetch_data.sh to download it')
    (tmp_path / 'data' / 'omniglot').mkdir(parents=True)
    empty = run_script_here(tmp_path, '--meta-iters', '1')
    assert empty.returncode == 2
    assert 'no Omniglot data in data/omniglot' in empty.stderr.strip().splitlines()[-1]

    write_omniglot_tree(tmp_path / 'data' / 'omniglot', alphabets=1, characters=2, drawings=2)
    corrupt = tmp_path / 'data' / 'omniglot' / 'Alphabet0' / 'character01' / '0000_01.png'
    corrupt.write_bytes(b'<html>not a png</html>')
    before = contents(tmp_path)
    result = run_script_here(tmp_path, '--meta-iters', '1', '--checkpoint', 'new')
    assert result.returncode == 2 and 'Traceback' not in result.stderr
    assert result.stderr.strip().splitlines()[-1].startswith(
        'error: cannot read image data/omniglot/Alphabet0/character01/0000_01.png')
    assert contents(tmp_path) == before
