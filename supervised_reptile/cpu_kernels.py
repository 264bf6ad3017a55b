"""
TensorFlow's CPU kernels and threads for each dataset, chosen by environment variables that
TensorFlow reads when it loads: so a run script chooses before importing TensorFlow, and a value
already in the environment wins. Nothing changes on a GPU. Measured with benchmarks/speed.py
(docs/speed.md).

- Threads of one operation (TF_NUM_INTRAOP_THREADS): Omniglot's operations are too small to
  gain from being split over cores; split, they lose more to synchronisation than they gain.
  With one thread each, TensorFlow's other pool (a thread per core) runs independent operations
  at once instead: the layers' gradients and updates of a meta-step, the tasks of an evaluation
  call. On 2 cores that made an Omniglot meta-iteration 7-33% faster and an evaluation task
  1.3-2 times as fast. Mini-ImageNet's meta-iteration, whose 84x84 convolutions do gain from
  being split, was 26% slower with it.
- oneDNN (TF_ENABLE_ONEDNN_OPTS): it runs Mini-ImageNet's convolutions, the 3-channel first one
  above all, about twice as fast, and is forced on. For Omniglot's small convolutions it was
  about 20% slower on an AVX2 CPU, where TensorFlow leaves it off, and 14-24% faster on an
  AVX-512 one, where TensorFlow turns it on: Omniglot keeps TensorFlow's choice.
"""

import os

ENVIRONMENT = {
    'omniglot': {'TF_NUM_INTRAOP_THREADS': '1'},
    'miniimagenet': {'TF_ENABLE_ONEDNN_OPTS': '1'},
}


def choose(dataset):
    """Set dataset's variables of ENVIRONMENT unless the environment sets them already."""
    for name, value in ENVIRONMENT[dataset].items():
        os.environ.setdefault(name, value)
