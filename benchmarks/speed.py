"""
How fast training and evaluation run, and how close they come to the machine's arithmetic limit.

    python benchmarks/speed.py                          # README rows 1 (Omniglot), 2 (Mini-ImageNet)
    python benchmarks/speed.py --quick --json out.json  # a smoke test, as CI runs it

Each configuration runs on synthetic data of its real shapes, in a process of its own (TensorFlow
picks its CPU kernels per dataset when it loads, see cpu_kernels.py, and peak memory is per
process). Measured: seconds per meta-iteration; seconds per evaluation task in both prediction
modes, one task at a time (k = 1) and k side by side (the evaluation path's default k); the
GFLOP/s these reach, from the convolution and dense FLOPs of flops.py (beside this script); as
the yardstick, the GFLOP/s of a square float32 matrix product in the same process (bfloat16
too); the seconds of training's periodic evaluation (a pair of tasks every 10 meta-iterations)
alone; a run of train.py's loop as a run script runs it (meta-steps, the periodic pair beside
them, checkpoints, logs); the model's forward and backward pass alone on a training and an
evaluation mini-batch, and the floor these put under a meta-iteration and an evaluation task run
one pass after another; and peak memory. The first call of each compiled function (tracing)
is timed apart and left out of the means. From the training run and the batched evaluation it
projects the wall time of the full README run (100,000 meta-iterations, then the final
evaluation) on the cores it may use (run it under taskset to choose them). Prints a table;
--json PATH writes everything, with the load average before and after.
"""

import dataclasses
from dataclasses import dataclass
import json
import os
import resource
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

# pylint: disable=wrong-import-position
from absl import app, flags, logging
import numpy as np
import tensorflow as tf

import flops
from supervised_reptile import cpu_kernels, models, sampling, train
from supervised_reptile.evaluation import Evaluator
from supervised_reptile.inner_loop import Adam
from supervised_reptile.learner import Reptile
from supervised_reptile.settings import Evaluation, TaskShape, Training
from supervised_reptile.tasks import ClassificationTasks

flags.DEFINE_bool('quick', False, 'a few repetitions and smaller yardstick products only')
flags.DEFINE_integer('iterations', 20, 'meta-iterations timed per configuration')
flags.DEFINE_integer('training-iterations', 100,
                     'meta-iterations of the timed training run (train.py, with its periodic '
                     'evaluation and checkpoints)')
flags.DEFINE_integer('tasks', 32, 'evaluation tasks timed per configuration, mode and way')
flags.DEFINE_integer('tasks-per-batch', 0, 'tasks per batched call (0: the evaluation default)')
flags.DEFINE_list('configs', ['omniglot', 'miniimagenet'], 'which configurations to time')
flags.DEFINE_bool('xla', False, 'compile training and evaluation with XLA')
flags.DEFINE_string('json', None, 'also write the results to this JSON file')
flags.DEFINE_string('child', None, 'internal: measure this one configuration in this process')
FLAGS = flags.FLAGS

FINAL_EVALUATION_TASKS = 10000  # per split, --eval-samples' default


@dataclass
class Config:
    """A README row: its model, its image shape, its settings, and the number of splits its
    final evaluation evaluates."""
    title: str
    model: str
    image_shape: tuple
    shape: TaskShape
    training: Training
    evaluation: Evaluation
    splits: int


def _readme_row(title, dataset, image_shape, train_shots, inner_iters, splits):
    return Config(title, dataset + '_model', image_shape, TaskShape(classes=5, shots=1),
                  # 100,000 meta-iterations: the reference's default, which the rows keep
                  Training(train_shots=train_shots, inner_batch=10, inner_iters=inner_iters,
                           meta_batch=5, meta_iters=100000, eval_interval=10),
                  Evaluation(inner_batch=5, inner_iters=50, transductive=True), splits)


CONFIGS = {
    'omniglot': _readme_row('README row 1, Omniglot 1-shot 5-way', 'omniglot', (28, 28, 1),
                            train_shots=10, inner_iters=5, splits=2),
    'miniimagenet': _readme_row('README row 2, Mini-ImageNet 1-shot 5-way', 'miniimagenet',
                                (84, 84, 3), train_shots=15, inner_iters=8, splits=3),
}


def main(argv):
    del argv
    if FLAGS.child:
        _write_json(FLAGS.json, measure(CONFIGS[FLAGS.child]))
        return
    report = {'load_average_before': os.getloadavg(), 'results': {}}
    for name in FLAGS.configs:
        report['results'][name] = _run_child(name)
    report['load_average_after'] = os.getloadavg()
    print(table(report))
    if FLAGS.json:
        _write_json(FLAGS.json, report)


def _run_child(name):
    """Measure one configuration in a fresh Python, with its dataset's CPU kernels."""
    env = dict(os.environ)
    for variable, value in cpu_kernels.ENVIRONMENT[name].items():
        env.setdefault(variable, value)
    env.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')
    with tempfile.TemporaryDirectory() as directory:
        path = os.path.join(directory, 'result.json')
        passed = ['--%s=%s' % (flag, FLAGS[flag].value) for flag in
                  ('iterations', 'training-iterations', 'tasks', 'tasks-per-batch')]
        passed += ['--quick=%s' % FLAGS.quick, '--xla=%s' % FLAGS.xla]
        subprocess.run([sys.executable, os.path.abspath(__file__), '--child', name, '--json',
                        path] + passed, env=env, check=True)
        with open(path, encoding='utf-8') as result:
            return json.load(result)


def _write_json(path, data):
    with open(path, 'w', encoding='utf-8') as out:
        json.dump(data, out, indent=2)


# The measurements, in the child process, whose environment chose TensorFlow's kernels.

def measure(config):
    """Every number of one configuration, as a JSON-ready dict."""

    tf.get_logger().setLevel('ERROR')
    logging.set_verbosity(logging.WARNING)  # the training run's checkpoints log at INFO
    iterations = 2 if FLAGS.quick else FLAGS.iterations
    model = getattr(models, config.model)(config.shape.classes)
    rng = np.random.default_rng(0)
    classes = _synthetic_classes(config.image_shape, rng)
    gpus = tf.config.list_logical_devices('GPU')
    result = {'device': gpus[0].name if gpus else 'CPU',
              'onednn': os.environ.get('TF_ENABLE_ONEDNN_OPTS', 'default'), 'xla': FLAGS.xla,
              'title': config.title, 'cores': len(os.sched_getaffinity(0)),
              'intra_op_threads': os.environ.get('TF_NUM_INTRAOP_THREADS', 'default')}
    size = 512 if FLAGS.quick else 2048
    result['matmul_gflops'] = _matmul_gflops(size, tf.float32)
    result['matmul_bfloat16_gflops'] = _matmul_gflops(size, tf.bfloat16)
    learner = _learner(model, config)
    reptile = learner.algorithm
    result['meta_iteration'] = _time_training(reptile, config, classes, rng, iterations)
    result['evaluation'] = {}
    for transductive in (True, False):
        mode = 'transductive' if transductive else 'non_transductive'
        result['evaluation'][mode] = _time_evaluation(reptile, transductive, config, classes,
                                                      rng, result)
    result['periodic_pair'] = _time_periodic_pair(reptile, config, classes, rng, iterations)
    result['model_pass'] = {
        'training_batch': _time_model_pass(model, config.training.inner_batch, config.image_shape,
                                           iterations),
        'evaluation_batch': _time_model_pass(model, config.evaluation.inner_batch,
                                             config.image_shape, iterations)}
    result.update(_floors(config, result['model_pass']))
    result['training_run'] = _time_training_run(
        learner, config, classes, rng, 2 if FLAGS.quick else FLAGS['training-iterations'].value)
    result['peak_memory_mb'] = _peak_memory_mb(gpus)
    result['final_evaluation_tasks'] = config.splits * FINAL_EVALUATION_TASKS
    result['projected_final_evaluation_s'] = (
        result['final_evaluation_tasks'] * result['evaluation']['transductive']['batched']['seconds'])
    result['projected_training_s'] = (config.training.meta_iters
                                      * result['training_run']['seconds'])
    result['projected_full_run_s'] = (result['projected_training_s']
                                      + result['projected_final_evaluation_s'])
    return result


def _learner(model, config):
    """The learner of a configuration: the reference's Adam, its training and evaluation
    settings."""
    training, evaluation = config.training, config.evaluation
    return Reptile(model, inner_optimizer=Adam(1e-3), loss_reduction='sum',
                   inner_steps=training.inner_iters,
                   inner_batch_size=training.inner_batch, meta_batch_size=training.meta_batch,
                   meta_step_size=training.meta_step,
                   meta_step_size_final=training.meta_step_final,
                   eval_steps=evaluation.inner_iters, eval_batch_size=evaluation.inner_batch,
                   transductive=evaluation.transductive,
                   eval_tasks_per_batch=evaluation.tasks_per_batch, jit_compile=FLAGS.xla)


def _tasks(classes, config, rng, shots=None):
    """The configuration's tasks of classes (of shots, by default its evaluation's) from rng."""
    shape = config.shape
    return ClassificationTasks(classes, shape.classes, shots or shape.shots,
                               replacement=shape.replacement, rng=rng)


def _synthetic_classes(shape, rng, num_classes=64, per_class=20):
    arrays = [rng.integers(0, 256, (per_class,) + shape, dtype=np.uint8)
              for _ in range(num_classes)]
    return sampling.ImageClasses.from_arrays(arrays, [str(c) for c in range(num_classes)])


def _timed(function, repetitions, flop=None):
    """Seconds of the first call (tracing), then mean wall and CPU seconds of the next
    repetitions calls, and GFLOP/s when the FLOPs of one call are given."""
    start = time.perf_counter()
    function()
    trace = time.perf_counter() - start
    wall, cpu = time.perf_counter(), time.process_time()
    for _ in range(repetitions):
        function()
    timing = {'seconds': (time.perf_counter() - wall) / repetitions,
              'cpu_seconds': (time.process_time() - cpu) / repetitions, 'trace_seconds': trace}
    if flop is not None:
        timing['gflop'] = flop / 1e9
        timing['gflops'] = flop / 1e9 / timing['seconds']
    return timing


def _matmul_gflops(size, dtype):
    """The best of a few timed size x size matrix products."""
    a = tf.random.normal((size, size), dtype=tf.float32)
    a, b = tf.cast(a, dtype), tf.cast(tf.transpose(a), dtype)
    product = tf.function(lambda: tf.reduce_sum(tf.cast(tf.linalg.matmul(a, b)[0, :1], tf.float32)))
    product()
    seconds = []
    for _ in range(5):
        start = time.perf_counter()
        product().numpy()
        seconds.append(time.perf_counter() - start)
    return 2 * size ** 3 / min(seconds) / 1e9


def _time_training(reptile, config, classes, rng, iterations):
    training = config.training
    tasks = _tasks(classes, config, rng, training.train_shots)

    def meta_step():
        reptile.train_step(*tasks.training_tasks(training.meta_batch, training.inner_batch,
                                                 training.inner_iters, training.tail_shots),
                           1.0)
    return _timed(meta_step, iterations, flops.meta_iteration_flops(
        reptile.model, config.training.meta_batch, config.training.inner_iters,
        config.training.inner_batch))


def _time_evaluation(reptile, transductive, config, classes, rng, result):
    """Seconds per task one at a time (k = 1) and k side by side, on the same tasks."""
    settings = dataclasses.replace(config.evaluation, transductive=transductive,
                                   tasks_per_batch=FLAGS['tasks-per-batch'].value)
    evaluator = Evaluator(reptile, settings)
    shape = config.shape
    flop = flops.evaluation_task_flops(reptile.model, shape.classes, shape.shots,
                                       settings.inner_batch, settings.inner_iters, transductive)
    tasks_per_batch = evaluator.tasks_per_batch(max(settings.inner_batch,
                                                    shape.classes * shape.shots + 1),
                                                classes.images.shape[1:])
    if FLAGS.quick:
        tasks_per_batch = min(tasks_per_batch, 2)
    count = tasks_per_batch if FLAGS.quick else max(FLAGS.tasks, tasks_per_batch)
    jobs = evaluator.jobs(_tasks(classes, config, rng), count)
    job_iter = iter(jobs[:1] + jobs)  # a task for tracing, then each task once
    timings = {'sequential': _timed(lambda: evaluator.query_logits([next(job_iter)]), count)}
    batches = [jobs[i:i + tasks_per_batch] for i in range(0, count, tasks_per_batch)]
    batch_iter = iter(batches[:1] + batches)
    timings['batched'] = _timed(lambda: evaluator.query_logits(next(batch_iter), tasks_per_batch),
                                len(batches))
    for way, timing in timings.items():
        scale = tasks_per_batch if way == 'batched' else 1
        for key in ('seconds', 'cpu_seconds'):
            timing[key] /= scale
        timing['gflop'] = flop / 1e9
        timing['gflops'] = flop / 1e9 / timing['seconds']
        timing['fraction_of_matmul'] = timing['gflops'] / result['matmul_gflops']
    timings['tasks_per_batch'] = tasks_per_batch
    return timings


def _time_training_run(learner, config, classes, rng, iterations):
    """Seconds per meta-iteration of train.py's loop: the meta-steps, the periodic evaluation
    pair every eval_interval steps (beside them), the checkpoints and the logs; a first run of
    one step, which compiles, is left out."""
    tasks = _tasks(classes, config, rng, config.training.train_shots)
    logged = [('train', _tasks(classes, config, rng)), ('test', _tasks(classes, config, rng))]
    seconds = {}
    with tempfile.TemporaryDirectory() as directory:
        for name, count in (('first', 1), ('timed', iterations)):
            start = time.perf_counter()
            train.train(learner, tasks, logged, os.path.join(directory, name), count,
                        config.training.eval_interval, log_fn=lambda line: None)
            seconds[name] = time.perf_counter() - start
    return {'seconds': seconds['timed'] / iterations, 'first_seconds': seconds['first'],
            'iterations': iterations}


def _time_periodic_pair(reptile, config, classes, rng, iterations):
    """Seconds of training's periodic evaluation: a task of the training classes and one of the
    test classes (here both synthetic), in one call, as train.py makes it."""
    evaluator = Evaluator(reptile, config.evaluation)
    source = _tasks(classes, config, rng)
    pairs = [evaluator.jobs(source, 2) for _ in range(iterations + 1)]
    pair_iter = iter(pairs)
    return _timed(lambda: evaluator.query_logits(next(pair_iter)), iterations)


def _time_model_pass(model, batch_size, image_shape, repetitions, passes_per_call=20):
    """Seconds of the model's forward and backward pass alone on one mini-batch (the loss and
    its gradients; no optimizer, no data movement, no bookkeeping): what an inner step costs at
    the least on these kernels. The passes run in a compiled loop one after another, as inner
    steps do."""
    images = tf.random.uniform((batch_size,) + image_shape)
    labels = tf.range(batch_size) % model.output_shape[-1]

    def one_pass(count, gradient_sum):
        with tf.GradientTape() as tape:
            logits = model(images, training=True)
            loss = tf.reduce_sum(tf.nn.sparse_softmax_cross_entropy_with_logits(labels, logits))
        gradients = tape.gradient(loss, model.trainable_variables)
        # Summed into the result, or the compiled loop would drop them unused.
        return count + 1, gradient_sum + tf.add_n([tf.reduce_sum(g) for g in gradients])

    @tf.function
    def passes():
        # parallel_iterations=1: a pass starts when the one before has ended.
        return tf.while_loop(lambda count, _: count < passes_per_call, one_pass,
                             [tf.constant(0), tf.constant(0.0)], parallel_iterations=1)
    timing = _timed(lambda: passes()[1].numpy(), repetitions)
    for key in ('seconds', 'cpu_seconds'):
        timing[key] /= passes_per_call
    timing['batch_size'] = batch_size
    return timing


def _floors(config, model_pass):
    """The least a meta-iteration (with its share of the periodic pair) and an evaluation task
    can take on these kernels: their mini-batches' forward and backward passes alone, one after
    the other."""
    training, evaluation = config.training, config.evaluation
    train_pass = model_pass['training_batch']['seconds']
    eval_task = evaluation.inner_iters * model_pass['evaluation_batch']['seconds']
    return {'floor_meta_iteration_s': (training.meta_batch * training.inner_iters * train_pass
                                       + 2 * eval_task / training.eval_interval),
            'floor_evaluation_task_s': eval_task}


def _peak_memory_mb(gpus):
    if gpus:
        return tf.config.experimental.get_memory_info(gpus[0].name)['peak'] / 2 ** 20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # kilobytes on Linux


def table(report):
    """The report as a readable table."""
    lines = ['%-42s %10s %9s %9s' % ('', 'seconds', 'GFLOP/s', 'of matmul')]
    for result in report['results'].values():
        matmul = result['matmul_gflops']
        lines.append('%s (%s, %d core%s, threads per operation %s, oneDNN %s, XLA %s)' % (
            result['title'], result['device'], result['cores'], 's' * (result['cores'] > 1),
            result['intra_op_threads'],
            result['onednn'], result['xla']))
        rows = [('  meta-iteration', result['meta_iteration']),
                ('  periodic evaluation (2 tasks)', result['periodic_pair']),
                ('  training run, per meta-iteration', result['training_run'])]
        for batch, timing in result['model_pass'].items():
            rows.append(('  model pass alone, %s (%d)' % (batch.replace('_', ' '),
                                                         timing['batch_size']), timing))
        for mode, timings in result['evaluation'].items():
            for way in ('sequential', 'batched'):
                label = '  eval task, %s, %s' % (mode.replace('_', '-'), way)
                if way == 'batched':
                    label += ' x%d' % timings['tasks_per_batch']
                rows.append((label, timings[way]))
        for label, timing in rows:
            if 'gflops' not in timing:
                lines.append('%-42s %10.4f' % (label, timing['seconds']))
                continue
            lines.append('%-42s %10.4f %9.1f %8.0f%%' % (label, timing['seconds'],
                                                         timing['gflops'],
                                                         100 * timing['gflops'] / matmul))
        lines.append('  floor, the model passes alone one after another: meta-iteration with '
                     'its periodic share %.4f s, evaluation task %.4f s' % (
                         result['floor_meta_iteration_s'], result['floor_evaluation_task_s']))
        lines.append('  float32 matmul %.1f GFLOP/s (bfloat16 %.1f); peak memory %.0f MB; '
                     'final evaluation (%d tasks, transductive, batched) %.0f s'
                     % (matmul, result['matmul_bfloat16_gflops'], result['peak_memory_mb'],
                        result['final_evaluation_tasks'], result['projected_final_evaluation_s']))
        lines.append('  projected full run on %d core%s: %.2f h (%.2f h training with its periodic '
                     'evaluation, %.2f h final evaluation)' % (
                         result['cores'], 's' * (result['cores'] > 1),
                         result['projected_full_run_s'] / 3600,
                         result['projected_training_s'] / 3600,
                         result['projected_final_evaluation_s'] / 3600))
    lines.append('load average before %s, after %s' % (
        ' '.join('%.2f' % x for x in report['load_average_before']),
        ' '.join('%.2f' % x for x in report['load_average_after'])))
    return '\n'.join(lines)


if __name__ == '__main__':
    app.run(main)
