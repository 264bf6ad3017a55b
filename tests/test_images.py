"""images.py: one preprocessing for training data and a user's own images (squash, convert)."""

import numpy as np
from PIL import Image
import pytest

from supervised_reptile import folder, images, omniglot
from supervised_reptile.errors import UserError

from conftest import write_omniglot_tree


def nearest_rows(source_size, size):
    """The source row (or column) under the centre of each of size target rows."""
    return ((np.arange(size) + 0.5) * source_size / size).astype(int)


def colour_image(height=30, width=47, seed=0):
    return Image.fromarray(np.random.default_rng(seed).integers(0, 256, (height, width, 3),
                                                                dtype=np.uint8), 'RGB')


@pytest.mark.parametrize('size', [28, 20, 64])
def test_an_image_is_squashed_with_nearest_neighbour_sampling_to_size_by_size(size):
    image = colour_image()
    array = images.to_array(image, size, 3)
    assert array.shape == (size, size, 3) and array.dtype == np.uint8
    pixels = np.asarray(image)
    # Not Pillow's default (bicubic) resampling: every pixel is a source pixel, unmixed.
    np.testing.assert_array_equal(array, pixels[np.ix_(nearest_rows(30, size),
                                                       nearest_rows(47, size))])


def test_a_colour_image_for_one_channel_is_converted_to_grey():
    image = colour_image()
    array = images.to_array(image, 16, 1)
    assert array.shape == (16, 16, 1) and array.dtype == np.uint8
    grey = np.asarray(image.convert('L'))
    np.testing.assert_array_equal(array[..., 0], grey[np.ix_(nearest_rows(30, 16),
                                                             nearest_rows(47, 16))])


def test_a_grey_image_for_three_channels_is_repeated_in_every_channel():
    grey = np.random.default_rng(1).integers(0, 256, (9, 9), dtype=np.uint8)
    array = images.to_array(Image.fromarray(grey, 'L'), 9, 3)
    assert array.shape == (9, 9, 3) and array.dtype == np.uint8
    for channel in range(3):
        np.testing.assert_array_equal(array[..., channel], grey)


def test_a_one_bit_image_keeps_its_polarity_ink_0_paper_255():
    ink = np.zeros((10, 10), dtype=bool)
    ink[2:5, 3:8] = True
    array = images.to_array(Image.fromarray(~ink).convert('1'), 10, 1)
    assert array.dtype == np.uint8
    np.testing.assert_array_equal(array[..., 0], np.where(ink, 0, 255))


def test_an_omniglot_png_becomes_exactly_what_training_on_omniglot_saw(tmp_path):
    tree = write_omniglot_tree(tmp_path / 'omniglot', alphabets=1, characters=2, drawings=3)
    classes = omniglot.read_dataset(str(tree))
    paths = sorted(tree.glob('Alphabet0/character*/*.png'))
    assert len(paths) == len(classes.images) == 6
    for path, trained_on in zip(paths, classes.images):
        np.testing.assert_array_equal(images.read(str(path), 28, 1), trained_on)


def test_an_omniglot_png_becomes_the_same_array_through_a_folder_data_set(tmp_path):
    tree = write_omniglot_tree(tmp_path / 'omniglot', alphabets=1, characters=2, drawings=3)
    expected = omniglot.read_dataset(str(tree)).images
    as_folder = folder.read_classes(str(tree / 'Alphabet0'), 28, 1)
    np.testing.assert_array_equal(as_folder.images, expected)


def rgba_with_transparent_corner():
    pixels = np.zeros((4, 4, 4), np.uint8)  # black, fully transparent
    pixels[..., 3] = 0
    pixels[1:, 1:] = (10, 20, 30, 255)  # opaque dark pixels
    return Image.fromarray(pixels, 'RGBA')


@pytest.mark.parametrize('channels', [1, 3])
def test_transparent_pixels_become_white(channels):
    array = images.to_array(rgba_with_transparent_corner(), 4, channels)
    assert array.shape == (4, 4, channels)
    assert (array[0, :] == 255).all() and (array[:, 0] == 255).all()
    opaque = array[1:, 1:]
    assert (opaque < 40).all()


def test_half_transparent_pixels_are_laid_on_white():
    pixels = np.zeros((2, 2, 2), np.uint8)
    pixels[..., 1] = 128  # black ink, half covering
    array = images.to_array(Image.fromarray(pixels, 'LA'), 2, 1)
    assert (np.abs(array.astype(int) - 127) <= 1).all()


def test_a_transparent_palette_colour_becomes_white(tmp_path):
    indices = np.array([[0, 1], [1, 0]], np.uint8)
    image = Image.fromarray(indices, 'P')
    image.putpalette([200, 0, 0, 0, 0, 0] + [0] * 762)  # 0: red, 1: black
    path = tmp_path / 'palette.png'
    image.save(path, transparency=1)
    array = images.read(str(path), 2, 3)
    np.testing.assert_array_equal(array[0, 0], [200, 0, 0])
    np.testing.assert_array_equal(array[0, 1], [255, 255, 255])


@pytest.mark.parametrize('mode, key, transparent', [('L', 0, 0), ('RGB', (0, 0, 0), (0, 0, 0))])
def test_a_png_transparency_key_colour_becomes_white(tmp_path, mode, key, transparent):
    """A grey or RGB PNG may mark one colour transparent (its tRNS chunk): Pillow opens it in
    mode L or RGB with info['transparency'], not as an image with an alpha band."""
    pixels = np.full((4, 4) + (() if mode == 'L' else (3,)), 90, np.uint8)
    pixels[0] = transparent
    path = tmp_path / 'keyed.png'
    Image.fromarray(pixels, mode).save(path, transparency=key)
    array = images.read(str(path), 4, 1)
    assert (array[0] == 255).all(), 'the transparent row is %s' % array[0, :, 0]
    assert (array[1:] == 90).all()


def test_a_16_bit_grey_png_is_scaled_to_8_bits_not_clipped(tmp_path):
    values = np.array([[0, 4000], [32768, 65535]], np.uint16)
    path = tmp_path / 'deep.png'
    Image.fromarray(values).save(path)
    array = images.read(str(path), 2, 1)[..., 0].astype(int)
    assert (np.abs(array - values / 257) <= 1).all(), array


def test_read_gives_an_array_of_the_requested_shape_from_a_jpeg(tmp_path):
    path = tmp_path / 'photo.jpg'
    colour_image(50, 20).save(path, quality=95)
    assert images.read(str(path), 12, 3).shape == (12, 12, 3)
    assert images.read(str(path), 12, 1).shape == (12, 12, 1)


@pytest.mark.parametrize('content', [b'', b'not an image at all', b'\x89PNG\r\n\x1a\n truncated'])
def test_reading_a_file_that_is_not_an_image_is_a_user_error_naming_it(tmp_path, content):
    path = tmp_path / 'holiday.png'
    path.write_bytes(content)
    with pytest.raises(UserError, match='holiday.png') as raised:
        images.read(str(path), 28, 1)
    assert '\n' not in str(raised.value)


def test_the_remedy_is_part_of_the_message(tmp_path):
    path = tmp_path / 'bad.jpg'
    path.write_text('text')
    with pytest.raises(UserError, match='remove it'):
        images.read(str(path), 28, 1, fix='replace or remove it')


def test_a_missing_file_is_a_user_error_naming_it(tmp_path):
    with pytest.raises(UserError, match='nowhere.png'):
        images.read(str(tmp_path / 'nowhere.png'), 28, 1)
