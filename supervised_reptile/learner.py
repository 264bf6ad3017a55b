"""
Reptile and first-order MAML for any Keras model and any task distribution, Keras-style:

    learner = Reptile(model, loss='sparse_categorical_crossentropy', inner_optimizer=Adam(1e-3))
    history = learner.fit(tasks, meta_iterations=1000, callbacks=[...])
    result = learner.evaluate(tasks, num_tasks=1000)        # result.mean, result.ci95
    adapted = learner.adapt(support_x, support_y)           # a keras.Model, fine-tuned
    learner.save(path); learner = load(path)

A learner is the algorithm of reptile.py, the inner loop of inner_loop.py and the evaluation of
evaluation.py, with its settings; the run scripts, `adapt` and the demo use it too. The rules a
user could trip on, all the reference's:

- The inner optimizer's state carries over: one Adam state (beta_1 = 0) whose second moments and
  step count go on from task to task, across meta-iterations too; evaluation and adaptation
  fine-tune every task from that state and keep nothing (saved and loaded with the learner).
- The inner loss is summed over each inner mini-batch, not averaged (it matters for SGD).
- Batch normalization normalises with the statistics of the batch at hand everywhere; a Keras
  BatchNormalization's moving statistics are never updated (see networks.py). Layers that
  change other state as they run (Dropout) are refused by name.
- Prediction in evaluation is transductive (all queries in one batch) only when asked; otherwise
  each query is predicted in a batch with the support set.
- Evaluation, adaptation and prediction never change the learner.
"""

import json
import os

import keras
import numpy as np
import tensorflow as tf

from . import reptile as algorithms
from . import sampling
from .tasks import stored_inputs
from .errors import UserError
from .evaluation import Evaluator
from .inner_loop import SGD, Adam, as_inputs, sparse_softmax_cross_entropy
from .settings import Evaluation, annealed

MODEL_FILE = 'model.keras'
SETTINGS_FILE = 'learner.json'
STATE_PREFIX = 'inner_optimizer'
_RULES = {'Adam': Adam, 'SGD': SGD}


class TrainingDiverged(UserError):
    """The loss or the weights stopped being finite."""


class Reptile:
    """Reptile: move the initialization towards the weights each task's training ends at.

    model: a built or unbuilt Keras 3 model (Sequential, functional or subclassed).
    loss: a Keras loss name, a keras.losses.Loss, or a function (targets, outputs) -> per-example
      losses. 'sparse_categorical_crossentropy' takes the model's outputs as logits unless its
      last layer applies a softmax.
    inner_optimizer: Adam(learning_rate) (the reference's: beta_1 = 0) or SGD(learning_rate).
    inner_steps, inner_batch_size: the inner loop of a training task. meta_batch_size: tasks per
      meta-iteration. meta_step_size: annealed linearly to meta_step_size_final over fit's
      meta-iterations. eval_steps, eval_batch_size: fine-tuning in evaluation and adaptation.
    transductive: predict all queries of a task in one batch.
    weight_decay: the fraction of every weight removed before each inner step
      (w <- (1 - weight_decay) w; the run scripts' --weight-decay rate r is 1 - r).
    frozen_in_evaluation: variables meta-training trains but evaluation does not fine-tune.
    eval_tasks_per_batch: evaluation tasks fine-tuned side by side (0: as many as fit in 1 GiB).
    parallel_strategy: a tf.distribute strategy whose replicas train the tasks of a
      meta-iteration side by side, each from a copy of the optimizer state (not the reference's
      chaining). strategy: a tf.distribute strategy whose replicas share out evaluation
      tasks. jit_compile: XLA (slower on CPUs).
    seed: the mini-batch order of adapt and predict.
    """

    engine = algorithms.Reptile

    def __init__(self, model, loss='sparse_categorical_crossentropy', inner_optimizer=None,
                 inner_steps=5, inner_batch_size=10, meta_batch_size=5, meta_step_size=1.0,
                 meta_step_size_final=0.0, eval_steps=50, eval_batch_size=5, transductive=False,
                 weight_decay=0.0, frozen_in_evaluation=(), eval_tasks_per_batch=0,
                 parallel_strategy=None, jit_compile=False, seed=0, strategy=None):
        if not isinstance(model, keras.Model):
            raise UserError('Reptile takes a keras.Model, not %s' % type(model).__name__)
        if not 0 <= weight_decay < 1:
            raise UserError('weight_decay is the fraction of each weight removed before an inner '
                            'step: between 0 and 1, not %r' % weight_decay)
        self.model = model
        self.loss = loss
        self.inner_optimizer = Adam(1e-3) if inner_optimizer is None else inner_optimizer
        if not isinstance(self.inner_optimizer, tuple(_RULES.values())):
            raise UserError('inner_optimizer must be Adam(learning_rate) or SGD(learning_rate)')
        self.inner_steps = inner_steps
        self.inner_batch_size = inner_batch_size
        self.meta_batch_size = meta_batch_size
        self.meta_step_size = meta_step_size
        self.meta_step_size_final = meta_step_size_final
        self.eval_steps = eval_steps
        self.eval_batch_size = eval_batch_size
        self.transductive = transductive
        self.weight_decay = weight_decay
        self.eval_tasks_per_batch = eval_tasks_per_batch
        self.seed = seed
        self.tail_shots = None
        self.iteration = 0  # meta-iterations done by fit
        self._frozen_in_evaluation = frozen_in_evaluation
        self._parallel_strategy = parallel_strategy
        self._strategy = strategy
        self._jit_compile = jit_compile
        self._algorithm = None
        self._evaluator = None
        if model.built and model.trainable_variables:
            self._build()

    # The algorithm and its evaluation, made once the model has variables.

    @property
    def algorithm(self):
        """The meta-learning algorithm (reptile.Reptile or FOML) once the model is built."""
        self._require_built()
        return self._algorithm

    @property
    def evaluator(self):
        """The evaluation path (evaluation.Evaluator) once the model is built."""
        self._require_built()
        return self._evaluator

    def _require_built(self):
        if self._algorithm is None:
            raise UserError('the model is not built yet; call it on a batch of inputs, or fit '
                            'or evaluate first')

    def _build(self, example_inputs=None):
        if self._algorithm is not None:
            return
        if not self.model.built:
            self.model(as_inputs(tf.constant(example_inputs)))
        if not self.model.trainable_variables:
            raise UserError('the model has no trainable variables to meta-train')
        self._algorithm = self.engine(
            self.model, self.inner_optimizer, weight_decay=1.0 - self.weight_decay,
            frozen_in_evaluation=self._frozen_in_evaluation,
            parallel_strategy=self._parallel_strategy, jit_compile=self._jit_compile,
            loss=per_example_loss(self.loss, self.model))
        self._evaluator = Evaluator(self._algorithm, self.evaluation_settings(), self._strategy)

    def evaluation_settings(self):
        """How evaluation fine-tunes and predicts (settings.Evaluation)."""
        return Evaluation(inner_batch=self.eval_batch_size, inner_iters=self.eval_steps,
                          transductive=self.transductive,
                          tasks_per_batch=self.eval_tasks_per_batch)

    # Meta-training.

    def fit(self, tasks, meta_iterations, callbacks=None, validation_tasks=None,
            validation_num_tasks=100, steps_per_epoch=100, initial_iteration=0, verbose='auto'):
        """Meta-train on tasks (tasks.py) for meta_iterations meta-iterations, starting after
        initial_iteration of them (a resumed run), and return a keras.callbacks.History.

        Callbacks are Keras': on_train_begin and on_train_end once, on_epoch_begin/end every
        steps_per_epoch meta-iterations (logs: the mean 'loss' and, with validation_tasks, the
        mean score of validation_num_tasks of them as 'val_accuracy' or 'val_loss'), and
        on_train_batch_begin/end around every meta-iteration (logs['loss']: the loss of the
        tasks' last inner mini-batches). self.iteration counts the meta-iterations done. A
        callback that sets model.stop_training stops training at the end of the epoch.
        """
        tasks.check('training', queries=False)
        self._build(tasks.example_inputs())
        self.iteration = initial_iteration
        epochs = -(-meta_iterations // steps_per_epoch)
        verbose = 1 if verbose == 'auto' else verbose
        callback_list = keras.callbacks.CallbackList(
            callbacks, add_history=True, add_progbar=verbose != 0, model=self.model,
            verbose=verbose, epochs=epochs, steps=steps_per_epoch)
        self.model.stop_training = False
        if not hasattr(self.model, 'optimizer'):
            # Keras' TensorBoard callback logs the learning rate of a compiled model's optimizer;
            # meta-training has none to log.
            self.model.optimizer = None
        callback_list.on_train_begin()
        logs = {}
        for epoch in range(initial_iteration // steps_per_epoch, epochs):
            callback_list.on_epoch_begin(epoch)
            losses = []
            first = epoch * steps_per_epoch
            for iteration in range(max(first, initial_iteration),
                                   min(first + steps_per_epoch, meta_iterations)):
                callback_list.on_train_batch_begin(iteration - first)
                losses.append(self._meta_step(tasks, iteration, meta_iterations))
                self.iteration = iteration + 1
                callback_list.on_train_batch_end(iteration - first, {'loss': losses[-1]})
            logs = {'loss': float(np.mean(losses))}
            if validation_tasks is not None:
                score = self.evaluate(validation_tasks, validation_num_tasks, verbose=0).mean
                logs['val_accuracy' if validation_tasks.classification else 'val_loss'] = score
            callback_list.on_epoch_end(epoch, logs)
            if self.model.stop_training:
                break
        callback_list.on_train_end(logs)
        return self.model.history

    def _meta_step(self, tasks, iteration, meta_iterations):
        """One meta-iteration; its loss."""
        pool, meta_batch = tasks.training_tasks(self.meta_batch_size, self.inner_batch_size,
                                                self.inner_steps, self.tail_shots)
        step_size = annealed(self.meta_step_size, self.meta_step_size_final, iteration,
                             meta_iterations)
        loss, finite = self.algorithm.train_step(pool, meta_batch, step_size)
        if not (finite and np.isfinite(loss)):
            problem = 'the training loss is %s' % loss if finite else 'a weight is no longer finite'
            raise TrainingDiverged('meta-iteration %d: %s, so training stopped; lower the inner '
                                   'learning rate or the meta step size' % (iteration, problem))
        return loss

    # Evaluation and adaptation: they read the learner, never change it.

    def evaluate(self, tasks, num_tasks=1000, verbose='auto', name='evaluation', log_fn=print):
        """The mean score over num_tasks tasks drawn from tasks (their query accuracy, or mean
        query loss for regression) with its 95% interval: a statistics.Estimate (.mean, .ci95,
        .num_tasks). Each task fine-tunes from the learner's weights and optimizer state."""
        self._build(tasks.example_inputs())
        quiet = verbose == 0
        return self.evaluator.evaluate(tasks, num_tasks, name,
                                       (lambda line: None) if quiet else log_fn)

    def adapt(self, support_x, support_y, replacement=False):
        """A copy of the model fine-tuned on the support set (eval_steps mini-batches of
        eval_batch_size, as evaluation fine-tunes; drawn with replacement if asked); integer
        support_y are class labels 0..n-1, float ones regression targets. Call the copy with
        training=True to normalise batches with their own statistics, as evaluation does."""
        job = self._job(support_x, support_y, np.asarray(support_x)[:0], replacement)
        adapted = _copy(self.model, job[0][:1])
        tuned = self.evaluator.fine_tuned_weights(job)
        for variable, value in zip(adapted.trainable_variables, tuned):
            variable.assign(value)
        return adapted

    def predict(self, support_x, support_y, query_x, replacement=False):
        """The outputs for query_x [q, ...] of the model fine-tuned on the support set (as
        adapt), predicted as evaluation predicts (transductive or not): [q, ...]."""
        return self.evaluator.query_logits([self._job(support_x, support_y, query_x,
                                                      replacement)])[0]

    def _job(self, support_x, support_y, query_x, replacement):
        """An evaluation job of a support set and queries (inputs as tasks.py stores them)."""
        support_x = stored_inputs(support_x)
        query_x = stored_inputs(query_x)
        support_y = np.asarray(support_y)
        if support_y.dtype.kind == 'f' and support_y.ndim == 1:
            support_y = support_y[:, None]
        if len(support_x) != len(support_y) or not len(support_x):
            raise UserError('the support set needs as many targets as inputs, at least one; got '
                            '%d inputs and %d targets' % (len(support_x), len(support_y)))
        if support_x.shape[1:] != query_x.shape[1:]:
            raise UserError('queries of shape %s for support inputs of shape %s'
                            % (query_x.shape[1:], support_x.shape[1:]))
        self._build(support_x[:1])
        num_support = len(support_x)
        rng = np.random.default_rng(self.seed)
        positions = sampling.mini_batches(num_support, self.eval_batch_size, self.eval_steps,
                                          replacement, rng)
        task = sampling.EvaluationTask(positions, support_y[positions], np.arange(num_support),
                                       num_support + np.arange(len(query_x)),
                                       np.zeros(len(query_x), np.int64))
        return np.concatenate([support_x, query_x.astype(support_x.dtype)]), task

    # Saving.

    def save(self, path):
        """Save the model (path/model.keras), the inner optimizer's state and the settings
        (path/learner.json) in the directory path."""
        algorithm = self.algorithm
        if not isinstance(self.loss, (str, keras.losses.Loss)):
            raise UserError('a loss given as a function cannot be saved; give a Keras loss name '
                            'or a keras.losses.Loss, or pass the function again to load(loss=...)')
        os.makedirs(path, exist_ok=True)
        self.model.save(os.path.join(path, MODEL_FILE))
        tf.train.Checkpoint(optimizer=algorithm.optimizer).write(os.path.join(path, STATE_PREFIX))
        with open(os.path.join(path, SETTINGS_FILE), 'w', encoding='utf-8') as file:
            json.dump(self._settings(), file, indent=2)

    def _settings(self):
        rule = self.inner_optimizer
        return {
            'algorithm': type(self).__name__,
            'loss': self.loss if isinstance(self.loss, str) else keras.losses.serialize(self.loss),
            'inner_optimizer': {'type': type(rule).__name__, **vars(rule)},
            **{name: getattr(self, name) for name in (
                'inner_steps', 'inner_batch_size', 'meta_batch_size', 'meta_step_size',
                'meta_step_size_final', 'eval_steps', 'eval_batch_size', 'transductive',
                'weight_decay', 'eval_tasks_per_batch', 'seed', 'tail_shots')},
            'frozen_in_evaluation': [v.path for v in self._frozen_in_evaluation],
        }


class FOMAML(Reptile):
    """First-order MAML: the meta-update is the mean displacement of the tasks' last inner
    steps. tail_shots: examples per class held out of a training task to form its last inner
    mini-batch alone (the reference's --foml-tail; by default it is an ordinary one)."""

    engine = algorithms.FOML

    def __init__(self, model, *args, tail_shots=None, **kwargs):
        super().__init__(model, *args, **kwargs)
        self.tail_shots = tail_shots


def load(path, custom_objects=None, loss=None):
    """A learner saved by save(path): its model, inner optimizer state and settings. loss
    replaces the saved one (needed for a loss given as a function)."""
    settings_path = os.path.join(path, SETTINGS_FILE)
    if not os.path.isfile(settings_path):
        raise UserError('%s holds no saved learner (no %s); save one with learner.save(path)'
                        % (path, SETTINGS_FILE))
    with open(settings_path, encoding='utf-8') as file:
        settings = json.load(file)
    model = keras.models.load_model(os.path.join(path, MODEL_FILE),
                                    custom_objects=custom_objects, compile=False)
    rule_settings = dict(settings.pop('inner_optimizer'))
    rule = _RULES[rule_settings.pop('type')](**rule_settings)
    saved_loss = settings.pop('loss')
    if loss is None:
        loss = saved_loss if isinstance(saved_loss, str) else keras.losses.deserialize(saved_loss)
    frozen_paths = set(settings.pop('frozen_in_evaluation'))
    frozen = [v for v in model.trainable_variables if v.path in frozen_paths]
    learner_class = {'Reptile': Reptile, 'FOMAML': FOMAML}[settings.pop('algorithm')]
    tail_shots = settings.pop('tail_shots')
    learner = learner_class(model, loss=loss, inner_optimizer=rule, frozen_in_evaluation=frozen,
                            **settings)
    learner.tail_shots = tail_shots
    tf.train.Checkpoint(optimizer=learner.algorithm.optimizer).read(
        os.path.join(path, STATE_PREFIX)).assert_consumed()
    return learner


def per_example_loss(loss, model):
    """loss (see Reptile) as a function (targets, outputs) -> per-example losses."""
    if loss in ('sparse_categorical_crossentropy', keras.losses.sparse_categorical_crossentropy):
        if not _ends_in_softmax(model):
            return sparse_softmax_cross_entropy
        return keras.losses.sparse_categorical_crossentropy
    if isinstance(loss, str):
        try:
            return keras.losses.get(loss)
        except ValueError:
            raise UserError('no Keras loss named %r' % loss) from None
    if isinstance(loss, keras.losses.Loss):
        return loss.call  # unreduced: the inner loop sums it over the mini-batch
    if callable(loss):
        return loss
    raise UserError('loss must be a Keras loss name, a keras.losses.Loss or a function, not %r'
                    % (loss,))


def _ends_in_softmax(model):
    layers = getattr(model, 'layers', None)
    if not layers:
        return False
    last = layers[-1]
    return isinstance(last, keras.layers.Softmax) or (
        getattr(last, 'activation', None) is keras.activations.softmax)


def _copy(model, example_inputs):
    """A copy of model with its weights (built on example_inputs if need be)."""
    try:
        copy = keras.models.clone_model(model)
    except (TypeError, NotImplementedError, ValueError) as exc:
        raise UserError('the model cannot be copied to adapt it (%s); give it get_config() and '
                        'from_config()' % exc) from None
    if not copy.built:
        copy(as_inputs(tf.constant(example_inputs)))
    copy.set_weights(model.get_weights())
    return copy
