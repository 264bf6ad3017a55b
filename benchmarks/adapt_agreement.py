"""
Adaptation agrees with evaluation: test tasks of the real Omniglot written out as support and
query folders, classified by supervised_reptile.adapt, against the run's evaluation of the same
tasks; and the seconds an adaptation takes.

    python benchmarks/adapt_agreement.py --checkpoint ckpt_o15t --tasks 200 [--cli]

Each task (--classes of the run, 1 shot) takes its images from the run's test characters (its
--seed's split) and is written as <out>/task_NNN/support/cK/<original PNG> and
<out>/task_NNN/query/qK.png, K the class's label: the original 105x105 files, which adaptation
preprocesses itself. The evaluation fine-tunes on the same task with the same mini-batches as
adaptation draws (adapt.py: the run's --seed). --cli also runs the command line on every task
(about 5 s of start-up each).
"""

import json
import os
import shutil
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

# pylint: disable=wrong-import-position
from supervised_reptile import cli  # first: it quiets TensorFlow's start-up logs

from absl import flags
import numpy as np

# args defines --checkpoint (the run scripts' flag): here a finished run_omniglot.py run.
from supervised_reptile import args  # pylint: disable=unused-import
from supervised_reptile import omniglot, sampling
from supervised_reptile.adapt import Adapter

flags.DEFINE_string('data-dir', 'data/omniglot', 'the merged Omniglot (./fetch_data.sh)')
flags.DEFINE_string('out', 'adapt_tasks', 'where the tasks are written')
flags.DEFINE_integer('tasks', 200, 'test tasks', lower_bound=1)
flags.DEFINE_integer('task-seed', 1, 'seed of the task draws')
flags.DEFINE_bool('cli', False, 'also classify every task with the command line')
FLAGS = flags.FLAGS


def write_task(directory, classes, task_rows, data_dir):
    """Write a task's support (columns 1:) and queries (column 0) as original files."""
    for label, row in enumerate(task_rows):
        name = classes.names[label_class(classes, row[0])]
        files = sorted(f for f in os.listdir(os.path.join(data_dir, name)) if f.endswith('.png'))
        offset = classes.offsets[label_class(classes, row[0])]
        support = os.path.join(directory, 'support', 'c%d' % label)
        os.makedirs(support)
        for index in row[1:]:
            shutil.copy(os.path.join(data_dir, name, files[index - offset]), support)
        os.makedirs(os.path.join(directory, 'query'), exist_ok=True)
        shutil.copy(os.path.join(data_dir, name, files[row[0] - offset]),
                    os.path.join(directory, 'query', 'q%d.png' % label))


def label_class(classes, image_index):
    return int(np.searchsorted(classes.offsets, image_index, side='right') - 1)


def evaluation_task(task_rows, adapter):
    """The task as evaluation takes it, with adaptation's mini-batches."""
    settings, values = adapter.learner.evaluator.settings, adapter.values
    support = task_rows[:, 1:].reshape(-1)
    labels = np.repeat(np.arange(len(task_rows)), task_rows.shape[1] - 1)
    positions = sampling.mini_batches(len(support), settings.inner_batch, settings.inner_iters,
                                      values['replacement'], np.random.default_rng(values['seed']))
    return sampling.EvaluationTask(support[positions], labels[positions], support,
                                   task_rows[:, 0], np.arange(len(task_rows)))


def cli_right(directory, num_classes):
    result = subprocess.run(
        [sys.executable, '-m', 'supervised_reptile.adapt', '--checkpoint', FLAGS.checkpoint,
         '--support', os.path.join(directory, 'support'), '--query',
         os.path.join(directory, 'query'), '--json'],
        capture_output=True, text=True, check=True)
    predictions = json.loads(result.stdout)
    return sum(p['predicted'] == 'c%d' % k for k, p in zip(range(num_classes), predictions))


def main(argv):
    del argv
    adapter = Adapter.from_checkpoint(FLAGS.checkpoint)
    ways = adapter.ways
    _, test_set = omniglot.split_dataset(omniglot.read_dataset(FLAGS['data-dir'].value),
                                         adapter.values['seed'])
    rng = np.random.default_rng(FLAGS['task-seed'].value)
    shutil.rmtree(FLAGS.out, ignore_errors=True)
    totals = {'evaluation': 0, 'adapt': 0, 'cli': 0}
    seconds = []
    for number in range(FLAGS.tasks):
        rows = sampling.sample_task(test_set, ways, 2, rng)
        directory = os.path.join(FLAGS.out, 'task_%03d' % number)
        write_task(directory, test_set, rows, FLAGS['data-dir'].value)
        totals['evaluation'] += adapter.learner.evaluator.count_correct(
            [(test_set.images, evaluation_task(rows, adapter))])[0]
        started = time.perf_counter()
        adapter.fit(os.path.join(directory, 'support'))
        queries = [os.path.join(directory, 'query', 'q%d.png' % k) for k in range(ways)]
        predictions = adapter.predict(queries)
        seconds.append(time.perf_counter() - started)
        totals['adapt'] += sum(p.predicted == 'c%d' % k for k, p in enumerate(predictions))
        if FLAGS.cli:
            totals['cli'] += cli_right(directory, ways)
    queries = FLAGS.tasks * ways
    print('%d tasks, %d queries: evaluation %d right, adapt (Python) %d right%s'
          % (FLAGS.tasks, queries, totals['evaluation'], totals['adapt'],
             ', adapt (command line) %d right' % totals['cli'] if FLAGS.cli else ''))
    print('seconds per adaptation (fit and predict, %d-way 1-shot, %d steps): median %.3f, '
          'mean %.3f (the first, with tracing: %.1f)'
          % (ways, adapter.learner.evaluator.settings.inner_iters, np.median(seconds[1:]),
             np.mean(seconds[1:]), seconds[0]))


if __name__ == '__main__':
    cli.run(main)
