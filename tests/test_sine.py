"""sine/: the paper's identity, MAML's gradient, that meta-learning helps, and the command's
output."""

import json
import os
import subprocess
import sys

from absl import flags
import numpy as np
import pytest
import tensorflow as tf
from matplotlib import image

from sine import algorithms, evaluate, experiment, model, optimizers, tasks
from sine import flags as sine_flags
from sine.train import Schedule, Trainer
from supervised_reptile.errors import UserError

from conftest import REPO_DIR

TINY = [1, 16, 16, 1]


def train_tiny(update, step_size, inner_iters, iterations=20, meta_batch=2):
    """Parameters after a few meta-iterations of `update` on sine tasks, from a fixed start and
    task stream."""
    schedule = Schedule(iterations, step_size, 0.0, meta_batch, inner_iters, 10)
    trainer = Trainer(tasks.Sine(), update, optimizers.SGD(0.02), model.init_mlp(TINY, 3),
                      schedule, seed=11)
    trainer.train(iterations)
    return [p.numpy() for p in trainer.params]


def max_difference(params, others):
    return max(float(np.max(np.abs(p - o))) for p, o in zip(params, others))


@pytest.mark.slow
def test_reptile_with_one_inner_step_is_joint_training():
    """Equation 1 of the paper: with k = 1, Reptile's update (meta step e, inner step a) is a
    gradient step of size e * a on the tasks' mean loss. With k = 2 it is not."""
    meta_step, inner_step = 0.5, 0.02
    reptile = algorithms.meta_update_fn('reptile', optimizers.SGD(inner_step))
    joint = algorithms.joint_update_fn()

    one_step = train_tiny(reptile, meta_step, inner_iters=1)
    joint_one = train_tiny(joint, meta_step * inner_step, inner_iters=1)
    assert max_difference(one_step, model.init_mlp(TINY, 3)) > 1e-2  # it did train
    assert max_difference(one_step, joint_one) < 1e-5

    # Joint training on both mini-batches pooled, with twice the step: equal only to first order.
    two_steps = train_tiny(reptile, meta_step, inner_iters=2)
    joint_two = train_tiny(joint, 2 * meta_step * inner_step, inner_iters=2)
    assert max_difference(two_steps, joint_two) > 5e-4


def eager_meta_loss(phi, xs, ys, learning_rate):
    """The (FO)MAML objective, restated eagerly: per task, SGD steps on every mini-batch but
    the last, then the loss on the last; the mean over tasks."""
    losses = []
    for task in range(xs.shape[1]):
        params = [tf.constant(p) for p in phi]
        for step in range(xs.shape[0] - 1):
            with tf.GradientTape() as tape:
                tape.watch(params)
                loss = model.task_mse(params, xs[step, task], ys[step, task])
            params = [p - learning_rate * g for p, g in zip(params, tape.gradient(loss, params))]
        losses.append(model.task_mse(params, xs[-1, task], ys[-1, task]))
    return float(np.mean(losses))


def finite_difference_gradient(function, phi, epsilon=1e-5):
    grads = []
    for index, p in enumerate(phi):
        grad = np.zeros(p.shape)
        for position in np.ndindex(*p.shape):
            shift = np.zeros(p.shape)
            shift[position] = epsilon
            plus = [q + shift if i == index else q for i, q in enumerate(phi)]
            minus = [q - shift if i == index else q for i, q in enumerate(phi)]
            grad[position] = (function(plus) - function(minus)) / (2 * epsilon)
        grads.append(grad)
    return np.concatenate([g.ravel() for g in grads])


def test_maml_gradient_is_the_true_gradient_and_first_order_is_not():
    rng = np.random.default_rng(0)
    xs = rng.uniform(-5, 5, size=(3, 2, 5, 1))  # 3 mini-batches of 5 points, 2 tasks
    ys = np.stack([2 * np.sin(xs[:, 0] + 1), 4 * np.sin(xs[:, 1] + 3)], axis=1)
    phi = model.init_mlp([1, 4, 4, 1], seed=5, dtype=tf.float64)
    learning_rate = 0.1
    sgd = optimizers.SGD(learning_rate)

    @tf.function  # the graph loop, as in training
    def meta_gradient(second_order):
        grads, _, _ = algorithms.maml_gradient(sgd, phi, sgd.init(phi), tf.constant(xs),
                                               tf.constant(ys), second_order)
        return tf.concat([tf.reshape(g, [-1]) for g in grads], 0)

    expected = finite_difference_gradient(
        lambda params: eager_meta_loss(params, xs, ys, learning_rate), [p.numpy() for p in phi])
    maml, fomaml = meta_gradient(True).numpy(), meta_gradient(False).numpy()

    def relative_error(grad):
        return np.linalg.norm(grad - expected) / np.linalg.norm(expected)

    assert relative_error(maml) < 1e-6
    assert relative_error(fomaml) > 0.05


@pytest.mark.slow
def test_meta_training_beats_training_from_scratch():
    family, sgd = tasks.Sine(), optimizers.SGD(0.02)
    initial = model.init_mlp([1, 64, 64, 1], seed=0)
    schedule = Schedule(5000, 0.1, 0.0, 1, 5, 10)
    trainer = Trainer(family, algorithms.meta_update_fn('reptile', sgd), sgd, initial, schedule,
                      seed=0)
    trainer.train(schedule.num_iterations)

    held_out = evaluate.held_out_tasks(family, 200, 10, seed=1)
    evaluator = evaluate.Evaluator(family, held_out, [0, 32])
    meta = evaluator.curve(evaluator.predictions(sgd, trainer.params, trainer.state))
    scratch = evaluator.curve(evaluator.predictions(sgd, initial, sgd.init(initial)))
    # Both start from (nearly) the zero function; only the meta-learned one adapts well.
    assert meta.at(0)[0] == pytest.approx(scratch.at(0)[0], rel=0.1)
    meta_mse, meta_ci = meta.at(32)
    scratch_mse, scratch_ci = scratch.at(32)
    assert meta_mse + meta_ci < scratch_mse - scratch_ci
    assert meta_mse < 0.5 * scratch_mse


def parse_settings(*argv):
    flag_values = flags.FlagValues()
    sine_flags.define(flag_values)
    flag_values(['sine', *argv])
    return sine_flags.settings(flag_values)


def test_preset_sets_defaults_that_flags_override():
    settings = parse_settings('--preset', 'review-optimisers', '--meta-iters', '3000')
    assert [run.optimizer.name for run in settings.runs] == ['sgd', 'adam-pytorch', 'rmsprop']
    assert [run.optimizer.learning_rate for run in settings.runs] == [0.02, 0.003, 0.003]
    assert not settings.reset_state and settings.schedule.inner_batches == 32
    assert settings.schedule.num_iterations == 3000
    assert settings.eval_at == [1000, 2000]


def test_old_names_of_the_renamed_variants_still_run_with_a_note():
    settings = parse_settings('--algorithm', 'reptile,fomaml', '--inner-optimizer', 'adam')
    assert [run.algorithm for run in settings.runs] == ['reptile', 'fomaml-gradient']
    assert {run.optimizer.name for run in settings.runs} == {'adam-pytorch'}
    assert [note.split(',')[0] for note in settings.notes] == [
        'note: --algorithm fomaml is now called fomaml-gradient',
        'note: --inner-optimizer adam is now called adam-pytorch']
    assert settings.flag_values['algorithm'] == ['reptile', 'fomaml-gradient']


def test_adam_pytorch_adds_epsilon_to_the_bias_corrected_root():
    """First step, gradient 1: the corrected moments are 1, so the step is lr / (1 + epsilon).
    TF1's rule (supervised_reptile's Adam) would step lr * 0.1 / (0.1 + epsilon) here."""
    adam = optimizers.PyTorchAdam(0.1, beta1=0.9, beta2=0.99, epsilon=1.0)
    params = [tf.zeros([1])]
    stepped, _ = adam.apply(params, [tf.ones([1])], adam.init(params))
    assert float(stepped[0][0]) == pytest.approx(-0.05)


@pytest.mark.parametrize('argv, message', [
    (['--preset', 'fig1'], 'unknown --preset fig1'),
    (['--algorithm', 'reptile,mamal'], 'not mamal'),
    (['--inner-optimizer', 'sgd,adam', '--learning-rate', '0.1,0.2,0.3'], 'one per'),
    (['--algorithm', 'maml', '--inner-iters', '1'], 'at least 2'),
    (['--amplitude-min', '3', '--amplitude-max', '2'], 'must not exceed'),
])
def test_bad_settings_are_user_errors(argv, message):
    with pytest.raises(UserError, match=message):
        parse_settings(*argv)


@pytest.mark.slow
def test_run_writes_figures_and_metrics(tmp_path):
    settings = parse_settings('--algorithm', 'reptile,maml',
                              '--inner-optimizer', 'sgd,adam-pytorch',
                              '--learning-rate', '0.02,0.003', '--reset-inner-state=false',
                              '--hidden', '8', '--meta-iters', '40', '--chunk', '20',
                              '--eval-interval', '20', '--eval-samples', '20',
                              '--output-dir', str(tmp_path))
    lines = []
    metrics = experiment.run(settings, log_fn=lines.append)

    assert 'reptile (sgd): 20/40 iterations' in '\n'.join(lines)
    for name in ('fits', 'mse_vs_steps', 'training', 'checkpoints', 'snapshots'):
        pixels = image.imread(tmp_path / (name + '.png'))
        assert min(pixels.shape[:2]) > 200 and pixels.std() > 0.01, name
    assert json.loads((tmp_path / 'metrics.json').read_text()) == json.loads(json.dumps(metrics))

    methods = {method['name']: method for method in metrics['methods']}
    assert list(methods) == ['reptile (sgd)', 'maml (sgd)', 'reptile (adam-pytorch)',
                             'maml (adam-pytorch)', 'scratch (sgd)', 'scratch (adam-pytorch)',
                             'joint training (sgd)', 'joint training (adam-pytorch)']
    maml = methods['maml (adam-pytorch)']
    assert maml['inner_optimizer'] == 'adam-pytorch' and maml['inner_learning_rate'] == 0.003
    assert [e['meta_iterations'] for e in maml['evaluations']] == [20, 40]
    assert maml['evaluations'][-1]['steps'] == list(range(33))
    assert list(maml['final']) == ['0', '1', '4', '8', '16', '32']
    assert maml['final']['32']['mean_mse'] == maml['evaluations'][-1]['mean_mse'][32]
    assert all(np.isfinite(method['final']['32']['mean_mse']) for method in methods.values())


def run_command(cwd, *argv):
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL='3', PYTHONPATH=str(REPO_DIR))
    return subprocess.run([sys.executable, '-m', 'sine', *argv], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=300, check=False)


@pytest.mark.slow
def test_help_lists_the_flags_and_their_defaults(tmp_path):
    result = run_command(tmp_path, '--help')
    for flag, default in [('meta-iters', "'30000'"), ('learning-rate', "'0.02'"),
                          ('preset', "'paper-figure-1'"), ('output-dir', "'sine_output'")]:
        assert '--%s:' % flag in result.stdout
        assert '(default: %s)' % default in result.stdout.split('--%s:' % flag)[1]


@pytest.mark.slow
def test_bad_input_is_one_line_and_a_nonzero_exit(tmp_path):
    result = run_command(tmp_path, '--preset', 'nope')
    assert result.returncode == 2
    assert 'Traceback' not in result.stderr
    assert result.stderr.strip().splitlines()[-1] == (
        'error: unknown --preset nope; --preset list lists them')
    assert not list(tmp_path.iterdir())  # nothing written
