"""
Plausible one-line mistakes in the algorithm, each applied to a copy of the project, and the
tests run against it: every mistake must make a test fail (docs/testing.md).

    python tools/mutants.py [--only NAME[,NAME...]] [--all-tests] [--list]

Each mutant replaces one exact line of the package with a wrong one. The copy is the project's
working tree (without .git, data and checkpoints); the tests run there, with `-x`, so a caught
mutant costs the time to its first failing test. By default the tests are ALGORITHM_TESTS, the
files that pin the algorithm's decisions; --all-tests runs the README's whole suite instead. A
mutant whose line is not found exactly once is an error: the code moved and the mutant must be
written again. Exit code 0 if every mutant was caught, 1 otherwise.
"""

import argparse
from dataclasses import dataclass
import os
import shutil
import subprocess
import sys
import tempfile
import time

REPO_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ALGORITHM_TESTS = ['tests/test_library_rules.py', 'tests/test_reptile.py',
                   'tests/test_inner_loop.py', 'tests/test_evaluation.py',
                   'tests/test_sampling.py', 'tests/test_parallel.py', 'tests/test_library.py',
                   'tests/test_cli.py', 'tests/test_resume.py', 'tests/test_periodic.py',
                   'tests/test_freezing.py']
LEFT_OUT = {'.git', 'data', '__pycache__', '.pytest_cache', 'supervised_reptile_tf2.egg-info'}


@dataclass(frozen=True)
class Mutant:
    name: str
    path: str       # relative to the repository
    original: str   # one exact line (without its indentation) found once in path
    mutated: str
    why: str        # the mistake it stands for


MUTANTS = [
    Mutant('annealing-reversed', 'supervised_reptile/settings.py',
           'return frac_done * final + (1 - frac_done) * start',
           'return frac_done * start + (1 - frac_done) * final',
           'the meta step grows from its final value to its start'),
    Mutant('annealing-none', 'supervised_reptile/settings.py',
           'return frac_done * final + (1 - frac_done) * start', 'return start',
           'the meta step is never annealed'),
    Mutant('interpolation-inverted', 'supervised_reptile/reptile.py',
           'return [o + meta_step_size * (m - o) for o, m in zip(old, mean_update)]',
           'return [m + meta_step_size * (o - m) for o, m in zip(old, mean_update)]',
           "Reptile moves from the tasks' weights towards the initialization"),
    Mutant('meta-batch-sum', 'supervised_reptile/reptile.py',
           'mean = [t / tf.cast(num_tasks, tf.float32) for t in total]', 'mean = total',
           "the meta-batch's updates summed, not averaged"),
    Mutant('tasks-chained', 'supervised_reptile/reptile.py',
           'variable.assign(value[None])', 'variable.assign(variable)',
           "each task of a meta-batch starts where the previous one ended"),
    Mutant('fomaml-displacement-sign', 'supervised_reptile/reptile.py',
           'return [a - b for a, b in zip(after_last, before_last)]',
           'return [b - a for a, b in zip(after_last, before_last)]',
           "FOMAML's update is the last step's displacement reversed"),
    Mutant('fomaml-meta-step-sign', 'supervised_reptile/reptile.py',
           'return [o + meta_step_size * m for o, m in zip(old, mean_update)]',
           'return [o - meta_step_size * m for o, m in zip(old, mean_update)]',
           "FOMAML steps against its gradient estimate"),
    Mutant('fomaml-tail-ignored', 'supervised_reptile/sampling.py',
           'if tail_shots is None:', 'if True:',
           "FOMAML's last mini-batch is an ordinary one whatever tail_shots says"),
    Mutant('fomaml-tail-dropped-by-learner', 'supervised_reptile/learner.py',
           'self.inner_steps, self.tail_shots)', 'self.inner_steps, None)',
           "sr.FOMAML's tail_shots never reaches the task sampler"),
    Mutant('parallel-sum-over-replicas', 'supervised_reptile/parallel.py',
           'mean = tf.reduce_mean(self.strategy.gather(per_replica, axis=0), axis=0)',
           'mean = tf.reduce_sum(self.strategy.gather(per_replica, axis=0), axis=0)',
           "the parallel meta-batch sums its replicas' tasks instead of averaging them"),
    Mutant('parallel-adam-steps-uncounted', 'supervised_reptile/parallel.py',
           'reptile.optimizer.iterations.assign(step + inner_steps)',
           'reptile.optimizer.iterations.assign(step)',
           "the parallel meta-batch leaves Adam's step count behind"),
    Mutant('adam-momentum', 'supervised_reptile/inner_loop.py',
           'beta_1: float = 0.0', 'beta_1: float = 0.9',
           "Adam with Keras' default momentum instead of the reference's none"),
    Mutant('adam-bias-correction-fixed', 'supervised_reptile/inner_loop.py',
           'beta1_power=self.beta_1 ** step, beta2_power=self.beta_2 ** step,',
           'beta1_power=self.beta_1, beta2_power=self.beta_2,',
           "Adam's bias correction stuck at its first step's"),
    Mutant('adam-step-not-counted', 'supervised_reptile/inner_loop.py',
           'step = state.optimizer.iterations.assign_add(1)',
           'step = state.optimizer.iterations.read_value() + 1',
           "Adam's step count is never advanced"),
    Mutant('weight-decay-inverted', 'supervised_reptile/inner_loop.py',
           'variable.assign(variable * self.weight_decay)',
           'variable.assign(variable * (1 - self.weight_decay))',
           'weight decay keeps the fraction it should remove'),
    Mutant('transductive-ignored', 'supervised_reptile/evaluation.py',
           'every_task(query_positions), self.settings.transductive,',
           'every_task(query_positions), False,',
           'evaluation is never transductive'),
    Mutant('eval-steps-off-by-one', 'supervised_reptile/evaluation.py',
           'return source.evaluation_jobs(count, self.settings.inner_batch, '
           'self.settings.inner_iters)',
           'return source.evaluation_jobs(count, self.settings.inner_batch, '
           'self.settings.inner_iters - 1)',
           'evaluation fine-tunes one step fewer than it says'),
    Mutant('run-scripts-mean-loss', 'supervised_reptile/recipes.py',
           "inner_optimizer=inner_rule(values), loss_reduction='sum',  # the reference's",
           "inner_optimizer=inner_rule(values), loss_reduction='mean',",
           "the run scripts average the loss where the reference sums it"),
    Mutant('adam-epsilon-inside-root', 'supervised_reptile/inner_loop.py',
           'first, second = slots',
           'first, second = slots; step = tf.cast(step, variable.dtype); '
           'second.assign(self.beta_2 * second + (1 - self.beta_2) * gradient ** 2); '
           'first.assign(self.beta_1 * first + (1 - self.beta_1) * gradient); '
           'return variable.assign_sub(self.learning_rate * tf.sqrt(1 - self.beta_2 ** step) '
           '/ (1 - self.beta_1 ** step) * first / tf.sqrt(second + self.epsilon))',
           "Adam written out by hand, with epsilon inside the square root"),
    Mutant('adam-epsilon-on-corrected-v', 'supervised_reptile/inner_loop.py',
           'epsilon=tf.constant(self.epsilon, variable.dtype), grad=gradient)',
           'epsilon=tf.constant(self.epsilon, variable.dtype) * tf.sqrt(1 - self.beta_2 ** step), '
           'grad=gradient)',
           "Adam's epsilon added to the root of the bias-corrected second moment (the paper's and "
           "PyTorch's Adam), not to the uncorrected one's as TF1 adds it"),
    Mutant('adam-correction-default-beta-1', 'supervised_reptile/inner_loop.py',
           'beta1_power=self.beta_1 ** step, beta2_power=self.beta_2 ** step,',
           'beta1_power=0.9 ** step, beta2_power=self.beta_2 ** step,',
           "Adam's bias correction computed with Keras' default beta_1, though there is no "
           "momentum"),
    Mutant('adam-keras-epsilon', 'supervised_reptile/inner_loop.py',
           'epsilon: float = 1e-8', 'epsilon: float = 1e-7',
           "Adam with Keras' default epsilon instead of TF1's"),
    Mutant('adam-fresh-per-task', 'supervised_reptile/reptile.py',
           'variable.assign(value[None])',
           'variable.assign(value[None]); [slot.assign(tf.zeros_like(slot)) for slots in '
           'self.optimizer.slots for slot in slots]; self.optimizer.iterations.assign(0)',
           "every task of a meta-batch starts from a fresh Adam, not from the state the "
           "previous task left"),
    Mutant('eval-adam-fresh', 'supervised_reptile/evaluation.py',
           'state.start(*start)',
           'state.start(start.weights, [[tf.zeros_like(slot) for slot in slots] '
           'for slots in start.slots], 0)',
           "evaluation fine-tunes with a fresh Adam, not from the meta-trained state"),
    Mutant('eval-adam-step-restarted', 'supervised_reptile/evaluation.py',
           'state.start(*start)', 'state.start(start.weights, start.slots, 0)',
           "evaluation keeps Adam's moments but restarts its step count (its bias correction)"),
    Mutant('eval-without-weight-decay', 'supervised_reptile/evaluation.py',
           'self.inner_loop = InnerLoop(self.network, reptile.rule, reptile.weight_decay, '
           'reptile.loss,',
           'self.inner_loop = InnerLoop(self.network, reptile.rule, 1.0, reptile.loss,',
           "weight decay before the training's inner steps only, not evaluation's"),
    Mutant('weight-decay-on-untrained', 'supervised_reptile/inner_loop.py',
           'for variable in state.weights:',
           'for variable in state.weights + self.network.shared_variables:',
           "weight decay also shrinks the variables an inner step reads but does not train"),
    Mutant('frozen-in-evaluation-fine-tuned', 'supervised_reptile/reptile.py',
           'frozen = {id(variable) for variable in frozen_in_evaluation}', 'frozen = set()',
           "evaluation fine-tunes the variables it was told to keep frozen"),
    Mutant('frozen-block-batch-norm-trained', 'supervised_reptile/backbone.py',
           'for layer in block:', 'for layer in block[:1]:',
           "freezing a block freezes its convolution but leaves its batch norm trainable"),
    Mutant('count-correct-wrong-axis', 'supervised_reptile/evaluation.py',
           'predictions = np.argmax(self.query_logits(jobs, size, start), axis=-1)',
           'predictions = np.argmax(self.query_logits(jobs, size, start), axis=1)',
           "the predicted class taken over the queries of [tasks, queries, classes], not the "
           "classes"),
    Mutant('run-scripts-not-annealed', 'supervised_reptile/recipes.py',
           'meta_step_size_final=training_settings.meta_step_final,',
           'meta_step_size_final=training_settings.meta_step,',
           "the run scripts hand the learner --meta-step as the final value: no annealing"),
    Mutant('resume-restarts-annealing', 'supervised_reptile/train.py',
           'learner.fit(tasks, meta_iters, callbacks=[bookkeeping], initial_iteration=first_step,',
           'learner.fit(tasks, meta_iters - first_step, callbacks=[bookkeeping], '
           'initial_iteration=0,',
           "a resumed run anneals the meta step over the meta-iterations left, from the start"),
]


def copy_project(destination):
    """The working tree without what the tests do not read."""
    shutil.copytree(REPO_DIR, destination,
                    ignore=lambda directory, names: [n for n in names if n in LEFT_OUT])


def apply(mutant, root):
    path = os.path.join(root, mutant.path)
    with open(path, encoding='utf-8') as file:
        lines = file.read().split('\n')
    found = [i for i, line in enumerate(lines) if line.strip() == mutant.original]
    if len(found) != 1:
        raise SystemExit('error: mutant %s: its line is found %d times in %s, not once; write '
                         'the mutant again' % (mutant.name, len(found), mutant.path))
    line = lines[found[0]]
    lines[found[0]] = line[:len(line) - len(line.lstrip())] + mutant.mutated
    with open(path, 'w', encoding='utf-8') as file:
        file.write('\n'.join(lines))


def run_tests(root, tests):
    """(caught, the first failing test or the last line of pytest's output)."""
    environment = dict(os.environ, PYTHONPATH=root, PYTHONDONTWRITEBYTECODE='1')
    process = subprocess.run([sys.executable, '-m', 'pytest', '-x', '-q', '-p', 'no:cacheprovider',
                              *tests], cwd=root, env=environment, capture_output=True,
                             text=True, check=False)
    failed = [line for line in process.stdout.splitlines() if line.startswith('FAILED')]
    summary = process.stdout.strip().splitlines()[-1] if process.stdout.strip() else ''
    return process.returncode != 0, (failed[0][len('FAILED '):] if failed else summary)


def main():
    parser = argparse.ArgumentParser(description=__doc__.strip().split('\n')[0])
    parser.add_argument('--only', help='comma-separated mutant names')
    parser.add_argument('--all-tests', action='store_true', help="the README's whole suite")
    parser.add_argument('--list', action='store_true', help='list the mutants and stop')
    options = parser.parse_args()
    mutants = MUTANTS
    if options.only:
        names = options.only.split(',')
        unknown = sorted(set(names) - {m.name for m in MUTANTS})
        if unknown:
            raise SystemExit('error: no mutant %s; --list lists them' % unknown[0])
        mutants = [m for m in MUTANTS if m.name in names]
    if options.list:
        for mutant in mutants:
            print('%-31s %s' % (mutant.name, mutant.why))
        return 0
    tests = ['tests'] if options.all_tests else ALGORITHM_TESTS
    survivors = []
    for mutant in mutants:
        started = time.perf_counter()
        with tempfile.TemporaryDirectory(prefix='mutant-') as root:
            copy_project(os.path.join(root, 'project'))
            apply(mutant, os.path.join(root, 'project'))
            caught, evidence = run_tests(os.path.join(root, 'project'), tests)
        print('%-31s %-8s %5.0f s  %s' % (mutant.name, 'caught' if caught else 'SURVIVED',
                                          time.perf_counter() - started, evidence), flush=True)
        if not caught:
            survivors.append(mutant.name)
    print('%d of %d mutants caught' % (len(mutants) - len(survivors), len(mutants)))
    return 1 if survivors else 0


if __name__ == '__main__':
    sys.exit(main())
