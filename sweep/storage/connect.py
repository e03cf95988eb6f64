"""The Optuna storage of a study: RDB with the exact-budget lock, or a `sweep proxy`."""

from __future__ import annotations

import os
import warnings
from pathlib import Path
from typing import Any

from sweep.keys import DUPLICATE_OF
from sweep.locations import check_storage_url, normalize_storage_url
from sweep.redact import mask_url

PROXY_WAIT = 10.0  # seconds a command waits for `sweep proxy` to answer
# Requests `sweep proxy` serves at once (one thread each). Its pool holds one connection per
# thread plus the one the study lock's holder needs besides its lock connection (the
# budget check), so no thread waits for a connection another thread cannot give back.
PROXY_THREADS = 16
APPLICATION_NAME = "regsweep"  # PostgreSQL's application_name of our connections


def engine_kwargs(url: str, threads: int = 1) -> dict[str, Any]:
    """Connection settings for the Optuna RDB storage of a process with ``threads``
    threads using it at once.

    A worker needs one connection at a time, so pools stay small (many workers × a small
    pool fits under PostgreSQL's connection limit); ``pool_pre_ping`` and ``pool_recycle``
    replace connections that the server or a proxy has dropped."""
    if url.startswith("sqlite"):
        # Concurrent readers (status, best) wait for the writer instead of failing at once.
        return {"connect_args": {"timeout": 60}}
    settings: dict[str, Any] = {"pool_size": max(2, threads), "max_overflow": 2,
                                "pool_pre_ping": True, "pool_recycle": 300}
    if url.startswith("postgresql"):
        # pg_stat_activity then says which connections are regsweep's, and whose.
        settings["connect_args"] = {"application_name": f"{APPLICATION_NAME} {os.getpid()}"}
    return settings


def open_storage(url: str, *, read_only: bool = False, threads: int = 1):
    """The Optuna storage for ``url``: RDB with the exact-budget lock (sweep.storage.budget), or
    ``grpc://host:port`` for a `sweep proxy` (which holds that lock on its side).
    ``threads``: how many threads use it at once (`sweep proxy`: PROXY_THREADS)."""
    from sweep.storage.budget import open_budgeted_storage

    if url.startswith("grpc://"):
        return _grpc_proxy(url)
    url = normalize_storage_url(url)
    try:
        storage = open_budgeted_storage(url, engine_kwargs(url, threads), read_only=read_only)
        if not read_only:
            ensure_indexes(storage.engine)
        return storage
    except Exception as error:  # unreachable server, refused login, ...
        from sweep.errors import FatalError, StorageBusy, describe_failure, root_cause

        cause = root_cause(error)
        kind = StorageBusy if is_connection_limit(cause) else FatalError
        raise kind(f"cannot open storage {mask_url(url)}: "
                   f"{describe_failure(cause, 300)}") from None


# PostgreSQL's SQLSTATE 53300 (too_many_connections): "sorry, too many clients already"
# (max_connections), "too many connections for role/database" (their connection limits),
# "remaining connection slots are reserved". A refusal at connection time often carries
# no SQLSTATE through psycopg, hence the messages as well.
_CONNECTION_LIMIT = ("too many clients", "too many connections",
                     "remaining connection slots are reserved")


def is_connection_limit(error: BaseException) -> bool:
    """Whether ``error`` is a database refusing a connection for want of free ones."""
    text = str(error)
    return getattr(error, "sqlstate", None) == "53300" or any(
        phrase in text for phrase in _CONNECTION_LIMIT)


# Optuna indexes trials by study_id alone: every query for a study's RUNNING or FAIL
# trials, or its highest number, scanned all of the study's trials (1.0-1.3 ms each at
# 10,000 trials, several per trial; 0.03-0.07 ms with these). The budget counts the
# trials that reused another's figures under the study lock at every trial: a partial
# index holds just those attribute rows (one of a trial's twenty).
INDEXES = {
    "ix_regsweep_trials_study_state": ("trials", "study_id, state", ""),
    "ix_regsweep_trials_study_number": ("trials", "study_id, number", ""),
    "ix_regsweep_user_attrs_duplicate": ("trial_user_attributes", "trial_id",
                                         f"key = '{DUPLICATE_OF}'"),
}


def ensure_indexes(engine: Any) -> None:
    """Create :data:`INDEXES` where missing. Several workers may start at once: a
    concurrent creation losing the race is fine as long as the index exists after. A role
    that does not own the tables cannot create indexes: the study works without them
    (only slower at thousands of trials), so that is a warning, not a failure."""
    import logging

    import sqlalchemy

    def present(table: str) -> set[str]:
        return {index["name"] for index in sqlalchemy.inspect(engine).get_indexes(table)}

    for name, (table, columns, where) in INDEXES.items():
        if name in present(table):
            continue
        statement = sqlalchemy.text(f"CREATE INDEX IF NOT EXISTS {name} ON {table} "
                                    f"({columns}){f' WHERE {where}' if where else ''}")
        try:
            with engine.begin() as connection:
                connection.execute(statement)
        except sqlalchemy.exc.DBAPIError as error:
            if name not in present(table):
                from sweep.errors import describe_failure, root_cause

                logging.getLogger(__name__).warning(
                    "could not create index %s on %s (queries of large studies will be "
                    "slower): %s", name, table, describe_failure(root_cause(error), 200))


def quiet_optuna() -> None:
    """Our own progress lines say what finished and why; Optuna's INFO lines would repeat
    them."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.ERROR)


def read_storage(url: str, *, read_only: bool = True, field: str = "--storage"):
    """A storage that must already exist (commands that read a study): a missing SQLite
    file is bad input, never created as a side effect."""
    from sweep.errors import SpecError

    if url.startswith("sqlite:///") and url != "sqlite:///:memory:" \
            and not Path(url.removeprefix("sqlite:///")).exists():
        raise SpecError(field, "no study storage at this path", url)
    return open_storage(url, read_only=read_only)


def _grpc_proxy(url: str):
    import optuna

    from sweep.errors import FatalError
    from sweep.storage.proxy import ProxyStorage

    check_storage_url(url)
    host, _, port = url.removeprefix("grpc://").rstrip("/").rpartition(":")
    with warnings.catch_warnings():  # Optuna marks the proxy experimental: not news here
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        proxy = ProxyStorage(host=host, port=int(port))
    try:
        proxy.wait_server_ready(timeout=PROXY_WAIT)
    except Exception as error:  # grpc's FutureTimeoutError, ...
        raise FatalError(f"cannot reach the storage proxy at {url} within {PROXY_WAIT:.0f} s "
                         f"({type(error).__name__}); is `sweep proxy` running there?") from None
    return proxy
