"""
Decode a folder of image classes once, and keep the result in one array file beside them.

A data set is read as a list of classes, each a folder of image files. The first read decodes
every image into one uint8 array; the array is saved in the data folder
with a fingerprint of the file names, sizes and modification times, and later reads load it
instead of decoding, as long as the fingerprint still matches.
"""

import hashlib
import os
import tempfile

import numpy as np

from .sampling import ImageClasses


def read_classes(root, classes, decode, cache_name):
    """ImageClasses for classes = [(name, folder relative to root, [file names])].

    decode(path) returns one image as a uint8 array; cache_name names the cache file in root
    and should change whenever decode does.
    """
    fingerprint = _fingerprint(root, classes, cache_name)
    cache_path = os.path.join(root, cache_name)
    cached = _read_cache(cache_path, fingerprint)
    if cached is not None:
        return cached
    result = ImageClasses.from_arrays(
        [np.stack([decode(os.path.join(root, folder, f)) for f in files])
         for _, folder, files in classes],
        [name for name, _, _ in classes])
    _write_cache(cache_path, fingerprint, result)
    return result


def _fingerprint(root, classes, salt):
    digest = hashlib.sha256(salt.encode())
    for _, folder, files in classes:
        for file_name in files:
            stat = os.stat(os.path.join(root, folder, file_name))
            digest.update(('%s/%s %d %d\n' % (folder, file_name, stat.st_size,
                                              stat.st_mtime_ns)).encode())
    return digest.hexdigest()


def _read_cache(path, fingerprint):
    try:
        with np.load(path) as cache:
            if str(cache['fingerprint']) != fingerprint:
                return None
            return ImageClasses(cache['images'], cache['offsets'], cache['counts'],
                                cache['names'].tolist())
    except (OSError, KeyError, ValueError):
        return None


def _write_cache(path, fingerprint, classes):
    """Write the cache atomically; a data folder we cannot write to just goes uncached."""
    try:
        handle, temp_path = tempfile.mkstemp(dir=os.path.dirname(path), suffix='.tmp')
    except OSError:
        return
    try:
        with os.fdopen(handle, 'wb') as temp_file:
            np.savez(temp_file, fingerprint=fingerprint, images=classes.images,
                     offsets=classes.offsets, counts=classes.counts,
                     names=np.array(classes.names))
        os.chmod(temp_path, 0o644)
        os.replace(temp_path, path)
    except OSError:
        os.unlink(temp_path)
