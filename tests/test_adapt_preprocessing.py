"""adapt.py's preprocessing of people's images: framed as Omniglot's characters for Omniglot's
models (handwriting.py), squashed whole for other runs and with preprocess='raw'; and the
command line's use of the model that ships with the package."""

import json

import numpy as np
from PIL import Image, ImageDraw
import pytest

from supervised_reptile import handwriting, images
from supervised_reptile.adapt import Adapter
from supervised_reptile.demo import SHIPPED_MODEL
from supervised_reptile.errors import UserError

from test_adapt import run_adapt
from test_folder import trained_run


def shape(kind, size=160, corner=False):
    """A grey drawing of a bar, a ring or a zigzag: in a corner and small, or centred."""
    image = Image.new('L', (size, size), 255)
    draw = ImageDraw.Draw(image)
    scale, offset = (size / 400, size * 0.05) if corner else (size / 150, size * 0.17)
    points = {'bar': [(40, 0), (40, 100)], 'ring': None,
              'zigzag': [(0, 0), (30, 100), (60, 0), (90, 100)]}[kind]
    if points is None:
        draw.ellipse([offset, offset, offset + 100 * scale, offset + 100 * scale], outline=0,
                     width=max(1, round(6 * scale)))
    else:
        draw.line([(offset + x * scale, offset + y * scale) for x, y in points], fill=0,
                  width=max(1, round(6 * scale)))
    return image


SUPPORT = {name: [shape(name)] for name in ('bar', 'ring', 'zigzag')}
QUERIES = [shape('zigzag', corner=True), shape('ring', 120, corner=True), shape('bar', 90)]


@pytest.fixture(scope='module')
def shipped():
    return Adapter.from_checkpoint(SHIPPED_MODEL)


@pytest.fixture(scope='module')
def shipped_raw():
    return Adapter.from_checkpoint(SHIPPED_MODEL, preprocess='raw')


def probabilities(adapter, support, queries):
    predictions = adapter.fit(support).predict(queries)
    return np.array([[p.probabilities[name] for name in sorted(support)] for p in predictions])


def as_arrays(support, queries, preprocess):
    """The support and queries as the model's input arrays, preprocessed here."""
    def array(image):
        return images.to_array(preprocess(image), 28, 1)
    return ({name: [array(image) for image in drawings] for name, drawings in support.items()},
            [array(image) for image in queries])


@pytest.mark.slow
def test_omniglots_models_frame_images_and_a_folders_run_squashes_them(shipped,
                                                                        tmp_path_factory):
    assert shipped.preprocess == 'handwriting'
    assert Adapter.from_checkpoint(str(trained_run(tmp_path_factory).directory)).preprocess == \
        'raw'


@pytest.mark.slow
def test_images_are_framed_then_squashed_and_arrays_are_taken_as_they_are(shipped, shipped_raw):
    framed = probabilities(shipped, SUPPORT, QUERIES)
    np.testing.assert_array_equal(
        framed, probabilities(shipped, *as_arrays(SUPPORT, QUERIES, handwriting.frame)))
    raw = probabilities(shipped_raw, SUPPORT, QUERIES)
    np.testing.assert_array_equal(raw, probabilities(shipped, *as_arrays(SUPPORT, QUERIES,
                                                                           lambda i: i)))
    assert not np.allclose(framed, raw, atol=1e-3)


def test_framing_reads_a_drawing_small_in_a_corner_as_the_same_drawing(shipped):
    """The shipped model tells the three shapes apart however small or off-centre they are."""
    predictions = shipped.fit(SUPPORT).predict(QUERIES)
    assert [p.predicted for p in predictions] == ['zigzag', 'ring', 'bar']


def test_an_image_given_as_a_path_or_as_a_pil_image_is_read_alike(shipped, tmp_path):
    paths = []
    for index, image in enumerate(QUERIES):
        paths.append(str(tmp_path / ('q%d.png' % index)))
        image.save(paths[-1])
    np.testing.assert_array_equal(probabilities(shipped, SUPPORT, paths),
                                  probabilities(shipped, SUPPORT, QUERIES))


def test_an_unknown_preprocessing_is_refused_naming_the_choices():
    with pytest.raises(UserError, match="no preprocessing 'framed'; give one of handwriting, raw"):
        Adapter.from_checkpoint(SHIPPED_MODEL, preprocess='framed')


@pytest.mark.slow
def test_the_command_without_a_checkpoint_adapts_the_shipped_model_and_says_so(shipped,
                                                                            shipped_raw,
                                                                            tmp_path):
    for name, drawings in SUPPORT.items():
        (tmp_path / 'support' / name).mkdir(parents=True)
        drawings[0].save(tmp_path / 'support' / name / 'one.png')
    for index, image in enumerate(QUERIES):
        image.save(tmp_path / ('q%d.png' % index))
    queries = ['q%d.png' % index for index in range(len(QUERIES))]
    for flags, adapter in (((), shipped), (('--preprocess', 'raw'), shipped_raw)):
        process = run_adapt(tmp_path, '--support', 'support', '--query', *queries, '--json',
                            *flags)
        assert process.returncode == 0, process.stderr
        assert 'no --checkpoint given; adapting the Omniglot model that ships with the ' \
            'package' in process.stderr
        printed = np.array([[p['probabilities'][name] for name in sorted(SUPPORT)]
                            for p in json.loads(process.stdout)])
        np.testing.assert_allclose(printed, probabilities(adapter, SUPPORT, QUERIES),
                                   rtol=1e-6, atol=1e-7)


def test_one_image_where_a_list_is_wanted_is_refused_saying_so(shipped, tmp_path):
    QUERIES[0].save(tmp_path / 'q.png')
    with pytest.raises(UserError, match='predict takes a list of queries, not one image'):
        shipped.fit(SUPPORT).predict(str(tmp_path / 'q.png'))
    with pytest.raises(UserError, match='class bar of the support set is one image, not a list'):
        shipped.fit(dict(SUPPORT, bar=str(tmp_path / 'q.png')))


def test_a_support_folder_of_images_without_class_folders_is_refused_saying_how(shipped,
                                                                               tmp_path):
    QUERIES[0].save(tmp_path / 'a.png')
    with pytest.raises(UserError, match="holds images but no class folders; put each class's "):
        shipped.fit(str(tmp_path))


def test_an_image_without_ink_is_read_as_blank_paper_and_named(shipped, tmp_path):
    Image.new('L', (60, 40), 90).save(tmp_path / 'grey.png')
    shipped.blank.clear()
    shipped.fit(SUPPORT).predict([str(tmp_path / 'grey.png'), QUERIES[0]])
    assert shipped.blank == [str(tmp_path / 'grey.png')]
