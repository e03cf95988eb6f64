"""A worker's session: the study created or joined, this process's batch of trials and
its renewal, and the local workers that `sweep run` supervises."""

from __future__ import annotations

import os
import sys
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from sweep.errors import FatalError, SpecError
from sweep.redact import mask_url

if TYPE_CHECKING:
    import optuna

    from sweep.spec import StudySpec


def wait_for_study(storage_url: str, name: str, seconds: int):
    """(storage, study, spec), retried every 2 s for up to ``seconds`` while the study (or
    its database) is not there yet: cluster workers may start before `sweep create`."""
    from sweep.errors import StorageBusy
    from sweep.study.create import load_named
    from sweep.workers.loop import STORAGE_RETRIES, retry_pause

    deadline = time.monotonic() + seconds
    said = False
    busy = 0
    while True:
        try:
            return load_named(storage_url, name, read_only=False)
        except StorageBusy as error:
            # A database with no connection left (more workers than its max_connections)
            # has one again as other workers finish: waited out as the trial loop waits
            # out a storage fault, whatever --wait says.
            busy += 1
            if busy > STORAGE_RETRIES:
                raise FatalError(f"{error}; the database has no connection left for this "
                                 "worker: run fewer workers, raise its max_connections, "
                                 "or put `sweep proxy` in front of it (README, Many "
                                 "workers)") from None
            pause = retry_pause(busy)
            print(f"the database has no free connection; retrying in {pause:.0f} s "
                  f"({error})", file=sys.stderr, flush=True)
            time.sleep(pause)
        except (SpecError, FatalError) as error:
            if time.monotonic() >= deadline or (
                    isinstance(error, SpecError) and error.field != "STUDY_NAME"
                    and "no study storage" not in error.message):
                raise
            if not said:  # once: a cluster log shows why the worker has not started yet
                print(f"waiting up to {seconds} s for study '{name}' in "
                      f"{mask_url(storage_url)} ({error})", file=sys.stderr, flush=True)
                said = True
            time.sleep(2)


@dataclass
class Session:
    """What a process has set up for one study, built once and shared by the commands,
    the Python API (``sweep.api.Study`` is one) and the worker loop: the study and its
    spec, the stores, and, once needed, the checked search space, this process's MLflow
    tracker and the sampler configured for its worker index."""

    study: optuna.Study
    spec: StudySpec  # the one the study holds
    storage: str
    tracking_uri: str
    _space: Any = field(default=None, repr=False)
    _tracker: Any = field(default=None, repr=False)
    _configured: int | None = field(default=None, repr=False)

    @property
    def space(self) -> Any:
        """The search space, checked against the model (built once: imports TensorFlow)."""
        if self._space is None:
            from sweep.study.check import check_study

            self._space = check_study(self.spec)
        return self._space

    @property
    def tracker(self) -> Any:
        """This process's MLflow tracker, the study's run opened and described once."""
        if self._tracker is None:
            from sweep.answers.note import make_tracker
            from sweep.locations import first_use_lock

            with first_use_lock(self.tracking_uri):  # workers started together, fresh store
                self._tracker = make_tracker(self.study, self.spec, self.tracking_uri)
        return self._tracker

    def configure(self, worker_index: int = 0) -> None:
        """The study's sampler (seeded for this worker) and pruner, once per index:
        Optuna stores neither."""
        if self._configured != worker_index:
            from sweep.study.create import configure

            configure(self.study, self.spec, self.space, worker_index=worker_index)
            self._configured = worker_index


def create_study(spec: StudySpec, space: Any, storage_url: str, tracking_uri: str, *,
                 force_new: bool = False, n_trials: int | None = None,
                 warm_start: Any = None, commit: str | None = None):
    """Create or resume the study and its MLflow run: its Session (the spec it holds).
    ``warm_start``: a ``sweep.study.warm.WarmStart``, read and checked before anything is
    written. ``commit``: the study file's git commit (sweep.study.source)."""
    from sweep.answers.note import make_tracker
    from sweep.locations import first_use_lock
    from sweep.storage.connect import open_storage, quiet_optuna
    from sweep.study.create import create_or_resume
    from sweep.study.source import record_commit
    from sweep.study.warm import check_room, load_warm_start

    quiet_optuna()
    configurations = None
    if warm_start is not None:
        configurations = load_warm_start(warm_start, space, spec.name, storage_url)
        check_room(configurations, len(space.baselines()), n_trials or spec.budget.n_trials)
    with first_use_lock(storage_url, tracking_uri):
        storage = open_storage(storage_url)
        study, spec = create_or_resume(spec, storage, force_new=force_new,
                                       n_trials=n_trials, space=space,
                                       warm_start=configurations)
        record_commit(study, commit)
        # The study's MLflow run, there before any worker (opened under this lock:
        # Session.tracker would take the tracking store's lock a second time).
        session = Session(study, spec, storage_url, tracking_uri, _space=space,
                          _tracker=make_tracker(study, spec, tracking_uri))
        session.configure(0)
    return session


def work(session: Session, *, max_trials: int | None, show_progress: bool,
         worker_index: int) -> int:
    """Run trials in this process (sweep.workers.loop); SIGINT/SIGTERM stop it at a safe
    point. Returns the number of trials it ran."""
    from sweep.interrupt import stop_on_signals
    from sweep.storage import optuna_internals as internals
    from sweep.workers.loop import checkpoint_root, enable_heartbeats, run_worker

    study, spec = session.study, session.spec
    session.configure(worker_index)
    enable_heartbeats(internals.storage(study), spec, session.tracking_uri)
    with stop_on_signals():
        return run_worker(study, spec, session.space, session.tracker, max_trials=max_trials,
                          show_progress=show_progress,
                          checkpoint_root=checkpoint_root(study, spec))


def work_in_batches(session: Session, *, max_trials: int | None, show_progress: bool) -> None:
    """`sweep worker`: at most ``workers.recycle_after`` trials in this process, which
    then renews itself (same pid) while the study has work left, because TensorFlow never
    gives back what a long run of trials accumulates (see the spec)."""
    from sweep.study.identity import worker_index
    from sweep.workers.lifecycle import TRIALS_LEFT, renew_process
    from sweep.workers.loop import settled

    study, spec = session.study, session.spec
    left = int(os.environ.get(TRIALS_LEFT, 0)) or max_trials
    batch = spec.workers.recycle_after if left is None else min(left, spec.workers.recycle_after)
    done = work(session, max_trials=batch, show_progress=show_progress,
                worker_index=worker_index())
    left = None if left is None else left - done
    if done == batch and (left is None or left > 0) and (
            budget_left(study, spec) or not settled(study)):
        renew_process(left)


def budget_left(study: optuna.Study, spec: StudySpec) -> bool:
    from sweep.search.limits import study_halt
    from sweep.storage.budget import used_budget

    trials = study.get_trials(deepcopy=False)
    return used_budget(trials) < spec.budget.n_trials and study_halt(study, spec, trials) is None


def run_here(session: Session, slots: list[Any], *, gpus: bool, show_progress: bool) -> None:
    """`sweep run`: a small study in this process (no start-up cost), else worker
    processes supervised by this one (sweep.workers.launcher). Raises ``StudyHalted`` when
    a study limit failed it."""
    from sweep.search.limits import study_halt
    from sweep.storage.budget import used_budget
    from sweep.workers.launcher import supervise

    study, spec = session.study, session.spec
    remaining = spec.budget.n_trials - used_budget(study.get_trials(deepcopy=False))
    if len(slots) == 1 and not gpus and remaining <= spec.workers.recycle_after:
        work(session, max_trials=None, show_progress=show_progress, worker_index=0)
        return
    extra: list[str] = [] if show_progress and len(slots) == 1 else ["--no-progress"]
    if len(slots) > 1:
        print(f"starting {len(slots)} workers on study '{spec.name}'", file=sys.stderr,
              flush=True)
    supervise(spec.name, session.storage, session.tracking_uri, slots, extra_args=extra,
              halted=lambda: study_halt(study, spec) is not None)
    # Workers that stopped on a study limit said so; the launcher repeats the verdict.
    halted = study_halt(study, spec)
    if halted is not None and halted.failed:
        raise halted
