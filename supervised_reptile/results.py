"""
The record a run leaves beside its checkpoints, as JSON files:

    <checkpoint>/config.json        a training run's configuration, written before its first step
    <checkpoint>/results.json       its final evaluation
    <checkpoint>/eval_config.json   the same two for an evaluation of the trained checkpoint
    <checkpoint>/eval_results.json  (--pretrained), which leaves the training run's files alone

Each file is replaced atomically, so a reader never sees half of one and a write cut short
leaves the previous version.
"""

import json
import os

CONFIG = 'config.json'
RESULTS = 'results.json'
EVAL_CONFIG = 'eval_config.json'
EVAL_RESULTS = 'eval_results.json'


def file_names(pretrained):
    """(configuration, results) file names of a training run, or of a --pretrained evaluation."""
    return (EVAL_CONFIG, EVAL_RESULTS) if pretrained else (CONFIG, RESULTS)


def write(directory, name, record):
    """Write record as <directory>/<name>, creating the directory if need be."""
    os.makedirs(directory, exist_ok=True)
    path = os.path.join(directory, name)
    temporary = '%s.tmp%d' % (path, os.getpid())
    try:
        with open(temporary, 'w', encoding='utf-8') as file:
            # allow_nan=False: NaN is not JSON; records hold None for an undefined number.
            json.dump(record, file, indent=2, allow_nan=False)
            file.write('\n')
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, path)
    finally:
        if os.path.exists(temporary):
            os.remove(temporary)


def read(path):
    with open(path, encoding='utf-8') as file:
        return json.load(file)


def read_if_present(directory, name):
    """The record <directory>/<name>, or None if there is no such file."""
    path = os.path.join(directory, name)
    return read(path) if os.path.isfile(path) else None


def result_files(directory):
    """The results files in a run directory: the training run's, then a --pretrained one's."""
    return [os.path.join(directory, name) for name in (RESULTS, EVAL_RESULTS)
            if os.path.isfile(os.path.join(directory, name))]
