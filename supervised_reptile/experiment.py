"""
The steps both run scripts share once their flags are parsed, and the record a run leaves.

A run records its configuration in the checkpoint directory before it trains (or, with
--pretrained, once the checkpoint is restored) and its results after the final evaluation;
results.py names the files.

Rerunning a training command whose checkpoint directory holds an unfinished run resumes it.
A finished run (one with results) is never overwritten, and a run is resumed only with the
settings it was started with.
"""

from datetime import datetime, timezone
import math
import os
import platform
import sys
import time

import keras
import tensorflow as tf

import supervised_reptile

from . import args, checkpoints, pretrain, published, recipes, results
from .errors import UserError
from .train import train


class Run:
    """One invocation of a run script: its flags (resolved: cli.run applied the preset) and the
    settings built from them, its tf.distribute strategy, its random generator (Keras' weight
    initialization seeded too), its clock, its record files."""

    def __init__(self, dataset):
        self.dataset = dataset
        self.strategy = args.build_strategy()
        self.rng = args.seed_everything()
        self.flags = args.flag_values()
        self.preset = self.flags['preset']
        self.training = recipes.training(self.flags)
        self.evaluation = recipes.evaluation_settings(self.flags)
        self.directory = self.flags['checkpoint']
        self.pretrained = self.flags['pretrained']
        self.config_name, self.results_name = results.file_names(self.pretrained)
        self._started = time.monotonic()
        self._training_seconds = None  # stays None for an evaluation of a trained checkpoint
        self._checkpoint = None
        self._backbone = None  # what a fresh training run starts from (pretrain.py)

    def learner(self, model):
        """The learner of model with the run's settings (recipes.build_learner)."""
        return recipes.build_learner(model, self.flags, self.strategy)

    def evaluation_tasks(self, classes):
        """The run's evaluation tasks of classes, drawn from the run's generator."""
        return recipes.evaluation_tasks(classes, self.flags, self.rng)

    def train_or_restore(self, learner, train_set, test_set):
        """Restore the newest checkpoint when pretrained, otherwise meta-train into the checkpoint
        directory (logging the periodic evaluations); record the configuration either way."""
        if self.pretrained:
            self._checkpoint = checkpoints.restore_latest(learner.algorithm, self.directory)
            print('Restoring from checkpoint %s ...' % self._checkpoint)
            self._write_config()
            return
        # Refuse before the configuration is written: a refused run must neither leave a
        # directory behind nor overwrite the record of the run already in it.
        tasks = recipes.training_tasks(train_set, self.flags, self.rng)
        tasks.check('training', queries=False)
        logged = [('train', self.evaluation_tasks(train_set)),
                  ('test', self.evaluation_tasks(test_set))]
        logged[0][1].check('training')
        logged[1][1].check('test')
        recorded = self._resumable_config()
        if recorded is None:
            self._backbone = pretrain.prepare_backbone(learner.algorithm, train_set,
                                                       self.directory, **args.backbone_kwargs())
            self._write_config()
        else:
            self._record_resumption(recorded)
        print('Training...')
        self._training_seconds = train(learner, tasks, logged, self.directory,
                                       self.training.meta_iters, self.training.eval_interval)
        self._checkpoint = checkpoints.latest(self.directory)

    def _resumable_config(self):
        """The configuration of the unfinished run in the checkpoint directory, or None if it
        holds no run; a UserError if the run there is finished or was started otherwise."""
        if not checkpoints.latest(self.directory):
            return None
        if results.read_if_present(self.directory, results.RESULTS) is not None:
            raise UserError('%s holds a finished run (see its %s); evaluate it with --pretrained, '
                            'or choose another --checkpoint' % (self.directory, results.RESULTS))
        recorded = results.read_if_present(self.directory, results.CONFIG)
        if recorded is None or recorded.get('dataset') != self.dataset:
            raise UserError('%s holds checkpoints of another kind of run; choose another '
                            '--checkpoint' % self.directory)
        differing = ['--%s %s there, %s here' % (name, recorded['flags'][name], value)
                     for name, value in sorted(self.flags.items())
                     if name not in args.RESUMABLE_CHANGES and name in recorded['flags']
                     and recorded['flags'][name] != value]
        if differing:
            raise UserError('%s holds a run started with other settings (%s); rerun its command '
                            'to resume it, or choose another --checkpoint'
                            % (self.directory, '; '.join(differing)))
        return recorded

    def _record_resumption(self, recorded):
        resumptions = recorded.setdefault('resumed', [])
        resumptions.append({'command': sys.argv, 'started': _now()})
        results.write(self.directory, self.config_name, recorded)

    def evaluate(self, learner, named_sets):
        """Evaluate on each (name, classes) pair, print '<name> accuracy: ...' lines and write
        the results file."""
        print('Evaluating...')
        started = time.monotonic()
        accuracies = {}
        for name, classes in named_sets:
            accuracy = learner.evaluate(self.evaluation_tasks(classes), self.evaluation.samples,
                                        name=name.lower())
            print('%s accuracy: %s' % (name, accuracy))
            accuracies[name.lower()] = accuracy
        self._write_results(accuracies, time.monotonic() - started)

    def _write_config(self):
        results.write(self.directory, self.config_name, {
            'dataset': self.dataset,
            'preset': self.preset,
            'flags': self.flags,
            'explicit_flags': args.explicit_flags(),
            'seed': self.flags['seed'],
            'versions': {'supervised_reptile': supervised_reptile.__version__,
                         'tensorflow': tf.__version__, 'keras': keras.__version__,
                         'python': platform.python_version()},
            'devices': [device.name for device in tf.config.list_logical_devices()],
            'command': sys.argv,
            'started': _now(),
            'backbone': self._backbone,
        })

    def _write_results(self, accuracies, evaluation_seconds):
        flags = self._result_flags()
        setting = published.Setting.from_flags(self.dataset, flags)
        results.write(self.directory, self.results_name, {
            'dataset': self.dataset,
            'ways': setting.ways,
            'shots': setting.shots,
            'transductive': setting.transductive,
            'algorithm': setting.algorithm,
            'inner_optimizer': setting.inner_optimizer,
            'preset': self.preset,
            'pretrained': self.pretrained,
            'iterations': _iterations_done(self._checkpoint),
            'checkpoint': os.path.basename(self._checkpoint),
            'accuracy': {split: {'mean': accuracy.mean, 'ci95': _finite_or_none(accuracy.ci95),
                                 'num_tasks': accuracy.num_tasks}
                         for split, accuracy in accuracies.items()},
            'wall_time_seconds': {'training': self._training_seconds,
                                  'evaluation': evaluation_seconds,
                                  'total': time.monotonic() - self._started},
            'config': self.config_name,
            'flags': flags,
        })

    def _result_flags(self):
        """The flags the results stand for. An evaluation of a trained checkpoint takes the
        training-only ones from the training run's record, when there is one."""
        training = results.read_if_present(self.directory, results.CONFIG)
        if not self.pretrained or training is None:
            return self.flags
        return {**self.flags, **{name: training['flags'][name] for name in args.TRAINING_FLAGS}}


def _now():
    return datetime.now(timezone.utc).isoformat(timespec='seconds')


def _iterations_done(checkpoint_path):
    """Meta-iterations behind a checkpoint: it is numbered by the index of its last step."""
    return int(checkpoint_path.rsplit('-', 1)[1]) + 1


def _finite_or_none(number):
    # One evaluation task has no interval (NaN), and NaN is not JSON.
    return None if math.isnan(number) else number
