"""An exact study-wide budget, however many workers race for it.

Optuna creates a trial in ``study.ask()`` (inside ``study.optimize``) by calling
``storage.create_new_trial``. This storage holds a database lock around "count the trials
that use the budget, then create one", so N workers can never start more than
``budget.n_trials`` trials between them; the worker that finds the budget spent gets
:class:`BudgetExhausted` out of ``optimize`` and stops.

Trials that use the budget: every trial except a FAIL that was retried (its retry counts
instead), a FAIL that was interrupted (SIGINT/SIGTERM: its place is given back), and a
duplicate (a configuration already trained: its figures are reused, nothing is trained).
A trial that will turn out a duplicate holds a place while it runs (nobody knows yet),
then gives it back, so the budget buys ``n_trials`` distinct trained configurations.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import threading
import zlib
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import optuna
from optuna.storages import RDBStorage
from optuna.trial import TrialState
from sqlalchemy import text

from sweep.errors import BudgetExhausted
from sweep.keys import DUPLICATE_OF, FAIL_REASON, INTERRUPTED, LOST, RETRY_HISTORY, SPEC
from sweep.storage import optuna_internals as internals

if TYPE_CHECKING:
    from optuna.trial import FrozenTrial

log = logging.getLogger("sweep")

_LOCK_NAMESPACE = 0x5357  # "SW": keeps our advisory-lock keys apart from other apps'


BUDGET_MARKER = "regsweep:budget-spent"


def is_budget_exhausted(error: BaseException) -> bool:
    """Also true behind the gRPC storage proxy, where the storage's exception reaches the
    worker only as the text of an RPC error."""
    return isinstance(error, BudgetExhausted) or BUDGET_MARKER in str(error)


def lost_reason(grace: float | None, *, ever: bool = True) -> str:
    """The reason of a trial failed for its worker's silence (``ever``: it had sent
    heartbeats before; else none since the trial started)."""
    if ever:
        return f"{LOST}: its worker stopped sending heartbeats (none for {grace} s)"
    return f"{LOST}: its worker sent no heartbeat in the {grace} s after the trial started"


def retried_numbers(trials: Iterable[Any]) -> set[int]:
    """Numbers of the trials that these trials retry."""
    retried: set[int] = set()
    for trial in trials:
        retried.update(trial.system_attrs.get(RETRY_HISTORY, ()))
    return retried


def given_back(trials: Sequence[FrozenTrial], retried: set[int] | None = None) -> set[int]:
    """Numbers of the FAIL trials whose place in the budget went to another trial: retried
    (a lost worker's trial) or interrupted (its configuration was queued again).
    ``retried``: the retried numbers when already known (else read from ``trials``)."""
    if retried is None:
        retried = retried_numbers(trials)
    return {t.number for t in trials
            if t.state == TrialState.FAIL and (
                t.number in retried or t.user_attrs.get(FAIL_REASON) == INTERRUPTED)}


def duplicates(trials: list[FrozenTrial]) -> int:
    """Trials that reused an earlier trial's figures (trained nothing)."""
    return sum(DUPLICATE_OF in t.user_attrs for t in trials)


def used_budget(trials: list[FrozenTrial]) -> int:
    return len(trials) - len(given_back(trials)) - duplicates(trials)


def finished_in_budget(trials: list[FrozenTrial]) -> int:
    """Finished trials that hold a place in the budget: a trial stopped or lost and queued
    again is counted once, by the trial that finishes in its place, and a duplicate not at
    all (what `[7/20]`, `sweep status` and `sweep list` call finished)."""
    done = sum(t.state in (TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL)
               for t in trials)
    return done - len(given_back(trials)) - duplicates(trials)


class BudgetedStorage(RDBStorage):
    """Optuna's RDB storage plus the budget lock (PostgreSQL/MySQL/SQLite)."""

    # One per purpose (the budget's, seed racing's, claiming a placement to train): a
    # thread of this process holding one may take another.
    _thread_locks: ClassVar[dict[str, threading.Lock]] = {
        "budget": threading.Lock(), "racing": threading.Lock(), "placement": threading.Lock()}

    def budget(self, study_id: int) -> int | None:
        spec = self.get_study_user_attrs(study_id).get(SPEC) or {}
        return (spec.get("budget") or {}).get("n_trials")

    # Optuna's cache layer (_CachedStorage, which wraps every RDB storage in a study) calls
    # `_create_new_trial` directly, so the budget check lives there; tests/storage/test_budget.py
    # fails loudly should that ever change.
    def _create_new_trial(self, study_id: int, template_trial: Any = None) -> Any:
        # A retry replaces a failed trial: it never needs budget of its own.
        if template_trial is not None and "failed_trial" in template_trial.system_attrs:
            return super()._create_new_trial(study_id, template_trial)
        with self.study_lock(study_id):
            budget = self.budget(study_id)
            if budget is not None:
                used = self.used_budget(study_id)
                if used >= budget:
                    raise BudgetExhausted(f"{BUDGET_MARKER}: budget of {budget} trials is spent")
            return super()._create_new_trial(study_id, template_trial)

    def set_trial_user_attrs(self, trial_id: int, attrs: dict[str, Any]) -> None:
        """Several user attributes of one trial in one transaction and, on PostgreSQL and
        SQLite, one statement: Optuna commits each attribute on its own, reading the trial
        row again for each (a trial's 20 attributes were 40 statements in 20 transactions,
        over a third of a worker's time per trial around an instant training:
        bench/coordination.py)."""
        import sqlite3

        models = internals.rdb_models()
        model = models.TrialUserAttributeModel
        with internals.scoped_session(self.scoped_session, True) as session:
            name = self.engine.name
            if name == "postgresql" or (name == "sqlite"
                                        and sqlite3.sqlite_version_info >= (3, 24, 0)):
                from sqlalchemy.dialects import postgresql, sqlite

                trial = models.TrialModel.find_or_raise_by_id(trial_id, session)
                self.check_trial_is_updatable(trial_id, trial.state)
                insert = (postgresql if name == "postgresql" else sqlite).insert(model).values(
                    [{"trial_id": trial_id, "key": key, "value_json": json.dumps(value)}
                     for key, value in attrs.items()])
                session.execute(insert.on_conflict_do_update(
                    index_elements=[model.trial_id, model.key],
                    set_={"value_json": insert.excluded.value_json}))
                return
            for key, value in attrs.items():  # other databases: Optuna's own upsert
                self._set_trial_attr_without_commit(session, model, trial_id, key, value)

    # Every trial read (read commands, worker start-up, the sampler's reads) goes through
    # here: plain rows instead of ORM objects (sweep.storage.reader).
    def _get_trials(self, study_id: int, states: Any, included_trial_ids: set[int],
                    trial_id_greater_than: int) -> list[Any]:
        from sweep.storage.reader import read_trials

        return read_trials(self.engine, study_id, states, included_trial_ids,
                           trial_id_greater_than)

    def used_budget(self, study_id: int) -> int:
        """``used_budget`` of the study's trials, counted by the database. Reading every
        trial instead grows with the study, under the lock that every worker's next trial
        waits for; these queries touch the FAIL and duplicate trials only
        (bench/workers.py measures the coordination cost per trial)."""
        from sqlalchemy import func, select

        models = internals.rdb_models()
        TrialModel = models.TrialModel
        TrialSystemAttributeModel = models.TrialSystemAttributeModel
        TrialUserAttributeModel = models.TrialUserAttributeModel

        with self.engine.connect() as connection:
            total = connection.execute(select(func.count(TrialModel.trial_id)).where(
                TrialModel.study_id == study_id)).scalar_one()
            total -= connection.execute(
                select(func.count(TrialUserAttributeModel.trial_id))
                .join(TrialModel, TrialModel.trial_id == TrialUserAttributeModel.trial_id)
                .where(TrialModel.study_id == study_id,
                       TrialUserAttributeModel.key == DUPLICATE_OF)).scalar_one()
            failed = dict(connection.execute(select(TrialModel.trial_id, TrialModel.number).where(
                TrialModel.study_id == study_id, TrialModel.state == TrialState.FAIL)).all())
            if not failed:
                return total
            interrupted = set(connection.execute(
                select(TrialUserAttributeModel.trial_id).where(
                    TrialUserAttributeModel.trial_id.in_(failed),
                    TrialUserAttributeModel.key == FAIL_REASON,
                    TrialUserAttributeModel.value_json == json.dumps(INTERRUPTED))).scalars())
            retried: set[int] = set()
            for history in connection.execute(
                    select(TrialSystemAttributeModel.value_json)
                    .join(TrialModel, TrialModel.trial_id == TrialSystemAttributeModel.trial_id)
                    .where(TrialModel.study_id == study_id,
                           TrialSystemAttributeModel.key == RETRY_HISTORY)).scalars():
                retried.update(json.loads(history))
        given_back = {trial_id for trial_id, number in failed.items()
                      if trial_id in interrupted or number in retried}
        return total - len(given_back)

    def finished_in_budget(self, study_id: int) -> int:
        """``finished_in_budget`` counted by the database: the budget used less the trials
        still running or waiting (a duplicate is always finished)."""
        from sqlalchemy import func, select

        TrialModel = internals.rdb_models().TrialModel

        with self.engine.connect() as connection:
            unfinished = connection.execute(select(func.count(TrialModel.trial_id)).where(
                TrialModel.study_id == study_id,
                TrialModel.state.in_([TrialState.RUNNING, TrialState.WAITING]))).scalar_one()
        return self.used_budget(study_id) - unfinished

    @contextlib.contextmanager
    def study_lock(self, study_id: int, purpose: str = "budget") -> Iterator[None]:
        """A lock per study and purpose (``budget``: creating a trial; ``racing``: queuing
        seed re-runs, which creates trials under the budget's), held across processes and
        machines by the database itself."""
        dialect = self.engine.dialect.name
        namespace = _LOCK_NAMESPACE + list(self._thread_locks).index(purpose)
        # Threads of one process (`sweep proxy` serves many workers from one pool) queue
        # here, holding no connection: each one waiting inside the database lock would hold
        # a pooled connection, and the lock's holder then found none left for its budget
        # check (32 workers on one proxy: QueuePool timeouts, workers lost).
        with self._thread_locks[purpose]:
            if dialect == "postgresql":
                key = (namespace << 32) | study_id
                with self._named_lock("SELECT pg_advisory_lock(:k)",
                                      "SELECT pg_advisory_unlock(:k)", {"k": key}):
                    yield
            elif dialect in ("mysql", "mariadb"):
                name = f"regsweep:{zlib.crc32(self.url.encode())}:{study_id}:{purpose}"
                with self._named_lock("SELECT GET_LOCK(:n, -1)", "SELECT RELEASE_LOCK(:n)",
                                      {"n": name}):
                    yield
            else:
                with _file_lock(self.engine.url.database, purpose):
                    yield

    @contextlib.contextmanager
    def _named_lock(self, acquire: str, release: str, params: dict[str, Any]
                    ) -> Iterator[None]:
        """A session-level database lock: released on release, or by the server when the
        connection of a crashed worker goes away."""
        with self.engine.connect() as connection:
            connection.execute(text(acquire), params)
            try:
                yield
            finally:
                connection.execute(text(release), params)
                connection.commit()

    # ---------------------------------------------------------------- heartbeats
    def configure_heartbeat(self, interval: int, grace: int,
                            callback: Any = None) -> None:
        """Heartbeats (settings from the study's stored spec, known only once the study is
        loaded, hence after construction)."""
        self.heartbeat_interval = interval
        self.grace_period = grace
        self.heartbeat_stale_trial_callback = callback
        self.failed_trial_callback = callback

    def _get_stale_trial_ids(self, study_id: int) -> list[int]:
        """Optuna's stale trials, each given its reason while still RUNNING: Optuna fails
        them, and a FAIL trial takes no attribute (a trial of a `kill -9`'d worker on
        PostgreSQL was FAIL with no reason)."""
        from optuna.exceptions import UpdateFinishedTrialError

        stale = super()._get_stale_trial_ids(study_id)
        for trial_id in stale:
            with contextlib.suppress(UpdateFinishedTrialError):  # another worker was first
                self.set_trial_user_attr(trial_id, FAIL_REASON, lost_reason(self.grace_period))
        return stale

    def record_heartbeat(self, trial_id: int) -> None:
        """One beat. A beat that fails (database restarting, connections cut) is logged and
        the next one comes at the next interval: raised, it would end Optuna's heartbeat
        thread with a traceback, and the trial, still training, would stop beating and
        look dead to every other worker (measured by tests/workers/test_workers_pg.py)."""
        try:
            super().record_heartbeat(trial_id)
        except Exception as error:  # any storage failure: try again at the next beat
            log.warning("heartbeat of trial id %d not recorded (%s); next one in %s s",
                        trial_id, type(error).__name__, self.heartbeat_interval)


@contextlib.contextmanager
def _file_lock(database: str | None, purpose: str = "budget") -> Iterator[None]:
    """SQLite has no named locks; a lock file next to the database serializes processes."""
    if not database or database == ":memory:":
        yield
        return
    suffix = ".lock" if purpose == "budget" else f".{purpose}.lock"
    path = Path(database).with_name(Path(database).name + suffix)
    with open(path, "a+") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def open_budgeted_storage(url: str, engine_kwargs: dict[str, Any], *,
                          read_only: bool = False) -> BudgetedStorage:
    # Heartbeat warnings are experimental-feature notices, not problems.
    import warnings

    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
    # Read-only commands skip the schema version check and table creation (part of
    # `sweep status`'s start-up, timed by bench/startup.py); anything that writes keeps both.
    if not read_only:
        return BudgetedStorage(url, engine_kwargs=engine_kwargs)
    with _without_alembic():
        return BudgetedStorage(url, engine_kwargs=engine_kwargs, skip_compatibility_check=True,
                               skip_table_creation=True)


@contextlib.contextmanager
def _without_alembic() -> Iterator[None]:
    """Optuna's RDB storage loads alembic (a large share of `sweep status`'s imports,
    bench/startup.py) to check or migrate the schema, which a read-only command never
    does; its version manager is built here without it. Anything that writes uses the real one."""
    rdb = internals.rdb_storage_module()
    original = getattr(rdb, internals.VERSION_MANAGER)

    class ReadOnlyVersionManager(original):  # type: ignore[misc, valid-type]
        def __init__(self, url: str, engine: Any, scoped_session: Any) -> None:
            self.url, self.engine, self.scoped_session = url, engine, scoped_session
            self._init_version_info_model()

        def __getattr__(self, name: str) -> Any:
            if name.startswith("alembic_"):  # asked for after all: load it now
                self._init_alembic()
                return object.__getattribute__(self, name)
            raise AttributeError(name)

    setattr(rdb, internals.VERSION_MANAGER, ReadOnlyVersionManager)
    try:
        yield
    finally:
        setattr(rdb, internals.VERSION_MANAGER, original)


def budgeted_backend(storage: Any) -> BudgetedStorage | None:
    """The BudgetedStorage under Optuna's cache layer, or None (a `sweep proxy` client)."""
    backend = internals.backend(storage)
    return backend if isinstance(backend, BudgetedStorage) else None


def set_user_attrs(trial: Any, attrs: dict[str, Any]) -> None:
    """``trial.set_user_attr`` for each of ``attrs``, in one transaction where the storage
    can: our RDB storage, and a `sweep proxy` client (sweep.storage.proxy)."""
    if not attrs:
        return
    backend = budgeted_backend(trial.storage) or trial.storage
    if not hasattr(backend, "set_trial_user_attrs"):
        for key, value in attrs.items():
            trial.set_user_attr(key, value)
        return
    backend.set_trial_user_attrs(internals.trial_id(trial), attrs)
    # What Trial.set_user_attr keeps up to date besides the storage.
    internals.cached_frozen_trial(trial).user_attrs.update(attrs)
