"""
Make the model that ships with the demo (demo/model/) from a finished Omniglot training run:

    python -m supervised_reptile.demo.ship --checkpoint RUN_DIR

It keeps what adaptation reads: the run's record (config.json, results.json) and one checkpoint
of the model and the optimizer state, nothing of the training's bookkeeping. The optimizer's
first-moment slots are written as zeros: with the reference's beta_1 = 0, Adam's first step
sets the first moment to the gradient whatever it held before (exactly from zero, up to rounding
from anything else), so they carry nothing, and zeros take no room in the compressed package.
The weights and the second moments, which fine-tuning starts from, are kept as they are.
"""

# pylint: disable=wrong-import-position
if __name__ == '__main__':
    from .. import cli  # as a command, TensorFlow loads through cli, quietly
    from .. import args  # the command's flags, defined only when it runs

import os
import shutil
import tempfile

import tensorflow as tf

from .. import checkpoints, results
from ..adapt import Adapter
from ..errors import UserError
from ..inner_loop import Adam
from . import SHIPPED_MODEL


def ship(run_directory, destination=SHIPPED_MODEL):
    """Write the shipped model of the finished Omniglot run in run_directory to destination,
    replacing what was there only once the new one is complete."""
    record = results.read_if_present(run_directory, results.CONFIG)
    if record is not None and record['dataset'] != 'omniglot':
        raise UserError('%s holds a %s run; the demo draws Omniglot characters, so its model is '
                        "an Omniglot run's" % (run_directory, record['dataset']))
    reptile = Adapter.from_checkpoint(run_directory).learner.algorithm
    if isinstance(reptile.rule, Adam) and reptile.rule.beta_1 == 0:
        for slots in reptile.optimizer.slots:
            slots[0].assign(tf.zeros_like(slots[0]))
    step = int(checkpoints.latest(run_directory).rsplit('-', 1)[1])
    parent = os.path.dirname(os.path.abspath(destination))
    staging = tempfile.mkdtemp(prefix='.model-', dir=parent)
    os.chmod(staging, 0o755)  # mkdtemp makes it private; a package folder is readable
    try:
        checkpoint = tf.train.Checkpoint(model=reptile.model, optimizer=reptile.optimizer)
        tf.train.CheckpointManager(checkpoint, staging, max_to_keep=1,
                                   checkpoint_name=checkpoints.CHECKPOINT_NAME).save(step)
        for name in (results.CONFIG, results.RESULTS):
            shutil.copyfile(os.path.join(run_directory, name), os.path.join(staging, name))
        if os.path.isdir(destination):
            shutil.rmtree(destination)
        os.replace(staging, destination)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return destination


def main(argv):
    """The command (see the module's docstring)."""
    del argv
    given = [name for name in args.explicit_flags() if name != 'checkpoint']
    if given:
        raise UserError('--%s is a setting of a training run; ship takes --checkpoint' % given[0])
    print('Wrote %s' % ship(args.FLAGS['checkpoint'].value))


if __name__ == '__main__':
    cli.run(main)
