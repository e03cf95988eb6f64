"""One worker of bench/workers.py's coordination runs: the real `sweep worker` (study and
stored spec loaded from the database, its own sampler seed, heartbeats, the exact-budget
lock, the search space, every user attribute a trial records, an MLflow run per trial
with per-epoch metrics and final figures, checkpoints folder, progress lines) with the
training replaced by a sleep: each trial "trains" for SLEEP_SECONDS, spread over its
epochs, and hands the metrics a real trial logs to the same sinks. TensorFlow is never
imported (the model is not built; the environment attribute is described without it).

    python bench/coord_worker.py STORAGE_URL TRACKING_URI STUDY_NAME SLEEP_SECONDS [MAX_TRIALS]

The worker index comes from SWEEP_WORKER_INDEX, as `sweep run --workers` sets it.
"""

from __future__ import annotations

import sys
import time
import zlib
from collections.abc import Callable, Sequence
from typing import Any

SPLITS = ("train", "val", "test")
LAYERS = ("dense", "dense_1", "dense_2")


def epoch_metrics(score: float) -> dict[str, float]:
    """One epoch's metrics, the names and count a real trial of this model logs (Keras
    metrics, per-layer weight statistics, penalties)."""
    metrics = {"loss": 1.0 - score / 2, "data_loss": 0.9 - score / 2,
               "accuracy": score, "val_loss": 1.1 - score / 2,
               "val_data_loss": 1.0 - score / 2, "val_accuracy": score}
    for layer in LAYERS:
        metrics |= {f"weights_l2/{layer}": 2.0, f"weights_l1/{layer}": 9.0,
                    f"sparsity/{layer}": 0.01, f"penalty/{layer}": 0.001}
    return metrics | {"weights/l2_total": 6.0, "weights/sparsity": 0.01, "penalty/total": 0.003}


def final_figures(score: float) -> dict[str, float]:
    """A real trial's final figures (every split, the penalty, the weights)."""
    figures = {}
    for split in SPLITS:
        figures |= {f"final/{split}_accuracy": score, f"final/{split}_loss": 1.0 - score,
                    f"final/{split}_data_loss": 0.9 - score}
    return figures | {"final/penalty_total": 0.003, "final/weights_l2_total": 6.0,
                      "final/weights_sparsity": 0.01}


class SimulatedTrainer:
    """``sweep.training.trainer.Trainer``'s interface without TensorFlow: same epochs, same metric
    names and counts per epoch (Keras metrics, per-layer weight statistics, penalties),
    the same final figures; values depend on the placement, so TPE has something to
    model."""

    sleep = 0.0

    def __init__(self, spec: Any):
        self.spec = spec

    def fit(self, placement: dict, seed: int, sink: Callable[[int, dict[str, float]], None],
            callbacks: Sequence[Any] = (), *, resume: Any = None, on_resume: Any = None) -> Any:
        from sweep.training.trainer import Fitted

        epochs = self.spec.train.epochs
        score = zlib.crc32(repr(sorted(placement.items())).encode()) / 2**32
        for epoch in range(1, epochs + 1):
            time.sleep(self.sleep / epochs)
            sink(epoch, epoch_metrics(score))
        return Fitted(model=score, norms=None, epochs_run=epochs, failure=None)

    def train(self, placement: dict, seed: int,
              sink: Callable[[int, dict[str, float]], None], callbacks: Sequence[Any] = (),
              *, resume: Any = None, on_resume: Any = None) -> Any:
        """``Trainer.train``: the fit, then the final figures; no GPU, nothing pruned."""
        from sweep.training.trainer import Trained

        fitted = self.fit(placement, seed, sink, callbacks, resume=resume, on_resume=on_resume)
        return Trained(fitted.model, fitted.epochs_run, None, self.final_figures(fitted), {})

    def final_figures(self, fitted: Any) -> dict[str, float]:
        return final_figures(float(fitted.model))


class _NotRun:
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        pass


def simulated_environment() -> dict[str, str]:
    """``describe_environment``'s keys and values for a CPU worker, without importing
    TensorFlow (which only the training needs: a simulated worker then stays small
    enough for 64 of them on one machine)."""
    import platform
    import socket

    from sweep.training import environment

    found = {name: environment._version(dist) for name, dist in environment._PACKAGES.items()}
    found |= {"python": platform.python_version(), "cuda": "none", "cudnn": "none",
              **environment.describe_devices([], lambda gpu: {}),
              "host": socket.gethostname()}
    return found


def main() -> None:
    storage_url, tracking_uri, name, sleep = sys.argv[1], sys.argv[2], sys.argv[3], float(
        sys.argv[4])
    import types

    # The trial's Keras callbacks (pruning, progress) subclass keras.callbacks.Callback;
    # the simulated training runs none of them (the coordination study has no pruner).
    callbacks = types.ModuleType("sweep.training.callbacks")
    callbacks.EpochProgress = callbacks.PruningCallback = _NotRun  # type: ignore[attr-defined]
    sys.modules["sweep.training.callbacks"] = callbacks

    import sweep.study.check
    import sweep.training.environment
    import sweep.workers.objective
    from sweep.cli import main as sweep_main

    SimulatedTrainer.sleep = sleep
    sweep.workers.objective.Trainer = SimulatedTrainer  # type: ignore[misc, assignment]
    # No TensorFlow: the model is never built (the start-up check that builds it and runs
    # two samples) and the environment is described without it.
    sweep.study.check.check_model_on_data = lambda spec, splits: None  # type: ignore[assignment]
    sweep.training.environment.describe_environment = simulated_environment
    # A CPU worker's GPU usage: no devices, nothing measured (what TensorFlow would say).
    sweep.training.environment.GpuUsage.of_this_process = classmethod(  # type: ignore[method-assign]
        lambda cls: cls([], lambda device: {}, lambda device: None, time.monotonic))
    extra = ["--max-trials", sys.argv[5]] if len(sys.argv) > 5 else []
    sys.argv = ["sweep", "worker", name, "--storage", storage_url, "--tracking-uri",
                tracking_uri, "--no-progress", *extra]
    sweep_main()


if __name__ == "__main__":
    main()
