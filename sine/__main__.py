"""
`python -m sine`: few-shot sine-wave regression. Meta-train, evaluate on held-out tasks, plot,
report. The default reproduces the Reptile paper's Figure 1; `--preset list` lists the other
experiments, `--help` the flags.
"""

from supervised_reptile import cli  # first: it quiets TensorFlow's start-up logs

import importlib.util  # pylint: disable=wrong-import-order

from absl import flags  # pylint: disable=wrong-import-order

from supervised_reptile.errors import UserError
from sine import presets
from sine import flags as sine_flags

FLAGS = flags.FLAGS
sine_flags.define(FLAGS)
flags.adopt_module_key_flags(sine_flags)  # so that --help lists them


def main(argv):
    if len(argv) > 1:
        raise UserError('unexpected argument %s; flags start with --' % argv[1])
    if sine_flags.wants_preset_listing(FLAGS):
        print(presets.listing())
        return
    settings = sine_flags.settings(FLAGS)
    # matplotlib is optional (the 'plots' extra): without it, say so before training, not after.
    if importlib.util.find_spec('matplotlib') is None:
        raise UserError("python -m sine draws its figures with matplotlib, which is not "
                        "installed; install it with pip install -e '.[plots]'")
    from sine import experiment  # pylint: disable=import-outside-toplevel
    experiment.run(settings)


if __name__ == '__main__':
    cli.run(main)
