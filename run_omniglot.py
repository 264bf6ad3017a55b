"""
Train and evaluate Reptile (or first-order MAML) on Omniglot.

Flags and defaults are those of the reference implementation.
"""

from supervised_reptile import cli  # first: it quiets TensorFlow's start-up logs

from absl import flags

from supervised_reptile import args, models, omniglot
from supervised_reptile.experiment import print_accuracies, train_or_restore

DATA_DIR = 'data/omniglot'
FLAGS = args.FLAGS
flags.adopt_module_key_flags(args)


def main(argv):
    del argv
    rng = args.seed_everything()
    train_set, test_set = omniglot.load(DATA_DIR, FLAGS.seed)
    reptile = args.build_reptile(models.omniglot_model(FLAGS.classes))
    train_or_restore(reptile, train_set, test_set, rng, FLAGS.pretrained, FLAGS.checkpoint,
                     args.train_kwargs())
    print_accuracies(reptile, rng, [('Train', train_set), ('Test', test_set)],
                     args.evaluate_kwargs())


if __name__ == '__main__':
    cli.run(main)
