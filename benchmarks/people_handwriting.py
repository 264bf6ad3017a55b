"""
How well a meta-learned Omniglot model classifies handwriting handed in as people hand it in,
not framed as Omniglot frames its characters.

    python benchmarks/people_handwriting.py [--split report] [--tasks 25] \\
        [--data-dir data/omniglot] [--checkpoint DIR] [--checkpoint2 DIR] \\
        [--methods adapt-raw,...] [--kinds corner,...] [--save-examples DIR] \\
        [--output benchmarks/results/people_handwriting.json]

Tasks are 5-way 1-shot with 4 queries a class (20 a task), --tasks of each kind; a kind is one
way of handing images in, the same for every image of a task (one person hands them all in),
with its parameters varying from image to image (handwriting_styles.py):

- Omniglot's characters restyled: corner, fill, thick, thin, grey-scan, inverted, low-res; and
  as-drawn, the control: as Omniglot holds them. A class is a character; the support one
  drawer's drawing of it, the queries other drawers'.
- generated: made-up characters of 2-4 strokes, every image a redrawing of its prototype.
- digits: 5 of the 10 digits; the support written by one person, each query by another, all
  scanned small (8-20 pixels), white on black in half of the tasks.

--split dev takes Omniglot's training characters (the 1,200 of omniglot.split_dataset with
seed 0) and task seeds from 0; --split report (the default) the other 423, which no model and
no tuning of this benchmark has seen, and task seeds from 1,000,000. The images are written as
PNG files, support/<class>/img.png and query/q<class><j>.png, as a user gives them to
`python -m supervised_reptile.adapt`, and classified by the methods (the columns):

- adapt-raw, adapt-handwriting: supervised_reptile.adapt's Adapter of --checkpoint (the model
  that ships with the package by default), with preprocess='raw' (the image squashed whole, as
  in training) or 'handwriting' (framed as Omniglot's characters first); adapt2-*: the same of
  --checkpoint2.
- pixels, pixels-handwriting: the floor, each query given the class of the nearest support
  image in Euclidean distance between the 28x28 grey images the model would take (raw, or
  framed by supervised_reptile.handwriting).

Prints the table of correct/total (rows kinds, columns methods), the seconds each method took
and the CPU, and writes them to --output. --save-examples DIR writes DIR/<kind>.png: the first
task's support image (left) and first three queries of every class, as handed in.
"""

import json
import os
import platform
import sys
import tempfile
import time
import zlib

REPO_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO_DIR)

# pylint: disable=wrong-import-position,wrong-import-order
from supervised_reptile import cli  # first: it quiets TensorFlow's start-up logs

from absl import flags
import numpy as np
from PIL import Image
import tensorflow as tf

import handwriting_styles as styles
from supervised_reptile import handwriting, images, omniglot
from supervised_reptile.adapt import Adapter
from supervised_reptile.demo import SHIPPED_MODEL
from supervised_reptile.errors import UserError
# pylint: enable=wrong-import-position,wrong-import-order

WAYS, QUERIES = 5, 4
AS_DRAWN = 'as-drawn'  # the control: Omniglot's drawings as Omniglot holds them
OMNIGLOT_KINDS = (AS_DRAWN,) + tuple(styles.OMNIGLOT_STYLES)
KINDS = OMNIGLOT_KINDS + ('generated', 'digits')
SEED_BASE = {'dev': 0, 'report': 1000000}
METHODS = {  # flag name: (column, checkpoint flag or None for pixels, preprocessing)
    'adapt-raw': ('adapt, raw', 'checkpoint', 'raw'),
    'adapt-handwriting': ('adapt, handwriting', 'checkpoint', 'handwriting'),
    'adapt2-raw': ('adapt checkpoint2, raw', 'checkpoint2', 'raw'),
    'adapt2-handwriting': ('adapt checkpoint2, handwriting', 'checkpoint2', 'handwriting'),
    'pixels': ('pixel nearest neighbour', None, 'raw'),
    'pixels-handwriting': ('pixel nearest neighbour, handwriting', None, 'handwriting'),
}

flags.DEFINE_string('data-dir', 'data/omniglot', 'the merged Omniglot (./fetch_data.sh)')
flags.DEFINE_enum('split', 'report', list(SEED_BASE), "dev: Omniglot's training characters "
                  'and dev seeds, for tuning; report: the test characters and other seeds')
flags.DEFINE_integer('tasks', 25, 'tasks of each kind', lower_bound=1, upper_bound=999999)
flags.DEFINE_string('checkpoint', SHIPPED_MODEL, 'a finished Omniglot run (default: the model '
                    'that ships with the package)')
flags.DEFINE_string('checkpoint2', None, 'a second finished run, for the adapt2-* methods')
flags.DEFINE_list('methods', None, 'methods to run, of %s (default: every one available)'
                  % ', '.join(METHODS))
flags.DEFINE_list('kinds', list(KINDS), 'kinds of tasks, of %s' % ', '.join(KINDS))
flags.DEFINE_string('output', 'benchmarks/results/people_handwriting.json', 'the JSON report')
flags.DEFINE_string('save-examples', None, 'a folder for a contact sheet of each kind')
FLAGS = flags.FLAGS


def omniglot_task(style, characters, data_dir, rng):
    """WAYS characters, each as [support, queries...]: drawings by 1 + QUERIES drawers, read
    from the original 105x105 files and restyled."""
    task = []
    for name in rng.choice(characters, WAYS, replace=False):
        files = sorted(f for f in os.listdir(os.path.join(data_dir, name)) if f.endswith('.png'))
        task.append([restyled(style, _ink(os.path.join(data_dir, name, f)), rng)
                     for f in rng.choice(files, 1 + QUERIES, replace=False)])
    return task


def restyled(style, ink, rng):
    """A drawing's ink handed in in style; as-drawn: black on white, as Omniglot holds it."""
    if style == AS_DRAWN:
        return Image.fromarray(np.where(ink, 0, 255).astype(np.uint8), 'L')
    return styles.OMNIGLOT_STYLES[style](ink, rng)


def _ink(path):
    with Image.open(path) as image:
        return styles.omniglot_ink(image)


def generated_task(rng):
    """WAYS made-up characters, each drawn 1 + QUERIES times."""
    characters = [styles.made_up_character(rng) for _ in range(WAYS)]
    return [[styles.redraw(character, rng) for _ in range(1 + QUERIES)]
            for character in characters]


def digits_task(rng):
    """WAYS digits, each written by the same 1 + QUERIES people: the support by the first,
    query j by person j + 1. White on black or black on white, for the whole task."""
    people = [styles.writer(rng) for _ in range(1 + QUERIES)]
    white_on_black = bool(rng.random() < 0.5)
    return [[styles.write_digit(digit, person, rng, white_on_black) for person in people]
            for digit in rng.choice(10, WAYS, replace=False)]


def make_task(kind, characters, rng):
    if kind == 'generated':
        return generated_task(rng)
    if kind == 'digits':
        return digits_task(rng)
    return omniglot_task(kind, characters, FLAGS['data-dir'].value, rng)


def write_task(task, directory):
    """The task's images as PNG files; (support {class: [path]}, query paths, their classes)."""
    support, queries, truth = {}, [], []
    os.makedirs(os.path.join(directory, 'query'))
    for label, drawings in enumerate(task):
        name = 'c%d' % label
        os.makedirs(os.path.join(directory, 'support', name))
        support[name] = [os.path.join(directory, 'support', name, 'img.png')]
        drawings[0].save(support[name][0])
        for j, drawing in enumerate(drawings[1:]):
            queries.append(os.path.join(directory, 'query', 'q%d%d.png' % (label, j)))
            truth.append(name)
            drawing.save(queries[-1])
    return support, queries, truth


def contact_sheet(task, path, cell=112):
    """A row per class: the support image, a gap, then the first three queries, each scaled to
    fit a cell (nearest-neighbour when enlarged, so that a scan's pixels show)."""
    columns = [0, None, 1, 2, 3]
    sheet = Image.new('L', (len(columns) * (cell + 4), len(task) * (cell + 4)), 128)
    for row, drawings in enumerate(task):
        for column, index in enumerate(columns):
            if index is not None:
                image = drawings[index]
                scale = cell / max(image.size)
                shown = image.resize((max(1, round(image.width * scale)),
                                      max(1, round(image.height * scale))),
                                     Image.NEAREST if scale > 1 else Image.BOX)
                sheet.paste(shown, (column * (cell + 4) + 2 + (cell - shown.width) // 2,
                                    row * (cell + 4) + 2 + (cell - shown.height) // 2))
    sheet.save(path)


def adapt_classifier(checkpoint, preprocess):
    """fit and predict of one Adapter, built (and compiled) once for every task."""
    adapter = Adapter.from_checkpoint(checkpoint, preprocess=preprocess)

    def classify(support, queries):
        return [p.predicted for p in adapter.fit(support).predict(queries)]
    return classify


def pixel_classifier(preprocess):
    """The nearest support image's class, in pixels as the model would take them."""
    def as_pixels(path):
        if preprocess == 'handwriting':
            array = images.to_array(handwriting.frame(images.load(path)), 28, 1)
        else:
            array = images.read(path, 28, 1)
        return array.reshape(-1).astype(np.float32) / 255

    def classify(support, queries):
        names = [name for name in sorted(support) for _ in support[name]]
        pixels = np.stack([as_pixels(path) for name in sorted(support) for path in support[name]])
        return [names[int(np.argmin(np.linalg.norm(pixels - as_pixels(query), axis=1)))]
                for query in queries]
    return classify


def available_methods():
    """{method: why it cannot run} for the methods that cannot."""
    if FLAGS.checkpoint2 is None:
        return {m: 'no --checkpoint2' for m in METHODS if m.startswith('adapt2')}
    return {}


def chosen_methods():
    missing = available_methods()
    if FLAGS.methods is None:
        for method, why in missing.items():
            print('not run: %s (%s)' % (method, why))
        return [m for m in METHODS if m not in missing]
    for method in FLAGS.methods:
        if method not in METHODS:
            raise UserError('no method %s; choose of %s' % (method, ', '.join(METHODS)))
        if method in missing:
            raise UserError('method %s cannot run: %s' % (method, missing[method]))
    return FLAGS.methods


def build_classifier(method):
    _, checkpoint_flag, preprocess = METHODS[method]
    if checkpoint_flag is None:
        return pixel_classifier(preprocess)
    return adapt_classifier(FLAGS[checkpoint_flag].value, preprocess)


def cpu_model():
    try:
        with open('/proc/cpuinfo', encoding='utf-8') as file:
            for line in file:
                if line.startswith('model name'):
                    return line.split(':', 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def table(kinds, methods, counts):
    """Rows kinds (and all of them), columns methods, cells correct/total."""
    rows = [[kind] + ['%d/%d' % tuple(counts[m][kind]) for m in methods] for kind in kinds]
    totals = [[sum(counts[m][k][i] for k in kinds) for i in (0, 1)] for m in methods]
    rows.append(['all'] + ['%d/%d (%.1f%%)' % (c, t, 100 * c / t) for c, t in totals])
    header = ['kind'] + [METHODS[m][0] for m in methods]
    widths = [max(len(row[i]) for row in [header] + rows) for i in range(len(header))]
    return '\n'.join('  '.join(cell.ljust(width) for cell, width in zip(row, widths))
                     for row in [header] + rows)


def split_characters():
    """The names (alphabet/characterNN) of the split's Omniglot characters."""
    train, test = omniglot.split_dataset(omniglot.read_dataset(FLAGS['data-dir'].value), seed=0)
    return (train if FLAGS.split == 'dev' else test).names


def write_tasks(root, characters):
    """Every kind's tasks written under root: [(kind, (support, queries, truth))]; the first
    task of a kind also as a contact sheet, with --save-examples."""
    tasks, examples = [], FLAGS['save-examples'].value
    for kind in FLAGS.kinds:
        for number in range(FLAGS.tasks):
            # Seeded by the kind's name, so that choosing other kinds changes no task.
            seed = SEED_BASE[FLAGS.split] + number
            task = make_task(kind, characters, np.random.default_rng([zlib.crc32(kind.encode()),
                                                                      seed]))
            if number == 0 and examples:
                os.makedirs(examples, exist_ok=True)
                contact_sheet(task, os.path.join(examples, kind + '.png'))
            tasks.append((kind, write_task(task, os.path.join(root, '%s_%d' % (kind, seed)))))
    return tasks


def run_method(method, tasks):
    """[correct, total] of each kind, and the seconds taken, building the classifier included."""
    started = time.perf_counter()
    classify = build_classifier(method)
    counts = {kind: [0, 0] for kind in FLAGS.kinds}
    for kind, (support, queries, truth) in tasks:
        predicted = classify(support, queries)
        counts[kind][0] += sum(p == t for p, t in zip(predicted, truth))
        counts[kind][1] += len(truth)
    return counts, time.perf_counter() - started


def main(argv):
    del argv
    for kind in FLAGS.kinds:
        if kind not in KINDS:
            raise UserError('no kind %s; choose of %s' % (kind, ', '.join(KINDS)))
    methods = chosen_methods()
    base = SEED_BASE[FLAGS.split]
    print('split: %s (Omniglot\'s %s characters, task seeds %d-%d)'
          % (FLAGS.split, '1200 training' if FLAGS.split == 'dev' else '423 test', base,
             base + FLAGS.tasks - 1))
    characters = split_characters() if set(FLAGS.kinds) & set(OMNIGLOT_KINDS) else None
    with tempfile.TemporaryDirectory() as root:
        tasks = write_tasks(root, characters)
        results = {method: run_method(method, tasks) for method in methods}
    counts = {method: result[0] for method, result in results.items()}
    seconds = {method: result[1] for method, result in results.items()}
    print(table(FLAGS.kinds, methods, counts))
    print('seconds: %s' % ', '.join('%s %.1f' % (METHODS[m][0], s) for m, s in seconds.items()))
    print('CPU: %s, %d cores usable' % (cpu_model(), len(os.sched_getaffinity(0))))
    write_report(methods, counts, seconds)


def write_report(methods, counts, seconds):
    base = SEED_BASE[FLAGS.split]
    report = {
        'command': ' '.join(sys.argv),
        'split': FLAGS.split, 'task_seeds': [base, base + FLAGS.tasks - 1],
        'task': {'ways': WAYS, 'shots': 1, 'queries_per_class': QUERIES,
                 'tasks_per_kind': FLAGS.tasks},
        'machine': {'cpu': cpu_model(), 'cores_visible': os.cpu_count(),
                    'cores_usable': len(os.sched_getaffinity(0))},
        'tensorflow': tf.__version__,
        'checkpoints': {'checkpoint': _shown(FLAGS.checkpoint),
                        'checkpoint2': FLAGS.checkpoint2 and _shown(FLAGS.checkpoint2)},
        'kinds': FLAGS.kinds,
        'methods': {METHODS[m][0]: {'flag': m, 'seconds': round(seconds[m], 2),
                                    'correct': {k: c for k, (c, _) in counts[m].items()},
                                    'total': {k: t for k, (_, t) in counts[m].items()}}
                    for m in methods},
    }
    os.makedirs(os.path.dirname(FLAGS.output) or '.', exist_ok=True)
    with open(FLAGS.output, 'w', encoding='utf-8') as file:
        json.dump(report, file, indent=2)
    print('wrote %s' % FLAGS.output)


def _shown(path):
    """A path as the report gives it: relative to the repository when inside it (the shipped
    model), so that the report reads the same on every machine."""
    inside = os.path.relpath(os.path.abspath(path), REPO_DIR)
    return path if inside.startswith(os.pardir) else inside


if __name__ == '__main__':
    cli.run(main)
