"""What the run scripts share around their main function: quiet logs and one-line errors."""

import os
import sys

# TensorFlow's C++ start-up notices (no GPU found, CPU features) say nothing a user must act on.
os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')

from absl import app  # pylint: disable=wrong-import-position
from absl import flags  # pylint: disable=wrong-import-position
from absl import logging  # pylint: disable=wrong-import-position
import tensorflow as tf  # pylint: disable=wrong-import-position

from .errors import UserError  # pylint: disable=wrong-import-position


def parse_flags(argv):
    """absl's flag parsing, with a bad flag reported as one line and exit code 2."""
    try:
        return flags.FLAGS(argv)
    except flags.Error as exc:
        print('error: %s' % exc, file=sys.stderr)
        sys.exit(2)


def run(main):
    """app.run(main), with info logs off (unless --verbosity asks for them), and bad flags and
    a UserError reported as one line on stderr with exit code 2 and no traceback."""
    def main_reporting_user_errors(argv):
        if not flags.FLAGS['verbosity'].present:
            logging.set_verbosity(logging.WARNING)
        tf.get_logger().setLevel('WARNING')
        try:
            return main(argv)
        except UserError as exc:
            print('error: %s' % exc, file=sys.stderr)
            sys.exit(2)
    app.run(main_reporting_user_errors, flags_parser=parse_flags)
