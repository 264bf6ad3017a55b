"""
Train and evaluate Reptile (or first-order MAML) on Mini-ImageNet.

Flags and defaults are those of the reference implementation; --preset NAME runs a published
configuration (--preset list lists them). As in the reference, the accuracy logged during
training is measured on the test classes; the validation classes are evaluated only at the end.
"""

# pylint: disable=wrong-import-position
from supervised_reptile import cpu_kernels  # before TensorFlow loads: it reads the choice
cpu_kernels.choose('miniimagenet')
from supervised_reptile import cli  # first to load TensorFlow: it quiets its start-up logs

from absl import flags

from supervised_reptile import args, miniimagenet, recipes
from supervised_reptile.experiment import Run

DATA_DIR = 'data/miniimagenet'
FLAGS = args.FLAGS
flags.adopt_module_key_flags(args)


def main(argv):
    del argv
    run = Run('miniimagenet')
    train_set, val_set, test_set = miniimagenet.read_dataset(DATA_DIR)
    learner = run.learner(recipes.build_model('miniimagenet', run.flags))
    run.train_or_restore(learner, train_set, test_set)
    run.evaluate(learner, [('Train', train_set), ('Validation', val_set), ('Test', test_set)])


if __name__ == '__main__':
    cli.run(main, args.resolver('miniimagenet'))
