"""One trial's MLflow run, written from a background thread and spooled to disk while
the store is unreachable."""

from __future__ import annotations

import logging
import os
import queue
import threading
import time
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from sweep.errors import describe_failure
from sweep.keys import (
    FAIL_REASON_TAG,
    FINAL,
    RESUMED_FROM_RUN_TAG,
    SPOOL_PREFIX,
)
from sweep.tracking.client import apply, now_ms
from sweep.tracking.spool import Spool
from sweep.tracking.system import start_monitor, system_metrics_wanted

if TYPE_CHECKING:  # the tracker creates its runs: imported for the type only
    from sweep.tracking.tracker import StudyTracker

log = logging.getLogger("sweep")

# "INTERRUPTED" is a FAIL trial that was stopped (SIGINT/SIGTERM), not broken: KILLED.
STATUS_BY_STATE = {"COMPLETE": "FINISHED", "PRUNED": "KILLED", "FAIL": "FAILED",
                   "INTERRUPTED": "KILLED"}
FLUSH_SECONDS = 5.0  # epoch metrics reach MLflow at least this often (and at the end)


class TrialRun:
    """The child run of one trial.

    Every MLflow call is an *operation* handed to a background thread, so training never
    waits for the tracking store (one batch per epoch). When the store cannot be reached,
    this and all later operations of the run go to the spool file instead, in order;
    ``sweep sync`` replays them once the store is back. Nothing the trial measured is
    lost either way."""

    def __init__(self, tracker: StudyTracker):
        self.tracker = tracker
        self.run_id: str | None = None
        self.spool: Spool | None = None
        self._queue: queue.Queue = queue.Queue()
        self._thread: threading.Thread | None = None
        self._pending: list[list[Any]] = []  # epoch metrics not yet handed to the thread
        self._flushed_at = time.monotonic()
        self._monitor: Any = None  # MLflow's system metrics monitor, while it samples

    @property
    def reference(self) -> str:
        """What the Optuna trial records as ``mlflow_run_id``."""
        return self.run_id if self.run_id is not None else f"{SPOOL_PREFIX}{self.spool.key}"

    def submit(self, op: dict[str, Any], *, wait: bool = False) -> None:
        if wait:
            self._perform(op)
            return
        if self._thread is None:
            self._thread = threading.Thread(target=self._drain, daemon=True,
                                            name="sweep-tracking")
            self._thread.start()
        self._queue.put(op)

    def _drain(self) -> None:
        while True:
            op = self._queue.get()
            if op is None:
                return
            self._perform(op)

    def _perform(self, op: dict[str, Any]) -> None:
        if self.spool is None:
            try:
                if op["op"] == "create_run":
                    self.run_id = self.tracker.create_run(op)
                else:
                    apply(self.tracker.client, self.run_id, op)
                return
            except Exception as error:  # store unreachable: from now on, spool
                self.spool = Spool.for_run(self.run_id, op if op["op"] == "create_run"
                                           else None, self.tracker.tracking_uri)
                log.warning("MLflow unreachable (%s); spooling run to %s",
                            describe_failure(error, 200), self.spool.path)
                if op["op"] == "create_run":
                    return
        self.spool.append(op)

    def log_epoch(self, step: int, metrics: Mapping[str, float]) -> None:
        """Buffer one epoch's metrics; they go out as one batch every ``FLUSH_SECONDS``
        and when the run finishes: MLflow's cost is per call, not per metric, in large
        part (bench/logging_cost.py measures the write's CPU per epoch); the MLflow UI's
        curves then lag by a few seconds at most."""
        stamp = now_ms()
        self._pending += [[k, float(v), stamp, step] for k, v in metrics.items()]
        if time.monotonic() - self._flushed_at >= FLUSH_SECONDS:
            self.flush()

    def log_text(self, path: str, text: str) -> None:
        """A small text artifact of the run (``weights.svg``), written after the metrics
        logged so far."""
        self.flush()
        self.submit({"op": "text", "path": path, "text": text})

    def copy_history(self, run_id: str, *, up_to_step: int) -> None:
        """Per-epoch metrics of ``run_id`` up to ``up_to_step``, logged on this run too: a
        resumed trial's run then shows the epochs its predecessors trained."""
        if run_id.startswith(SPOOL_PREFIX):
            return  # that run has not reached MLflow yet; `sweep sync` replays it there
        client = self.tracker.client
        try:
            keys = [k for k in client.get_run(run_id).data.metrics if not k.startswith(FINAL)]
            history = [[m.key, m.value, m.timestamp, m.step] for key in keys
                       for m in client.get_metric_history(run_id, key)
                       if 1 <= m.step <= up_to_step]
        except Exception as error:  # the history is a convenience; training goes on
            log.warning("could not copy the metric history of run %s: %s", run_id,
                        describe_failure(error, 200))
            return
        if history:
            self.submit({"op": "log", "metrics": history,
                         "tags": {RESUMED_FROM_RUN_TAG: run_id}})

    def watch_system(self, device: str) -> None:
        """Record MLflow's system metrics on this run until it finishes, where they are
        wanted (sweep.tracking.system: on a GPU, or as MLflow's switch says); nothing for
        a spooled run."""
        if not system_metrics_wanted(os.environ, device):
            return
        if self.run_id is not None and self.spool is None and self._monitor is None:
            self._monitor = start_monitor(self.run_id, self.tracker.tracking_uri,
                                          device=device)

    def flush(self) -> None:
        if self._pending:
            self.submit({"op": "log", "metrics": self._pending})
            self._pending = []
        self._flushed_at = time.monotonic()

    def finish(self, state: str, final: Mapping[str, float] | None = None,
               reason: str | None = None, tags: Mapping[str, str] | None = None, *,
               wait: bool = True) -> None:
        """Log the final figures and close the run with the trial's state. The epochs not
        yet sent go in the same batch as the final figures (MLflow's cost is per call: one
        call fewer per trial). ``wait=False`` leaves the last calls to the run's thread
        while the worker goes on with its next trial (they were over a quarter of a
        worker's time per instant trial: bench/coordination.py); the tracker's ``settle``
        waits for them."""
        tags = {**(tags or {}), **({FAIL_REASON_TAG: reason[:5000]} if reason else {})}
        stamp = now_ms()
        metrics = self._pending + [[k, float(v), stamp, 0] for k, v in (final or {}).items()]
        self._pending = []
        if self._monitor is not None:  # its last samples land before the run ends
            self._monitor.finish()
            self._monitor = None
        if metrics or tags:
            self.submit({"op": "log", "tags": tags, "metrics": metrics})
        self.submit({"op": "terminate", "status": STATUS_BY_STATE[state]})
        self.close(wait=wait)

    def close(self, *, wait: bool = True) -> None:
        if self._thread is not None:
            self._queue.put(None)
            if wait:
                self._thread.join()
            else:
                self.tracker.closing(self._thread)
            self._thread = None


