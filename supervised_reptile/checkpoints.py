"""
Checkpoints of a run: everything its future depends on, every 100 meta-steps.

A training checkpoint holds the model's variables, the optimizer's state (slots and step count),
the index of the last meta-step done, the seconds spent training so far, and the state of the
host random generator that draws every task and mini-batch. No TensorFlow random op runs after
the weights are initialised, so that generator is the only random state there is: a run resumed
from a checkpoint follows the trajectory of one never interrupted, bit for bit on the CPU.

The optimizer state is part of the learned result: evaluation fine-tunes with the second-moment
estimates that training left, as the reference does, so a checkpoint without it would evaluate
differently.

TensorFlow writes a checkpoint's files first and then replaces the small 'checkpoint' file that
names the newest one, so a kill during a save leaves the previous checkpoint the newest. A newest
checkpoint that still fails to load (a truncated file, a full disk) is skipped for the one
before it.
"""

import json

import tensorflow as tf

from .errors import UserError

CHECKPOINT_NAME = 'model.ckpt'
KEEP = 5


class GeneratorState(tf.train.experimental.PythonState):
    """A numpy Generator's bit-generator state, saved in a checkpoint as JSON."""

    def __init__(self, rng):
        self.rng = rng

    def serialize(self):
        return json.dumps(self.rng.bit_generator.state)

    def deserialize(self, string_value):
        self.rng.bit_generator.state = json.loads(string_value)


class TrainingState:
    """What a training checkpoint holds, as a tf.train.Checkpoint and its manager."""

    def __init__(self, reptile, rng, directory):
        self.last_step = tf.Variable(-1, dtype=tf.int64, trainable=False)
        self.training_seconds = tf.Variable(0.0, dtype=tf.float64, trainable=False)
        self.checkpoint = tf.train.Checkpoint(
            model=reptile.model, optimizer=reptile.optimizer, last_step=self.last_step,
            training_seconds=self.training_seconds, rng=GeneratorState(rng))
        self.manager = tf.train.CheckpointManager(self.checkpoint, directory, max_to_keep=KEEP,
                                                  checkpoint_name=CHECKPOINT_NAME)

    def save(self, step, training_seconds):
        """Checkpoint the state after meta-step `step`; return the checkpoint's path."""
        self.last_step.assign(step)
        self.training_seconds.assign(training_seconds)
        return self.manager.save(checkpoint_number=step)

    def restore(self):
        """Load the newest loadable checkpoint; return its path. No checkpoint is a UserError."""
        return _restore_newest(self.checkpoint, self.manager.checkpoints[::-1],
                               self.manager.directory)


def latest(directory):
    """The path of the newest checkpoint in directory, or None."""
    return tf.train.latest_checkpoint(directory)


def restore_latest(reptile, directory):
    """Load the newest loadable checkpoint of directory into the model and optimizer (the rest of
    a training checkpoint is left out); return its path."""
    state = tf.train.get_checkpoint_state(directory)
    paths = list(state.all_model_checkpoint_paths[::-1]) if state else []
    return _restore_newest(tf.train.Checkpoint(model=reptile.model, optimizer=reptile.optimizer),
                           paths, directory)


def _restore_newest(checkpoint, paths_newest_first, directory):
    if not paths_newest_first:
        raise UserError('no checkpoint in %s; train first, or point --checkpoint at a training run'
                        % directory)
    for path in paths_newest_first:
        if _restore(checkpoint, path):
            return path
        print('warning: checkpoint %s cannot be read; trying the one before it' % path)
    raise UserError('no checkpoint in %s can be read; the run cannot be resumed' % directory)


def _restore(checkpoint, path):
    """Load path into checkpoint: True if done, False if its files are damaged; a UserError if
    it holds another model."""
    try:
        # expect_partial: an evaluation restores the model and optimizer of a training
        # checkpoint, not its step, clock and generator.
        checkpoint.restore(path).expect_partial().assert_existing_objects_matched()
    except (tf.errors.OpError, IndexError):
        return False
    except (AssertionError, ValueError) as exc:
        # The half-done restore would log warnings about unrestored values at exit; the error
        # below says all there is to say.
        tf.get_logger().setLevel('ERROR')
        raise UserError('checkpoint %s does not fit this model (%s); check --classes, the script, '
                        '--sgd and --freeze-blocks against the run that wrote it'
                        % (path, str(exc).splitlines()[0]))
    return True
