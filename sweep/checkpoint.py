"""Where a trial's training state lives between a stop and its resumption.

One folder per configuration being trained (the first trial's number names it, and every
re-queued or retried trial of that configuration uses the same folder), under the
study's ``workers.checkpoint_dir``. The folder holds one ``epoch-NNNN.weights.h5`` (model
weights and optimizer state, as Keras saves them) and ``state.json``, which names that
file and the epoch; ``state.json`` is replaced atomically after the weights are written,
so a worker killed in the middle of a save leaves the previous checkpoint intact.

Why a file system and not the MLflow artifact store or the database: a checkpoint is
written every epoch and read at most once; a shared file system (what SLURM and
Kubernetes clusters mount on every node) costs one local-speed write, where the artifact
store would upload the whole model over HTTP each epoch and the database would hold
large blobs in the table every worker polls. No TensorFlow here: the Keras side is
``sweep.callbacks.TrainingCheckpoint``.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
from pathlib import Path
from typing import Any

log = logging.getLogger("sweep")

STATE_FILE = "state.json"
DEFAULT_FOLDER = "sweep-checkpoints"


def default_root(storage_url: str | None) -> Path:
    """Next to the embedded SQLite storage; for a server database, the worker's folder."""
    if storage_url and storage_url.startswith("sqlite:///") and ":memory:" not in storage_url:
        return Path(storage_url.removeprefix("sqlite:///")).resolve().parent / DEFAULT_FOLDER
    return Path.cwd() / DEFAULT_FOLDER


def folder(root: str | os.PathLike[str], study_uid: str, origin: int) -> Path:
    return Path(root) / f"study-{study_uid[:12]}" / f"trial-{origin}"


def read_state(path: Path) -> dict[str, Any] | None:
    """The saved state (``epoch``, ``weights``, ``trial``) or None if there is none."""
    try:
        state = json.loads((path / STATE_FILE).read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(state, dict) or not (path / str(state.get("weights", ""))).is_file():
        return None
    return state


def write_state(path: Path, state: dict[str, Any]) -> None:
    partial = path / f".{STATE_FILE}.partial"
    partial.write_text(json.dumps(state))
    os.replace(partial, path / STATE_FILE)
    # The weights of earlier epochs are no longer referenced.
    for old in path.glob("epoch-*.weights.h5"):
        if old.name != state["weights"]:
            old.unlink(missing_ok=True)


def remove(path: Path | None) -> None:
    """Delete a finished trial's checkpoint (and its study folder once empty)."""
    if path is None or not path.exists():
        return
    try:
        shutil.rmtree(path)
        path.parent.rmdir()  # fails, as it should, while other trials' folders remain
    except OSError:
        pass
