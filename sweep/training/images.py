"""Image folders streamed from disk: a tf.data pipeline from file paths that decodes and
resizes each image once into a file of the worker's own (uint8, a quarter of the decoded
float size), then reads that file every epoch through a bounded shuffle buffer. A folder
larger than memory trains like one that fits; only ``data.shuffle_buffer`` images are
held at a time.

Augmentation (``data.augment``) is Keras' preprocessing layers applied to training batches
only, with fresh layers per epoch seeded from (trial seed, epoch): a resumed trial sees the
same augmented batches as one never stopped.
"""

from __future__ import annotations

import atexit
import logging
import os
import shutil
import socket
import tempfile
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from sweep.errors import SpecError

if TYPE_CHECKING:
    from sweep.spec import ImageFolderData
    from sweep.spec.inputs import ImageAugment
    from sweep.training.data import Splits

__all__ = ["CACHE_PREFIX", "ImageStream", "augmenter", "decode_files"]

log = logging.getLogger(__name__)

# <cache root>/regsweep-images-<host>-<pid>-<random>: one per worker process.
CACHE_PREFIX = "regsweep-images-"
_DECODE_BATCH = 256


def _decode(path: Any, image_shape: tuple[int, int, int]) -> Any:
    """One file to a (height, width, channels) uint8 tensor: the pixels a trial sees."""
    import tensorflow as tf

    height, width, channels = image_shape
    # expand_animations=False: a GIF gives its first frame, like every other format one.
    image = tf.io.decode_image(tf.io.read_file(path), channels=channels,
                               expand_animations=False)
    image = tf.image.resize(image, (height, width), antialias=True)
    image = tf.cast(tf.round(tf.clip_by_value(image, 0.0, 255.0)), tf.uint8)
    image.set_shape(image_shape)
    return image


def to_float(images: Any, labels: Any) -> tuple[Any, Any]:
    import tensorflow as tf

    return tf.cast(images, tf.float32) / 255.0, labels


def decode_files(paths: np.ndarray, image_shape: tuple[int, int, int]) -> np.ndarray:
    """A few images as float32 in [0, 1], decoded exactly as the pipeline decodes them."""
    import tensorflow as tf

    if len(paths) == 0:
        return np.empty((0, *image_shape), dtype=np.float32)
    decoded = [_decode(tf.constant(str(path)), image_shape) for path in paths]
    return (np.stack([image.numpy() for image in decoded]) / 255.0).astype(np.float32)


def augmenter(augment: ImageAugment | None, seed: int) -> Callable[[Any, Any], Any] | None:
    """A batch function applying ``augment`` with layers seeded from ``seed`` alone."""
    if augment is None:
        return None
    from sweep.training.runtime import import_keras

    keras = import_keras()
    layers: list[Any] = []
    # Distinct seeds per layer: with one seed, flip and rotation would draw alike.
    if augment.flip is not None:
        layers.append(keras.layers.RandomFlip(augment.flip, seed=seed))
    if augment.rotation:
        layers.append(keras.layers.RandomRotation(augment.rotation, seed=seed + 1))
    if augment.zoom:
        layers.append(keras.layers.RandomZoom(augment.zoom, seed=seed + 2))
    if augment.contrast:
        # The pixels are in [0, 1] here; Keras assumes [0, 255] unless told.
        layers.append(keras.layers.RandomContrast(augment.contrast, value_range=(0, 1),
                                                  seed=seed + 3))

    def apply(images: Any, labels: Any) -> tuple[Any, Any]:
        for layer in layers:
            images = layer(images, training=True)
        return images, labels

    return apply


class ImageStream:
    """Per split, the (uint8 image, target) elements of an image folder, decoded once into
    this worker's cache file. Built when a worker's first trial starts; a file that cannot
    be decoded is a :class:`SpecError` naming it."""

    def __init__(self, splits: Splits, data: ImageFolderData,
                 targets: Mapping[str, np.ndarray]):
        import tensorflow as tf

        assert splits.image_shape is not None
        self.folder = _cache_folder(data.cache_dir)
        shape = splits.image_shape
        self.elements: dict[str, Any] = {}
        for split, target in targets.items():
            paths = getattr(splits, f"x_{split}")
            dataset = (tf.data.Dataset.from_tensor_slices((paths, target))
                       .map(lambda path, y: (_decode(path, shape), y),
                            num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
                       .cache(str(self.folder / split)))
            field = "data.test_path" if split == "test" and data.test_path is not None \
                else "data.path"
            _fill(dataset, paths, shape, field, len(target))
            self.elements[split] = dataset


def _fill(dataset: Any, paths: np.ndarray, shape: tuple[int, int, int], field: str,
          size: int) -> None:
    """Read ``dataset`` once so that its cache file is complete before any training (a
    partly read cache would be thrown away at every early stop)."""
    import tensorflow as tf

    log.info("decoding %d images into the worker's cache", size)
    try:
        for _ in dataset.batch(_DECODE_BATCH).prefetch(2):
            pass
    except (tf.errors.InvalidArgumentError, tf.errors.NotFoundError,
            tf.errors.UnknownError) as error:
        bad = _first_unreadable(paths, shape)
        if bad is None:
            raise
        raise SpecError(field, "cannot read image", bad) from error


def _first_unreadable(paths: np.ndarray, shape: tuple[int, int, int]) -> str | None:
    import tensorflow as tf

    for path in paths:
        try:
            _decode(tf.constant(str(path)), shape)
        except (tf.errors.InvalidArgumentError, tf.errors.NotFoundError,
                tf.errors.UnknownError):
            return str(path)
    return None


# --------------------------------------------------------------------------- cache folders
def _cache_folder(root: Path | None) -> Path:
    """A new folder for this process, removed when it exits; folders that processes of
    this host left behind when they were killed are removed first."""
    base = Path(root) if root is not None else Path(tempfile.gettempdir())
    try:
        base.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise SpecError("data.cache_dir", f"cannot create: {error.strerror}", str(base)) \
            from None
    host = socket.gethostname()
    _remove_orphans(base, host)
    try:
        folder = Path(tempfile.mkdtemp(prefix=f"{CACHE_PREFIX}{host}-{os.getpid()}-",
                                       dir=base))
    except OSError as error:
        raise SpecError("data.cache_dir", f"cannot write: {error.strerror}", str(base)) \
            from None
    atexit.register(shutil.rmtree, folder, ignore_errors=True)
    return folder


def _remove_orphans(base: Path, host: str) -> None:
    prefix = f"{CACHE_PREFIX}{host}-"
    for folder in base.glob(f"{prefix}*"):
        pid_text = folder.name[len(prefix):].split("-", 1)[0]
        if not pid_text.isdigit() or int(pid_text) == os.getpid():
            continue
        try:
            os.kill(int(pid_text), 0)
        except ProcessLookupError:
            shutil.rmtree(folder, ignore_errors=True)
        except PermissionError:  # alive, someone else's
            pass
