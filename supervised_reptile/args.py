"""
Command-line flags of the run scripts and of `python -m supervised_reptile.{adapt,export,demo}`.

The flags, their dashed spellings, defaults and meanings are the reference implementation's,
so its commands run unchanged. The run scripts and those commands read the flags' values here
(flag_values()) and hand them to recipes.py, which builds the model, the learner and the
settings objects from them; nothing below the command line reads a flag. Importing the package
(or its library API) defines none of these flags: only the command-line entry points import
this module.

Flags are resolved while they are parsed (resolve(), called by cli.run): --preset NAME
(presets.py) gives every flag it names the preset's value unless the flag is on the command
line (a preset stands in for the defaults, explicit flags still win), and then the checks
across flags run on the values the run will use.
"""

import sys

from absl import flags
import keras
import numpy as np
import tensorflow as tf

from . import backbone, evaluation, folder, models, presets
from .errors import UserError
from .pretrain import Settings as PretrainSettings
from .recipes import FOLDER

flags.DEFINE_bool('pretrained', False, 'evaluate a pre-trained model')
flags.DEFINE_integer('seed', 0, 'random seed')
flags.DEFINE_string('checkpoint', 'model_checkpoint', 'checkpoint directory')
flags.DEFINE_integer('classes', 5, 'number of classes per inner task', lower_bound=1)
flags.DEFINE_integer('shots', 5, 'number of examples per class', lower_bound=1)
flags.DEFINE_integer('train-shots', 0, 'shots in a training batch (0: use --shots)', lower_bound=0)
flags.DEFINE_integer('inner-batch', 5, 'inner batch size', lower_bound=1)
flags.DEFINE_integer('inner-iters', 20, 'inner iterations', lower_bound=1)
flags.DEFINE_bool('replacement', False, 'sample with replacement')
flags.DEFINE_float('learning-rate', 1e-3, 'Adam step size', lower_bound=0)
flags.DEFINE_float('meta-step', 0.1, 'meta-training step size')
flags.DEFINE_float('meta-step-final', 0.1, 'meta-training step size by the end')
flags.DEFINE_integer('meta-batch', 1, 'meta-training batch size', lower_bound=1)
flags.DEFINE_integer('meta-iters', 400000, 'meta-training iterations', lower_bound=1)
flags.DEFINE_integer('eval-batch', 5, 'eval inner batch size', lower_bound=1)
flags.DEFINE_integer('eval-iters', 50, 'eval inner iterations', lower_bound=1)
flags.DEFINE_integer('eval-samples', 10000, 'evaluation samples', lower_bound=1)
flags.DEFINE_integer('eval-interval', 10, 'train steps per eval', lower_bound=1)
flags.DEFINE_float('weight-decay', 1, 'weight decay rate', lower_bound=0)
flags.DEFINE_bool('transductive', False, 'evaluate all samples at once')
flags.DEFINE_bool('foml', False, 'use FOML instead of Reptile')
flags.DEFINE_integer('foml-tail', None,
                     'number of shots for the final mini-batch in FOML (default: none, the final '
                     'mini-batch is an ordinary one)', lower_bound=1)
flags.DEFINE_bool('sgd', False, 'use vanilla SGD instead of Adam')
flags.DEFINE_string('preset', None,
                    'a published configuration whose values replace the defaults (flags given '
                    'on the command line still win); "%s" lists them with their sources'
                    % presets.LIST)

# Warm-starting from a classifier of all training classes (pretrain.py) and freezing conv blocks
# (backbone.py): not in the reference; the defaults leave its behaviour unchanged.
flags.DEFINE_integer('pretrain-iters', 0,
                     'before meta-training, pre-train the conv blocks as a classifier of every '
                     'training class for at most this many mini-batch steps (0: no pre-training); '
                     'the backbone is saved in <checkpoint>/%s' % backbone.DIRECTORY, lower_bound=0)
flags.DEFINE_float('pretrain-lr', PretrainSettings.learning_rate, 'AdamW step size of pre-training',
                   lower_bound=0)
flags.DEFINE_float('pretrain-weight-decay', PretrainSettings.weight_decay,
                   'AdamW (decoupled) weight decay of pre-training', lower_bound=0)
flags.DEFINE_integer('pretrain-batch', PretrainSettings.batch_size, 'pre-training batch size',
                     lower_bound=1)
flags.DEFINE_integer('pretrain-holdout', PretrainSettings.holdout_per_class,
                     'images per training class held out of pre-training to measure over-fitting',
                     lower_bound=1)
flags.DEFINE_integer('pretrain-eval-interval', PretrainSettings.eval_interval,
                     'pre-training steps between measurements of the held-out loss', lower_bound=1)
flags.DEFINE_integer('pretrain-patience', PretrainSettings.patience,
                     'stop pre-training after this many held-out measurements without a lower '
                     'loss, keeping the best weights', lower_bound=1)
flags.DEFINE_string('pretrained-backbone', None,
                    'start meta-training from the backbone saved in this directory (the %s '
                    'directory of a run with --pretrain-iters) instead of pre-training'
                    % backbone.DIRECTORY)
flags.DEFINE_integer('freeze-blocks', 0,
                     'freeze the first this many conv blocks in meta-training and evaluation',
                     lower_bound=0, upper_bound=models.NUM_BLOCKS)
flags.DEFINE_integer('freeze-eval-blocks', None,
                     'freeze the first this many conv blocks in evaluation fine-tuning (default: '
                     '--freeze-blocks; no fewer)', lower_bound=0, upper_bound=models.NUM_BLOCKS)

# Training the tasks of a meta-batch side by side (parallel.py): not in the reference.
flags.DEFINE_bool('parallel-meta-batch', False,
                  'train the tasks of a meta-batch side by side, each from a copy of the '
                  'optimizer state (the reference chains one state through them); the tasks are '
                  'shared out over the replicas of --distribute')
flags.DEFINE_enum('distribute', 'none', ['none', 'mirrored', 'multi-worker'],
                  'replicas for --parallel-meta-batch: none (one device), mirrored (every GPU of '
                  'this machine, or its CPU), multi-worker (MultiWorkerMirroredStrategy over the '
                  'hosts named by TF_CONFIG)')

# Speed (benchmarks/speed.py): not in the reference; the defaults measured fastest on a CPU.
flags.DEFINE_integer('eval-tasks-batch', 0,
                     'evaluation tasks fine-tuned side by side in one compiled call (0: as many '
                     'as 1 GiB of activations holds, at most %d)' % evaluation.MAX_TASKS_PER_BATCH,
                     lower_bound=0)
flags.DEFINE_bool('xla', False, 'compile training and evaluation with XLA (slower on CPUs)')

FLAGS = flags.FLAGS

# Flags that only shape meta-training. An evaluation of a trained checkpoint (--pretrained)
# records the training run's values of these, not its own.
TRAINING_FLAGS = ('train-shots', 'inner-batch', 'inner-iters', 'meta-step', 'meta-step-final',
                  'meta-batch', 'meta-iters', 'eval-interval', 'foml', 'foml-tail',
                  'pretrain-iters', 'pretrain-lr', 'pretrain-weight-decay', 'pretrain-batch',
                  'pretrain-holdout', 'pretrain-eval-interval', 'pretrain-patience',
                  'pretrained-backbone')


# Flags a resumed run may change: they do not touch the training trajectory (evaluation, batched
# or not, assigns nothing and draws the same random numbers).
RESUMABLE_CHANGES = ('checkpoint', 'pretrained', 'preset', 'eval-samples', 'eval-tasks-batch')


def _value(name):
    return FLAGS[name].value


# Checks across flags: (whether the values are consistent, the message if not). They run after
# the preset is applied, on the values the run will use. The folder script's own flags are
# checked only where it defines them.
_CHECKS = [
    (lambda v: v['foml-tail'] is None or v['foml'],
     '--foml-tail needs --foml; add --foml or drop --foml-tail'),
    (lambda v: v['foml-tail'] is None or v['foml-tail'] < (v['train-shots'] or v['shots']) or (
        v['foml-tail'] == (v['train-shots'] or v['shots']) and v['inner-iters'] == 1),
     '--foml-tail must leave at least one training shot per class for the other inner '
     'iterations; lower --foml-tail or raise --train-shots'),
    (lambda v: not (v['pretrain-iters'] and v['pretrained-backbone']),
     '--pretrained-backbone loads a backbone pre-trained before; drop it or --pretrain-iters'),
    (lambda v: v['freeze-eval-blocks'] is None or v['freeze-eval-blocks'] >= v['freeze-blocks'],
     '--freeze-eval-blocks must be at least --freeze-blocks: blocks frozen in meta-training have '
     'no optimizer state to be fine-tuned with'),
    (lambda v: v['parallel-meta-batch'] or v['distribute'] == 'none',
     '--distribute shares out the tasks of --parallel-meta-batch; add --parallel-meta-batch or '
     'drop --distribute'),
    (lambda v: v.get('channels', 1) in (1, 3), '--channels must be 1 (grey) or 3 (RGB)'),
    (lambda v: 0 < v['weight-decay'] <= 1,
     '--weight-decay is the rate the weights are multiplied by before each inner step: give a '
     'value above 0 and at most 1 (1, the default, is none)'),
]


def define_folder_flags():
    """Define the flags of run_folder.py, which only it has; call before parsing."""
    options = dict(flag_values=FLAGS, module_name=__name__)
    flags.DEFINE_string('data-dir', None, 'a folder of <class>/<images>, or of train/, val/ '
                        '(optional) and test/, each with <class>/<images>', required=True,
                        **options)
    flags.DEFINE_integer('image-size', 28, 'images are squashed to this size x size',
                         lower_bound=1, **options)
    flags.DEFINE_integer('channels', 1, 'images are converted to grey (1) or RGB (3)', **options)
    flags.DEFINE_enum('model', 'auto', ['auto'] + list(models.FAMILIES),
                      "the architecture: Omniglot's or Mini-ImageNet's (auto: Omniglot's for 1 "
                      "channel, Mini-ImageNet's for 3)", **options)
    flags.DEFINE_float('train-fraction', folder.TRAIN_FRACTION, 'without a given split, the '
                       'share of the classes that train (the rest test); the default is '
                       "Omniglot's, 1200 of 1623", lower_bound=0, upper_bound=1, **options)


def define_adapt_flags():
    """Define the flags of `python -m supervised_reptile.adapt` beside --checkpoint and the
    evaluation flags it may override; call before parsing."""
    options = dict(flag_values=FLAGS, module_name=__name__)
    flags.DEFINE_string('support', None, 'a folder of <class>/<images>: the labelled images to '
                        'fine-tune on', required=True, **options)
    flags.DEFINE_list('query', None, 'images, or folders of images, to classify: --query PATH '
                      '[PATH...], or comma-separated', required=True, **options)
    flags.DEFINE_bool('json', False, 'print the predictions as JSON', **options)
    _define_preprocess_flag()


def define_export_flags():
    """Define the flag of `python -m supervised_reptile.export` beside --checkpoint."""
    flags.DEFINE_string('output', None, 'the Keras file to write (FILE.keras)', required=True,
                        flag_values=FLAGS, module_name=__name__)


def define_demo_flags():
    """Define the flags of `python -m supervised_reptile.demo` beside --checkpoint."""
    flags.DEFINE_integer('port', 8000, 'the port of 127.0.0.1 to serve the page on (0: any free '
                         'port)', lower_bound=0, upper_bound=65535, flag_values=FLAGS,
                         module_name=__name__)
    _define_preprocess_flag()


def _define_preprocess_flag():
    flags.DEFINE_enum('preprocess', None, ['handwriting', 'raw'], 'how an image becomes the '
                      "model's input: handwriting (cropped to the ink, centred and scaled as "
                      "Omniglot's characters are, then squashed) or raw (squashed whole, as the "
                      "data loaders do); default: handwriting for Omniglot's models, raw for "
                      "others'", flag_values=FLAGS, module_name=__name__)


def resolver(dataset):
    """The resolution of the parsed flags for a run script of dataset, for cli.run."""
    return lambda: resolve(dataset)


def resolve(dataset):
    """Give every flag of --preset that is not on the command line the preset's value, then
    check the flags against each other (--preset list prints the presets and exits, as --help
    does). An unknown preset, one of the other run script, or
    inconsistent flags are a UserError."""
    name = _value('preset')
    if name == presets.LIST:
        print(presets.listing())
        sys.exit(0)
    if name is not None:
        preset = presets.PRESETS.get(name)
        if preset is None:
            raise UserError('no preset named %r; --preset %s lists them' % (name, presets.LIST))
        # A folder of one's own images may take any published configuration's values.
        if preset.dataset != dataset and dataset != FOLDER:
            raise UserError('preset %s is a configuration of %s; run it with that script'
                            % (name, presets.SCRIPTS[preset.dataset]))
        for flag, value in preset.flags.items():
            if not FLAGS[flag].present:
                FLAGS[flag].value = value
    values = flag_values()
    for consistent, message in _CHECKS:
        if not consistent(values):
            raise UserError(message)


def flag_values():
    """Every flag of this module by name, with the value the run uses."""
    return {flag.name: flag.value for flag in FLAGS.get_flags_for_module(__name__)}


def explicit_flags():
    """The names of the flags given on the command line, sorted."""
    return sorted(flag.name for flag in FLAGS.get_flags_for_module(__name__) if flag.present)


def seed_everything():
    """Seed Keras' weight initialization; return the generator for task sampling."""
    keras.utils.set_random_seed(_value('seed'))
    return np.random.default_rng(_value('seed'))


def build_strategy():
    """The tf.distribute strategy of --distribute. Multi-worker collectives can only be set up
    before TensorFlow runs its first op, so a run script makes it first."""
    kind = _value('distribute')
    if kind == 'mirrored':
        return tf.distribute.MirroredStrategy()
    if kind == 'multi-worker':
        return tf.distribute.MultiWorkerMirroredStrategy()
    return tf.distribute.get_strategy()


def backbone_kwargs():
    """Keyword arguments of pretrain.prepare_backbone()."""
    settings = None
    if _value('pretrain-iters'):
        settings = PretrainSettings(
            iterations=_value('pretrain-iters'), learning_rate=_value('pretrain-lr'),
            weight_decay=_value('pretrain-weight-decay'), batch_size=_value('pretrain-batch'),
            holdout_per_class=_value('pretrain-holdout'),
            eval_interval=_value('pretrain-eval-interval'), patience=_value('pretrain-patience'),
            seed=_value('seed'))
    return {'settings': settings, 'source': _value('pretrained-backbone')}
