"""run_omniglot.py: the reference's command lines, its output, and one-line errors."""

import os
import shlex
import subprocess
import sys

import pytest

from supervised_reptile import args, models, recipes
from supervised_reptile.settings import Evaluation, TaskShape, Training

from conftest import REPO_DIR, copy_omniglot_tree, run_script, run_script_here

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
    """The settings a run script builds from a command line."""
    args.FLAGS.unparse_flags()
    args.FLAGS(['run_omniglot.py'] + shlex.split(command))
    args.resolve('omniglot')
    values = args.flag_values()
    return recipes.task_shape(values), recipes.training(values), recipes.evaluation_settings(values)


def test_readme_row_1_means_what_the_reference_means():
    shape, training, evaluation = parse(README_COMMANDS[0])
    assert shape == TaskShape(classes=5, shots=1, replacement=False)
    assert training == Training(train_shots=10, inner_batch=10, inner_iters=5, meta_step=1.0,
                                meta_step_final=0.0, meta_batch=5, meta_iters=100000,
                                eval_interval=10, tail_shots=None)
    assert evaluation == Evaluation(inner_batch=5, inner_iters=50, transductive=True,
                                    samples=10000, tasks_per_batch=0)
    assert args.FLAGS.checkpoint == 'ckpt_o15t'


def test_the_run_scripts_learner_sums_the_loss_over_a_mini_batch_as_the_reference():
    """The reference sums the cross-entropy of a mini-batch (the library's default is Keras'
    mean): the run scripts' learner, and so its inner steps and evaluation, sum it."""
    parse(README_COMMANDS[0])
    learner = recipes.build_learner(models.omniglot_model(5), args.flag_values())
    assert learner.loss_reduction == 'sum'
    assert learner.algorithm.inner_loop.reduction == 'sum'


def test_readme_row_1_is_preset_o15t():
    assert parse(README_COMMANDS[0]) == parse('--preset o15t')


@pytest.mark.parametrize('command', README_COMMANDS)
def test_every_readme_command_parses(command):
    _, training, _ = parse(command)
    values = shlex.split(command)
    assert training.inner_batch == int(values[values.index('--inner-batch') + 1])
    assert training.meta_iters == int(values[values.index('--meta-iters') + 1])


def test_train_shots_zero_means_shots():
    _, training, _ = parse('--shots 3')
    assert training.train_shots == 3


def test_the_run_scripts_learner_anneals_the_meta_step_from_the_flags():
    """--meta-step and --meta-step-final reach the learner, whose annealing the library's
    NumPy tests pin (test_library_rules.py) and test_resume follows across a kill."""
    parse('--meta-step 0.8 --meta-step-final 0.05')
    learner = recipes.build_learner(models.omniglot_model(5), args.flag_values())
    assert (learner.meta_step_size, learner.meta_step_size_final) == (0.8, 0.05)


def test_help_lists_every_flag_with_its_default(tmp_path):
    result = run_script_here(tmp_path, '--help')
    for flag, default in [('inner-batch', '5'), ('inner-iters', '20'), ('meta-step-final', '0.1'),
                          ('meta-iters', '400000'), ('eval-samples', '10000'),
                          ('weight-decay', '1.0'), ('learning-rate', '0.001'),
                          ('checkpoint', 'model_checkpoint'), ('train-shots', '0')]:
        assert '--%s:' % flag in result.stdout
        assert "(default: '%s')" % default in result.stdout.split('--%s:' % flag)[1]
    for flag in ('pretrained', 'replacement', 'transductive', 'foml', 'sgd'):
        assert '--[no]%s:' % flag in result.stdout
    assert '--foml-tail:' in result.stdout


@pytest.fixture(scope='module')
def workdir(tmp_path_factory, omniglot_tree):
    """A working directory whose data/omniglot has enough characters for the 1200-character
    training split and a test split (two drawings each: enough for 1-shot tasks)."""
    root = tmp_path_factory.mktemp('work')
    copy_omniglot_tree(omniglot_tree, root)
    return root


@pytest.mark.slow
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



@pytest.mark.slow
@pytest.mark.parametrize('replacement', [[], ['--replacement']], ids=['epochs', 'replacement'])
def test_foml_tail_may_be_the_whole_task_with_one_inner_iteration(workdir, replacement):
    # The reference runs this: the tail is the only mini-batch, and no head batch is drawn.
    result = run_script_here(workdir, '--foml', '--foml-tail', '2', '--train-shots', '2',
                             '--shots', '1', '--inner-iters', '1', '--meta-iters', '2',
                             '--eval-iters', '1', '--eval-samples', '2',
                             '--checkpoint', 'tail%d' % len(replacement), *replacement)
    assert result.returncode == 0, result.stderr
    assert 'Test accuracy: ' in result.stdout


@pytest.mark.slow
def test_start_up_prints_no_cuda_notices_and_keeps_full_float32():
    env = {name: value for name, value in os.environ.items() if name != 'TF_CPP_MIN_LOG_LEVEL'}
    result = subprocess.run(
        [sys.executable, '-c', 'from supervised_reptile import cli; '
         'print(cli.tf.config.experimental.tensor_float_32_execution_enabled()); '
         'cli.tf.constant(1.0) + 1'],
        cwd=REPO_DIR, env=env, capture_output=True, text=True, timeout=300, check=False)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == 'False'
    assert result.stderr == ''
