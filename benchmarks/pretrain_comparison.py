"""
Test accuracy against training time on the real Omniglot: Reptile from scratch, from a
pre-trained backbone, and from a pre-trained backbone with its first blocks frozen.

    python benchmarks/pretrain_comparison.py                  # about 20 minutes on one core
    python benchmarks/pretrain_comparison.py --meta-iters 20 --eval-at 0,20 --eval-tasks 10 \\
        --pretrain-iters 50                                   # a smoke test
    python benchmarks/pretrain_comparison.py --replot         # the figure again, from the JSON

Every variant meta-trains README row 1's setting (transductive 1-shot 5-way: 5 tasks x 5 inner
Adam steps on 10 images, meta step 1 annealed as in the 100,000-iteration run) from the same
initialization (the same head; the pre-trained variants take their blocks from the backbone)
on the same tasks, and is evaluated after each of --eval-at meta-iterations on the same
--eval-tasks test tasks (50 fine-tuning steps; mean and 95% interval). The time axis is
training time only: meta-training, plus for the pre-trained variants the pre-training, which
runs once and is charged to both. Evaluation is not counted.

Writes <out>/pretrain_comparison.png and .json; the pre-training's TensorBoard curves and
backbone go to <out>/pretraining/.
"""

import importlib.util
import json
import os
import platform
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

# pylint: disable=wrong-import-position,wrong-import-order
from supervised_reptile import cli  # first: it quiets TensorFlow's start-up logs

from absl import flags
import keras
import tensorflow as tf

if importlib.util.find_spec('matplotlib') is None:  # optional: fail now, not after measuring
    cli.fail("this benchmark draws its figure with matplotlib, which is not installed; install "
             "it with pip install -e '.[plots]'")
import matplotlib

from supervised_reptile import backbone, models, omniglot, pretrain
from supervised_reptile.evaluation import Evaluator
from supervised_reptile.inner_loop import Adam
from supervised_reptile.reptile import Reptile
from supervised_reptile.settings import Evaluation, TaskShape, Training
from supervised_reptile.tasks import ClassificationTasks

matplotlib.use('Agg')  # files only, no display
from matplotlib import pyplot
# pylint: enable=wrong-import-position,wrong-import-order

flags.DEFINE_string('data-dir', 'data/omniglot', 'the merged Omniglot (./fetch_data.sh)')
flags.DEFINE_string('out', 'benchmarks/results', 'where the figure and the numbers go')
flags.DEFINE_integer('seed', 0, 'split, initialization, task and pre-training seed')
flags.DEFINE_integer('meta-iters', 1000, 'meta-iterations per variant', lower_bound=1)
flags.DEFINE_list('eval-at', ['0', '125', '250', '500', '1000'],
                  'meta-iterations after which the test classes are evaluated')
flags.DEFINE_integer('eval-tasks', 300, 'test tasks per evaluation', lower_bound=2)
flags.DEFINE_integer('freeze-blocks', 2, 'blocks frozen in the third variant', lower_bound=1,
                     upper_bound=models.NUM_BLOCKS)
flags.DEFINE_integer('pretrain-iters', 1500, 'pre-training steps at most', lower_bound=1)
flags.DEFINE_integer('pretrain-batch', 128, 'pre-training batch size', lower_bound=1)
flags.DEFINE_float('pretrain-lr', 3e-3, 'pre-training AdamW step size', lower_bound=0)
flags.DEFINE_float('pretrain-weight-decay', 1e-4, 'pre-training AdamW weight decay', lower_bound=0)
flags.DEFINE_integer('pretrain-eval-interval', 250, 'pre-training steps between held-out losses',
                     lower_bound=1)
flags.DEFINE_bool('replot', False, 'only draw the figure again from <out>/pretrain_comparison.json')
FLAGS = flags.FLAGS

# README row 1 (the reference's transductive 1-shot 5-way Omniglot command), its meta step
# annealed as in the full 100,000-iteration run.
WAYS, SHOTS, LEARNING_RATE, EVAL_BATCH, EVAL_ITERS = 5, 1, 0.001, 5, 50
TRAINING = Training(train_shots=10, inner_batch=10, inner_iters=5, meta_step=1.0,
                    meta_step_final=0.0, meta_batch=5, meta_iters=100000)


class Clock:
    """Wall and CPU seconds spent inside `with clock:` blocks, from a starting charge."""

    def __init__(self, wall=0.0, cpu=0.0):
        self.wall, self.cpu = wall, cpu

    def __enter__(self):
        self._started = (time.monotonic(), time.process_time())

    def __exit__(self, *exc):
        self.wall += time.monotonic() - self._started[0]
        self.cpu += time.process_time() - self._started[1]


def pretrain_backbone(train_set, directory):
    """Pre-train once; return the backbone directory, the record and the Clock it took."""
    keras.utils.set_random_seed(FLAGS.seed)
    settings = pretrain.Settings(
        iterations=FLAGS['pretrain-iters'].value, learning_rate=FLAGS['pretrain-lr'].value,
        weight_decay=FLAGS['pretrain-weight-decay'].value,
        batch_size=FLAGS['pretrain-batch'].value,
        eval_interval=FLAGS['pretrain-eval-interval'].value, seed=FLAGS.seed)
    clock = Clock()
    with clock:
        record = pretrain.pretrain(models.omniglot_model(WAYS), train_set, directory, settings)
    return os.path.join(directory, backbone.DIRECTORY), record, clock


def build_reptile(backbone_dir, frozen_blocks):
    keras.utils.set_random_seed(FLAGS.seed)
    model = models.omniglot_model(WAYS)
    if backbone_dir:
        backbone.load(model, backbone_dir)
    backbone.freeze(model, frozen_blocks)
    return Reptile(model, Adam(LEARNING_RATE))


def test_accuracy(evaluator, test_set):
    # The same tasks at every point and for every variant: the comparisons are paired.
    shape = TaskShape(WAYS, SHOTS)
    tasks = ClassificationTasks(test_set, shape.classes, shape.shots,
                                replacement=shape.replacement, seed=FLAGS.seed + 1)
    return evaluator.evaluate(tasks, evaluator.settings.samples, name='test',
                              log_fn=lambda line: None)


def run_variant(name, train_set, test_set, clock, backbone_dir=None, frozen_blocks=0):
    """Meta-train one variant, evaluating at the --eval-at points; return the points."""
    reptile = build_reptile(backbone_dir, frozen_blocks)
    evaluator = Evaluator(reptile, Evaluation(inner_batch=EVAL_BATCH, inner_iters=EVAL_ITERS,
                                              transductive=True, samples=FLAGS['eval-tasks'].value))
    eval_at = sorted({int(i) for i in FLAGS['eval-at'].value})
    shape = TaskShape(WAYS, SHOTS)
    tasks = ClassificationTasks(train_set, shape.classes, TRAINING.train_shots,
                                replacement=shape.replacement, seed=FLAGS.seed)
    points = []
    for i in range(FLAGS['meta-iters'].value + 1):
        if i in eval_at:
            points.append(evaluation_point(name, evaluator, test_set, i, clock))
        if i == FLAGS['meta-iters'].value:
            return points
        images, batch = tasks.training_tasks(TRAINING.meta_batch, TRAINING.inner_batch,
                                             TRAINING.inner_iters, TRAINING.tail_shots)
        with clock:
            reptile.train_step(images, batch, TRAINING.meta_step_size(i))


def evaluation_point(name, evaluator, test_set, iteration, clock):
    accuracy = test_accuracy(evaluator, test_set)
    print('%s: %d meta-iterations, %.0f s training, test accuracy %s'
          % (name, iteration, clock.wall, accuracy), flush=True)
    return {'meta_iterations': iteration, 'training_wall_seconds': clock.wall,
            'training_cpu_seconds': clock.cpu, 'accuracy': accuracy.mean,
            'ci95': accuracy.ci95, 'tasks': accuracy.num_tasks}


# The figure's panels: x values of a point, and the axis label.
PANELS = (('training_wall_seconds', 'training wall time, s (pre-training included)'),
          ('training_cpu_seconds', 'training CPU time, s (pre-training included)'),
          ('meta_iterations', 'meta-iterations'))


def plot(variants, path):
    """Accuracy with its 95% interval against wall time, CPU time (the fairer clock on a shared
    machine) and meta-iterations."""
    figure, panels = pyplot.subplots(1, len(PANELS), figsize=(15, 4.2), sharey=True)
    for name, points in variants.items():
        for axes, (key, _) in zip(panels, PANELS):
            axes.errorbar([p[key] for p in points], [p['accuracy'] for p in points],
                          yerr=[p['ci95'] for p in points], marker='o', capsize=3, label=name)
    for axes, (_, label) in zip(panels, PANELS):
        axes.set_xlabel(label)
        axes.grid(alpha=0.3)
    panels[0].set_ylabel('test accuracy, 1-shot 5-way (95% interval)')
    panels[-1].legend(loc='lower right')
    figure.suptitle('Omniglot, README row 1 setting: Reptile with and without pre-training')
    figure.tight_layout()
    figure.savefig(path, dpi=120)


def main(argv):
    del argv
    out = FLAGS.out
    if FLAGS.replot:
        with open(os.path.join(out, 'pretrain_comparison.json'), encoding='utf-8') as file:
            plot(json.load(file)['variants'], os.path.join(out, 'pretrain_comparison.png'))
        return
    os.makedirs(out, exist_ok=True)
    load = [os.getloadavg()]
    train_set, test_set = omniglot.load(FLAGS['data-dir'].value, FLAGS.seed)
    backbone_dir, record, pretraining = pretrain_backbone(train_set,
                                                          os.path.join(out, 'pretraining'))
    frozen = FLAGS['freeze-blocks'].value
    variants = {
        'from scratch': run_variant('from scratch', train_set, test_set, Clock()),
        'pre-trained': run_variant('pre-trained', train_set, test_set,
                                   Clock(pretraining.wall, pretraining.cpu), backbone_dir),
        'pre-trained, %d blocks frozen' % frozen: run_variant(
            'pre-trained, %d blocks frozen' % frozen, train_set, test_set,
            Clock(pretraining.wall, pretraining.cpu), backbone_dir, frozen),
    }
    load.append(os.getloadavg())
    plot(variants, os.path.join(out, 'pretrain_comparison.png'))
    report = {'machine': '%s, %d cores visible, %d usable (affinity)'
                         % (platform.processor() or platform.machine(), os.cpu_count(),
                            len(os.sched_getaffinity(0))),
              'load_average_1_5_15_min': {'start': load[0], 'end': load[1]},
              'tensorflow': tf.__version__, 'flags': {f.name: f.value for f in
                                                      FLAGS.get_flags_for_module(__name__)},
              'pretraining': {**record, 'wall_seconds': pretraining.wall,
                              'cpu_seconds': pretraining.cpu},
              'variants': variants}
    with open(os.path.join(out, 'pretrain_comparison.json'), 'w', encoding='utf-8') as file:
        json.dump(report, file, indent=2)
    print('wrote %s' % os.path.join(out, 'pretrain_comparison.{png,json}'))


if __name__ == '__main__':
    cli.run(main)
