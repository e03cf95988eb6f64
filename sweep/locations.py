"""Where studies and runs live: URL defaults and checks (before anything is written), local
SQLite files and their first-use lock.

``--storage`` falls back to ``$SWEEP_STORAGE``, then ``sqlite:///sweep.db``;
``--tracking-uri`` to ``$MLFLOW_TRACKING_URI``, then ``sqlite:///mlflow.db``.
"""

from __future__ import annotations

import contextlib
import fcntl
from collections.abc import Iterator
from pathlib import Path

from sweep.errors import SpecError
from sweep.redact import mask_url

DEFAULT_STORAGE = "sqlite:///sweep.db"
DEFAULT_TRACKING_URI = "sqlite:///mlflow.db"
_STORAGE_BACKENDS = ("sqlite", "postgresql", "mysql")


# What MLflow 3 takes as a tracking URI (a bare path is a local file store).
TRACKING_SCHEMES = ("", "file", "sqlite", "postgresql", "mysql", "mssql", "http", "https",
                    "databricks", "databricks-uc", "uc")


def nearest_existing(path: Path) -> Path | None:
    """``path`` or its nearest ancestor that exists: where a file or folder below it can
    (or cannot) be created."""
    return next((p for p in (path.absolute(), *path.absolute().parents) if p.exists()), None)


def blocking_file(path: Path) -> Path | None:
    """The nearest existing ancestor of ``path`` if it is a file (nothing can go below it)."""
    existing = nearest_existing(path.absolute().parent)
    return existing if existing is not None and not existing.is_dir() else None


def _check_sqlite_path(url: str, field: str) -> None:
    target = sqlite_file(url.replace("sqlite+pysqlite:", "sqlite:", 1))
    if target is None:
        return
    if target.is_dir():
        raise SpecError(field, "is a folder, not a database file", mask_url(url))
    if (blocking := blocking_file(target)) is not None:
        raise SpecError(field, f"{blocking} is a file, not a folder", mask_url(url))


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
