"""Several workers on one machine: one process per slot (a GPU, or a CPU share), each a
plain ``sweep worker`` (which renews itself every ``workers.recycle_after`` trials). A
slot is done when its worker exits 0 (the budget is spent); a crashed worker is replaced.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from sweep.errors import FatalError

# A slot whose worker keeps crashing at start-up is given up after this many attempts.
MAX_CRASHES = 3
# After a stop request, workers still running this long later are killed (clusters kill
# 30 s after SIGTERM at the earliest; workers themselves give up a blocked step at 15 s).
KILL_AFTER_SECONDS = 25.0


@dataclass
class Slot:
    index: int
    gpu: str | None
    process: subprocess.Popen | None = None
    crashes: int = 0
    done: bool = False
    env: dict[str, str] = field(default_factory=dict)


def plan_slots(workers: int, gpus: Sequence[str], trials_per_gpu: int) -> list[Slot]:
    """One slot per worker; with GPUs, ``trials_per_gpu`` slots share each device."""
    if gpus:
        pairs = [(gpu, k) for gpu in gpus for k in range(trials_per_gpu)]
        return [Slot(index=i, gpu=gpu) for i, (gpu, _) in enumerate(pairs)]
    return [Slot(index=i, gpu=None) for i in range(workers)]


def worker_env(slot: Slot, storage: str, tracking_uri: str) -> dict[str, str]:
    env = {**os.environ, "SWEEP_STORAGE": storage, "MLFLOW_TRACKING_URI": tracking_uri,
           "SWEEP_WORKER_INDEX": str(slot.index + 1)}
    if slot.gpu is not None:
        # Set before the child imports TensorFlow: it then sees exactly its own device.
        env["CUDA_VISIBLE_DEVICES"] = slot.gpu
    return env


def supervise(study_name: str, storage: str, tracking_uri: str, slots: list[Slot], *,
              extra_args: Sequence[str] = (),
              halted: Callable[[], bool] = lambda: False) -> None:
    """Keep every slot busy until the budget is spent; forward SIGINT/SIGTERM. A worker
    that exits non-zero is replaced, unless ``halted()`` says the study itself stopped
    (``budget.max_failures``): then every worker says so and none is restarted."""
    command = [sys.executable, "-m", "sweep", "worker", study_name, *extra_args]
    stopping = ""  # the name of the signal that asked us to stop
    stop_at = 0.0

    def stop(signum: int, frame: Any) -> None:
        nonlocal stopping, stop_at
        if not stopping:
            stopping, stop_at = signal.Signals(signum).name, time.monotonic()
        for slot in slots:
            if slot.process is not None and slot.process.poll() is None:
                slot.process.send_signal(signal.SIGTERM)

    previous = {s: signal.signal(s, stop) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        while True:
            for slot in slots:
                if slot.done:
                    continue
                if slot.process is None:
                    if stopping:  # a stop request starts nothing new
                        continue
                    slot.process = subprocess.Popen(
                        command + (["--gpu", slot.gpu] if slot.gpu is not None else []),
                        env=worker_env(slot, storage, tracking_uri))
                    continue
                code = slot.process.poll()
                if code is None:
                    continue
                slot.process = None
                if stopping:
                    slot.done = True
                elif code != 0 and not halted():
                    slot.crashes += 1
                    slot.done = slot.crashes >= MAX_CRASHES
                else:
                    slot.done = True
            running = [s for s in slots if s.process is not None]
            if (stopping or all(s.done for s in slots)) and not running:
                break
            if stopping and time.monotonic() - stop_at > KILL_AFTER_SECONDS:
                # A worker stops within its own watchdog's grace; one that has not by now
                # is wedged beyond it. Its trial goes stale and is retried elsewhere.
                for slot in running:
                    slot.process.kill()
            time.sleep(0.2)
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
    if stopping:
        raise KeyboardInterrupt(stopping)
    crashed = [s.index for s in slots if s.crashes >= MAX_CRASHES]
    if crashed:
        raise FatalError(f"worker slots {crashed} crashed {MAX_CRASHES} times in a row; "
                         "see their output above")
