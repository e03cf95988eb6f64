"""Who a worker is: the name its trials and MLflow runs carry, and the index that keeps
workers' sampler seeds apart."""

from __future__ import annotations

import os
import socket
import zlib


def worker_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def worker_index() -> int:
    """Distinguishes workers' sampler seeds. Launchers set SWEEP_WORKER_INDEX (or the
    cluster's own index); a worker started by hand gets one from its host and pid, so
    two workers never replay the same random start-up trials."""
    for variable in ("SWEEP_WORKER_INDEX", "JOB_COMPLETION_INDEX", "SLURM_ARRAY_TASK_ID"):
        value = os.environ.get(variable, "")
        if value.isdigit():
            return int(value)
    return 1 + zlib.crc32(worker_name().encode()) % 1_000_003
