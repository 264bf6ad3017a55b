"""The steps both run scripts share once their data and model are built."""

from . import checkpoints
from .eval import evaluate
from .train import train


def train_or_restore(reptile, train_set, test_set, rng, pretrained, checkpoint, train_kwargs):
    """Restore the newest checkpoint when pretrained, otherwise meta-train into checkpoint."""
    if pretrained:
        print('Restoring from checkpoint %s ...' % checkpoints.restore_latest(reptile, checkpoint))
    else:
        print('Training...')
        train(reptile, train_set, test_set, checkpoint, rng, **train_kwargs)


def print_accuracies(reptile, rng, named_sets, evaluate_kwargs):
    """Evaluate on each (name, classes) pair and print '<name> accuracy: ...' lines."""
    print('Evaluating...')
    for name, classes in named_sets:
        accuracy = evaluate(reptile, classes, rng, name=name.lower(), **evaluate_kwargs)
        print('%s accuracy: %s' % (name, accuracy))
