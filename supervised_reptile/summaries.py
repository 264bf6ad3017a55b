"""
TensorBoard scalars that stay one value per step across a resume.

A resumed run redoes the steps between its last checkpoint and the kill, and since it follows
the same trajectory it computes the same values for them. The writer therefore skips every step
its directory's event files already hold, so TensorBoard shows no step twice and none missing.
"""

import glob
import os

import tensorflow as tf


def last_logged_step(log_dir):
    """The highest step of any event in log_dir's event files, or -1. A record cut short by a
    kill ends its file's reading: TensorBoard ignores it too."""
    last = -1
    for path in glob.glob(os.path.join(log_dir, 'events.out.tfevents.*')):
        try:
            for event in tf.compat.v1.train.summary_iterator(path):
                if event.HasField('summary'):
                    last = max(last, event.step)
        except tf.errors.DataLossError:
            pass
    return last


class ScalarWriter:
    """A tf.summary file writer for <log_dir> that skips the steps logged before it opened."""

    def __init__(self, log_dir):
        self.logged_before = last_logged_step(log_dir)
        self._writer = tf.summary.create_file_writer(log_dir)

    def scalars(self, step, **values):
        if step <= self.logged_before:
            return
        with self._writer.as_default():
            for name, value in values.items():
                tf.summary.scalar(name, value, step=step)
        self._writer.flush()
