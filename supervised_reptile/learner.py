"""
Reptile and first-order MAML for any Keras model and any task distribution, Keras-style:

    learner = Reptile(model, loss='sparse_categorical_crossentropy', inner_optimizer=Adam(1e-3))
    history = learner.fit(tasks, meta_iterations=1000, callbacks=[...])
    result = learner.evaluate(tasks, num_tasks=1000)        # result.mean, result.ci95
    adapted = learner.adapt(support_x, support_y)           # a keras.Model, fine-tuned
    learner.save(path); learner = load(path)

A learner is the algorithm of reptile.py, the inner loop of inner_loop.py and the evaluation of
evaluation.py, with its settings; the run scripts, `adapt` and the demo use it too. The rules a
user could trip on:

- The inner optimizer's state carries over: one Adam state (beta_1 = 0) whose second moments and
  step count go on from task to task, across meta-iterations too; evaluation and adaptation
  fine-tune every task from that state and keep nothing (saved and loaded with the learner).
  That is the reference's.
- The inner loss is averaged over each inner mini-batch, as Keras' losses are; the reference
  summed it (loss_reduction='sum', which the run scripts use). It matters for SGD.
- Batch normalization normalises with the statistics of the batch at hand everywhere; a Keras
  BatchNormalization's moving statistics are never updated (see networks.py). Layers that
  change other state as they run (Dropout) are refused by name, and so is a frozen Keras
  BatchNormalization (Keras would normalise it with those never-updated statistics).
- Prediction in evaluation is transductive (all queries in one batch) only when asked; otherwise
  each query is predicted in a batch with the support set.
- Evaluation, adaptation and prediction never change the learner.
- The settings are fixed when the learner is built (the compiled steps read them once).

Every mistake a user can make in what they pass is refused before any training, with a
ValueError or TypeError (errors.UserError) that names the argument and the fix.
"""

import json
import os
import random
import re
import shutil
import tempfile

import keras
import numpy as np
import tensorflow as tf

from . import models  # registers the package's layers, for load
from . import reptile as algorithms
from . import sampling
from .errors import UserError, WrongType
from .evaluation import Evaluator
from .inner_loop import REDUCTIONS, SGD, Adam, as_inputs, sparse_softmax_cross_entropy
from .settings import Evaluation, annealed
from .tasks import model_inputs, require_source

MODEL_FILE = 'model.keras'
SETTINGS_FILE = 'learner.json'
STATE_PREFIX = 'inner_optimizer'
_RULES = {'Adam': Adam, 'SGD': SGD}
# Keras' per-example losses that take class labels; the others take targets of the outputs' shape.
_LABEL_LOSSES = ('sparse_categorical_crossentropy', 'SparseCategoricalCrossentropy')


class TrainingDiverged(UserError):
    """The loss or the weights stopped being finite."""


class _Setting:
    """A learner setting, read-only: the compiled steps read it once, so a new value could not
    take effect everywhere; build a new learner to change it."""

    def __set_name__(self, owner, name):
        self.name = name

    def __get__(self, learner, owner=None):
        return self if learner is None else learner._config[self.name]

    def __set__(self, learner, value):
        raise AttributeError('%s is fixed when the learner is built; build a new learner to '
                             'change it' % self.name)


class Reptile:
    """Reptile: move the initialization towards the weights each task's training ends at.

    model: a built or unbuilt Keras 3 model (Sequential, functional or subclassed).
    loss: a Keras loss name, a keras.losses.Loss, or a function (targets, outputs) -> per-example
      losses. 'sparse_categorical_crossentropy' takes the model's outputs as logits unless the
      model applies a softmax itself.
    inner_optimizer: sr.Adam(learning_rate) (the reference's: beta_1 = 0), sr.SGD(learning_rate),
      or a keras.optimizers.Adam or SGD, taken as the same rule (what the fused rules cannot do,
      such as momentum or clipping, is refused).
    loss_reduction: 'mean' (Keras') or 'sum' (the reference's) of the inner mini-batch's losses.
    inner_steps, inner_batch_size: the inner loop of a training task. meta_batch_size: tasks per
      meta-iteration. meta_step_size: annealed linearly to meta_step_size_final over fit's
      meta_iterations. eval_steps, eval_batch_size: fine-tuning in evaluation and adaptation.
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
    tail_shots: FOMAML's (see FOMAML); Reptile refuses it.
    """

    engine = algorithms.Reptile

    inner_optimizer = _Setting()
    loss = _Setting()
    loss_reduction = _Setting()
    inner_steps = _Setting()
    inner_batch_size = _Setting()
    meta_batch_size = _Setting()
    meta_step_size = _Setting()
    meta_step_size_final = _Setting()
    eval_steps = _Setting()
    eval_batch_size = _Setting()
    transductive = _Setting()
    weight_decay = _Setting()
    eval_tasks_per_batch = _Setting()
    seed = _Setting()
    tail_shots = _Setting()

    def __init__(self, model, loss='sparse_categorical_crossentropy', inner_optimizer=None,
                 loss_reduction='mean', inner_steps=5, inner_batch_size=10, meta_batch_size=5,
                 meta_step_size=1.0, meta_step_size_final=0.0, eval_steps=50, eval_batch_size=5,
                 transductive=False, weight_decay=0.0, frozen_in_evaluation=(),
                 eval_tasks_per_batch=0, parallel_strategy=None, jit_compile=False, seed=0,
                 strategy=None, tail_shots=None):
        if not isinstance(model, keras.Model):
            raise WrongType('%s takes a keras.Model, not %s' % (type(self).__name__,
                                                                 type(model).__name__))
        _require_counts(inner_steps=(inner_steps, 1), inner_batch_size=(inner_batch_size, 1),
                        meta_batch_size=(meta_batch_size, 1), eval_steps=(eval_steps, 0),
                        eval_batch_size=(eval_batch_size, 1),
                        eval_tasks_per_batch=(eval_tasks_per_batch, 0), seed=(seed, 0))
        _require_numbers(meta_step_size=meta_step_size, meta_step_size_final=meta_step_size_final,
                         weight_decay=weight_decay)
        if meta_step_size < 0 or meta_step_size_final < 0:
            raise UserError('meta_step_size and meta_step_size_final must be 0 or more, not %r '
                            'and %r' % (meta_step_size, meta_step_size_final))
        if not 0 <= weight_decay < 1:
            raise UserError('weight_decay is the fraction of each weight removed before an inner '
                            'step: between 0 and 1, not %r' % weight_decay)
        if loss_reduction not in REDUCTIONS:
            raise UserError("loss_reduction must be 'mean' (Keras') or 'sum' (the reference's), "
                            'not %r' % (loss_reduction,))
        if not isinstance(transductive, (bool, np.bool_)):
            raise WrongType('transductive must be True or False, not %r' % (transductive,))
        if tail_shots is not None:
            if not isinstance(self, FOMAML):
                raise UserError('tail_shots is a setting of FOMAML; Reptile has no last inner '
                                'step of its own')
            _require_counts(tail_shots=(tail_shots, 1))
        self.model = model
        self._config = dict(
            inner_optimizer=inner_rule(inner_optimizer), loss=_checked_loss(loss),
            loss_reduction=loss_reduction, inner_steps=inner_steps,
            inner_batch_size=inner_batch_size, meta_batch_size=meta_batch_size,
            meta_step_size=float(meta_step_size), meta_step_size_final=float(meta_step_size_final),
            eval_steps=eval_steps, eval_batch_size=eval_batch_size, transductive=bool(transductive),
            weight_decay=float(weight_decay), eval_tasks_per_batch=eval_tasks_per_batch,
            seed=seed, tail_shots=tail_shots)
        self.iteration = 0  # meta-iterations done, over every fit; saved with the learner
        self._frozen_in_evaluation = frozen_in_evaluation
        self._parallel_strategy = parallel_strategy
        self._strategy = strategy
        self._jit_compile = jit_compile
        self._algorithm = None
        self._evaluator = None
        self._loss_function = None
        self._resume_at = None  # set by a callback that restored a backup (callbacks.py)
        self._output_shapes = {}  # (input shape, target shape, labels?) -> outputs' shape
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

    @property
    def stop_training(self):
        """Set it (or the model's stop_training, as Keras callbacks do) to stop fit after the
        current meta-iteration."""
        return bool(getattr(self.model, 'stop_training', False))

    @stop_training.setter
    def stop_training(self, value):
        self.model.stop_training = value

    def _require_built(self):
        if self._algorithm is None:
            raise UserError('the model is not built yet; call it on a batch of inputs, or fit '
                            'or evaluate first')

    def _build(self, example_inputs=None):
        if self._algorithm is not None:
            return
        if not self.model.built:
            try:
                _build_model(self.model, example_inputs)
            except Exception as exc:  # pylint: disable=broad-except
                raise _input_error(example_inputs, exc) from None
        if not self.model.trainable_variables:
            raise UserError('the model has no trainable variables to meta-train')
        _refuse_frozen_batch_normalization(self.model)
        _refuse_other_precisions(self.model)
        _require_variables_of(self.model, self._frozen_in_evaluation)
        self._loss_function = per_example_loss(self.loss, self.model)
        self._algorithm = self.engine(
            self.model, self.inner_optimizer, weight_decay=1.0 - self.weight_decay,
            frozen_in_evaluation=self._frozen_in_evaluation,
            parallel_strategy=self._parallel_strategy, jit_compile=self._jit_compile,
            loss=self._loss_function, reduction=self.loss_reduction)
        self._evaluator = Evaluator(self._algorithm, self.evaluation_settings(), self._strategy)

    def evaluation_settings(self):
        """How evaluation fine-tunes and predicts (settings.Evaluation)."""
        return Evaluation(inner_batch=self.eval_batch_size, inner_iters=self.eval_steps,
                          transductive=self.transductive,
                          tasks_per_batch=self.eval_tasks_per_batch)

    # What the learner is given is checked before anything is trained or traced.

    def _check_source(self, tasks, argument, queries):
        """Refuse a task source (given as `argument`) that the learner cannot use, and build
        the model on its inputs if need be."""
        require_source(tasks, argument)
        tasks.check('evaluation' if queries else 'training', queries=queries)
        if not queries:
            tasks.check_tail_shots(self.tail_shots, self.inner_steps)
        inputs, targets = tasks.example_batch()
        self._check_data(inputs, targets, tasks.ways if tasks.classification else None)

    def _check_data(self, inputs, targets, ways=None):
        """Refuse a model, loss or targets that do not fit each other: inputs and targets of a
        few examples (integer targets are class labels; ways, the classes of a source's tasks).
        The model runs on inputs of a shape, with targets of a kind, once: after that only the
        labels and ways are checked against the outputs' shape it gave."""
        self._build(inputs[:1])
        labels = np.issubdtype(np.asarray(targets).dtype, np.integer)
        key = (inputs.shape[1:], np.shape(targets)[1:], labels)
        if key not in self._output_shapes:
            try:
                outputs = self.model(as_inputs(tf.constant(inputs)), training=False)
            except Exception as exc:  # pylint: disable=broad-except
                raise _input_error(inputs, exc) from None
            outputs = keras.ops.convert_to_numpy(outputs)
            if labels:
                self._check_classification(outputs, targets, ways)
            else:
                self._check_regression(outputs, targets)
            self.algorithm.network.check_state(as_inputs(tf.constant(inputs)))
            self._output_shapes[key] = outputs.shape[1:]
        if labels:
            _check_labels(self._output_shapes[key][0], targets, ways)

    def _check_classification(self, outputs, labels, ways):
        if _target_kind(self.loss) == 'values':
            raise UserError('loss %s takes targets of the outputs\' shape, but class labels were '
                            "given; use loss='sparse_categorical_crossentropy' (or a function of "
                            '(labels, outputs))' % _loss_name(self.loss))
        if outputs.ndim != 2:
            raise UserError('the model gives outputs of shape %s, but a classifier must give one '
                            'score per class, [batch, classes]' % (outputs.shape,))
        _check_labels(outputs.shape[1], labels, ways)
        if isinstance(self._loss_function, SparseCrossEntropy):
            self._loss_function.settle(outputs)
        self._check_loss_values(labels, outputs)

    def _check_regression(self, outputs, targets):
        if _target_kind(self.loss) == 'labels':
            raise UserError('loss %s takes class labels, but the targets are floats (regression); '
                            "use a regression loss such as loss='mse', or give integer labels"
                            % _loss_name(self.loss))
        if outputs.shape[1:] != targets.shape[1:]:
            raise UserError('the model gives outputs of shape %s for targets of shape %s; make '
                            'its last layer give one value per target'
                            % (outputs.shape[1:], targets.shape[1:]))
        self._check_loss_values(targets, outputs)

    def _check_loss_values(self, targets, outputs):
        """Refuse a loss that fails on (targets, outputs) or gives other than one loss per
        example."""
        try:
            losses = self._loss_function(tf.constant(targets), tf.constant(outputs))
        except Exception as exc:  # pylint: disable=broad-except
            raise UserError('the loss fails on (targets, outputs) of shapes %s and %s (%s); it '
                            'must take the targets first, then the model\'s outputs'
                            % (tuple(np.shape(targets)), tuple(outputs.shape),
                               _first_reason(exc))) from None
        if tuple(losses.shape) != (len(targets),):
            raise UserError('the loss gives values of shape %s for %d examples; it must give one '
                            'loss per example' % (tuple(losses.shape), len(targets)))

    # Meta-training.

    def fit(self, tasks, meta_iterations, callbacks=None, validation_tasks=None,
            validation_num_tasks=100, steps_per_epoch=100, initial_iteration=None,
            verbose='auto'):
        """Meta-train on tasks (tasks.py) up to meta_iterations meta-iterations in all, and
        return a keras.callbacks.History.

        As Keras' epochs and initial_epoch: meta-iterations initial_iteration .. meta_iterations
        - 1 run, and the meta step size is annealed over all meta_iterations. initial_iteration
        is by default learner.iteration, the meta-iterations done so far (by earlier fits, or
        before save), so that a second fit with a larger total goes on where the first stopped.

        Callbacks are Keras': on_train_begin and on_train_end once, on_epoch_begin/end every
        steps_per_epoch meta-iterations (logs: the mean 'loss' and, with validation_tasks, the
        mean score of validation_num_tasks of them, drawn once at the start, as 'val_accuracy'
        or 'val_loss'), and on_train_batch_begin/end around every meta-iteration (logs['loss']:
        the loss of the tasks' last inner mini-batches). Setting model.stop_training (or
        learner.stop_training) stops training after the current meta-iteration.
        """
        self._check_source(tasks, 'tasks', queries=False)
        if validation_tasks is not None:
            self._check_source(validation_tasks, 'validation_tasks', queries=True)
        _require_counts(meta_iterations=(meta_iterations, 1), steps_per_epoch=(steps_per_epoch, 1),
                        validation_num_tasks=(validation_num_tasks, 1))
        start = self._first_iteration(meta_iterations, initial_iteration)
        callbacks = list(callbacks or [])
        for callback in callbacks:
            _refuse_keras_only(callback)
        validation = None if validation_tasks is None else (
            validation_tasks, self.evaluator.jobs(validation_tasks, validation_num_tasks))
        for callback in callbacks:
            if hasattr(callback, 'set_learner'):
                callback.set_learner(self, tasks, meta_iterations)
        verbose = 1 if verbose == 'auto' else verbose
        epochs = -(-meta_iterations // steps_per_epoch)
        callback_list = keras.callbacks.CallbackList(
            callbacks, add_history=True, add_progbar=verbose != 0, model=self.model,
            verbose=verbose, epochs=epochs, steps=steps_per_epoch)
        self.stop_training = False
        if not hasattr(self.model, 'optimizer'):
            # Keras' TensorBoard callback logs the learning rate of a compiled model's optimizer;
            # meta-training has none to log.
            self.model.optimizer = None
        self.iteration = start
        callback_list.on_train_begin()
        if self._resume_at is not None:  # a backup was restored
            start, self._resume_at = self._resume_at, None
        logs = {}
        for epoch in range(start // steps_per_epoch, epochs):
            if self.stop_training:
                break
            logs = self._fit_epoch(tasks, epoch, start, meta_iterations, steps_per_epoch,
                                   callback_list, validation)
        callback_list.on_train_end(logs)
        return self.model.history

    def _first_iteration(self, meta_iterations, initial_iteration):
        if initial_iteration is None:
            if self.iteration >= meta_iterations:
                raise UserError(
                    'the learner has done %d meta-iterations already, and meta_iterations is the '
                    'total to reach (as Keras\' epochs): pass more than %d to go on, or '
                    'initial_iteration=0 to run a new schedule from the start'
                    % (self.iteration, self.iteration))
            return self.iteration
        _require_counts(initial_iteration=(initial_iteration, 0))
        if initial_iteration >= meta_iterations:
            raise UserError('initial_iteration (%d) must be below meta_iterations (%d), the total'
                            % (initial_iteration, meta_iterations))
        return initial_iteration

    def _fit_epoch(self, tasks, epoch, start, meta_iterations, steps_per_epoch, callback_list,
                   validation):
        """One epoch of fit from meta-iteration start at the earliest; its logs."""
        callback_list.on_epoch_begin(epoch)
        losses = []
        first = epoch * steps_per_epoch
        for iteration in range(max(first, start), min(first + steps_per_epoch, meta_iterations)):
            callback_list.on_train_batch_begin(iteration - first)
            losses.append(self._meta_step(tasks, iteration, meta_iterations))
            self.iteration = iteration + 1
            callback_list.on_train_batch_end(iteration - first, {'loss': losses[-1]})
            if self.stop_training:
                break
        logs = {'loss': float(np.mean(losses))} if losses else {}
        if validation:
            source, jobs = validation
            score = float(np.mean(source.task_scores(self.evaluator.query_logits(jobs), jobs,
                                                     self._loss_function)))
            logs['val_accuracy' if source.classification else 'val_loss'] = score
        callback_list.on_epoch_end(epoch, logs)
        return logs

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
        self._check_source(tasks, 'tasks', queries=True)
        _require_counts(num_tasks=(num_tasks, 1))
        quiet = verbose == 0
        return self.evaluator.evaluate(tasks, num_tasks, name,
                                       (lambda line: None) if quiet else log_fn)

    def adapt(self, support_x, support_y, replacement=False):
        """A copy of the model fine-tuned on the support set (eval_steps mini-batches of
        eval_batch_size, as evaluation fine-tunes; drawn with replacement if asked); integer
        support_y are class labels 0..n-1, float ones regression targets. Call the copy with
        training=True to normalise batches with their own statistics, as evaluation does."""
        job = self._job(support_x, support_y, None, replacement)
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
        """An evaluation job of a support set and queries (None: none), checked."""
        if query_x is not None:
            if _is_integer(support_x) != _is_integer(query_x):
                raise WrongType('support_x holds %s and query_x %s; give both alike: the model '
                                'gets the values as given, so scale images the same way for both'
                                % (np.asarray(support_x).dtype, np.asarray(query_x).dtype))
            if not len(query_x):
                raise UserError('query_x holds no queries; give at least one')
        support_x = model_inputs(support_x, 'support_x')
        query_x = support_x[:0] if query_x is None else model_inputs(query_x, 'query_x')
        support_y = np.asarray(support_y)
        if support_y.dtype.kind in 'iu' and support_y.ndim != 1:
            raise UserError('class labels must be a vector [n] of integers, not an array of '
                            'shape %s; for one-hot labels pass np.argmax(support_y, axis=1)'
                            % (support_y.shape,))
        if support_y.dtype.kind not in 'iuf':
            raise WrongType('support_y must hold integer class labels or float regression '
                            'targets, not %s' % support_y.dtype)
        if support_y.dtype.kind == 'f':
            support_y = model_inputs(support_y, 'support_y')
            if support_y.ndim == 1:
                support_y = support_y[:, None]
        if len(support_x) != len(support_y) or not len(support_x):
            raise UserError('the support set needs as many targets as inputs, at least one; got '
                            '%d inputs and %d targets' % (len(support_x), len(support_y)))
        if support_x.shape[1:] != query_x.shape[1:]:
            raise UserError('queries of shape %s for support inputs of shape %s'
                            % (query_x.shape[1:], support_x.shape[1:]))
        self._check_data(support_x, support_y)
        num_support = len(support_x)
        rng = np.random.default_rng(self.seed)
        positions = sampling.mini_batches(num_support, self.eval_batch_size, self.eval_steps,
                                          replacement, rng)
        task = sampling.EvaluationTask(positions, support_y[positions], np.arange(num_support),
                                       num_support + np.arange(len(query_x)),
                                       np.zeros(len(query_x), np.int64))
        return np.concatenate([support_x, query_x]), task

    # Saving.

    def save(self, path):
        """Save the model (path/model.keras), the inner optimizer's state and the settings
        (path/learner.json, with the meta-iterations done) in the directory path, replacing
        what a save left there; a failed save leaves it as it was."""
        algorithm = self.algorithm
        parent = os.path.dirname(os.path.abspath(path))
        os.makedirs(parent, exist_ok=True)
        staging = tempfile.mkdtemp(prefix='.saving-', dir=parent)
        try:
            _save_model(self.model, os.path.join(staging, MODEL_FILE))
            tf.train.Checkpoint(optimizer=algorithm.optimizer).write(
                os.path.join(staging, STATE_PREFIX))
            with open(os.path.join(staging, SETTINGS_FILE), 'w', encoding='utf-8') as file:
                json.dump(self._settings(), file, indent=2)
            _replace_directory(staging, path)
        finally:
            shutil.rmtree(staging, ignore_errors=True)

    def _settings(self):
        rule = self.inner_optimizer
        return {
            'algorithm': type(self).__name__,
            'loss': _serialized_loss(self.loss),
            'inner_optimizer': {'type': type(rule).__name__, **vars(rule)},
            **{name: getattr(self, name) for name in (
                'loss_reduction', 'inner_steps', 'inner_batch_size', 'meta_batch_size',
                'meta_step_size', 'meta_step_size_final', 'eval_steps', 'eval_batch_size',
                'transductive', 'weight_decay', 'eval_tasks_per_batch', 'seed', 'tail_shots')},
            'frozen_in_evaluation': [v.path for v in self._frozen_in_evaluation],
            'iteration': self.iteration,
        }


class FOMAML(Reptile):
    """First-order MAML: the meta-update is the mean displacement of the tasks' last inner
    steps. tail_shots: examples per class held out of a training task to form its last inner
    mini-batch alone (the reference's --foml-tail; by default it is an ordinary one), between 1
    and the training tasks' shots - 1 (or all of them with inner_steps=1).

    Its meta_step_size multiplies one inner step's displacement, not the whole way to a task's
    weights as Reptile's does: with the same value it moves far less (see docs/library.md)."""

    engine = algorithms.FOML


class SparseCrossEntropy:
    """The per-example cross-entropy of integer labels and a classifier's outputs: its logits
    (the reference's loss, TensorFlow's fused kernel), or its probabilities when the model
    applies a softmax itself (from_logits False, which Reptile finds out from the outputs
    before anything is compiled)."""

    def __init__(self, from_logits=True):
        self.from_logits = from_logits
        self._settled = False

    def settle(self, outputs):
        """Take outputs [batch, classes] of the model as logits or probabilities, once: what
        was compiled with one must not be given the other."""
        if not self._settled:
            self.from_logits = not _probabilities(outputs)
            self._settled = True

    def __call__(self, labels, outputs):
        if self.from_logits:
            return sparse_softmax_cross_entropy(labels, outputs)
        return keras.losses.sparse_categorical_crossentropy(labels, outputs)


def load(path, custom_objects=None, loss=None):
    """A learner saved by save(path): its model, inner optimizer state, settings and
    meta-iterations done. loss replaces the saved one (needed for a loss given as a
    function)."""
    settings_path = os.path.join(path, SETTINGS_FILE)
    if not os.path.isfile(settings_path):
        raise UserError('%s holds no saved learner (no %s); save one with learner.save(path)'
                        % (path, SETTINGS_FILE))
    with open(settings_path, encoding='utf-8') as file:
        settings = json.load(file)
    try:
        model = keras.models.load_model(os.path.join(path, MODEL_FILE),
                                        custom_objects=custom_objects, compile=False)
    except TypeError as exc:
        raise UserError('the model in %s cannot be rebuilt (%s); pass its own layers and '
                        'models as sr.load(path, custom_objects={name: class})'
                        % (path, str(exc).splitlines()[0])) from None
    rule_settings = dict(settings.pop('inner_optimizer'))
    rule = _RULES[rule_settings.pop('type')](**rule_settings)
    saved_loss = settings.pop('loss')
    if loss is None:
        loss = _deserialized_loss(saved_loss, path)
    frozen_paths = set(settings.pop('frozen_in_evaluation'))
    frozen = [v for v in model.trainable_variables if v.path in frozen_paths]
    learner_class = {'Reptile': Reptile, 'FOMAML': FOMAML}[settings.pop('algorithm')]
    iteration = settings.pop('iteration', 0)
    settings.setdefault('loss_reduction', 'sum')  # saves of releases before it summed
    learner = learner_class(model, loss=loss, inner_optimizer=rule, frozen_in_evaluation=frozen,
                            **settings)
    learner.iteration = iteration
    tf.train.Checkpoint(optimizer=learner.algorithm.optimizer).read(
        os.path.join(path, STATE_PREFIX)).assert_consumed()
    return learner


def inner_rule(optimizer):
    """The inner loop's fused rule (inner_loop.Adam or SGD) of inner_optimizer: one of them,
    or a Keras Adam or SGD with the same hyper-parameters; anything else is refused."""
    if optimizer is None:
        return Adam(1e-3)
    if isinstance(optimizer, tuple(_RULES.values())):
        return optimizer
    kind = type(optimizer)
    if kind not in (keras.optimizers.Adam, keras.optimizers.SGD):
        raise WrongType('inner_optimizer must be sr.Adam(learning_rate), sr.SGD(learning_rate), '
                        'keras.optimizers.Adam or keras.optimizers.SGD, not %s' % kind.__name__)
    config = optimizer.get_config()
    unsupported = {'amsgrad': False, 'momentum': 0.0, 'nesterov': False, 'weight_decay': None,
                   'clipnorm': None, 'clipvalue': None, 'global_clipnorm': None,
                   'use_ema': False, 'loss_scale_factor': None,
                   'gradient_accumulation_steps': None}
    for name, plain in unsupported.items():
        if config.get(name, plain) != plain:
            raise UserError('inner_optimizer: the inner loop runs Adam(learning_rate, beta_1, '
                            'beta_2, epsilon) and SGD(learning_rate) only, without %s; drop '
                            '%s=%r (weight decay is the learner\'s weight_decay)'
                            % (name, name, config[name]))
    if not isinstance(config['learning_rate'], (int, float)):
        raise UserError('inner_optimizer: a learning-rate schedule cannot be used in the inner '
                        'loop; give a constant learning_rate')
    # The variables hold float32: the shortest decimal of that float32 is the value given.
    learning_rate = float(str(np.float32(config['learning_rate'])))
    if kind is keras.optimizers.SGD:
        return SGD(learning_rate)
    return Adam(learning_rate, beta_1=config['beta_1'], beta_2=config['beta_2'],
                epsilon=config['epsilon'])


def per_example_loss(loss, model):
    """loss (see Reptile) as a function (targets, outputs) -> per-example losses."""
    if loss in ('sparse_categorical_crossentropy', keras.losses.sparse_categorical_crossentropy):
        return SparseCrossEntropy(from_logits=not _ends_in_softmax(model))
    if isinstance(loss, str):
        return keras.losses.get(loss)
    if isinstance(loss, keras.losses.Loss):
        return loss.call  # unreduced: the inner loop reduces it over the mini-batch
    return loss


def _checked_loss(loss):
    """loss, if it is one Reptile takes (see per_example_loss)."""
    if isinstance(loss, str):
        try:
            keras.losses.get(loss)
        except ValueError:
            raise UserError('no Keras loss named %r' % loss) from None
        return loss
    if isinstance(loss, keras.losses.Loss) or callable(loss):
        return loss
    raise WrongType('loss must be a Keras loss name, a keras.losses.Loss or a function, not %r'
                    % (loss,))


def _check_labels(width, labels, ways):
    """Refuse class labels, and tasks of `ways` classes (None: any), that a model of `width`
    outputs cannot score."""
    if ways is not None and width != ways:
        raise UserError('the model gives %d outputs per example, but the tasks have %d classes '
                        '(ways); give the model a last layer of %d units' % (width, ways, ways))
    if np.min(labels) < 0 or np.max(labels) >= width:
        raise UserError('class labels must be 0 to %d for a model of %d outputs, not %d to %d'
                        % (width - 1, width, np.min(labels), np.max(labels)))


def _target_kind(loss):
    """What loss takes: 'labels' (class labels), 'values' (targets of the outputs' shape), or
    None for a function of one's own, which may take either."""
    if isinstance(loss, keras.losses.Loss):
        name = type(loss).__name__
    elif isinstance(loss, str) or getattr(loss, '__module__', '').split('.')[0] == 'keras':
        name = loss if isinstance(loss, str) else loss.__name__
    else:
        return None
    return 'labels' if name in _LABEL_LOSSES else 'values'


def _loss_name(loss):
    return repr(loss) if isinstance(loss, str) else getattr(loss, '__name__', type(loss).__name__)


def _serialized_loss(loss):
    if isinstance(loss, str):
        return loss
    if isinstance(loss, keras.losses.Loss):
        return keras.losses.serialize(loss)
    return {'function': '%s.%s' % (getattr(loss, '__module__', '?'),
                                   getattr(loss, '__qualname__', type(loss).__name__))}


def _deserialized_loss(saved, path):
    if isinstance(saved, str):
        return saved
    if 'function' in saved:
        raise UserError('the learner in %s was trained with the loss function %s, which is not '
                        'saved: pass it again, sr.load(path, loss=...)' % (path, saved['function']))
    return keras.losses.deserialize(saved)


def _ends_in_softmax(model):
    layers = getattr(model, 'layers', None)
    if not layers:
        return False
    last = layers[-1]
    return isinstance(last, keras.layers.Softmax) or (
        getattr(last, 'activation', None) is keras.activations.softmax)


def _probabilities(outputs):
    """Whether a classifier's outputs [batch, classes] are probabilities (a softmax's)."""
    return outputs.shape[1] > 1 and bool(np.all(outputs >= 0) and np.allclose(
        outputs.sum(axis=1), 1.0, atol=1e-4))


def _refuse_frozen_batch_normalization(model):
    for layer in model._flatten_layers():  # pylint: disable=protected-access
        if (isinstance(layer, keras.layers.BatchNormalization) and not layer.trainable
                and not isinstance(layer, models.BatchStatsNormalization)):
            raise UserError(
                'layer %s is a frozen keras BatchNormalization: Keras normalises it with its '
                'moving statistics, which meta-training never updates; keep it trainable, or use '
                'sr.models.BatchStatsNormalization (batch statistics, frozen or not)' % layer.name)


def _build_model(model, example_inputs):
    """Build model for inputs like example_inputs [n, ...]: a Sequential for any batch size
    (as Keras records it), any other model by calling it."""
    if isinstance(model, keras.Sequential):
        model.build((None, *np.shape(example_inputs)[1:]))
    else:
        model(as_inputs(tf.constant(example_inputs)))


def _refuse_other_precisions(model):
    for layer in model._flatten_layers(include_self=False):  # pylint: disable=protected-access
        policy = getattr(layer, 'dtype_policy', None)
        if isinstance(layer, keras.layers.InputLayer):
            continue
        if policy is not None and (policy.compute_dtype, policy.variable_dtype) != (
                'float32', 'float32'):
            raise UserError('layer %s computes in %s: the inner loop runs in float32; build the '
                            "model under keras.mixed_precision.set_global_policy('float32')"
                            % (layer.name, policy.name))


def _require_variables_of(model, variables):
    own = {id(v) for v in model.variables}
    for variable in variables:
        if id(variable) not in own:
            raise UserError('frozen_in_evaluation must hold variables of the model (from '
                            'model.trainable_variables), not %s'
                            % getattr(variable, 'path', repr(variable)))


def _input_error(inputs, exc):
    """The UserError of a model that failed on inputs: the shape it takes, or Keras' reason."""
    return UserError('the model cannot take the inputs of shape %s given to it (%s); give inputs '
                     'of the shape its first layer takes'
                     % (tuple(np.shape(inputs)[1:]), _first_reason(exc)))


def _first_reason(exc):
    """The first line of an exception's message that says something (Keras and TensorFlow
    wrap theirs in lines about where it happened)."""
    lines = [re.sub(r'\x1b\[[0-9;]*m', '', line).strip() for line in str(exc).splitlines()]
    reasons = [line for line in lines if line and not line.startswith(
        ('Exception encountered', 'Arguments received', '\u2022'))]
    return reasons[0] if reasons else type(exc).__name__


def _refuse_keras_only(callback):
    """Refuse a Keras callback that needs what meta-training does not have."""
    if isinstance(callback, keras.callbacks.BackupAndRestore):
        raise UserError('keras.callbacks.BackupAndRestore cannot restore a meta-training run; '
                        'use sr.callbacks.BackupAndRestore(backup_dir)')
    if isinstance(callback, (keras.callbacks.ReduceLROnPlateau,
                             keras.callbacks.LearningRateScheduler)):
        raise UserError('%s changes a compiled optimizer\'s learning rate, and meta-training '
                        'has none: the meta step is annealed from meta_step_size to '
                        'meta_step_size_final' % type(callback).__name__)


def _is_integer(array):
    return np.asarray(array).dtype.kind in 'biu'


def _require_counts(**counts):
    """Each name=(value, smallest allowed) an integer of at least that, or a UserError."""
    for name, (value, smallest) in counts.items():
        if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)):
            raise WrongType('%s must be an integer, not %r' % (name, value))
        if value < smallest:
            raise UserError('%s must be at least %d, not %d' % (name, smallest, value))


def _require_numbers(**numbers):
    for name, value in numbers.items():
        if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, float, np.number)):
            raise WrongType('%s must be a number, not %r' % (name, value))
        if not np.isfinite(value):
            raise UserError('%s must be finite, not %r' % (name, value))


def _save_model(model, path):
    try:
        model.save(path)
    except (NotImplementedError, TypeError) as exc:
        raise UserError('the model cannot be saved (%s); give a subclassed model get_config() '
                        'and register it with keras.saving.register_keras_serializable'
                        % str(exc).strip().splitlines()[0]) from None


def _replace_directory(new, path):
    """Put directory new in the place of path (empty or missing, or a learner save() left)."""
    if os.path.isdir(path) and os.listdir(path) and not os.path.isfile(
            os.path.join(path, SETTINGS_FILE)):
        raise UserError('%s holds files that are not a saved learner; save into a new or empty '
                        'directory' % path)
    old = None
    if os.path.exists(path):
        old = tempfile.mkdtemp(prefix='.replaced-', dir=os.path.dirname(os.path.abspath(path)))
        os.rename(path, os.path.join(old, 'learner'))
    os.rename(new, path)
    if old:
        shutil.rmtree(old, ignore_errors=True)


def _copy(model, example_inputs):
    """A copy of model with its weights (built on example_inputs if need be). Keras' cloning
    draws initial weights from Python's global generator; the caller's draws stay as they were."""
    state = random.getstate()
    try:
        copy = keras.models.clone_model(model)
        if not copy.built:
            copy(as_inputs(tf.constant(example_inputs)))
    except (TypeError, NotImplementedError, ValueError) as exc:
        raise UserError('the model cannot be copied to adapt it (%s); give it get_config() and '
                        'from_config()' % exc) from None
    finally:
        random.setstate(state)
    copy.set_weights(model.get_weights())
    return copy
