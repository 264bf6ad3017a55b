"""What the command-line entry points share: a quiet TensorFlow start, full float32 on GPUs,
flags resolved at parse time, and one-line errors.

Import this module before anything else loads TensorFlow (cpu_kernels excepted): it loads
TensorFlow itself, with its C++ start-up notices filtered out.
"""

import os
import re
import sys
import tempfile

# TensorFlow's C++ notices after start-up (info and warnings) say nothing a user must act on.
os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')

# Lines TensorFlow's C++ code prints while it loads and looks for a GPU, before its logging
# honours TF_CPP_MIN_LOG_LEVEL: on a machine without CUDA, that the drivers are missing and
# that cuInit failed (at error level), some of them twice; which CPU instructions and kernels
# it uses. None of them calls for action.
_START_UP_NOTICES = re.compile(
    r'All log messages before absl::InitializeLog|To enable the following instructions|'
    r'(port|cudart_stub|cuda_platform|cpu_feature_guard|cuda_dnn|cuda_fft|cuda_blas|'
    r'cuda_executor|gpu_device)\.cc:\d+\]')


def _load_tensorflow_quietly():
    """Import TensorFlow and look for GPUs with the C++ standard error captured; pass on every
    captured line but the start-up notices."""
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as captured:
        os.dup2(captured.fileno(), 2)
        try:
            import tensorflow  # pylint: disable=import-outside-toplevel
            tensorflow.config.list_physical_devices('GPU')
        finally:
            os.dup2(saved, 2)
            os.close(saved)
        captured.seek(0)
        for line in captured.read().decode(errors='replace').splitlines(keepends=True):
            if not _START_UP_NOTICES.search(line):
                sys.stderr.write(line)
    return tensorflow


tf = _load_tensorflow_quietly()
# The reference computed in full float32; Ampere and later GPUs would otherwise run float32
# convolutions and matrix products in TF32, with a 10-bit mantissa.
tf.config.experimental.enable_tensor_float_32_execution(False)

from absl import app  # pylint: disable=wrong-import-position
from absl import flags  # pylint: disable=wrong-import-position
from absl import logging  # pylint: disable=wrong-import-position

from .errors import UserError  # pylint: disable=wrong-import-position


def fail(message):
    """Report a user's error as one line on stderr and exit with code 2."""
    print('error: %s' % message, file=sys.stderr)
    sys.exit(2)


def parse_flags(argv, resolve=None):
    """absl's flag parsing, then resolve() (presets, checks across flags); a bad flag is
    reported as one line with exit code 2."""
    try:
        remaining = flags.FLAGS(argv)
        if resolve is not None:
            resolve()
        return remaining
    except (flags.Error, UserError) as exc:
        return fail(exc)


def run(main, resolve=None):
    """app.run(main), with flags resolved at parse time (see parse_flags), info logs off
    (unless --verbosity asks for them), and a UserError reported as one line on stderr with
    exit code 2 and no traceback."""
    def main_reporting_user_errors(argv):
        if not flags.FLAGS['verbosity'].present:
            logging.set_verbosity(logging.WARNING)
        tf.get_logger().setLevel('WARNING')
        try:
            return main(argv)
        except UserError as exc:
            return fail(exc)
    app.run(main_reporting_user_errors, flags_parser=lambda argv: parse_flags(argv, resolve))
