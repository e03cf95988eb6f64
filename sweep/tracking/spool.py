"""Tracking operations kept on local disk while MLflow cannot be reached.

One JSON-lines file per run in ``$SWEEP_SPOOL_DIR`` (default ``./sweep-spool``): the first
line says which run (an existing run id, or how to create it), every further line is one
operation, appended and fsynced in order. ``sweep sync`` replays a file and records its
progress after each operation, so a replay that is interrupted resumes where it stopped
and nothing is logged twice; a replayed file is deleted.
"""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sweep.keys import STUDY_NAME_TAG, TRIAL_NUMBER_TAG


def spool_dir() -> Path:
    return Path(os.environ.get("SWEEP_SPOOL_DIR", "sweep-spool"))


def check_spool_dir() -> None:
    """The spool must be writable before a worker starts: it is where runs go while MLflow
    is down, and finding out then would lose them."""
    from sweep.errors import SpecError
    from sweep.locations import nearest_existing

    existing = nearest_existing(spool_dir())
    if existing is None or not existing.is_dir():
        raise SpecError("SWEEP_SPOOL_DIR", f"cannot be created ({existing} is a file)",
                        str(spool_dir()))
    if not os.access(existing, os.W_OK | os.X_OK):
        raise SpecError("SWEEP_SPOOL_DIR", f"cannot be written ({existing} is not writable)",
                        str(spool_dir()))


class Spool:
    def __init__(self, path: Path):
        self.path = path
        self.key = path.stem

    @classmethod
    def for_run(cls, run_id: str | None, create_op: Mapping[str, Any] | None,
                tracking_uri: str | None = None) -> Spool:
        """A new spool file. The tracking URI is kept without its password (``***``):
        ``sweep sync`` takes the secret from its own ``--tracking-uri`` or environment."""
        from sweep.redact import mask_url

        folder = spool_dir()
        # Only the owner reads what the trials measured (0700 folder, 0600 files).
        folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        spool = cls(folder / f"{uuid.uuid4().hex}.jsonl")
        if run_id is not None:
            spool.append({"op": "run", "run_id": run_id,
                          "tracking_uri": mask_url(tracking_uri or "")})
        else:
            assert create_op is not None
            spool.append({**create_op, "tracking_uri": mask_url(create_op["tracking_uri"])})
        return spool

    def append(self, op: Mapping[str, Any]) -> None:
        descriptor = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        with os.fdopen(descriptor, "a") as handle:
            handle.write(json.dumps(op) + "\n")
            handle.flush()
            os.fsync(handle.fileno())


def pending(folder: Path | None = None) -> list[Path]:
    folder = folder or spool_dir()
    return sorted(folder.glob("*.jsonl"), key=lambda p: p.stat().st_mtime) \
        if folder.exists() else []


def spooled_studies(folder: Path | None = None) -> set[str]:
    """The studies whose trial runs wait in the spool (their new run ids must be linked)."""
    names = set()
    for path in pending(folder):
        with path.open() as handle:
            first = json.loads(handle.readline())
        name = first.get("tags", {}).get(STUDY_NAME_TAG)
        if first.get("op") == "create_run" and name is not None:
            names.add(name)
    return names


@dataclass(frozen=True)
class Replayed:
    run_id: str
    operations: int
    study_name: str | None
    trial_number: int | None
    key: str


def replay(path: Path, *, resolve_run: Callable[[Mapping[str, Any]], tuple[Any, str]],
           apply: Callable[[Any, str, Mapping[str, Any]], None]) -> Replayed:
    """Replay one spool file. ``resolve_run(first_record)`` returns (client, run_id),
    creating the run if needed (idempotently: it looks for the spool key first)."""
    records = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    progress_path = path.with_suffix(".progress")
    done = json.loads(progress_path.read_text())["applied"] if progress_path.exists() else 0
    client, run_id = resolve_run(records[0])
    for index in range(max(done, 1), len(records)):
        apply(client, run_id, records[index])
        partial = progress_path.with_suffix(".progress.partial")
        partial.write_text(json.dumps({"applied": index + 1, "run_id": run_id}))
        partial.replace(progress_path)
    first = records[0]
    tags = first.get("tags", {})
    number = tags.get(TRIAL_NUMBER_TAG)
    path.unlink()
    progress_path.unlink(missing_ok=True)
    return Replayed(run_id=run_id, operations=len(records) - 1,
                    study_name=tags.get(STUDY_NAME_TAG),
                    trial_number=int(number) if number is not None else None, key=path.stem)
