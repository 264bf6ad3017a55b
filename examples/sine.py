"""Sine-wave regression (the Reptile paper's Figure 1) through the library API.

    python examples/sine.py [META_ITERATIONS]

A task is a sine wave of random amplitude (0.1-5) and phase (0-pi) on [-5, 5]; the model sees
10 points of it and is scored by its mean squared error on 10 more.
"""

import sys

import keras
import numpy as np

import supervised_reptile as sr

META_ITERATIONS = int(sys.argv[1]) if len(sys.argv) > 1 else 10000


def sample_sine(rng, n):
    """n points (x [n, 1], y [n]) of a newly drawn sine wave."""
    amplitude, phase = rng.uniform(0.1, 5.0), rng.uniform(0.0, np.pi)
    x = rng.uniform(-5.0, 5.0, size=(n, 1))
    return x, amplitude * np.sin(x[:, 0] + phase)


train_tasks = sr.tasks.from_function(sample_sine, shots=10, query_shots=10, seed=0)
test_tasks = sr.tasks.from_function(sample_sine, shots=10, query_shots=10, seed=1)

keras.utils.set_random_seed(0)
model = keras.Sequential([keras.Input((1,)),
                          keras.layers.Dense(64, activation='tanh'),
                          keras.layers.Dense(64, activation='tanh'),
                          keras.layers.Dense(1)])
# The paper's inner loop: SGD at 0.02 on the mean squared error of 10 points. Evaluation
# predicts all queries at once (no batch norm here).
learner = sr.Reptile(model, loss='mse', inner_optimizer=sr.SGD(0.02), inner_steps=32,
                     inner_batch_size=10, meta_batch_size=1, meta_step_size=0.1,
                     meta_step_size_final=0.0, eval_steps=32, eval_batch_size=10,
                     transductive=True)

before = learner.evaluate(test_tasks, num_tasks=200, verbose=0)
learner.fit(train_tasks, meta_iterations=META_ITERATIONS, steps_per_epoch=1000, verbose=0)
after = learner.evaluate(test_tasks, num_tasks=200, verbose=0)
print('query MSE after fine-tuning, before meta-training: %.3f +/- %.3f' % (before.mean, before.ci95))
print('query MSE after fine-tuning, after meta-training:  %.3f +/- %.3f' % (after.mean, after.ci95))

# One new wave: fine-tune on 10 of its points, predict elsewhere.
x, y = sample_sine(np.random.default_rng(7), 20)
adapted = learner.adapt(x[:10], y[:10])
print('a new wave, MSE on 10 other points: %.3f'
      % np.mean((adapted(x[10:])[:, 0] - y[10:]) ** 2))
