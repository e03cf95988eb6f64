"""Trials of dead workers: failed once their heartbeat is stale, retried, runs closed.

Optuna's heartbeat mechanism does the detection (in every worker before each trial, and
in ``sweep reap``); this callback adds what Optuna does not know about: the dead trial's
MLflow run is marked FAILED, and the retry is queued with the same parameters.
"""

from __future__ import annotations

import copy
import datetime as _dt
import logging
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import optuna
from optuna.storages import RetryHeartbeatStaleTrialCallback

from sweep.keys import (
    CHECKPOINT,
    FAIL_REASON,
    MLFLOW_RUN_ID,
    RETRY_HISTORY,
    STUDY_UID,
    WORKER,
)
from sweep.storage import optuna_internals as internals
from sweep.storage.budget import lost_reason

if TYPE_CHECKING:
    from optuna.trial import FrozenTrial

log = logging.getLogger("sweep")


class StaleTrialCallback:
    def __init__(self, max_retry: int, tracking_uri: str | None,
                 checkpoints: Callable[[Any], Path] | None = None):
        # The retry resumes from the dead trial's checkpoint, so it also keeps the epochs
        # the dead trial reported to the pruner.
        self.retry = RetryHeartbeatStaleTrialCallback(max_retry=max_retry,
                                                      inherit_intermediate_values=True)
        self.max_retry = max_retry
        self.tracking_uri = tracking_uri
        self.checkpoints = checkpoints  # study -> the checkpoint root

    def __call__(self, study: optuna.Study, trial: Any) -> None:
        run_id = trial.user_attrs.get(MLFLOW_RUN_ID)
        if run_id and self.tracking_uri:
            from sweep.tracking.client import mark_run_lost

            mark_run_lost(self.tracking_uri, run_id, trial.user_attrs.get(WORKER))
        # The retry is a fresh attempt: the dead trial's reason is not its own (a retry
        # behind `sweep proxy` finished COMPLETE still saying "lost: ...").
        fresh = copy.deepcopy(trial)
        fresh.user_attrs = {k: v for k, v in trial.user_attrs.items() if k != FAIL_REASON}
        self.retry(study, fresh)
        retried = len(trial.system_attrs.get(RETRY_HISTORY, [])) < self.max_retry
        origin = trial.user_attrs.get(CHECKPOINT)
        if not retried and origin is not None and self.checkpoints is not None:
            from sweep.training import checkpoint

            # No retry will resume it: the configuration's checkpoint goes.
            checkpoint.remove(checkpoint.folder(self.checkpoints(study),
                                                study.user_attrs[STUDY_UID], origin))


def reap(study: optuna.Study) -> list[int]:
    """Fail the study's stale trials now (their callbacks run). Returns their numbers."""
    before = {t.number for t in study.get_trials(
        deepcopy=False, states=(optuna.trial.TrialState.RUNNING,))}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        optuna.storages.fail_stale_trials(study)
    _fail_silent_trials(study)
    after = {t.number: t for t in study.get_trials(deepcopy=False)}
    return sorted(n for n in before if after[n].state == optuna.trial.TrialState.FAIL)


def _fail_silent_trials(study: optuna.Study) -> None:
    """RUNNING trials that never sent a heartbeat (their worker lost the database between
    creating the trial and starting it) are invisible to Optuna's stale-trial check and
    would stay RUNNING forever: fail them once they are older than the grace period."""
    storage = internals.storage(study)
    grace = getattr(internals.backend(storage), "grace_period", None)
    if grace is None:
        return
    ages = heartbeat_ages(study, strict=True)
    if ages is None:  # liveness unknown: never fail a trial on a guess
        return
    limit = _dt.datetime.now() - _dt.timedelta(seconds=grace)
    silent = [t for t in study.get_trials(deepcopy=False,
                                          states=(optuna.trial.TrialState.RUNNING,))
              if internals.trial_id(t) not in ages and t.datetime_start is not None
              and t.datetime_start <= limit]
    for number in fail_and_retry(study, silent, lost_reason(grace, ever=False)):
        log.warning("trial %d never sent a heartbeat in %d s: failed", number, grace)


def fail_and_retry(study: optuna.Study, trials: list[FrozenTrial], reason: str) -> list[int]:
    """Fail these RUNNING trials as a dead worker's are failed, with ``reason`` (it starts
    with ``keys.LOST``), running the storage's stale-trial callback (closes the MLflow run,
    queues the retry). Returns the numbers of those this call failed (another worker may
    have been first)."""
    storage = internals.storage(study)
    callback = storage.get_heartbeat_stale_trial_callback() \
        if hasattr(storage, "get_heartbeat_stale_trial_callback") else None
    failed = []
    for trial in trials:
        try:
            storage.set_trial_user_attr(internals.trial_id(trial), FAIL_REASON, reason)
            storage.set_trial_state_values(internals.trial_id(trial),
                                           optuna.trial.TrialState.FAIL)
        except optuna.exceptions.UpdateFinishedTrialError:
            continue
        failed.append(trial.number)
        if callback is not None:
            callback(study, storage.get_trial(internals.trial_id(trial)))
    return failed


def heartbeat_ages(study: optuna.Study, *, strict: bool = False) -> dict[int, float] | None:
    """Seconds since each running trial's last heartbeat, by trial id, measured on the
    database's own clock (workers' clocks may disagree)."""
    storage = internals.backend(internals.storage(study))
    engine = getattr(storage, "engine", None)
    if engine is None:
        return None if strict else {}
    TrialHeartbeatModel = internals.rdb_models().TrialHeartbeatModel
    from sqlalchemy import func, select

    query = select(TrialHeartbeatModel.trial_id, TrialHeartbeatModel.heartbeat,
                   func.current_timestamp())
    try:
        with engine.connect() as connection:
            rows = connection.execute(query).all()
    except Exception:  # an older schema or another backend: no liveness to show
        return None if strict else {}
    ages = {}
    for trial_id, beat, now in rows:
        if isinstance(now, str):  # SQLite returns CURRENT_TIMESTAMP as text
            now = _dt.datetime.fromisoformat(now)
        # PostgreSQL's current_timestamp is timezone-aware, Optuna's heartbeat column is
        # not; both are in the session's time zone, so the wall-clock reading compares.
        if now.tzinfo is not None and beat.tzinfo is None:
            now = now.replace(tzinfo=None)
        ages[trial_id] = max(0.0, (now - beat).total_seconds())
    return ages
