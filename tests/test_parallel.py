"""Parallel meta-batches: each task from the same start, averaged; the same on 1 or 2 devices."""

import json
import os
import socket
import subprocess
import sys

import keras
import numpy as np
import pytest
import tensorflow as tf

from supervised_reptile import models, sampling
from supervised_reptile.errors import UserError
from supervised_reptile.inner_loop import Adam
from supervised_reptile.reptile import FOML, Reptile

from conftest import REPO_DIR, copy_omniglot_tree, random_classes

CLASSES = random_classes(12, 8, seed=3)
IMAGES = tf.constant(CLASSES.images)


def smooth_adam():
    """The reference's Adam with a large epsilon (see test_evaluation.smooth_adam)."""
    return Adam(0.01, epsilon=0.1)


def twin_models():
    """Two models with the same initial weights."""
    keras.utils.set_random_seed(1)
    model = models.omniglot_model(3)
    twin = keras.models.clone_model(model)
    twin.set_weights(model.get_weights())
    return model, twin


def training_tasks(count, seed=0):
    """Tasks of 3 inner steps (2 head mini-batches and the last)."""
    rng = np.random.default_rng(seed)
    return [sampling.training_task(CLASSES, 3, 4, 6, 3, False, rng) for _ in range(count)]


def state_variables(reptile):
    """Weights, optimizer slots and step count."""
    slots = [slot for variable_slots in reptile.optimizer.slots for slot in variable_slots]
    return reptile.model.trainable_variables + slots + [reptile.optimizer.iterations]


def state(reptile):
    return [v.numpy().copy() for v in state_variables(reptile)]


def assert_close(actual, expected):
    for a, e in zip(actual, expected, strict=True):
        np.testing.assert_allclose(a, e, rtol=2e-5, atol=2e-6)


@pytest.mark.slow
@pytest.mark.parametrize('algorithm', [Reptile, FOML])
def test_each_task_starts_from_the_shared_state_and_the_results_are_averaged(algorithm):
    model, twin = twin_models()
    parallel = algorithm(model, smooth_adam(), weight_decay=0.99,
                         parallel_strategy=tf.distribute.get_strategy())
    single = algorithm(twin, smooth_adam(), weight_decay=0.99)
    warm_up = sampling.stack_tasks(training_tasks(1, seed=7))
    parallel.train_step(IMAGES, warm_up, 0.5)
    single.train_step(IMAGES, warm_up, 0.5)
    assert_close(state(parallel), state(single))  # one task: the same algorithm

    tasks = training_tasks(2)
    start = state(single)
    ends = []
    for task in tasks:  # each task alone with meta-step 1 ends at its own update
        for variable, value in zip(state_variables(single), start):
            variable.assign(value)
        single.train_step(IMAGES, sampling.stack_tasks([task]), 1.0)
        ends.append(state(single))
    parallel.train_step(IMAGES, sampling.stack_tasks(tasks), 0.3)

    count = len(twin.trainable_variables)
    old = start[:count]
    mean = [np.mean(pair, axis=0) for pair in zip(*(end[:count] for end in ends))]
    # A single task's run with meta-step 1 ends at old + its update for both algorithms (Reptile:
    # the task's final weights; FOML: old plus its last step's displacement), so the mean update
    # taken with meta-step 0.3 lands 0.3 of the way to the mean of the ends (not 0.7: asymmetric).
    expected = [o + 0.3 * (m - o) for o, m in zip(old, mean)]
    slots = [np.mean(pair, axis=0) for pair in zip(*(end[count:-1] for end in ends))]
    ours = state(parallel)
    assert_close(ours[:count], expected)
    assert_close(ours[count:-1], slots)
    assert ours[-1] == start[-1] + 3  # one task's inner steps, not two tasks'


def test_a_meta_batch_that_does_not_split_evenly_is_refused():
    two_replicas = type('TwoReplicas', (), {'num_replicas_in_sync': 2})()
    reptile = Reptile(models.omniglot_model(3), Adam(1e-3), parallel_strategy=two_replicas)
    with pytest.raises(UserError, match='make --meta-batch a multiple of 2') as refused:
        reptile.train_step(IMAGES, sampling.stack_tasks(training_tasks(3)), 1.0)
    assert '\n' not in str(refused.value)


TWO_DEVICES = '''
import sys
import numpy as np
import tensorflow as tf
cpu = tf.config.list_physical_devices('CPU')[0]
tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
sys.path[:0] = sys.argv[1:3]
import keras
from supervised_reptile import models, sampling, settings
from supervised_reptile.evaluation import Evaluator
from supervised_reptile.inner_loop import SGD, Adam
from supervised_reptile.reptile import FOML, Reptile
from supervised_reptile.tasks import ClassificationTasks
from conftest import random_classes

classes = random_classes(12, 8, seed=3)
images = tf.constant(classes.images)

# One strategy per set of devices: strategies made alike would share collective keys.
strategies = {1: tf.distribute.MirroredStrategy(['/cpu:0']),
              2: tf.distribute.MirroredStrategy(['/cpu:0', '/cpu:1'])}

def run(algorithm, rule, replicas):
    keras.utils.set_random_seed(1)
    strategy = strategies[replicas]
    assert strategy.num_replicas_in_sync == replicas
    reptile = algorithm(models.omniglot_model(3), rule, weight_decay=0.9,
                        parallel_strategy=strategy)
    rng = np.random.default_rng(0)
    for _ in range(3):
        tasks = [sampling.training_task(classes, 3, 4, 6, 3, False, rng) for _ in range(4)]
        reptile.train_step(images, sampling.stack_tasks(tasks), 0.5)
    return [v.numpy() for v in reptile.model.variables + list(reptile.optimizer.variables)]

for algorithm, rule in ((Reptile, Adam(1e-3)), (FOML, SGD(0.01))):
    one = run(algorithm, rule, 1)
    two = run(algorithm, rule, 2)
    assert len(one) == len(two)
    assert all(np.array_equal(a, b) for a, b in zip(one, two)), algorithm.__name__

# Evaluation tasks shared out over two replicas (3 tasks: one replica gets a copy of the last)
# give the logits of one device.
rng = np.random.default_rng(1)
keras.utils.set_random_seed(2)
model = models.omniglot_model(3)
reptile = Reptile(model, Adam(1e-2), weight_decay=0.9,
                  frozen_in_evaluation=model.layers[0].trainable_variables)
reptile.train_step(images, sampling.stack_tasks([
    sampling.training_task(classes, 3, 4, 6, 3, False, rng)]), 1.0)
for transductive in (True, False):
    evaluation = settings.Evaluation(inner_batch=4, inner_iters=5, transductive=transductive)
    alone = Evaluator(reptile, evaluation)
    shared = Evaluator(reptile, evaluation, strategy=strategies[2])
    assert alone.strategy is None and shared.strategy is strategies[2]
    jobs = alone.jobs(ClassificationTasks(classes, 3, 2, rng=rng), 3)
    one = alone.query_logits(jobs)
    two = shared.query_logits(jobs)
    assert one.shape == two.shape == (3, 3, 3)
    np.testing.assert_allclose(two, one, rtol=1e-4, atol=1e-4)
    assert (one.argmax(-1) == two.argmax(-1)).all()
print('same on one and two devices')
'''


@pytest.mark.slow
def test_two_replicas_give_the_same_result_as_one():
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL='3')
    result = subprocess.run([sys.executable, '-c', TWO_DEVICES, str(REPO_DIR),
                             str(REPO_DIR / 'tests')], env=env, capture_output=True, text=True,
                            timeout=600, check=False, cwd=REPO_DIR / 'tests')
    assert result.returncode == 0, result.stderr[-3000:]
    assert 'same on one and two devices' in result.stdout


def free_port():
    with socket.socket() as probe:
        probe.bind(('localhost', 0))
        return probe.getsockname()[1]


@pytest.mark.slow
def test_two_workers_end_with_the_weights_of_one_process(tmp_path, omniglot_tree):
    copy_omniglot_tree(omniglot_tree, tmp_path)
    command = [sys.executable, str(REPO_DIR / 'run_omniglot.py'), '--shots', '1',
               '--train-shots', '2', '--inner-iters', '2', '--meta-batch', '2', '--meta-iters',
               '3', '--eval-iters', '2', '--eval-samples', '2', '--parallel-meta-batch']
    cluster = {'worker': ['localhost:%d' % free_port() for _ in range(2)]}
    workers = [subprocess.Popen(
        command + ['--distribute', 'multi-worker', '--checkpoint', 'worker%d' % index],
        cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
        env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL='3', TF_CONFIG=json.dumps(
            {'cluster': cluster, 'task': {'type': 'worker', 'index': index}})))
        for index in range(2)]
    alone = subprocess.run(command + ['--checkpoint', 'alone'], cwd=tmp_path, capture_output=True,
                           text=True, timeout=600, check=False,
                           env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL='3'))
    assert alone.returncode == 0, alone.stderr[-2000:]
    for worker in workers:
        assert worker.wait(timeout=600) == 0, worker.stderr.read()[-2000:]
    ends = [tf.train.load_checkpoint(str(tmp_path / name / 'model.ckpt-2'))
            for name in ('alone', 'worker0', 'worker1')]
    names = [name for name in ends[0].get_variable_to_shape_map()
             if not name.startswith(('save_counter', 'training_seconds'))]
    for name in names:
        assert all(np.array_equal(ends[0].get_tensor(name), end.get_tensor(name))
                   for end in ends[1:]), name
