"""TensorFlow start-up, done once per process and only by code that trains.

Importing TensorFlow costs seconds, so nothing that merely reads a study imports it; the
settings below must be in place *before* TensorFlow initialises its devices.
"""

from __future__ import annotations

import contextlib
import os
from types import ModuleType

_keras: ModuleType | None = None


def import_keras() -> ModuleType:
    """Import Keras (TensorFlow backend) with quiet logs and GPU memory growth on."""
    global _keras
    if _keras is not None:
        return _keras
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    os.environ.setdefault("KERAS_BACKEND", "tensorflow")
    import tensorflow as tf

    # TensorFlow reserves the whole GPU by default and never gives memory back inside a
    # process; growth lets several small trials share a device.
    for gpu in tf.config.list_physical_devices("GPU"):
        # RuntimeError: devices already initialised by the caller; keep its choice.
        with contextlib.suppress(RuntimeError):
            tf.config.experimental.set_memory_growth(gpu, True)
    import keras

    _keras = keras
    return keras
