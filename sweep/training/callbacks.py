"""Keras callbacks of a trial. Plain ``keras.callbacks.Callback`` subclasses: they measure
and decide, and hand values to whoever listens; none of them knows about MLflow.

Epochs are counted from 1 here (step k = after k epochs), for Optuna and MLflow alike.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from sweep import interrupt
from sweep.training.runtime import import_keras
from sweep.training.weights import weight_metrics

keras = import_keras()

EpochSink = Callable[[int, dict[str, float]], None]
AUTO_SECONDS = 30.0  # workers.checkpoint_every: auto (README says what a stop then loses)


class WeightNormCallback(keras.callbacks.Callback):
    """At each epoch end: Keras' logs plus per-slot weight norms and penalties → ``sink``."""

    def __init__(self, slots: Sequence[str], sink: EpochSink, *, threshold: float = 1e-3,
                 probe: np.ndarray | None = None, penalized: Sequence[str] | None = None):
        super().__init__()
        self.slots = list(slots)
        self.sink = sink
        self.threshold = threshold
        self.probe = probe
        self.last: dict[str, float] = {}
        # A `penalty/<layer>` series only where this trial puts a penalty (else a flat zero).
        self._unpenalized = {f"penalty/{slot}" for slot in self.slots
                             if penalized is not None and slot not in penalized}

    def measure(self) -> dict[str, float]:
        return weight_metrics(self.model, self.slots, threshold=self.threshold, probe=self.probe)

    def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        metrics = {k: float(v) for k, v in (logs or {}).items()}
        metrics.update((k, v) for k, v in self.measure().items() if k not in self._unpenalized)
        self.last = metrics
        self.sink(epoch + 1, metrics)


class NonFiniteLossGuard(keras.callbacks.Callback):
    """Stops training when the loss stops being a finite number and keeps the reason.

    Checked once per epoch: a NaN never recovers, and a per-batch check would force a
    device-to-host copy on every step."""

    def __init__(self) -> None:
        super().__init__()
        self.reason: str | None = None

    def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        for key in ("loss", "val_loss"):
            value = (logs or {}).get(key)
            if value is not None and not math.isfinite(float(value)):
                self.reason = f"non-finite {key} ({float(value)}) at epoch {epoch + 1}"
                self.model.stop_training = True
                return


class PruningCallback(keras.callbacks.Callback):
    """Reports the objective to Optuna after each epoch and stops when the pruner says so.

    It stops training rather than raising inside ``fit`` so that the epoch's metrics are
    still handed on; the objective raises ``TrialPruned`` afterwards."""

    def __init__(self, trial: Any, monitor: str):
        super().__init__()
        self.trial = trial
        self.monitor = monitor
        self.pruned_at: int | None = None

    def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        value = (logs or {}).get(self.monitor)
        if value is None or not math.isfinite(float(value)):
            return
        step = epoch + 1
        self.trial.report(float(value), step)
        if self.trial.should_prune():
            self.pruned_at = step
            self.model.stop_training = True


class EpochProgress(keras.callbacks.Callback):
    """Calls ``advance(epochs_done, logs)`` after each epoch (drives the progress bar)."""

    def __init__(self, advance: Callable[[int, dict[str, Any]], None]):
        super().__init__()
        self.advance = advance

    def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        self.advance(epoch + 1, logs or {})


class StopRequestCheck(keras.callbacks.Callback):
    """Turns a SIGINT/SIGTERM stop request into ``KeyboardInterrupt`` between compiled
    calls, the safe point of a running trial (see ``sweep.interrupt``): Keras runs batch
    callbacks once per call, so a stop waits for at most ``steps_per_execution`` batches
    (with ``auto``, one epoch or 64 batches; a call that never returns is the watchdog's).
    Reads a Python attribute only: no device sync."""

    def on_train_batch_end(self, batch: int, logs: dict[str, Any] | None = None) -> None:
        interrupt.check()

    def on_test_batch_end(self, batch: int, logs: dict[str, Any] | None = None) -> None:
        interrupt.check()


class TrainingCheckpoint(keras.callbacks.Callback):
    """Saves the training state every ``every`` epochs, or with ``every="auto"`` at the
    first epoch end ``AUTO_SECONDS`` or more after the previous save (or the start):
    Keras' ``BackupAndRestore`` on the same principle; ``sweep.training.checkpoint`` has
    the layout and writes it, here only the copy of the variables to host memory, on the
    training thread. Restoring is done before ``fit`` (``Trainer``), because the data order
    depends on the epoch too. The last epoch is not saved: the trial ends right after it."""

    def __init__(self, writer: Any, *, every: int | str,
                 clock: Callable[[], float] = time.monotonic):
        super().__init__()
        self.writer = writer
        self.every = every
        self._clock = clock
        self._saved_at = clock()

    def on_train_begin(self, logs: dict[str, Any] | None = None) -> None:
        self._saved_at = self._clock()

    def _due(self, done: int) -> bool:
        if self.every == "auto":
            # A save costs a few milliseconds (bench/checkpoint_cost.py): every epoch of a
            # short one would be a measurable share; once per AUTO_SECONDS is none.
            return self._clock() - self._saved_at >= AUTO_SECONDS
        return bool(self.every) and done % int(self.every) == 0

    def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        from sweep.training.checkpoint import training_variables

        done = epoch + 1
        if done >= self.params.get("epochs", 0) or self.model.stop_training \
                or not self._due(done):
            return
        self._saved_at = self._clock()
        self.writer.submit(done, [np.array(v.numpy(), copy=True)
                                  for v in training_variables(self.model)])
