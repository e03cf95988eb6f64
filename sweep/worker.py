"""A worker: Optuna's own ``study.optimize`` loop with our objective, until the
study-wide budget is spent (``BudgetExhausted`` from the storage) or this worker's
``max_trials`` is reached."""

from __future__ import annotations

import logging
import os
import socket
import zlib
from typing import Any

from sweep import interrupt
from sweep.budget import is_budget_exhausted, used_budget
from sweep.errors import FatalError, TrialFailed
from sweep.objective import Objective
from sweep.progress import StudyProgress
from sweep.space import SearchSpace
from sweep.spec import StudySpec
from sweep.study import UID_ATTR, finished_count
from sweep.tracking import StudyTracker

log = logging.getLogger("sweep")

# Consecutive storage failures (database restarted, connections dropped) a worker rides
# out before giving up; each costs at most the trial in flight.
STORAGE_RETRIES = 8


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


def enable_heartbeats(storage: Any, spec: StudySpec, tracking_uri: str | None) -> None:
    """Heartbeats, grace period and retries come from the study's stored spec only: Optuna
    applies the *local* grace period when it fails other workers' trials, so a worker
    allowed its own value would fail live trials of its peers."""
    from sweep.reaper import StaleTrialCallback

    storage = getattr(storage, "_backend", storage)  # Optuna wraps RDB storages in a cache
    if hasattr(storage, "configure_heartbeat"):
        storage.configure_heartbeat(
            spec.workers.heartbeat_interval, spec.workers.grace_period,
            StaleTrialCallback(spec.workers.max_retry, tracking_uri))


def make_tracker(study: Any, spec: StudySpec, tracking_uri: str) -> StudyTracker:
    tracker = StudyTracker(
        tracking_uri, experiment=spec.experiment_name, study_name=spec.name,
        study_uid=study.user_attrs[UID_ATTR], worker=worker_name(),
    )
    try:
        tracker.parent_run_id(spec.canonical())
    except Exception as error:  # MLflow down: trials spool their runs; sync links them
        log.warning("MLflow unreachable at start-up (%s); trial runs will be spooled",
                    type(error).__name__)
    return tracker


def _is_storage_error(error: BaseException) -> bool:
    import optuna
    import sqlalchemy.exc

    return isinstance(error, sqlalchemy.exc.OperationalError | sqlalchemy.exc.InterfaceError
                      | optuna.exceptions.StorageInternalError)


def run_worker(study: Any, spec: StudySpec, space: SearchSpace, tracker: StudyTracker, *,
               max_trials: int | None = None, show_progress: bool = True) -> int:
    """Run trials until the budget (or ``max_trials`` for this worker) is spent.
    Returns the number of trials this worker started."""
    budget = spec.budget.n_trials
    progress = StudyProgress(study_name=spec.name, budget=budget, done=finished_count(study),
                             epochs=spec.train.epochs, metric=spec.primary.metric,
                             enabled=show_progress)
    objective = Objective(spec, space, tracker, on_epoch=progress.epoch,
                          on_trial_start=progress.trial_started)
    started = 0
    failures = 0

    def count(study: Any, trial: Any) -> None:
        nonlocal started, failures
        started += 1
        failures = 0
        progress.trial_finished(study, trial)
        interrupt.check()  # stop between trials rather than create one more

    _parent_status(tracker, "RUNNING")
    with progress:
        while max_trials is None or started < max_trials:
            try:
                study.optimize(
                    objective, catch=(TrialFailed,), gc_after_trial=False, callbacks=[count],
                    n_trials=None if max_trials is None else max_trials - started,
                    show_progress_bar=False,
                )
                break  # n_trials reached, or the sampler stopped the study (grid done)
            except Exception as error:
                if is_budget_exhausted(error):
                    break
                if not _is_storage_error(error):
                    raise
                failures += 1
                if failures > STORAGE_RETRIES:
                    raise FatalError(f"storage unreachable: {error}") from error
                wait = min(30.0, 2.0 ** failures)
                log.warning("storage error (%s); retrying in %.0f s", error, wait)
                progress.console.print(f"storage error, retrying in {wait:.0f} s: "
                                       f"{type(error).__name__}")
                interrupt.sleep(wait)
    _close_parent_if_done(study, spec, tracker)
    return started


def _close_parent_if_done(study: Any, spec: StudySpec, tracker: StudyTracker) -> None:
    from optuna.trial import TrialState

    trials = study.get_trials(deepcopy=False)
    settled = not any(t.state in (TrialState.RUNNING, TrialState.WAITING) for t in trials)
    if settled and used_budget(trials) >= spec.budget.n_trials:
        _parent_status(tracker, "FINISHED")


def _parent_status(tracker: StudyTracker, status: str) -> None:
    try:
        tracker.set_parent_status(status)
    except Exception as error:  # cosmetic: never worth stopping a worker for
        log.warning("could not set the study's MLflow run to %s: %s", status,
                    type(error).__name__)
