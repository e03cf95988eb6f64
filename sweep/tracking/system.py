"""MLflow's system metrics on a trial's run: GPU utilization and memory over time (and the
CPU, memory, disk and network beside them), sampled by MLflow's own
``SystemMetricsMonitor`` on a thread of its own, logged as ``system/*`` metrics.

On by default where a worker trains on a GPU; MLflow's own switch
``MLFLOW_ENABLE_SYSTEM_METRICS_LOGGING`` (true/false) decides when it is set, so a CPU
worker can have them too, and ``MLFLOW_SYSTEM_METRICS_SAMPLING_INTERVAL`` sets the sampling
interval. The GPU figures need NVIDIA's NVML bindings: ``pip install 'regsweep[gpu]'``
(``nvidia-ml-py``).
"""

from __future__ import annotations

import importlib.util
import logging
from collections.abc import Mapping
from typing import Any

log = logging.getLogger("sweep")

SWITCH = "MLFLOW_ENABLE_SYSTEM_METRICS_LOGGING"  # MLflow's name
# MLflow's default (10 s) leaves a short trial without a single sample; each sample is
# one small read of the run from the tracking store.
SAMPLING_SECONDS = 5.0
_said_no_nvml = False


def system_metrics_wanted(environ: Mapping[str, str], device: str) -> bool:
    """Whether a trial's run records system metrics: MLflow's switch when it is set, else
    on a GPU worker (``device`` as ``describe_environment`` names it)."""
    switch = environ.get(SWITCH, "").strip().lower()
    if switch:
        return switch in ("true", "1")  # MLflow reads the same two
    return device == "GPU"


def start_monitor(run_id: str, tracking_uri: str, *, device: str) -> Any:
    """MLflow's monitor of ``run_id``, started; None when it could not start (the run
    goes on without system metrics)."""
    global _said_no_nvml
    if device == "GPU" and importlib.util.find_spec("pynvml") is None and not _said_no_nvml:
        _said_no_nvml = True  # once per process: every trial would say it again
        log.warning("GPU system metrics need NVIDIA's NVML bindings: pip install "
                    "'regsweep[gpu]' (nvidia-ml-py); logging CPU, memory, disk and network")
    try:
        from mlflow.system_metrics.system_metrics_monitor import SystemMetricsMonitor

        monitor = SystemMetricsMonitor(run_id, sampling_interval=SAMPLING_SECONDS,
                                       tracking_uri=tracking_uri)
        monitor.start()
    except Exception as error:  # a convenience: never worth a trial
        log.warning("system metrics not recorded: %s", type(error).__name__)
        return None
    return monitor
