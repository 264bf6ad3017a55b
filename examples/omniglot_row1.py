"""README row 1 (Omniglot, 1-shot 5-way, transductive) through the library API: the numbers of
`python run_omniglot.py --preset o15t`, bit for bit, with the same seed and cut.

    python examples/omniglot_row1.py [META_ITERATIONS [EVAL_TASKS]]

(100,000 and 10,000 by default, as the preset; run_omniglot.py --meta-iters and --eval-samples
cut it the same way). Needs Omniglot in data/omniglot (./fetch_data.sh).
"""

import sys

from supervised_reptile import cpu_kernels
cpu_kernels.choose('omniglot')  # run_omniglot.py's kernels and threads, before TensorFlow loads

# pylint: disable=wrong-import-position
import keras
import numpy as np

import supervised_reptile as sr
from supervised_reptile import omniglot

META_ITERATIONS = int(sys.argv[1]) if len(sys.argv) > 1 else 100000
EVAL_TASKS = int(sys.argv[2]) if len(sys.argv) > 2 else 10000
SEED = 0

keras.utils.set_random_seed(SEED)  # the model's initial weights
rng = np.random.default_rng(SEED)  # every task and mini-batch, in the order the script draws them
train_set, test_set = omniglot.load('data/omniglot', SEED)  # 1,200 characters x 4 rotations; 423

# The reference sums the inner loss over a mini-batch (the run scripts too): loss_reduction='sum'.
learner = sr.Reptile(sr.models.omniglot_model(5), inner_optimizer=sr.Adam(0.001),
                     loss_reduction='sum', inner_steps=5, inner_batch_size=10, meta_batch_size=5,
                     meta_step_size=1.0, meta_step_size_final=0.0, eval_steps=50,
                     eval_batch_size=5, transductive=True)
# One generator for all: training tasks have 10 shots, evaluation tasks 1 shot and 1 query.
training = sr.tasks.ClassificationTasks(train_set, ways=5, shots=10, rng=rng)
train_eval = sr.tasks.ClassificationTasks(train_set, ways=5, shots=1, rng=rng)
test_eval = sr.tasks.ClassificationTasks(test_set, ways=5, shots=1, rng=rng)


class PeriodicPair(keras.callbacks.Callback):
    """The script's evaluation every 10 meta-iterations: one task of the training characters,
    then one of the test characters (their draws interleave with training's)."""

    def on_train_batch_end(self, batch, logs=None):
        step = learner.iteration - 1
        if step % 10 == 0:
            train_accuracy = learner.evaluate(train_eval, 1, verbose=0).mean
            test_accuracy = learner.evaluate(test_eval, 1, verbose=0).mean
            print('batch %d: train=%f test=%f' % (step, train_accuracy, test_accuracy))


learner.fit(training, meta_iterations=META_ITERATIONS, callbacks=[PeriodicPair()], verbose=0)
for name, tasks in (('Train', train_eval), ('Test', test_eval)):
    print('%s accuracy: %s' % (name, learner.evaluate(tasks, EVAL_TASKS, verbose=0)))
