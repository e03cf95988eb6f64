"""TensorFlow start-up, done once per process and only by code that trains.

Importing TensorFlow costs seconds, so nothing that merely reads a study imports it; the
settings below must be in place *before* TensorFlow initialises its devices.
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Iterator
from types import ModuleType

_keras: ModuleType | None = None


def import_keras() -> ModuleType:
    """Import Keras (TensorFlow backend) with quiet logs and GPU memory growth on."""
    global _keras
    if _keras is not None:
        return _keras
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    os.environ.setdefault("KERAS_BACKEND", "tensorflow")
    with _start_up_lines_hidden():
        import tensorflow as tf

        # TensorFlow reserves the whole GPU by default and never gives memory back inside
        # a process; growth lets several small trials share a device.
        for gpu in tf.config.list_physical_devices("GPU"):
            # RuntimeError: devices already initialised by the caller; keep its choice.
            with contextlib.suppress(RuntimeError):
                tf.config.experimental.set_memory_growth(gpu, True)
        import keras

    _keras = keras
    return keras


VERBOSE = "SWEEP_VERBOSE"  # set by `sweep --verbose`


@contextlib.contextmanager
def _start_up_lines_hidden() -> Iterator[None]:
    """TensorFlow's C++ start-up lines (absl's "All log messages before
    absl::InitializeLog()", oneDNN, cudart stubs) ignore TF_CPP_MIN_LOG_LEVEL and would
    land in the progress output of every worker: stderr's descriptor points at /dev/null
    while TensorFlow starts, unless ``--verbose``."""
    if os.environ.get(VERBOSE):
        yield
        return
    sys.stderr.flush()
    saved = os.dup(2)
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 2)
    try:
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)
