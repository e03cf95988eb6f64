"""Where studies and runs live: URL defaults, password masking, the Optuna storage.

``--storage`` falls back to ``$SWEEP_STORAGE``, then ``sqlite:///sweep.db``;
``--tracking-uri`` to ``$MLFLOW_TRACKING_URI``, then ``sqlite:///mlflow.db``.
"""

from __future__ import annotations

import re
from typing import Any

DEFAULT_STORAGE = "sqlite:///sweep.db"
DEFAULT_TRACKING_URI = "sqlite:///mlflow.db"

_PASSWORD = re.compile(r"(?P<head>[a-zA-Z][\w+.-]*://[^:/@\s]*):(?P<password>[^@\s]*)@")
# libpq and SQLAlchemy also take the password as a query parameter (`?password=…`).
_QUERY_SECRET = re.compile(r"(?P<head>[?&](?:password|passwd|pwd|sslpassword|token|secret)=)"
                           r"[^&#\s]*", re.IGNORECASE)


def mask_url(url: str) -> str:
    """``postgresql://u:secret@h/db`` → ``postgresql://u:***@h/db`` and ``…?password=secret``
    → ``…?password=***``, for anything printed, logged or stored."""
    masked = _PASSWORD.sub(lambda m: f"{m['head']}:***@", url)
    return _QUERY_SECRET.sub(lambda m: f"{m['head']}***", masked)


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
    return {"pool_size": 2, "max_overflow": 2, "pool_pre_ping": True, "pool_recycle": 300}


def open_storage(url: str, *, read_only: bool = False):
    """The Optuna storage for ``url``: RDB with the exact-budget lock (sweep.budget), or
    ``grpc://host:port`` for a `sweep proxy` (which holds that lock on its side)."""
    from sweep.budget import open_budgeted_storage

    if url.startswith("grpc://"):
        return _grpc_proxy(url)
    url = normalize_storage_url(url)
    try:
        return open_budgeted_storage(url, engine_kwargs(url), read_only=read_only)
    except Exception as error:  # bad URL, unreachable server, missing driver, ...
        from sweep.errors import FatalError

        raise FatalError(f"cannot open storage {mask_url(url)}: {error}") from None


def _grpc_proxy(url: str):
    import optuna

    from sweep.errors import SpecError

    host, _, port = url.removeprefix("grpc://").rstrip("/").rpartition(":")
    if not host or not port.isdigit():
        raise SpecError("--storage", "a proxy URL is grpc://HOST:PORT", url)
    return optuna.storages.GrpcStorageProxy(host=host, port=int(port))
