"""
Seconds per meta-iteration and per evaluation task, on synthetic data of the right shapes.

    python benchmarks/speed.py            # README rows 1 (Omniglot) and 2 (Mini-ImageNet)
    python benchmarks/speed.py --quick    # a few repetitions only, as a smoke test

Prints a table and, with --json PATH, writes the numbers as JSON. The first call of each
compiled function (tracing) is timed apart and left out of the averages.
"""

import json
import os
import platform
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from supervised_reptile import cli  # pylint: disable=wrong-import-position  # quiets TF logs

from absl import flags  # pylint: disable=wrong-import-position
import numpy as np  # pylint: disable=wrong-import-position
import tensorflow as tf  # pylint: disable=wrong-import-position

from supervised_reptile import models, sampling  # pylint: disable=wrong-import-position
from supervised_reptile.reptile import Reptile  # pylint: disable=wrong-import-position

flags.DEFINE_bool('quick', False, 'a few repetitions only')
flags.DEFINE_integer('iterations', 50, 'meta-iterations timed per configuration')
flags.DEFINE_integer('tasks', 50, 'evaluation tasks timed per configuration and mode')
flags.DEFINE_string('json', None, 'also write the results to this JSON file')
flags.DEFINE_list('configs', ['omniglot', 'mini-imagenet'], 'which configurations to time')
FLAGS = flags.FLAGS

# README rows 1 and 2 of the reference: (model, image shape, classes, train shots, inner batch,
# inner iterations, meta-batch, shots, eval batch, eval iterations).
CONFIGS = {
    'omniglot row 1': (models.omniglot_model, (28, 28, 1), 5, 10, 10, 5, 5, 1, 5, 50),
    'mini-imagenet row 2': (models.miniimagenet_model, (84, 84, 3), 5, 15, 10, 8, 5, 1, 5, 50),
}


def synthetic_classes(shape, num_classes=64, per_class=20):
    rng = np.random.default_rng(0)
    arrays = [rng.integers(0, 256, (per_class,) + shape, dtype=np.uint8)
              for _ in range(num_classes)]
    return sampling.ImageClasses.from_arrays(arrays, [str(c) for c in range(num_classes)])


def timed(function, repetitions):
    """(seconds of the first call, mean wall seconds of the next `repetitions` calls)."""
    start = time.perf_counter()
    function()
    first = time.perf_counter() - start
    start = time.perf_counter()
    for _ in range(repetitions):
        function()
    return first, (time.perf_counter() - start) / repetitions


def bench_config(config, iterations, tasks):
    (build, shape, ways, train_shots, inner_batch, inner_iters, meta_batch, shots, eval_batch,
     eval_iters) = config
    classes = synthetic_classes(shape)
    images = tf.constant(classes.images)
    rng = np.random.default_rng(0)
    results = {}
    model, optimizer = build(ways), models.adam(1e-3)
    reptile = Reptile(model, optimizer)

    def meta_step():
        batch = sampling.stack_tasks([
            sampling.training_task(classes, ways, train_shots, inner_batch, inner_iters, False,
                                   rng) for _ in range(meta_batch)])
        reptile.train_step(images, batch, 1.0)
    results['trace_train_s'], results['meta_iteration_s'] = timed(meta_step, iterations)
    for transductive in (True, False):
        evaluator = Reptile(model, optimizer, transductive=transductive)

        def evaluation_task():
            evaluator.evaluate(images, sampling.evaluation_task(classes, ways, shots, eval_batch,
                                                              eval_iters, False, rng))
        mode = 'transductive' if transductive else 'non_transductive'
        _, results['eval_task_%s_s' % mode] = timed(evaluation_task, tasks)
    return results


def main(argv):
    del argv
    iterations, tasks = (3, 3) if FLAGS.quick else (FLAGS.iterations, FLAGS.tasks)
    report = {'machine': '%s, %d cores, %s' % (platform.processor() or platform.machine(),
                                               os.cpu_count(), tf.config.list_logical_devices()),
              'tensorflow': tf.__version__, 'results': {}}
    for name, config in CONFIGS.items():
        if name.split()[0] in FLAGS.configs:
            report['results'][name] = bench_config(config, iterations, tasks)
    print('%-22s %14s %18s %22s' % ('configuration', 's/meta-iter', 's/eval task (tr.)',
                                     's/eval task (non-tr.)'))
    for name, result in report['results'].items():
        print('%-22s %14.4f %18.4f %22.4f' % (name, result['meta_iteration_s'],
                                               result['eval_task_transductive_s'],
                                               result['eval_task_non_transductive_s']))
    if FLAGS.json:
        with open(FLAGS.json, 'w', encoding='utf-8') as out:
            json.dump(report, out, indent=2)


if __name__ == '__main__':
    cli.run(main)
