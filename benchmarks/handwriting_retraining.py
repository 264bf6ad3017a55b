"""
Does meta-training for people's handwriting pay? The shipped model meta-trained further on
Omniglot's training characters as adaptation now reads images (handwriting.frame), each drawing
also handed in --variants more ways people hand drawings in (a broad pen, a thumbnail scaled up,
a blur; slanted, stretched and turned), and saved as a finished run's directory, which
benchmarks/people_handwriting.py compares with the shipped model (--checkpoint2).

    python benchmarks/handwriting_retraining.py [--data-dir data/omniglot] [--iterations 8000] \\
        [--variants 2] [--output ckpt_handwriting]
    python benchmarks/people_handwriting.py --split dev --checkpoint2 ckpt_handwriting \\
        --methods adapt-handwriting,adapt2-handwriting

The run's settings are the shipped model's (preset o15: 5-way tasks of 10 shots, 5 Adam steps,
meta-batch 5, the characters' four rotations as classes), with the meta step annealed from
--meta-step to 0 over --iterations. Its results.json records no accuracy: the model is scored by
people_handwriting.py alone. Note that its dev split holds the characters trained on here.
"""

import json
import os
import shutil
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

# pylint: disable=wrong-import-position,wrong-import-order
from supervised_reptile import cli  # first: it quiets TensorFlow's start-up logs

from absl import flags
import numpy as np
from PIL import Image, ImageFilter
import tensorflow as tf

from supervised_reptile import checkpoints, handwriting, images, omniglot, recipes, results
from supervised_reptile.demo import SHIPPED_MODEL
from supervised_reptile.errors import UserError

flags.DEFINE_string('data-dir', 'data/omniglot', 'the merged Omniglot (./fetch_data.sh)')
flags.DEFINE_integer('iterations', 8000, 'meta-iterations of further training', lower_bound=1)
flags.DEFINE_float('meta-step', 0.25, 'the meta step size at the start, annealed to 0')
flags.DEFINE_integer('variants', 2, "people-like versions of each drawing beside Omniglot's",
                     lower_bound=0)
flags.DEFINE_integer('seed', 0, 'seed of the variants and of the task draws')
flags.DEFINE_string('output', 'ckpt_handwriting', 'the run directory to write (must not exist)')
FLAGS = flags.FLAGS


def handed_in(drawing, rng):
    """An Omniglot drawing (a 105x105 PIL image) as a person might hand it in: one of a broad
    pen, a thumbnail scaled up, a blur or none, then slanted, stretched and turned a little."""
    drawing = drawing.convert('L')
    kind = rng.integers(4)
    if kind == 0:
        drawing = drawing.filter(ImageFilter.MinFilter(int(rng.choice([3, 5, 7]))))
    elif kind == 1:
        side = int(rng.integers(10, 24))
        drawing = drawing.resize((side, side), Image.BOX).resize((84, 84), Image.BILINEAR)
    elif kind == 2:
        drawing = drawing.filter(ImageFilter.GaussianBlur(float(rng.uniform(1, 2.5))))
    slant, stretch = rng.uniform(-0.25, 0.25), rng.uniform(0.8, 1.2)
    width, height = drawing.size
    drawing = drawing.transform(
        drawing.size, Image.AFFINE,
        (stretch, slant, (1 - stretch) * width / 2 - slant * height / 2, 0, 1, 0),
        resample=Image.BILINEAR, fillcolor=255)
    return drawing.rotate(float(rng.uniform(-12, 12)), resample=Image.BILINEAR, fillcolor=255)


def character_arrays(data_dir, name, rng):
    """A character's drawings as the model's framed inputs: each drawing, then its variants."""
    arrays = []
    directory = os.path.join(data_dir, name)
    for file_name in sorted(os.listdir(directory)):
        with Image.open(os.path.join(directory, file_name)) as drawing:
            drawing.load()
        versions = [drawing] + [handed_in(drawing, rng) for _ in range(FLAGS.variants)]
        arrays += [images.to_array(handwriting.frame(v), omniglot.IMAGE_SIZE, 1)
                   for v in versions]
    return np.stack(arrays)


def training_classes(data_dir, rng):
    """The split's training characters, framed with their variants, in four rotations."""
    train, _ = omniglot.split_dataset(omniglot.read_dataset(data_dir), FLAGS.seed)
    arrays = [character_arrays(data_dir, name, rng) for name in train.names]
    return omniglot.augment_dataset(type(train).from_arrays(arrays, train.names))


def write_run(learner, record, output):
    """The learner as a finished run's directory, as adapt reads one."""
    os.makedirs(output)
    checkpoint = tf.train.Checkpoint(model=learner.algorithm.model,
                                     optimizer=learner.algorithm.optimizer)
    tf.train.CheckpointManager(checkpoint, output, max_to_keep=1,
                               checkpoint_name=checkpoints.CHECKPOINT_NAME).save(FLAGS.iterations)
    with open(os.path.join(output, results.CONFIG), 'w', encoding='utf-8') as file:
        json.dump(record, file, indent=2)
    finished = results.read(os.path.join(SHIPPED_MODEL, results.RESULTS))
    finished.update(accuracy={}, checkpoint=checkpoints.latest(output).rsplit('/', 1)[1],
                    continued_from='the shipped model, %d meta-iterations' % (
                        finished['iterations']),
                    iterations=FLAGS.iterations)
    with open(os.path.join(output, results.RESULTS), 'w', encoding='utf-8') as file:
        json.dump(finished, file, indent=2)


def main(argv):
    del argv
    if os.path.exists(FLAGS.output):
        raise UserError('%s exists; give a new --output' % FLAGS.output)
    record = results.read(os.path.join(SHIPPED_MODEL, results.CONFIG))
    values = dict(record['flags'], **{'meta-step': FLAGS['meta-step'].value,
                                      'meta-step-final': 0.0, 'meta-iters': FLAGS.iterations})
    started = time.perf_counter()
    classes = training_classes(FLAGS['data-dir'].value, np.random.default_rng(FLAGS.seed))
    print('%d classes of %d drawings framed in %.0f s' % (
        len(classes), classes.counts[0], time.perf_counter() - started), flush=True)
    learner = recipes.build_learner(recipes.build_model('omniglot', values), values)
    checkpoints.restore_latest(learner.algorithm, SHIPPED_MODEL)
    tasks = recipes.training_tasks(classes, values, np.random.default_rng(FLAGS.seed))
    started = time.perf_counter()
    learner.fit(tasks, FLAGS.iterations, initial_iteration=0, steps_per_epoch=500, verbose=2)
    print('trained in %.0f s' % (time.perf_counter() - started))
    write_run(learner, dict(record, flags=values, explicit_flags=sorted(
        record['explicit_flags'] + ['meta-step', 'meta-step-final', 'meta-iters'])),
              FLAGS.output)
    print('wrote %s' % FLAGS.output)


if __name__ == '__main__':
    cli.run(main)
