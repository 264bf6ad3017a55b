"""
Train and evaluate Reptile (or first-order MAML) on any folder of image classes.

    python run_folder.py --data-dir DIR [the flags of run_omniglot.py]

DIR holds <class>/<images>, or train/, val/ (optional) and test/ each with <class>/<images>.
Without a split, the classes are split by --seed, --train-fraction of them for training. Images
are squashed to --image-size and converted to --channels; --preset NAME takes a published
configuration's values (--preset list lists them).
"""

# pylint: disable=wrong-import-position
from supervised_reptile import cli  # first to load TensorFlow: it quiets its start-up logs

from absl import flags

from supervised_reptile import args, folder, recipes
from supervised_reptile.experiment import Run

FLAGS = args.FLAGS
args.define_folder_flags()
flags.adopt_module_key_flags(args)


def main(argv):
    del argv
    run = Run(args.FOLDER)
    train_set, val_set, test_set = folder.read_dataset(
        FLAGS['data-dir'].value, FLAGS['image-size'].value, FLAGS.channels, FLAGS.seed,
        FLAGS['train-fraction'].value)
    if val_set is not None:  # before training: a run must not end refused
        run.evaluation_tasks(val_set).check('validation')
    learner = run.learner(recipes.build_model(args.FOLDER, run.flags))
    run.train_or_restore(learner, train_set, test_set)
    named_sets = [('Train', train_set), ('Validation', val_set), ('Test', test_set)]
    run.evaluate(learner, [(name, classes) for name, classes in named_sets if classes])


if __name__ == '__main__':
    cli.run(main, args.resolver(args.FOLDER))
