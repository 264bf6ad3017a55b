"""
Adapt a meta-trained model to a few-shot task of one's own images, and classify new images.

    python -m supervised_reptile.adapt [--checkpoint DIR] --support SUPPORT_DIR --query PATH [PATH...] [--json]

DIR is a finished training run; without --checkpoint, the Omniglot model that ships with the
package. SUPPORT_DIR holds <class>/<images>: 1 or more images of each of 2 to N classes, N the
ways the model was trained for. A query PATH is an image or a folder of images. The model
fine-tunes on the support images exactly as the run's final evaluation fine-tunes on a task's
(evaluation.py, with the run's --eval-iters, --eval-batch, --transductive, --weight-decay and
optimizer, read from its config.json; the same flags here override them), then gives each
query's class and the probability of every class.

An image becomes the model's input as --preprocess says: `handwriting` (the default for Omniglot's
models) frames it as Omniglot frames its characters (handwriting.py) and then squashes it as
the data loaders do; `raw` (the default for other runs') only squashes it (images.py). A colour
image for a grey model is converted to grey, and the other way round, with a note.

In Python:

    adapter = Adapter.from_checkpoint('ckpt_o15t')
    adapter.fit({'alpha': ['a1.png'], 'beta': ['b1.png', 'b2.png']})   # or a support folder
    for prediction in adapter.predict(['query.png']):
        print(prediction.predicted, prediction.probabilities)
"""

# pylint: disable=wrong-import-position
if __name__ == '__main__':
    from . import cli  # as a command, TensorFlow loads through cli, quietly

from dataclasses import dataclass
import json
import os
import sys

import numpy as np
from PIL import Image

from . import checkpoints, folder, handwriting, images, recipes, results
from .demo import SHIPPED_MODEL
from .errors import UserError

# The run's flags that adaptation may override.
OVERRIDES = ('eval-iters', 'eval-batch', 'transductive', 'weight-decay', 'seed')
# How an image becomes the model's input: framed as Omniglot frames its characters first
# (handwriting.py), or squashed whole as the run's training images were (images.py).
PREPROCESSING = ('handwriting', 'raw')
ONE_IMAGE = (str, os.PathLike, Image.Image)  # where a list of images is wanted


def default_preprocessing(dataset):
    """Omniglot's models read people's handwriting framed; a folder's run reads its images as
    it was trained on them."""
    return 'handwriting' if dataset == 'omniglot' else 'raw'


@dataclass(frozen=True)
class Prediction:
    """A query's predicted class and the probability of every class of the support set."""
    query: str
    predicted: str
    probabilities: dict


class Adapter:
    """A meta-trained run's learner (learner.py) with the settings of its run's evaluation,
    fine-tuned on a support set (fit) to classify queries (predict). Fine-tuning starts afresh
    from the meta-learned weights and optimizer state for every predict; nothing of it is
    kept. preprocess (one of PREPROCESSING) says how an image becomes the model's input."""

    def __init__(self, learner, values, preprocess='raw'):
        if preprocess not in PREPROCESSING:
            raise UserError('no preprocessing %r; give one of %s' % (preprocess,
                                                                    ', '.join(PREPROCESSING)))
        self.learner = learner
        self.values = values
        self.preprocess = preprocess
        self.image_shape = tuple(learner.model.inputs[0].shape[1:])
        self.ways = values['classes']
        self.converted = 0  # images converted to the model's number of channels
        self.blank = []  # images in which framing found no ink
        self._support = None

    @classmethod
    def from_checkpoint(cls, directory, preprocess=None, **overrides):
        """The model of a finished training run in directory (its newest checkpoint) with the
        settings its config.json records; overrides (eval_iters=..., transductive=..., the names
        of OVERRIDES with '_' for '-') replace recorded settings. preprocess is one of
        PREPROCESSING; by default, default_preprocessing of the run's data set."""
        checkpoint = checkpoints.latest(directory)
        if checkpoint is None:
            raise UserError('no checkpoint in %s; point --checkpoint at a trained run' % directory)
        record = results.read_if_present(directory, results.CONFIG)
        if record is None:
            raise UserError('%s holds no %s to say how its model was trained; point --checkpoint '
                            'at a directory a run script trained' % (directory, results.CONFIG))
        if results.read_if_present(directory, results.RESULTS) is None:
            raise UserError('%s holds a run still training (its newest checkpoint is %s); adapt '
                            'it once the run has finished' % (directory, checkpoint))
        values = dict(record['flags'], **{name.replace('_', '-'): value
                                          for name, value in overrides.items()})
        values.update({'parallel-meta-batch': False, 'distribute': 'none', 'xla': False,
                       'eval-tasks-batch': 1})
        learner = recipes.build_learner(recipes.build_model(record['dataset'], values), values)
        checkpoints.restore_latest(learner.algorithm, directory)
        return cls(learner, values, preprocess or default_preprocessing(record['dataset']))

    def fit(self, support):
        """Take the support set: a folder of <class>/<images>, or {class name: [images]};
        classes in sorted order of their names (images: see predict)."""
        if isinstance(support, (str, os.PathLike)):
            support = {name: [os.path.join(support, name, f) for f in
                              folder.image_files(os.path.join(support, name))]
                       for name in _support_classes(support)}
        if not 2 <= len(support) <= self.ways:
            raise UserError('the support set has %d %s; this model tells 2 to %d apart' % (
                len(support), 'class' if len(support) == 1 else 'classes', self.ways))
        names = sorted(support)
        single = [name for name in names if isinstance(support[name], ONE_IMAGE)]
        if single:
            raise UserError('class %s of the support set is one image, not a list of them; give '
                            '[image]' % single[0])
        arrays = [[self._image(item) for item in support[name]] for name in names]
        empty = [name for name, class_arrays in zip(names, arrays) if not class_arrays]
        if empty:
            raise UserError('class %s of the support set has no images' % empty[0])
        self._support = (names, arrays)
        return self

    def predict(self, queries):
        """The Prediction of each query: an image (a path or a PIL image), preprocessed as
        self.preprocess says, or an array of the model's input shape, taken as it is: uint8
        (0-255, as images are read) or float (0-1, as the model takes them)."""
        if self._support is None:
            raise UserError('fit a support set before predicting')
        names, arrays = self._support
        support = [array for class_arrays in arrays for array in class_arrays]
        labels = np.repeat(np.arange(len(names)), [len(a) for a in arrays])
        if isinstance(queries, ONE_IMAGE):
            raise UserError('predict takes a list of queries, not one image; give [image]')
        if not queries:
            raise UserError('no query to predict; give one or more images')
        query_arrays = [self._image(query) for query in queries]
        # The learner gives the model the values it is given: images as floats in [0, 1].
        support, query_arrays = _as_floats(_one_type(support)), _as_floats(_one_type(query_arrays))
        logits = self.learner.predict(support, labels, query_arrays,
                                      replacement=self.values['replacement'])
        probabilities = _softmax(logits[:, :len(names)])
        return [Prediction(_label(query, index), names[int(np.argmax(p))],
                           {name: float(value) for name, value in zip(names, p)})
                for index, (query, p) in enumerate(zip(queries, probabilities))]

    def _image(self, item):
        """An image (path or PIL image) or array as the model's input array: uint8, or float32
        in [0, 1]."""
        if not isinstance(item, (str, os.PathLike, Image.Image)):
            array = np.asarray(item)
            if array.shape != self.image_shape:
                raise UserError('an image array of shape %s for a model of %s images; give '
                                'the image as a path or a PIL image to have it preprocessed'
                                % (array.shape, self.image_shape))
            if array.dtype == np.uint8:
                return array
            if array.dtype.kind not in 'fiub' or not 0 <= array.min() <= array.max() <= 1:
                raise UserError('an image array of %s values outside [0, 1]; give uint8 '
                                'images (0-255) or floats in [0, 1]' % array.dtype)
            return array.astype(np.float32)
        size, _, channels = self.image_shape
        image = item if isinstance(item, Image.Image) else images.load(item)
        self.converted += images.colour_bands(image) != channels
        if self.preprocess == 'handwriting':
            image = handwriting.frame(image)
            if image.getextrema()[0] == 255:
                self.blank.append(str(item) if isinstance(item, (str, os.PathLike))
                                  else 'a PIL image')
        return images.to_array(image, size, channels)


def _one_type(arrays):
    """Image arrays stacked: uint8 if all are, float32 in [0, 1] otherwise."""
    if all(array.dtype == np.uint8 for array in arrays):
        return np.stack(arrays)
    return np.stack([_as_floats(array) for array in arrays])


def _as_floats(array):
    """uint8 images as the model's float inputs (the compiled step's scaling); floats kept."""
    return array.astype(np.float32) / np.float32(255) if array.dtype == np.uint8 else array


def _support_classes(directory):
    if not os.path.isdir(directory):
        raise UserError('no support folder %s; give a folder of <class>/<images>' % directory)
    names = folder.class_folders(directory)
    if not names and folder.image_files(directory):
        raise UserError('support folder %s holds images but no class folders; put each '
                        "class's images in a folder of its own, %s/<class>/"
                        % (directory, directory))
    return names


def _label(query, index):
    return str(query) if isinstance(query, (str, os.PathLike)) else 'query %d' % index


def _softmax(logits):
    shifted = np.exp(logits - logits.max(axis=-1, keepdims=True))
    return shifted / shifted.sum(axis=-1, keepdims=True)


def query_paths(paths):
    """The image files named by paths: each an image, or a folder of images (sorted)."""
    found = []
    for path in paths:
        if os.path.isdir(path):
            files = folder.image_files(path)
            if not files:
                raise UserError('query folder %s holds no images' % path)
            found += [os.path.join(path, f) for f in files]
        elif os.path.isfile(path):
            found.append(path)
        else:
            raise UserError('no query image or folder %s; give image files or folders of '
                            'images' % path)
    return found


def describe(prediction):
    """A prediction as one line of text."""
    ranked = sorted(prediction.probabilities.items(), key=lambda item: -item[1])
    return '%s: %s (%s)' % (prediction.query, prediction.predicted,
                            ', '.join('%s %.3f' % item for item in ranked))


def main(argv):
    """The command line (see the module's docstring); query paths may follow --query's."""
    flag_values = args.flag_values()
    given = [name for name in args.explicit_flags()
             if name not in OVERRIDES + ('checkpoint', 'support', 'query', 'json', 'preprocess')]
    if given:
        raise UserError('--%s is a setting of the trained run, not of its adaptation; adapt '
                        'takes --%s' % (given[0], ', --'.join(OVERRIDES)))
    overrides = {name.replace('-', '_'): flag_values[name] for name in OVERRIDES
                 if args.FLAGS[name].present}
    if args.FLAGS['checkpoint'].present:
        directory = flag_values['checkpoint']
    else:
        directory = SHIPPED_MODEL
        print('note: no --checkpoint given; adapting the Omniglot model that ships with the '
              'package', file=sys.stderr)
    adapter = Adapter.from_checkpoint(directory, preprocess=flag_values['preprocess'],
                                      **overrides)
    adapter.fit(flag_values['support'])
    predictions = adapter.predict(query_paths(flag_values['query'] + argv[1:]))
    if adapter.blank:
        print('note: %d images have no ink (all one tone) and were read as blank paper: %s' % (
            len(adapter.blank), ', '.join(adapter.blank)), file=sys.stderr)
    if adapter.converted:
        print('note: %d images converted to %s, as this model takes' % (
            adapter.converted, 'grey' if adapter.image_shape[-1] == 1 else 'RGB'),
              file=sys.stderr)
    if flag_values['json']:
        print(json.dumps([{'query': p.query, 'predicted': p.predicted,
                           'probabilities': p.probabilities} for p in predictions], indent=2))
    else:
        print('\n'.join(describe(prediction) for prediction in predictions))


if __name__ == '__main__':
    from . import args  # the command's flags, defined only when it runs
    args.define_adapt_flags()
    cli.run(main)
