"""The MLflow client, set up once for a sweep (fail fast, print no URLs), and the
operations every run is made of: a batch of metrics, params and tags, a small text
artifact, or its end."""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Mapping
from typing import Any

from sweep.errors import describe_failure
from sweep.keys import (
    FAIL_REASON_TAG,
    SPOOL_PREFIX,
)

log = logging.getLogger("sweep")

# MLflow's caps: metrics per log_batch call, and a param value's length.
BATCH_LIMIT = 1000
PARAM_LIMIT = 6000


def mlflow_client(tracking_uri: str):
    # MLflow retries an unreachable server for minutes by default; a trial should notice
    # within seconds and spool instead.
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "2")
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR", "1")
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", "20")
    # MLflow prints "View run … at URL" lines, credentials of the URL included.
    os.environ.setdefault("MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT", "true")
    from mlflow.tracking import MlflowClient

    # MLflow's INFO lines (database migrations, ...) drown the progress output.
    logging.getLogger("mlflow").setLevel(logging.WARNING)

    return MlflowClient(tracking_uri=tracking_uri)


def now_ms() -> int:
    return int(time.time() * 1000)


def apply(client: Any, run_id: str, op: Mapping[str, Any]) -> None:
    """Carry out one logged operation on an existing run (live, or replayed by sync)."""
    from mlflow.entities import Metric, Param, RunTag

    if op["op"] == "log":
        metrics = [Metric(k, float(v), ts, step) for k, v, ts, step in op.get("metrics", [])]
        params = [Param(k, v) for k, v in op.get("params", {}).items()]
        tags = [RunTag(k, str(v)) for k, v in op.get("tags", {}).items()]
        for start in range(0, max(len(metrics), 1), BATCH_LIMIT):
            client.log_batch(run_id, metrics=metrics[start:start + BATCH_LIMIT],
                             params=params if start == 0 else [],
                             tags=tags if start == 0 else [])
    elif op["op"] == "text":
        client.log_text(run_id, op["text"], op["path"])
    elif op["op"] == "terminate":
        client.set_terminated(run_id, op["status"])
    else:
        raise ValueError(f"unknown operation {op['op']!r}")


def mark_run_lost(tracking_uri: str, run_id: str, worker: str | None) -> None:
    """Close the run of a trial whose worker died (no heartbeat): FAILED, with the reason."""
    if run_id.startswith(SPOOL_PREFIX):
        return
    client = mlflow_client(tracking_uri)
    try:
        client.set_tag(run_id, FAIL_REASON_TAG,
                       f"worker {worker or '?'} stopped sending heartbeats")
        client.set_terminated(run_id, "FAILED")
    except Exception as error:  # the study's bookkeeping must not depend on MLflow
        log.warning("could not close MLflow run %s: %s", run_id, describe_failure(error, 200))
