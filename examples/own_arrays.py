"""Meta-train your own Keras model on your own arrays: 5-way 1-shot classification of vectors.

    python examples/own_arrays.py [META_ITERATIONS]

The data: 300 classes of 64-dimensional vectors, each class a point of a hidden 8-dimensional
subspace plus noise everywhere. A model fine-tuned from a random start on one example per class
cannot tell the subspace from the noise; meta-training learns where to look.
"""

import sys

import keras
import numpy as np

import supervised_reptile as sr

META_ITERATIONS = int(sys.argv[1]) if len(sys.argv) > 1 else 2000

# Your data: x [n, 64] floats, y [n] class labels.
data_rng = np.random.default_rng(0)
basis = data_rng.normal(size=(8, 64))
centres = data_rng.normal(size=(300, 8))
y = np.repeat(np.arange(300), 20)
x = centres[y] @ basis + 2.0 * data_rng.normal(size=(len(y), 64))

# Classes 0-199 meta-train, 200-299 test: tasks never share classes across the two.
train_tasks = sr.tasks.from_arrays(x[y < 200], y[y < 200], ways=5, shots=5, seed=0)


def test_tasks():
    """The test tasks, from the start: the same seed, the same tasks."""
    return sr.tasks.from_arrays(x[y >= 200], y[y >= 200], ways=5, shots=1, seed=1)

# Your model: any Keras 3 model whose output has one logit per class of a task.
keras.utils.set_random_seed(0)
model = keras.Sequential([keras.Input((64,)),
                          keras.layers.Dense(64, activation='relu'),
                          keras.layers.Dense(64, activation='relu'),
                          keras.layers.Dense(5)])
learner = sr.Reptile(model, loss='sparse_categorical_crossentropy',
                     inner_optimizer=sr.Adam(1e-3), inner_steps=5, inner_batch_size=10,
                     meta_batch_size=5, meta_step_size=1.0, meta_step_size_final=0.0,
                     eval_steps=50, eval_batch_size=5)

before = learner.evaluate(test_tasks(), num_tasks=200, verbose=0)
history = learner.fit(train_tasks, meta_iterations=META_ITERATIONS, verbose=0)
after = learner.evaluate(test_tasks(), num_tasks=200, verbose=0)
print('test accuracy before meta-training: %.3f +/- %.3f' % (before.mean, before.ci95))
print('test accuracy after meta-training:  %.3f +/- %.3f' % (after.mean, after.ci95))

# A new task of your own: fine-tune on its support set, then classify its queries.
support_x, support_y = x[y >= 295][::20], np.arange(5)
adapted = learner.adapt(support_x, support_y)
queries = x[y >= 295][1::20]
print('a new task, predicted classes:', np.argmax(adapted(queries, training=True), axis=-1))

learner.save('own_arrays_learner')
print('reloaded: %.3f' % sr.load('own_arrays_learner').evaluate(test_tasks(), 200, verbose=0).mean)
