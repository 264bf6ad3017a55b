"""
Train and evaluate Reptile (or first-order MAML) on Omniglot.

Flags and defaults are those of the reference implementation.
"""

from supervised_reptile import cli  # first: it quiets TensorFlow's start-up logs

from absl import flags
import keras
import numpy as np

from supervised_reptile import args, checkpoints, models, omniglot
from supervised_reptile.eval import evaluate
from supervised_reptile.train import train

DATA_DIR = 'data/omniglot'
FLAGS = args.FLAGS
flags.adopt_module_key_flags(args)


def main(argv):
    del argv
    keras.utils.set_random_seed(FLAGS.seed)
    rng = np.random.default_rng(FLAGS.seed)
    train_set, test_set = omniglot.load(DATA_DIR, FLAGS.seed)
    reptile = args.build_reptile(models.omniglot_model(FLAGS.classes))

    if FLAGS.pretrained:
        print('Restoring from checkpoint %s ...' % checkpoints.restore_latest(reptile,
                                                                          FLAGS.checkpoint))
    else:
        print('Training...')
        train(reptile, train_set, test_set, FLAGS.checkpoint, rng, **args.train_kwargs())

    print('Evaluating...')
    eval_kwargs = args.evaluate_kwargs()
    print('Train accuracy: %s' % evaluate(reptile, train_set, rng, name='train', **eval_kwargs))
    print('Test accuracy: %s' % evaluate(reptile, test_set, rng, name='test', **eval_kwargs))


if __name__ == '__main__':
    cli.run(main)
