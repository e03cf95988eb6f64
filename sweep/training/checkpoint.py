"""Where a trial's training state lives between a stop and its resumption.

One folder per configuration being trained (the first trial's number names it, and every
re-queued or retried trial of that configuration uses the same folder), under the
study's ``workers.checkpoint_dir``. The folder holds one ``epoch-NNNN.npz`` (every
variable of the model, random generators included, and of its optimizer, in their
order) and ``state.json``, which names that file and the epoch; ``state.json`` is
replaced atomically after the arrays are written, so a worker killed in the middle of a
save leaves the previous checkpoint intact.

The training thread only copies the variables to host memory; a background thread
writes them (Keras' ``save_weights`` on the training thread stalled every epoch;
bench/checkpoint_cost.py measures what this writer costs).

Why a file system and not the MLflow artifact store or the database: a checkpoint is
written every epoch and read at most once; a shared file system (what SLURM and
Kubernetes clusters mount on every node) costs one local-speed write, where the artifact
store would upload the whole model over HTTP each epoch and the database would hold
large blobs in the table every worker polls. No TensorFlow here: the Keras side is
``sweep.training.callbacks.TrainingCheckpoint``.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import threading
from pathlib import Path
from typing import Any

import numpy as np

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
    # The arrays of earlier epochs are no longer referenced.
    for old in path.glob("epoch-*.npz"):
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


def training_variables(model: Any) -> list[Any]:
    """What a checkpoint holds, in a fixed order: the model's variables (weights, and the
    state of its random generators: dropout draws the same masks after a resume) and the
    optimizer's (step, moments)."""
    return [*model.variables, *model.optimizer.variables]


def restore(model: Any, path: Path) -> dict[str, Any] | None:
    """Load the checkpoint at ``path`` into ``model``; its state, or None if there is no
    usable checkpoint (then training starts from the beginning)."""
    state = read_state(path)
    if state is None:
        return None
    variables = training_variables(model)
    try:
        with np.load(path / state["weights"]) as saved:
            arrays = [saved[f"v{i}"] for i in range(len(saved.files))]
    except (OSError, ValueError, KeyError) as error:
        log.warning("checkpoint %s unreadable (%s); training from the start", path, error)
        return None
    if len(arrays) != len(variables) or any(
            tuple(a.shape) != tuple(v.shape) for a, v in zip(arrays, variables, strict=True)):
        log.warning("checkpoint %s belongs to another model; training from the start", path)
        return None
    for variable, array in zip(variables, arrays, strict=True):
        variable.assign(array)
    return state


class Writer:
    """Writes snapshots on a background thread; a newer snapshot replaces one not yet
    written. ``flush`` waits until the last one is on disk."""

    def __init__(self, path: Path, trial: int):
        self.path = path
        self.trial = trial
        self._pending: tuple[int, list[np.ndarray]] | None = None
        self._busy = False
        self._condition = threading.Condition()
        self._thread: threading.Thread | None = None

    def submit(self, epoch: int, arrays: list[np.ndarray]) -> None:
        with self._condition:
            self._pending = (epoch, arrays)
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, daemon=True,
                                                name="sweep-checkpoint")
                self._thread.start()
            self._condition.notify_all()

    def flush(self, timeout: float = 60.0) -> None:
        with self._condition:
            self._condition.wait_for(lambda: self._pending is None and not self._busy,
                                     timeout=timeout)

    def _run(self) -> None:
        while True:
            with self._condition:
                self._condition.wait_for(lambda: self._pending is not None)
                epoch, arrays = self._pending  # type: ignore[misc]
                self._pending, self._busy = None, True
            try:
                self._write(epoch, arrays)
            except OSError as error:  # a full or vanished disk costs the resume, not the trial
                log.warning("could not save the checkpoint of epoch %d: %s", epoch, error)
            finally:
                with self._condition:
                    self._busy = False
                    self._condition.notify_all()

    def _write(self, epoch: int, arrays: list[np.ndarray]) -> None:
        self.path.mkdir(parents=True, exist_ok=True)
        name = f"epoch-{epoch:04d}.npz"
        partial = self.path / f".{name}.partial"
        with open(partial, "wb") as handle:
            np.savez(handle, **{f"v{i}": a for i, a in enumerate(arrays)})
        os.replace(partial, self.path / name)
        write_state(self.path, {"epoch": epoch, "weights": name, "trial": self.trial})
