"""
Checkpoints of a run: the model's variables and the optimizer's state, every 100 meta-steps.

The optimizer state is part of the learned result: evaluation fine-tunes with the second-moment
estimates that training left, as the reference does, so a checkpoint without it would evaluate
differently.
"""

import tensorflow as tf

from .errors import UserError

CHECKPOINT_NAME = 'model.ckpt'
KEEP = 5


def _checkpoint(reptile):
    return tf.train.Checkpoint(model=reptile.model, optimizer=reptile.optimizer)


def manager(reptile, directory):
    """A CheckpointManager writing <directory>/model.ckpt-<step> and keeping the last five."""
    return tf.train.CheckpointManager(_checkpoint(reptile), directory, max_to_keep=KEEP,
                                      checkpoint_name=CHECKPOINT_NAME)


def latest(directory):
    """The path of the newest checkpoint in directory, or None."""
    return tf.train.latest_checkpoint(directory)


def restore_latest(reptile, directory):
    """Load the newest checkpoint of directory into the model and optimizer; return its path."""
    path = latest(directory)
    if path is None:
        raise UserError('no checkpoint in %s; train first, or point --checkpoint at a training run'
                        % directory)
    try:
        _checkpoint(reptile).restore(path).assert_existing_objects_matched()
    except (AssertionError, ValueError) as exc:
        # The half-done restore would log warnings about unrestored values at exit; the error
        # below says all there is to say.
        tf.get_logger().setLevel('ERROR')
        raise UserError('checkpoint %s does not fit this model (%s); check --classes, the script '
                        'and --sgd against the run that wrote it' % (path, str(exc).splitlines()[0]))
    return path
