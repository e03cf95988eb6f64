"""Where studies and runs live: URL defaults, password masking, the Optuna storage.

``--storage`` falls back to ``$SWEEP_STORAGE``, then ``sqlite:///sweep.db``;
``--tracking-uri`` to ``$MLFLOW_TRACKING_URI``, then ``sqlite:///mlflow.db``.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import re
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from sweep.errors import SpecError

DEFAULT_STORAGE = "sqlite:///sweep.db"
DEFAULT_TRACKING_URI = "sqlite:///mlflow.db"
PROXY_WAIT = 10.0  # seconds a command waits for `sweep proxy` to answer
APPLICATION_NAME = "regsweep"  # PostgreSQL's application_name of our connections

_PASSWORD = re.compile(r"(?P<head>[a-zA-Z][\w+.-]*://[^:/@\s]*):(?P<password>[^@\s]*)@")
# libpq and SQLAlchemy also take the password as a query parameter (`?password=…`).
_QUERY_SECRET = re.compile(r"(?P<head>[?&](?:password|passwd|pwd|sslpassword|token|secret)=)"
                           r"[^&#\s]*", re.IGNORECASE)


def mask_url(url: str) -> str:
    """``postgresql://u:secret@h/db`` → ``postgresql://u:***@h/db`` and ``…?password=secret``
    → ``…?password=***``, for anything printed, logged or stored."""
    masked = _PASSWORD.sub(lambda m: f"{m['head']}:***@", url)
    return _QUERY_SECRET.sub(lambda m: f"{m['head']}***", masked)


# What MLflow 3 takes as a tracking URI (a bare path is a local file store).
TRACKING_SCHEMES = ("", "file", "sqlite", "postgresql", "mysql", "mssql", "http", "https",
                    "databricks", "databricks-uc", "uc")
_STORAGE_BACKENDS = ("sqlite", "postgresql", "mysql")


def _check_sqlite_path(url: str, field: str) -> None:
    path = url.split(":///", 1)[1].split("?", 1)[0] if ":///" in url else ""
    if not path or path == ":memory:":
        return
    target = Path(path)
    if target.is_dir():
        raise SpecError(field, "is a folder, not a database file", mask_url(url))
    parent = next((p for p in target.absolute().parents if p.exists()), None)
    if parent is not None and not parent.is_dir():
        raise SpecError(field, f"{parent} is a file, not a folder", mask_url(url))


def check_storage_url(url: str, field: str = "--storage") -> str:
    """A storage URL that can work: ``grpc://HOST:PORT`` or an SQLAlchemy URL of SQLite,
    PostgreSQL or MySQL whose driver is installed. Bad ones are bad input (exit 2), found
    before anything is written."""
    if url.startswith("grpc://"):
        host, _, port = url.removeprefix("grpc://").rstrip("/").rpartition(":")
        if not host or not port.isdigit():
            raise SpecError(field, "a proxy URL is grpc://HOST:PORT", mask_url(url))
        return url
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError, NoSuchModuleError

    try:
        parsed = make_url(normalize_storage_url(url))
    except ArgumentError:
        raise SpecError(field, "not a database URL (sqlite:///FILE, "
                        "postgresql://USER@HOST/DB or grpc://HOST:PORT)", mask_url(url)) from None
    if parsed.get_backend_name() not in _STORAGE_BACKENDS:
        raise SpecError(field, f"unsupported database {parsed.get_backend_name()!r} (use "
                        "SQLite, PostgreSQL or MySQL)", mask_url(url))
    try:
        parsed.get_dialect().import_dbapi()
    except (ImportError, NoSuchModuleError) as error:
        raise SpecError(field, f"no driver for {parsed.drivername} is installed ({error})",
                        mask_url(url)) from None
    if parsed.get_backend_name() == "sqlite":
        _check_sqlite_path(url, field)
    return url


def check_tracking_uri(uri: str, field: str = "--tracking-uri") -> str:
    """A tracking URI MLflow can use, found before anything is written (exit 2 if not)."""
    scheme = uri.split("://", 1)[0].split("+", 1)[0] if "://" in uri else ""
    if scheme not in TRACKING_SCHEMES:
        raise SpecError(field, f"unsupported scheme {scheme!r} (use "
                        f"{', '.join(s for s in TRACKING_SCHEMES if s)} or a folder)",
                        mask_url(uri))
    if scheme == "sqlite":
        _check_sqlite_path(uri, field)
    elif scheme in ("", "file"):
        folder = Path(uri.removeprefix("file://")) if uri else Path.cwd()
        if folder.exists() and not folder.is_dir():
            raise SpecError(field, "is a file, not a folder for a file store", mask_url(uri))
        if not _file_store_allowed():
            raise SpecError(field, "this MLflow refuses folder stores: use sqlite:///mlflow.db "
                            "(or set MLFLOW_ALLOW_FILE_STORE=true)", mask_url(uri))
    return uri


def _file_store_allowed() -> bool:
    """Newer MLflow 3 releases raise on a folder store unless told otherwise; found here,
    before the study is created, instead of after (exit 1 with the study half set up)."""
    try:
        from mlflow.environment_variables import MLFLOW_ALLOW_FILE_STORE
    except ImportError:  # an MLflow from before the opt-out: folder stores still work
        return True
    return bool(MLFLOW_ALLOW_FILE_STORE.get())


def sqlite_file(url: str) -> Path | None:
    """The database file of a ``sqlite:///FILE`` URL (storage or tracking), else None."""
    if not url.startswith("sqlite:///"):
        return None
    path = url.removeprefix("sqlite:///").split("?", 1)[0]
    return None if path in ("", ":memory:") else Path(path)


@contextlib.contextmanager
def first_use_lock(*urls: str) -> Iterator[None]:
    """Serialize the first use of local SQLite stores between processes: two `sweep run`
    started together on a fresh folder would otherwise both create the study (one then
    sees a false "differs from the spec stored") and both run MLflow's schema migration,
    which can leave ``mlflow.db`` broken for good. Each file gets a ``.setup.lock`` next to
    it; locks are taken in a fixed order, so two processes never wait on each other."""
    files = sorted({f.absolute() for f in map(sqlite_file, urls) if f is not None})
    with contextlib.ExitStack() as stack:
        for file in files:
            file.parent.mkdir(parents=True, exist_ok=True)
            handle = stack.enter_context(open(file.with_name(file.name + ".setup.lock"), "a+"))
            fcntl.flock(handle, fcntl.LOCK_EX)  # released when the file closes
        yield


def normalize_storage_url(url: str) -> str:
    # SQLAlchemy 2 maps bare postgresql:// to psycopg2, which we do not ship; psycopg 3 is.
    if url.startswith("postgresql://") or url.startswith("postgres://"):
        return "postgresql+psycopg://" + url.split("://", 1)[1]
    return url


def engine_kwargs(url: str) -> dict[str, Any]:
    """Connection settings for the Optuna RDB storage.

    A worker needs one connection at a time, so pools stay small (many workers × a small
    pool fits under PostgreSQL's connection limit); ``pool_pre_ping`` and ``pool_recycle``
    replace connections that the server or a proxy has dropped."""
    if url.startswith("sqlite"):
        # Concurrent readers (status, best) wait for the writer instead of failing at once.
        return {"connect_args": {"timeout": 60}}
    settings: dict[str, Any] = {"pool_size": 2, "max_overflow": 2, "pool_pre_ping": True,
                                "pool_recycle": 300}
    if url.startswith("postgresql"):
        # pg_stat_activity then says which connections are regsweep's, and whose.
        settings["connect_args"] = {"application_name": f"{APPLICATION_NAME} {os.getpid()}"}
    return settings


def open_storage(url: str, *, read_only: bool = False):
    """The Optuna storage for ``url``: RDB with the exact-budget lock (sweep.budget), or
    ``grpc://host:port`` for a `sweep proxy` (which holds that lock on its side)."""
    from sweep.budget import open_budgeted_storage

    if url.startswith("grpc://"):
        return _grpc_proxy(url)
    url = normalize_storage_url(url)
    try:
        return open_budgeted_storage(url, engine_kwargs(url), read_only=read_only)
    except Exception as error:  # unreachable server, refused login, ...
        from sweep.errors import FatalError, describe_failure, root_cause

        raise FatalError(f"cannot open storage {mask_url(url)}: "
                         f"{describe_failure(root_cause(error), 300)}") from None


def _grpc_proxy(url: str):
    import optuna

    from sweep.errors import FatalError

    check_storage_url(url)
    host, _, port = url.removeprefix("grpc://").rstrip("/").rpartition(":")
    with warnings.catch_warnings():  # Optuna marks the proxy experimental: not news here
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        proxy = optuna.storages.GrpcStorageProxy(host=host, port=int(port))
    try:
        proxy.wait_server_ready(timeout=PROXY_WAIT)
    except Exception as error:  # grpc's FutureTimeoutError, ...
        raise FatalError(f"cannot reach the storage proxy at {url} within {PROXY_WAIT:.0f} s "
                         f"({type(error).__name__}); is `sweep proxy` running there?") from None
    return proxy
