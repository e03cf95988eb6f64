"""Trials of dead workers: failed once their heartbeat is stale, retried, runs closed.

Optuna's heartbeat mechanism does the detection (in every worker before each trial, and
in ``sweep reap``); this callback adds what Optuna does not know about: the dead trial's
MLflow run is marked FAILED, and the retry is queued with the same parameters.
"""

from __future__ import annotations

import logging
import warnings
from typing import Any

import optuna
from optuna.storages import RetryHeartbeatStaleTrialCallback

log = logging.getLogger("sweep")


class StaleTrialCallback:
    def __init__(self, max_retry: int, tracking_uri: str | None):
        self.retry = RetryHeartbeatStaleTrialCallback(max_retry=max_retry)
        self.tracking_uri = tracking_uri

    def __call__(self, study: Any, trial: Any) -> None:
        run_id = trial.user_attrs.get("mlflow_run_id")
        if run_id and self.tracking_uri:
            from sweep.tracking import mark_run_lost

            mark_run_lost(self.tracking_uri, run_id, trial.user_attrs.get("worker"))
        self.retry(study, trial)


def reap(study: Any) -> list[int]:
    """Fail the study's stale trials now (their callbacks run). Returns their numbers."""
    before = {t.number for t in study.get_trials(
        deepcopy=False, states=(optuna.trial.TrialState.RUNNING,))}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        optuna.storages.fail_stale_trials(study)
    after = {t.number: t for t in study.get_trials(deepcopy=False)}
    return sorted(n for n in before if after[n].state == optuna.trial.TrialState.FAIL)
