"""
What a run's settings build: its model, its learner, its task sources and its settings objects,
from the flag values (flag name -> value) that args.py parses and a run records in config.json.

No flag is defined or read here, so that adapt, export and the demo rebuild a finished run from
its record without defining the run scripts' flags.
"""

from . import backbone, models, sampling
from .inner_loop import SGD, Adam
from .learner import FOMAML, Reptile
from .settings import Evaluation, TaskShape, Training
from .tasks import ClassificationTasks

# The dataset name of run_folder.py's runs.
FOLDER = 'folder'


def build_model(dataset, values):
    """The model of a run script's dataset: Omniglot's or Mini-ImageNet's, for --classes ways;
    for an image folder, the --model family (by default the one of --channels) on images of
    --image-size and --channels."""
    if dataset != FOLDER:
        return models.FAMILIES[dataset](values['classes'])
    family = values['model']
    if family == 'auto':
        family = 'omniglot' if values['channels'] == 1 else 'miniimagenet'
    return models.FAMILIES[family](values['classes'], (values['image-size'],) * 2 +
                                   (values['channels'],))


def inner_rule(values):
    """The inner loop's optimizer rule: the reference's Adam, or plain SGD with --sgd."""
    learning_rate = values['learning-rate']
    return SGD(learning_rate) if values['sgd'] else Adam(learning_rate)


def build_learner(model, values, strategy=None):
    """The learner (learner.Reptile, or FOMAML with --foml) of model with the run's settings;
    with --parallel-meta-batch, training the tasks of a meta-batch side by side on strategy's
    replicas, which evaluation shares its tasks out over too.

    The first --freeze-blocks conv blocks are frozen before the optimizer state is made, so that
    it holds none for them; evaluation leaves the first --freeze-eval-blocks out as well."""
    backbone.freeze(model, values['freeze-blocks'])
    eval_blocks = values['freeze-eval-blocks']
    if eval_blocks is None:
        eval_blocks = values['freeze-blocks']
    training_settings = training(values)
    evaluation = evaluation_settings(values)
    options = dict(
        inner_optimizer=inner_rule(values), loss_reduction='sum',  # the reference's
        inner_steps=training_settings.inner_iters,
        inner_batch_size=training_settings.inner_batch,
        meta_batch_size=training_settings.meta_batch,
        meta_step_size=training_settings.meta_step,
        meta_step_size_final=training_settings.meta_step_final,
        eval_steps=evaluation.inner_iters, eval_batch_size=evaluation.inner_batch,
        transductive=evaluation.transductive, weight_decay=1.0 - values['weight-decay'],
        frozen_in_evaluation=backbone.block_variables(model, eval_blocks),
        eval_tasks_per_batch=evaluation.tasks_per_batch,
        parallel_strategy=strategy if values['parallel-meta-batch'] else None,
        jit_compile=values['xla'], seed=values['seed'], strategy=strategy)
    if values['foml']:
        return FOMAML(model, tail_shots=training_settings.tail_shots, **options)
    return Reptile(model, **options)


def training_tasks(classes, values, rng):
    """The meta-training tasks of a run on classes (sampling.ImageClasses), drawn from rng."""
    shape = task_shape(values)
    return ClassificationTasks(classes, shape.classes, training(values).train_shots,
                               replacement=shape.replacement, rng=rng, names=sampling.FLAG_NAMES)


def evaluation_tasks(classes, values, rng):
    """The evaluation tasks of a run on classes, drawn from rng."""
    shape = task_shape(values)
    return ClassificationTasks(classes, shape.classes, shape.shots, replacement=shape.replacement,
                               rng=rng, names=sampling.FLAG_NAMES)


def task_shape(values):
    """The tasks of the run (settings.TaskShape)."""
    return TaskShape(classes=values['classes'], shots=values['shots'],
                     replacement=values['replacement'])


def training(values):
    """Meta-training settings (settings.Training)."""
    return Training(
        train_shots=values['train-shots'] or values['shots'], inner_batch=values['inner-batch'],
        inner_iters=values['inner-iters'], meta_step=values['meta-step'],
        meta_step_final=values['meta-step-final'], meta_batch=values['meta-batch'],
        meta_iters=values['meta-iters'], eval_interval=values['eval-interval'],
        tail_shots=values['foml-tail'])


def evaluation_settings(values):
    """Evaluation settings (settings.Evaluation)."""
    return Evaluation(inner_batch=values['eval-batch'], inner_iters=values['eval-iters'],
                      transductive=values['transductive'], samples=values['eval-samples'],
                      tasks_per_batch=values['eval-tasks-batch'])
