"""
TensorFlow's CPU kernels for each dataset: its own, or oneDNN's (TF_ENABLE_ONEDNN_OPTS).

Measured with benchmarks/speed.py on a 2-core AVX2 CPU (no AVX-512, where TensorFlow leaves
oneDNN off by default): oneDNN runs Mini-ImageNet's convolutions, the 3-channel first one above
all, about twice as fast, and Omniglot's small ones about 20% slower. TensorFlow reads the
choice when it loads, so a run script makes it before importing TensorFlow; a value already in
the environment wins. Nothing changes on a GPU.
"""

import os

ONEDNN = {'omniglot': '0', 'miniimagenet': '1'}


def choose(dataset):
    """Set TF_ENABLE_ONEDNN_OPTS for dataset unless the environment sets it already."""
    os.environ.setdefault('TF_ENABLE_ONEDNN_OPTS', ONEDNN[dataset])
