"""A worker: Optuna's own ``study.optimize`` loop with our objective, until the
study-wide budget is spent (``BudgetExhausted`` from the storage) or this worker's
``max_trials`` is reached."""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sweep import interrupt
from sweep.answers.note import describe_study
from sweep.answers.runs_view import publish_configuration, publish_ranking
from sweep.errors import FatalError, TrialFailed, describe_failure
from sweep.keys import LOST, WORKER
from sweep.placement.space import SearchSpace
from sweep.search.limits import study_halt
from sweep.search.racing import promote
from sweep.spec import StudySpec
from sweep.storage import optuna_internals as internals
from sweep.storage.budget import is_budget_exhausted, used_budget
from sweep.study.create import finished_count
from sweep.tracking.tracker import StudyTracker
from sweep.workers.objective import Objective
from sweep.workers.progress import StudyProgress

if TYPE_CHECKING:
    import optuna

log = logging.getLogger("sweep")

# Consecutive storage failures (database restarted, connections dropped) a worker rides
# out before giving up; each costs at most the trial in flight.
STORAGE_RETRIES = 8

# Seconds between a waiting worker's looks at whether other workers' trials still run.
WAIT_POLL = 1.0


def retry_pause(failures: int) -> float:
    """Seconds to wait after ``failures`` storage failures in a row: doubling, at most 30."""
    return min(30.0, 2.0 ** failures)


def enable_heartbeats(storage: Any, spec: StudySpec, tracking_uri: str | None) -> None:
    """Heartbeats, grace period and retries come from the study's stored spec only: Optuna
    applies the *local* grace period when it fails other workers' trials, so a worker
    allowed its own value would fail live trials of its peers."""
    from sweep.search.reaper import StaleTrialCallback

    storage = getattr(storage, "_backend", storage)  # Optuna wraps RDB storages in a cache
    if hasattr(storage, "configure_heartbeat"):
        storage.configure_heartbeat(
            spec.workers.heartbeat_interval, spec.workers.grace_period,
            StaleTrialCallback(spec.workers.max_retry, tracking_uri,
                               lambda study: checkpoint_root(study, spec)))


def checkpoint_root(study: optuna.Study, spec: StudySpec) -> Path:
    """``workers.checkpoint_dir``; else ``$SWEEP_CHECKPOINT_DIR`` (a launcher's shared
    mount: containers and cluster nodes see one folder under different paths); else the
    default next to the storage (sweep.checkpoint)."""
    from sweep.training.checkpoint import default_root

    configured = spec.workers.checkpoint_dir or os.environ.get("SWEEP_CHECKPOINT_DIR")
    if configured:
        return Path(configured).expanduser()
    backend = internals.backend(internals.storage(study))
    return default_root(getattr(backend, "url", None))


def _is_storage_error(error: BaseException) -> bool:
    import optuna
    import sqlalchemy.exc

    kinds = (sqlalchemy.exc.OperationalError, sqlalchemy.exc.InterfaceError,
             optuna.exceptions.StorageInternalError)
    # Looked for along the chain: when the database is gone at the end of a trial, Optuna's
    # _run_trial (4.x, 5.0) masks the storage error with an UnboundLocalError of its own (its
    # `finally` reads the state that the failed read never set).
    seen: BaseException | None = error
    for _ in range(20):
        if seen is None:
            break
        if isinstance(seen, kinds) or _is_transient_rpc(seen):
            return True
        seen = seen.__cause__ or seen.__context__
    return False


def _is_transient_rpc(error: BaseException) -> bool:
    """A `sweep proxy` that is restarting, or too busy to answer in time (64 workers on
    one proxy: bench/many_workers.py), is a storage fault to wait out, like a database's."""
    code = getattr(error, "code", None)
    if not callable(code) or type(error).__module__.split(".")[0] != "grpc":
        return False
    import grpc

    try:
        return code() in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED,
                          grpc.StatusCode.RESOURCE_EXHAUSTED)
    except Exception:  # not an RPC outcome after all
        return False


def run_worker(study: optuna.Study, spec: StudySpec, space: SearchSpace, tracker: StudyTracker, *,
               max_trials: int | None = None, show_progress: bool = True,
               checkpoint_root: Path | None = None) -> int:
    """Run trials until the budget (or ``max_trials`` for this worker) is spent, then stay
    until no other trial of the study is running or waiting: the last worker up finishes
    the study (recovers trials of dead workers, runs their retries and re-queued trials).
    Returns the number of trials this worker ran. Raises ``StudyHalted`` when the study's
    ``max_failures`` or ``wall_time`` stops it."""
    budget = spec.budget.n_trials
    progress = StudyProgress(study_name=spec.name, budget=budget, done=finished_count(study),
                             epochs=spec.train.epochs, metric=spec.primary.metric,
                             spec=spec, enabled=show_progress)
    objective = Objective(spec, space, tracker, checkpoint_root=checkpoint_root,
                          on_epoch=progress.epoch, on_trial_start=progress.trial_started)
    started = 0
    failures = 0

    def after_trial(study: optuna.Study, trial: Any) -> None:
        nonlocal started, failures
        started += 1
        failures = 0
        # One read of the study for the progress line and the limits (through `sweep proxy`
        # each read is a round trip: three of them here were an eighth of a trial's).
        # Seed racing only queues WAITING trials, which no limit counts.
        trials = study.get_trials(deepcopy=False)
        ranking = progress.trial_finished(study, trial, trials)
        publish_configuration(study, spec, ranking, trial, tracker)
        if spec.racing is not None:
            promote(study, spec)  # the leaders' extra seeds go first (sweep.search.racing)
        interrupt.check()  # stop between trials rather than create one more
        if study_halt(study, spec, trials) is not None:
            study.stop()

    _parent_status(tracker, "RUNNING")
    try:
        halted = None
        with progress:
            while max_trials is None or started < max_trials:
                halted = study_halt(study, spec)
                if halted is not None:
                    break
                try:
                    study.optimize(
                        objective, catch=(TrialFailed,), gc_after_trial=False,
                        callbacks=[after_trial],
                        n_trials=None if max_trials is None else max_trials - started,
                        show_progress_bar=False,
                    )
                    # This worker's max_trials reached, a limit stopped the study (the loop's
                    # check says which), or the sampler has nothing left (grid done).
                    if max_trials is not None and started >= max_trials:
                        break
                    if study_halt(study, spec) is not None:
                        continue
                    if not _wait_for_others(study, spec, progress):
                        break
                except Exception as error:
                    if is_budget_exhausted(error):
                        if not _wait_for_others(study, spec, progress):
                            break
                        continue
                    if not _is_storage_error(error):
                        raise
                    failures += 1
                    cause = describe_failure(error, 200)
                    if failures > STORAGE_RETRIES:
                        raise FatalError(f"storage unreachable: {cause}") from error
                    wait = retry_pause(failures)
                    log.warning("storage error (%s); retrying in %.0f s", cause, wait)
                    progress.console.print(f"storage error, retrying in {wait:.0f} s: "
                                           f"{type(error).__name__}")
                    interrupt.sleep(wait)
                    _recover_own_trials(study, tracker.worker, cause)
        trials = study.get_trials(deepcopy=False)
        halted = halted or study_halt(study, spec, trials)
        if halted is not None:
            if halted.failed:
                _parent_status(tracker, "FAILED")
                raise halted
            if used_budget(trials) < budget:  # a limit, not the budget, ended it
                progress.console.print(str(halted), highlight=False)
        tracker.settle()  # what the ranking below reads and overwrites is written first
        _close_parent_if_done(study, spec, tracker)
        return started
    finally:
        tracker.settle()  # the finished runs' last MLflow calls, before the process ends


def _recover_own_trials(study: optuna.Study, worker: str, cause: str) -> None:
    """Trials this worker was running when the storage failed are not running any more,
    but stay RUNNING in the database: fail them now and queue their retries (as for a
    dead worker) instead of waiting out the grace period."""
    from optuna.trial import TrialState

    from sweep.search.reaper import fail_and_retry

    try:
        fail_and_retry(study, [
            t for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))
            if t.user_attrs.get(WORKER) == worker],
            f"{LOST}: the database failed while it ran ({cause})")
    except Exception as error:  # still down: the next attempt, or the grace period, will do
        log.warning("could not recover this worker's trials yet: %s", type(error).__name__)


def _wait_for_others(study: optuna.Study, spec: StudySpec, progress: StudyProgress) -> bool:
    """With nothing left to start: wait while other workers' trials run, failing those
    whose heartbeat goes stale (their retries are queued). True when a trial is waiting
    to be run (a retry, a re-queued trial), False once nothing runs or waits.

    Whether anything still runs is asked every ``WAIT_POLL`` seconds (the running and
    waiting trials only: one small query, whatever the study's size), so the last worker
    leaves within seconds of the last trial; stale trials are looked for once per
    heartbeat interval, as often as a heartbeat can go stale (bench/waiting.py measures
    both). No training."""
    import time

    from optuna.trial import TrialState

    from sweep.search.reaper import reap

    announced = False
    next_reap = 0.0
    while True:
        live = study.get_trials(deepcopy=False, states=(TrialState.RUNNING, TrialState.WAITING))
        if any(t.state == TrialState.WAITING for t in live):
            return study_halt(study, spec) is None
        if not live:
            return False
        if not internals.heartbeat_enabled(internals.storage(study)):
            # Behind `sweep proxy` no heartbeats reach this worker: it could wait forever.
            progress.console.print(
                "budget spent; other trials still run. Behind a storage proxy, trials of "
                "dead workers are recovered by `sweep reap` against the database.",
                highlight=False)
            return False
        if not announced:
            progress.console.print(
                f"budget spent; staying until the running trials "
                f"({', '.join(f'#{t.number}' for t in live)}) end, to recover them should "
                "their workers die (Ctrl-C leaves)", highlight=False)
            announced = True
        if time.monotonic() >= next_reap:
            reap(study)
            next_reap = time.monotonic() + spec.workers.heartbeat_interval
        interrupt.sleep(WAIT_POLL)  # heartbeat_interval is a whole second or more


def settled(study: optuna.Study) -> bool:
    """No trial of the study is running or waiting to run."""
    from optuna.trial import TrialState

    return not any(t.state in (TrialState.RUNNING, TrialState.WAITING)
                   for t in study.get_trials(deepcopy=False))


def _close_parent_if_done(study: optuna.Study, spec: StudySpec, tracker: StudyTracker) -> None:
    from optuna.trial import TrialState

    trials = study.get_trials(deepcopy=False)
    if any(t.state == TrialState.RUNNING for t in trials):
        return
    waiting = any(t.state == TrialState.WAITING for t in trials)
    halted = study_halt(study, spec, trials)
    if (used_budget(trials) >= spec.budget.n_trials and not waiting) or (
            halted is not None and not halted.failed):
        describe_study(study, spec, tracker)
        publish_ranking(study, spec, tracker)
        _parent_status(tracker, "FINISHED")


def _parent_status(tracker: StudyTracker, status: str) -> None:
    try:
        tracker.set_parent_status(status)
    except Exception as error:  # never worth stopping a worker for
        log.warning("could not set the study's MLflow run to %s: %s", status,
                    describe_failure(error, 200))
