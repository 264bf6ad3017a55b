"""run_omniglot.py: the reference's command lines, its output, and one-line errors."""

import shlex

import pytest

from supervised_reptile import args

from conftest import run_script, write_omniglot_tree

# The reference README's Omniglot commands (paper rows 1, 5-8, then two of the
# gradient-combination runs), verbatim.
README_COMMANDS = [
    '--shots 1 --inner-batch 10 --inner-iters 5 --meta-step 1 --meta-batch 5 --meta-iters 100000 '
    '--eval-batch 5 --eval-iters 50 --learning-rate 0.001 --meta-step-final 0 --train-shots 10 '
    '--checkpoint ckpt_o15t --transductive',
    '--train-shots 10 --inner-batch 10 --inner-iters 5 --learning-rate 0.001 --meta-step 1 '
    '--meta-step-final 0 --meta-batch 5 --meta-iters 100000 --eval-batch 5 --eval-iters 50 '
    '--checkpoint ckpt_o55',
    '--shots 1 --inner-batch 10 --inner-iters 5 --meta-step 1 --meta-batch 5 --meta-iters 100000 '
    '--eval-batch 5 --eval-iters 50 --learning-rate 0.001 --meta-step-final 0 --train-shots 10 '
    '--checkpoint ckpt_o15',
    '--shots 1 --classes 20 --inner-batch 20 --inner-iters 10 --meta-step 1 --meta-batch 5 '
    '--meta-iters 200000 --eval-batch 10 --eval-iters 50 --learning-rate 0.0005 '
    '--meta-step-final 0 --train-shots 10 --checkpoint ckpt_o120',
    '--classes 20 --inner-batch 20 --inner-iters 10 --meta-step 1 --meta-batch 5 '
    '--meta-iters 200000 --eval-batch 10 --eval-iters 50 --learning-rate 0.0005 '
    '--meta-step-final 0 --train-shots 10 --checkpoint ckpt_o520',
    '--sgd --seed 0 --inner-batch 25 --learning-rate 0.003 --meta-step-final 0 --meta-iters 40000 '
    '--eval-batch 25 --eval-iters 5 --eval-interval 1 --inner-iters 2 --train-shots 10 '
    '--meta-step 0.25 --checkpoint g1_g2_ckpt',
    '--sgd --seed 0 --inner-batch 25 --learning-rate 0.003 --meta-step-final 0 --meta-iters 40000 '
    '--eval-batch 25 --eval-iters 5 --eval-interval 1 --foml --inner-iters 4 --train-shots 20 '
    '--meta-step 0.25 --checkpoint g4_ckpt',
]


def parse(command):
    args.FLAGS.unparse_flags()
    args.FLAGS(['run_omniglot.py'] + shlex.split(command))
    return args.train_kwargs(), args.evaluate_kwargs()


def test_readme_row_1_means_what_the_reference_means():
    train, evaluate = parse(README_COMMANDS[0])
    assert train == dict(num_classes=5, num_shots=1, train_shots=10, inner_batch_size=10,
                         inner_iters=5, replacement=False, meta_step_size=1.0,
                         meta_step_size_final=0.0, meta_batch_size=5, meta_iters=100000,
                         eval_inner_batch_size=5, eval_inner_iters=50, eval_interval=10,
                         tail_shots=None)
    assert evaluate == dict(num_classes=5, num_shots=1, eval_inner_batch_size=5,
                            eval_inner_iters=50, replacement=False, num_samples=10000,
                            tasks_per_batch=None)
    assert args.FLAGS.transductive and args.FLAGS.checkpoint == 'ckpt_o15t'


@pytest.mark.parametrize('command', README_COMMANDS)
def test_every_readme_command_parses(command):
    train, _ = parse(command)
    values = shlex.split(command)
    assert train['inner_batch_size'] == int(values[values.index('--inner-batch') + 1])
    assert train['meta_iters'] == int(values[values.index('--meta-iters') + 1])


def test_train_shots_zero_means_shots():
    train, _ = parse('--shots 3')
    assert train['train_shots'] == 3


def test_help_lists_every_flag_with_its_default(tmp_path):
    result = run_script(tmp_path, '--help')
    for flag, default in [('inner-batch', '5'), ('inner-iters', '20'), ('meta-step-final', '0.1'),
                          ('meta-iters', '400000'), ('eval-samples', '10000'),
                          ('weight-decay', '1.0'), ('learning-rate', '0.001'),
                          ('checkpoint', 'model_checkpoint'), ('train-shots', '0')]:
        assert '--%s:' % flag in result.stdout
        assert "(default: '%s')" % default in result.stdout.split('--%s:' % flag)[1]
    for flag in ('pretrained', 'replacement', 'transductive', 'foml', 'sgd'):
        assert '--[no]%s:' % flag in result.stdout
    assert '--foml-tail:' in result.stdout


def one_line_error(result):
    lines = result.stderr.strip().splitlines()
    assert 'Traceback' not in result.stderr
    return lines[-1]


@pytest.fixture(scope='module')
def workdir(tmp_path_factory):
    """A working directory whose data/omniglot has enough characters for the 1200-character
    training split and a test split (two drawings each: enough for 1-shot tasks)."""
    root = tmp_path_factory.mktemp('work')
    write_omniglot_tree(root / 'data' / 'omniglot', alphabets=11, characters=110, drawings=2)
    return root


def test_short_run_trains_checkpoints_and_evaluates(workdir):
    result = run_script(workdir, '--shots', '1', '--classes', '5', '--transductive',
                        '--meta-iters', '3', '--eval-interval', '2', '--eval-samples', '4',
                        '--inner-iters', '2', '--train-shots', '2', '--checkpoint', 'ckpt')
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert 'batch 0: train=' in result.stdout and 'batch 2: train=' in result.stdout
    assert any(line.startswith('Train accuracy: ') and '(95% CI, 4 tasks)' in line
               for line in lines)
    assert any(line.startswith('Test accuracy: ') for line in lines)
    ckpt = workdir / 'ckpt'
    assert (ckpt / 'model.ckpt-0.index').is_file() and (ckpt / 'model.ckpt-2.index').is_file()
    assert list((ckpt / 'train').iterdir()) and list((ckpt / 'test').iterdir())

    again = run_script(workdir, '--shots', '1', '--meta-iters', '3', '--checkpoint', 'ckpt')
    assert again.returncode == 2
    assert 'holds a finished run' in one_line_error(again)

    evaluated = run_script(workdir, '--shots', '1', '--transductive', '--pretrained',
                           '--eval-samples', '3', '--checkpoint', 'ckpt')
    assert evaluated.returncode == 0, evaluated.stderr
    assert 'Restoring from checkpoint' in evaluated.stdout
    assert 'Test accuracy: ' in evaluated.stdout

    wrong_model = run_script(workdir, '--shots', '1', '--classes', '6', '--pretrained',
                             '--checkpoint', 'ckpt')
    assert wrong_model.returncode == 2
    assert 'does not fit this model' in one_line_error(wrong_model)
