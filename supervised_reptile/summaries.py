"""
TensorBoard scalars: written so that they stay one value per step across a resume, and read back.

A resumed run redoes the steps between its last checkpoint and the kill, and since it follows
the same trajectory it computes the same values for them. The writer therefore skips every step
its directory's event files already hold, so TensorBoard shows no step twice and none missing.

Event files are read through tf.data, which is quiet: tf.compat.v1.train.summary_iterator prints
a deprecation notice.
"""

import glob
import os
import re

import tensorflow as tf

# Records are small; an explicit buffer also keeps tf.data from logging that none was given.
_READ_BUFFER_BYTES = 1 << 16


def event_files(log_dir):
    """The event files in log_dir, oldest first (their names hold the time they were opened)."""
    paths = glob.glob(os.path.join(log_dir, 'events.out.tfevents.*'))
    return sorted(paths, key=lambda path: (_opened_at(path), path))


def _opened_at(path):
    match = re.match(r'events\.out\.tfevents\.(\d+)', os.path.basename(path))
    return int(match.group(1)) if match else 0


def events(path):
    """The tf.compat.v1.Event records of one event file, in order. A record cut short by a kill
    ends the reading: TensorBoard ignores it too."""
    try:
        for record in tf.data.TFRecordDataset(path, buffer_size=_READ_BUFFER_BYTES):
            yield tf.compat.v1.Event.FromString(record.numpy())
    except tf.errors.DataLossError:
        return


def scalar_value(value):
    """The number a Summary.Value holds: tf.summary.scalar stores a tensor, TensorFlow 1's
    summaries a simple_value; None for any other kind (an image, a histogram)."""
    kind = value.WhichOneof('value')
    if kind == 'simple_value':
        return float(value.simple_value)
    if kind == 'tensor' and not value.tensor.tensor_shape.dim:
        return float(tf.make_ndarray(value.tensor))
    return None


def read_scalars(log_dir, tag):
    """(steps, values) of the scalar `tag` in log_dir's event files, by step. A step logged
    twice (by a resumed run of a release that did not skip them) keeps the later file's value."""
    by_step = dict(pair for path in event_files(log_dir) for pair in _scalars(path, tag))
    steps = sorted(by_step)
    return steps, [by_step[step] for step in steps]


def _scalars(path, tag):
    """(step, value) of every scalar `tag` in one event file, in order."""
    for event in events(path):
        for value in event.summary.value:
            if value.tag == tag and scalar_value(value) is not None:
                yield event.step, scalar_value(value)


def last_logged_step(log_dir):
    """The highest step of any event with a summary in log_dir's event files, or -1."""
    return max((event.step for path in event_files(log_dir) for event in events(path)
                if event.HasField('summary')), default=-1)


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
