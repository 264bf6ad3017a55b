"""`python -m supervised_reptile.demo` in a subprocess, for the tests that talk to it."""

import contextlib
import os
import subprocess
import sys

from conftest import REPO_DIR

START_TIMEOUT_S = 300


@contextlib.contextmanager
def running_demo(*flags):
    """Start the demo on a free port; yield its URL; stop it."""
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL='3', PYTHONUNBUFFERED='1')
    process = subprocess.Popen([sys.executable, '-m', 'supervised_reptile.demo', '--port', '0',
                                *flags], cwd=REPO_DIR, env=env, stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, text=True)
    try:
        output = []
        for line in process.stdout:
            output.append(line)
            if 'http://127.0.0.1:' in line:
                yield 'http://' + line.split('http://', 1)[1].split()[0]
                return
        raise AssertionError('the demo stopped before serving:\n' + ''.join(output))
    finally:
        process.terminate()
        process.wait(timeout=30)
