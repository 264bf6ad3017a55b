"""Omniglot reading, caching, split and rotations."""

import random

import numpy as np
from PIL import Image
import pytest

from supervised_reptile import omniglot
from supervised_reptile.errors import UserError
from supervised_reptile.sampling import ImageClasses

from conftest import write_omniglot_tree


@pytest.fixture
def tree(tmp_path):
    return write_omniglot_tree(tmp_path / 'omniglot')


def test_characters_are_read_in_sorted_order_as_28x28_zero_or_255(tree):
    classes = omniglot.read_dataset(str(tree))
    assert classes.names[:5] == ['Alphabet0/character01', 'Alphabet0/character02',
                                 'Alphabet0/character03', 'Alphabet0/character04',
                                 'Alphabet1/character01']
    assert classes.images.shape == (12 * 20, 28, 28, 1)
    assert set(np.unique(classes.images)) <= {0, 255}
    assert list(classes.counts) == [20] * 12


def test_resize_is_nearest_neighbour_with_ink_dark(tree):
    path = tree / 'Alphabet0' / 'character01' / '0000_01.png'
    pixels = np.asarray(Image.open(path), dtype=bool)
    image = omniglot.read_dataset(str(tree)).images[0, ..., 0]
    # Nearest sampling of 105 -> 28 takes the source pixel under each target pixel's centre.
    source = ((np.arange(28) + 0.5) * 105 / 28).astype(int)
    np.testing.assert_array_equal(image, pixels[np.ix_(source, source)] * 255)


def test_rotations_are_counter_clockwise_and_separate_classes(tree):
    classes = omniglot.read_dataset(str(tree))
    augmented = omniglot.augment_dataset(classes)
    assert len(augmented) == 4 * len(classes)
    assert augmented.names[:4] == ['Alphabet0/character01@%d' % a for a in (0, 90, 180, 270)]
    original = Image.fromarray(classes.class_images(0)[3, ..., 0])
    for quarter in range(4):
        rotated = np.asarray(original.rotate(90 * quarter))
        np.testing.assert_array_equal(augmented.class_images(quarter)[3, ..., 0], rotated)


def test_decoded_images_are_cached_and_the_cache_follows_the_data(tree, monkeypatch):
    first = omniglot.read_dataset(str(tree))
    assert (tree / omniglot.CACHE_NAME).is_file()

    def no_decoding(path):
        raise AssertionError('decoded %s despite the cache' % path)
    with monkeypatch.context() as patch:
        patch.setattr(omniglot, '_read_image', no_decoding)
        cached = omniglot.read_dataset(str(tree))
    np.testing.assert_array_equal(cached.images, first.images)
    assert cached.names == first.names

    changed = tree / 'Alphabet0' / 'character01' / '0000_01.png'
    Image.fromarray(np.zeros((105, 105), dtype=bool)).convert('1').save(changed)
    reread = omniglot.read_dataset(str(tree))
    assert reread.images[0].max() == 0 and first.images[0].max() == 255


def test_missing_data_directory_names_fetch_data(tmp_path):
    with pytest.raises(UserError, match='fetch_data.sh'):
        omniglot.read_dataset(str(tmp_path / 'nowhere'))
    (tmp_path / 'empty').mkdir()
    with pytest.raises(UserError, match='fetch_data.sh'):
        omniglot.read_dataset(str(tmp_path / 'empty'))


def test_corrupt_image_is_named(tree):
    bad = tree / 'Alphabet2' / 'character03' / '0002_07.png'
    bad.write_bytes(b'not a png at all')
    with pytest.raises(UserError, match='0002_07.png'):
        omniglot.read_dataset(str(tree))


def test_split_is_a_seeded_shuffle_of_the_sorted_characters(tree):
    classes = omniglot.read_dataset(str(tree))
    train, test = omniglot.split_dataset(classes, seed=0, num_train=9)
    assert len(train) == 9 and len(test) == 3
    assert sorted(train.names + test.names) == classes.names
    again, _ = omniglot.split_dataset(classes, seed=0, num_train=9)
    other, _ = omniglot.split_dataset(classes, seed=1, num_train=9)
    assert again.names == train.names and other.names != train.names


def reference_split(names, seed, num_train=omniglot.NUM_TRAIN_CHARACTERS):
    """The reference's split as its script does it: seed Python's global generator, then shuffle
    the list of characters in their sorted order and cut it."""
    random.seed(seed)
    shuffled = list(names)
    random.shuffle(shuffled)
    return shuffled[:num_train], shuffled[num_train:]


@pytest.mark.parametrize('seed', [0, 1])
def test_split_is_the_reference_split_without_the_data(seed):
    names = ['Alphabet%02d/character%02d' % (a, c) for a in range(50) for c in range(1, 34)][:1623]
    classes = ImageClasses.from_arrays([np.full((1, 1, 1, 1), i % 256, np.uint8)
                                        for i in range(len(names))], names)
    train, test = omniglot.split_dataset(classes, seed)
    expected_train, expected_test = reference_split(names, seed)
    assert train.names == expected_train and test.names == expected_test
    assert len(train) == 1200 and len(test) == 423
