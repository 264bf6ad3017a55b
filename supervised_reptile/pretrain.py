"""
Pre-training the backbone as a plain classifier over every training class, before meta-training.

Reptile spends most of its compute learning generic image features; the 2022 review (section
6.5) warm-starts it from a classifier of all training classes instead. The classifier here is
the meta-learner's own architecture with a head over every training class (Omniglot: the 4,800
rotated characters; Mini-ImageNet: the 64 classes), trained with mini-batch AdamW through the
inner loop of inner_loop.py: Adam (beta1 0.9, beta2 0.999, epsilon 1e-7, as Keras' AdamW) on the
summed cross-entropy, the weights shrunk by learning rate x weight decay before each step. That is
AdamW's decoupled weight decay, but for the gradient being taken at the shrunk weights (the inner
loop's order, the reference's), a difference of the order of learning rate x weight decay. The
same few images of every class are held out; their loss is measured every eval_interval steps,
and training stops once it has not improved for `patience` measurements,
keeping the weights of the best one. Meta-training then starts from those blocks with its own,
freshly initialized N-way head.

Curves go to TensorBoard under <checkpoint>/pretrain/train and <checkpoint>/pretrain/holdout;
the backbone is saved in <checkpoint>/pretrained_backbone (backbone.py), where another run can
load it instead of pre-training again.
"""

from dataclasses import asdict, dataclass
import os
import time

import numpy as np
import tensorflow as tf

from . import backbone
from .errors import UserError
from .progress import Progress
from .inner_loop import Adam, InnerLoop, InnerState, gather_inputs
from .networks import TaskNetwork

LOG_DIR = 'pretrain'
# Pre-training draws from its own generator, so the tasks meta-training samples afterwards are
# those of a run without pre-training (same --seed).
_RNG_STREAM = 1


@dataclass
class Settings:
    """How to pre-train: steps at most, AdamW's step size and decoupled weight decay, batch size,
    images held out per class, steps between held-out measurements, measurements without
    improvement before stopping, and the seed of the batch order and the held-out choice."""
    iterations: int
    learning_rate: float = 1e-3
    weight_decay: float = 1e-4
    batch_size: int = 64
    holdout_per_class: int = 2
    eval_interval: int = 250
    patience: int = 4
    seed: int = 0


def prepare_backbone(reptile, train_set, directory, settings=None, source=None, log_fn=print):
    """Give reptile's model the backbone its meta-training starts from: loaded from the source
    directory, or pre-trained on train_set with settings (and saved in <directory>/
    pretrained_backbone), or with neither, left as initialized. The head is never touched.

    Returns the record of the backbone for the run's configuration: where it comes from and how
    many parameters meta-training and evaluation train (freezing leaves some out)."""
    if source is not None:
        pretraining = {'loaded': True, **backbone.load(reptile.model, source), 'path': source}
    elif settings is not None:
        pretraining = {'loaded': False, **pretrain(reptile.model, train_set, directory, settings,
                                                   log_fn)}
    else:
        pretraining = None
    return {'pretraining': pretraining,
            'meta_trained_parameters': backbone.parameter_count(reptile.meta_trained_variables),
            'fine_tuned_parameters': backbone.parameter_count(reptile.fine_tuned_variables)}


def pretrain(model, train_set, directory, settings, log_fn=print):
    """Pre-train a classifier of model's architecture over every class of train_set, give model
    its blocks and save them in <directory>/pretrained_backbone; return the saved record."""
    log_fn('Pre-training the backbone on %d classes...' % len(train_set))
    started = time.monotonic()
    classifier = backbone.with_new_head(model, len(train_set))
    record = train_classifier(classifier, train_set, settings, os.path.join(directory, LOG_DIR),
                              log_fn)
    backbone.copy_weights(classifier, model)
    path = os.path.join(directory, backbone.DIRECTORY)
    record.update(seconds=time.monotonic() - started, settings=asdict(settings), path=path)
    backbone.save(model, path, record)
    log_fn('pre-trained backbone saved in %s (%.0f s)' % (path, record['seconds']))
    return record


@dataclass
class Examples:
    """Labelled images: indices into an ImageClasses' image array and their class ids."""
    indices: np.ndarray
    labels: np.ndarray


def holdout_split(classes, per_class, rng):
    """(training, held-out) Examples of every class, per_class images of each held out.

    The held-out positions are the same in every class: omniglot.augment_dataset keeps the
    drawings of a character in the same order in its four rotations, so a drawing held out of
    one rotation is held out of all four and the held-out loss measures unseen drawings."""
    smallest = int(np.argmin(classes.counts))
    if per_class >= classes.counts[smallest]:
        raise UserError('--pretrain-holdout %d leaves no image to pre-train on in class %s, which '
                        'has %d; lower --pretrain-holdout'
                        % (per_class, classes.names[smallest], classes.counts[smallest]))
    positions = rng.choice(classes.counts[smallest], size=per_class, replace=False)
    held_out = np.zeros(len(classes.images), bool)
    held_out[(classes.offsets[:, None] + positions[None, :]).ravel()] = True
    labels = np.repeat(np.arange(len(classes)), classes.counts)
    indices = np.arange(len(classes.images))
    return (Examples(indices[~held_out], labels[~held_out]),
            Examples(indices[held_out], labels[held_out]))


def train_classifier(classifier, classes, settings, log_dir, log_fn=print):
    """Train classifier on classes with early stopping on the held-out loss (see the module
    docstring); leave it with the best weights and return a record of the training."""
    rng = np.random.default_rng((settings.seed, _RNG_STREAM))
    training, held_out = holdout_split(classes, settings.holdout_per_class, rng)
    held_out_batches = _whole_batches(held_out, settings.batch_size, rng)
    steps = ClassifierSteps(classifier, settings, classes.images)
    writers = {name: tf.summary.create_file_writer(os.path.join(log_dir, name))
               for name in ('train', 'holdout')}
    best = BestWeights()
    progress = Progress(settings.iterations)
    for chunk in _epoch_batches(len(training.indices), settings.batch_size,
                                settings.eval_interval, settings.iterations, rng):
        train_metrics = steps.train(training.indices[chunk], training.labels[chunk])
        progress.advance(len(chunk))
        held_out_metrics = steps.evaluate(*held_out_batches)
        improved = best.update(progress.done, held_out_metrics, classifier)
        _log_scalars(writers, progress.done, train=train_metrics, holdout=held_out_metrics)
        log_fn('pretrain step %d: train loss=%f accuracy=%f, held-out loss=%f accuracy=%f%s (%s)'
               % (progress.done, *train_metrics, *held_out_metrics,
                  ' (best)' if improved else '', progress.describe('steps')))
        if best.measurements_since >= settings.patience:
            log_fn('pretrain: no better held-out loss in %d measurements; stopping'
                   % settings.patience)
            break
    if best.weights is None:
        raise UserError('pre-training diverged (the held-out loss was never finite); lower '
                        '--pretrain-lr')
    classifier.set_weights(best.weights)
    return {'iterations': progress.done, 'best_iteration': best.step,
            'best_holdout_loss': best.loss, 'best_holdout_accuracy': best.accuracy,
            'classes': len(classes), 'holdout_images': len(held_out.indices)}


class ClassifierSteps:
    """A classifier's compiled training steps (AdamW, see the module's docstring) and held-out
    measurement, on one image array kept on the device (uint8, gathered and scaled inside the
    graph)."""

    def __init__(self, model, settings, images):
        self.model = model
        self.network = TaskNetwork(model)
        rule = Adam(settings.learning_rate, beta_1=0.9, beta_2=0.999, epsilon=1e-7)
        self.inner_loop = InnerLoop(self.network, rule,
                                    weight_decay=1 - settings.learning_rate * settings.weight_decay)
        self.state = InnerState(rule, 1, self.network.shapes)
        self.images = tf.constant(images)
        # Unknown leading sizes: the last chunk of steps may be shorter, without a retrace.
        batches = [tf.TensorSpec([None, None], tf.int32)] * 2
        self._train = tf.function(self._train_graph, input_signature=batches)
        self._evaluate = tf.function(self._evaluate_graph, input_signature=batches)

    def train(self, indices, labels):
        """One AdamW step per row of indices/labels [steps, batch]; return the mean loss and the
        accuracy over the steps (each measured before its update)."""
        return _floats(self._train(_int32(indices), _int32(labels)))

    def evaluate(self, indices, labels):
        """Mean loss and accuracy over batches [batches, batch], without training."""
        return _floats(self._evaluate(_int32(indices), _int32(labels)))

    def _train_graph(self, indices, labels):
        totals = tf.zeros(2)
        for variable, value in zip(self.state.weights, self.network.read()):
            variable.assign(value[None])
        for step in tf.range(tf.shape(indices)[0]):
            losses, logits = self.inner_loop.step(
                self.state, gather_inputs(self.images, indices[step])[None], labels[step][None])
            totals += tf.stack([losses[0] / tf.cast(tf.shape(labels)[1], tf.float32),
                                _fraction_right(logits[0], labels[step])])
        self.network.assign([weights[0] for weights in self.state.read_weights()])
        return _means(totals, indices)

    def _evaluate_graph(self, indices, labels):
        totals = tf.zeros(2)
        for batch in tf.range(tf.shape(indices)[0]):
            totals += tf.stack(self._loss_and_correct(indices[batch], labels[batch]))
        return _means(totals, indices)

    def _loss_and_correct(self, indices, labels):
        """Mean cross-entropy of a batch, and the fraction of it predicted right."""
        logits = self.model(gather_inputs(self.images, indices), training=True)
        loss = tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(labels, logits))
        return loss, _fraction_right(logits, labels)


class BestWeights:
    """The lowest held-out loss so far, when it was measured and the weights it was measured on."""

    def __init__(self):
        self.loss = self.accuracy = self.step = self.weights = None
        self.measurements_since = 0

    def update(self, step, metrics, model):
        """Keep model's weights if metrics (loss, accuracy) beat the best; return whether so."""
        loss, accuracy = metrics
        if not (np.isfinite(loss) and (self.loss is None or loss < self.loss)):
            self.measurements_since += 1
            return False
        self.loss, self.accuracy, self.step = loss, accuracy, step
        self.weights = model.get_weights()
        self.measurements_since = 0
        return True


def _epoch_batches(num_examples, batch_size, chunk_steps, total_steps, rng):
    """Positions into the examples for total_steps batches, chunk_steps batches [steps, batch_size]
    at a time: reshuffled epochs one after the other, cut into batches that may straddle two (as
    sampling.mini_batches cuts them), drawn as needed so that a long run holds no more than a
    chunk in memory."""
    stream = np.zeros(0, np.int64)
    for start in range(0, total_steps, chunk_steps):
        steps = min(chunk_steps, total_steps - start)
        needed = steps * batch_size
        while len(stream) < needed:
            stream = np.concatenate([stream, rng.permutation(num_examples)])
        yield stream[:needed].reshape(steps, batch_size)
        stream = stream[needed:]


def _whole_batches(examples, batch_size, rng):
    """(indices, labels) of the examples shuffled into batches [batches, batch_size]. Batch norm
    normalises with batch statistics, so held-out batches mix classes and are as large as the
    training batches; the few examples beyond whole batches are left out."""
    order = rng.permutation(len(examples.indices))
    size = min(batch_size, len(order))
    order = order[:len(order) // size * size].reshape(-1, size)
    return examples.indices[order], examples.labels[order]


def _log_scalars(writers, step, **metrics):
    for name, (loss, accuracy) in metrics.items():
        with writers[name].as_default():
            tf.summary.scalar('loss', loss, step=step)
            tf.summary.scalar('accuracy', accuracy, step=step)
        writers[name].flush()


def _fraction_right(logits, labels):
    right = tf.equal(tf.argmax(logits, -1, output_type=tf.int32), labels)
    return tf.reduce_mean(tf.cast(right, tf.float32))


def _means(totals, indices):
    return totals / tf.cast(tf.shape(indices)[0], tf.float32)


def _int32(array):
    return tf.constant(np.asarray(array, np.int32))


def _floats(tensor):
    return tuple(float(value) for value in tensor.numpy())
