"""On the real Omniglot (from ../shared; skipped when it is absent)."""

import numpy as np

from supervised_reptile import models, omniglot
from supervised_reptile.eval import evaluate
from supervised_reptile.reptile import Reptile
from supervised_reptile.train import train


def test_full_omniglot_reads_and_splits_like_the_reference(real_omniglot_dir):
    classes = omniglot.read_dataset(str(real_omniglot_dir))
    assert len(classes) == 1623 and classes.images.shape == (32460, 28, 28, 1)
    train_set, test_set = omniglot.load(str(real_omniglot_dir), seed=0)
    assert len(train_set) == 4800 and len(test_set) == 423
    # Strokes are dark: most of a character image is background (255).
    assert (classes.images == 255).mean() > 0.8


def test_short_run_of_readme_row_1_learns(real_omniglot_dir, tmp_path):
    train_set, test_set = omniglot.load(str(real_omniglot_dir), seed=0)
    rng = np.random.default_rng(0)
    reptile = Reptile(models.omniglot_model(5), models.adam(0.001), transductive=True)
    train(reptile, train_set, test_set, str(tmp_path / 'ckpt'), rng, num_classes=5, num_shots=1,
          train_shots=10, inner_batch_size=10, inner_iters=5, meta_step_size=1,
          meta_step_size_final=0, meta_batch_size=5, meta_iters=200, eval_inner_batch_size=5,
          eval_inner_iters=50, eval_interval=1000, log_fn=lambda line: None)
    accuracy = evaluate(reptile, test_set, rng, num_classes=5, num_shots=1, num_samples=200,
                        log_fn=lambda line: None)
    # Chance is 0.2; 200 meta-steps already reach about 0.6.
    assert accuracy.mean - accuracy.ci95 > 0.4, accuracy
