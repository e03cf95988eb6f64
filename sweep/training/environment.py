"""What ran where: the software and device a trial trained on, and on a GPU its peak
device memory and GPU-seconds. Read once per process (versions do not change under a
running worker); the git commit of the study file's repository is recorded on the study by
`sweep create`/`sweep run` (workers may not see that folder) and added by the caller.
"""

from __future__ import annotations

import contextlib
import platform
import socket
from collections.abc import Callable, Sequence
from importlib import metadata
from typing import Any

_PACKAGES = {"regsweep": "regsweep", "tensorflow": "tensorflow", "keras": "keras",
             "optuna": "optuna", "mlflow": "mlflow"}
_cached: dict[str, str] | None = None


def _version(distribution: str) -> str:
    try:
        return metadata.version(distribution)
    except metadata.PackageNotFoundError:
        return "not installed"


def describe_environment() -> dict[str, str]:
    """Versions, CUDA/cuDNN build versions, device kind and name, host: one flat
    dictionary of strings (MLflow tags and an Optuna attribute take it as it is)."""
    global _cached
    if _cached is not None:
        return dict(_cached)
    from sweep.training.runtime import import_keras

    import_keras()
    import tensorflow as tf

    found = {name: _version(dist) for name, dist in _PACKAGES.items()}
    found["python"] = platform.python_version()
    build = {}
    with contextlib.suppress(Exception):  # absent from some builds
        build = dict(tf.sysconfig.get_build_info())
    found["cuda"] = str(build.get("cuda_version") or "none")
    found["cudnn"] = str(build.get("cudnn_version") or "none")
    gpus = tf.config.list_physical_devices("GPU")
    found.update(describe_devices(gpus, tf.config.experimental.get_device_details))
    found["host"] = socket.gethostname()
    _cached = found
    return dict(found)


def describe_devices(gpus: Sequence[Any], details: Callable[[Any], dict[str, Any]]
                     ) -> dict[str, str]:
    """``device`` (GPU or CPU) and ``device_name``: the GPUs' names (``2 x NVIDIA A100``)
    from TensorFlow's device details, else the CPU's."""
    if not gpus:
        return {"device": "CPU", "device_name": _cpu_name()}
    names = []
    for gpu in gpus:
        try:
            names.append(str(details(gpu).get("device_name") or gpu.name))
        except Exception:  # details unavailable (some drivers): the device's own name
            names.append(str(gpu.name))
    counted = {name: names.count(name) for name in dict.fromkeys(names)}
    return {"device": "GPU", "device_name": ", ".join(
        f"{count} x {name}" if count > 1 else name for name, count in counted.items())}


def _cpu_name() -> str:
    try:
        with open("/proc/cpuinfo") as cpuinfo:
            for line in cpuinfo:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


class GpuUsage:
    """Peak device memory and GPU-seconds of one trial, on the GPUs this process sees
    (none: nothing is measured). ``get_info``/``reset`` are TensorFlow's
    ``tf.config.experimental.get_memory_info`` and ``reset_memory_stats``."""

    def __init__(self, devices: Sequence[str], get_info: Callable[[str], dict[str, int]],
                 reset: Callable[[str], None], clock: Callable[[], float]):
        self.devices = list(devices)
        self._get_info, self._reset, self._clock = get_info, reset, clock
        self._started: float | None = None

    @classmethod
    def of_this_process(cls) -> GpuUsage:
        import time

        import tensorflow as tf

        devices = [f"GPU:{i}" for i, _ in enumerate(tf.config.list_logical_devices("GPU"))]
        return cls(devices, tf.config.experimental.get_memory_info,
                   tf.config.experimental.reset_memory_stats, time.monotonic)

    def start(self) -> None:
        for device in self.devices:
            with contextlib.suppress(Exception):  # not every build keeps statistics
                self._reset(device)
        self._started = self._clock()

    def figures(self) -> dict[str, float]:
        """``gpu/peak_memory_mb`` (the largest over the devices) and ``gpu/seconds``
        (wall seconds times the devices used); empty without a GPU."""
        if not self.devices or self._started is None:
            return {}
        peaks = []
        for device in self.devices:
            with contextlib.suppress(Exception):
                peaks.append(self._get_info(device)["peak"])
        seconds = (self._clock() - self._started) * len(self.devices)
        found = {"gpu/seconds": round(seconds, 3)}
        if peaks:
            found["gpu/peak_memory_mb"] = round(max(peaks) / 2**20, 1)
        return found
