"""
Train and evaluate Reptile (or first-order MAML) on Omniglot.

Flags and defaults are those of the reference implementation; --preset NAME runs a published
configuration (--preset list lists them).
"""

# pylint: disable=wrong-import-position
from supervised_reptile import cpu_kernels  # before TensorFlow loads: it reads the choice
cpu_kernels.choose('omniglot')
from supervised_reptile import cli  # first to load TensorFlow: it quiets its start-up logs

from absl import flags

from supervised_reptile import args, omniglot, recipes
from supervised_reptile.experiment import Run

DATA_DIR = 'data/omniglot'
FLAGS = args.FLAGS
flags.adopt_module_key_flags(args)


def main(argv):
    del argv
    run = Run('omniglot')
    train_set, test_set = omniglot.load(DATA_DIR, FLAGS.seed)
    learner = run.learner(recipes.build_model('omniglot', run.flags))
    run.train_or_restore(learner, train_set, test_set)
    run.evaluate(learner, [('Train', train_set), ('Test', test_set)])


if __name__ == '__main__':
    cli.run(main, args.resolver('omniglot'))
