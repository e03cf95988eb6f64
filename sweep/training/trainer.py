"""Train one configuration (a resolved placement) with one seed, inside a worker.

``Trainer.train`` is the one path that trains a configuration on a seed, for search trials
(``sweep.workers.objective``) and confirmation runs (``sweep.answers.confirm``) alike: the
data pipelines and the compiled models are built once per process and reused
(``sweep.training.cache``), so the n-th training costs what the first one did.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sweep import interrupt
from sweep.errors import TrialFailed
from sweep.keys import FINAL
from sweep.spec import StudySpec

EpochSink = Callable[[int, dict[str, float]], None]


@dataclass
class Fitted:
    """A trained model and what its training left behind."""

    model: Any
    norms: Any  # the WeightNormCallback: measures the model's weights and penalties
    epochs_run: int  # epochs the model has been trained, resumed ones included
    failure: str | None  # why training stopped early (a non-finite loss), if it did
    batches: Any = None  # the sweep.training.fit.Batches it trained on (its batch size)


@dataclass(frozen=True)
class Trained:
    """What a configuration trained on a seed leaves to record."""

    model: Any  # the trained model (the compiled model of the cache: the next training's)
    epochs_run: int  # resumed epochs included
    pruned_at: int | None  # the epoch a pruner stopped it after (no final figures then)
    final: dict[str, float]  # ``final/<split>_<metric>``, the penalty, the weight norms
    usage: dict[str, float]  # ``gpu/*`` (empty on a worker without a GPU)


@dataclass(frozen=True)
class Resume:
    """Where a trial's training state is saved (``sweep.training.checkpoint``) and how often."""

    path: Path
    every: int | str  # epochs, or "auto" (sweep.training.callbacks.TrainingCheckpoint)
    trial: int  # the trial that trains now (recorded with what it saves)


class Trainer:
    def __init__(self, spec: StudySpec):
        from sweep.placement.searched import searched_values

        self.spec = spec
        self.searched = searched_values(spec)  # what trials' settings may set
        self._models: Any = None  # sweep.training.cache.ModelCache, created with TensorFlow
        self._batches: dict[int, Any] = {}  # sweep.training.fit.Batches per batch size
        self._probe: Any = None  # validation inputs for activity norms, read once

    @property
    def device(self) -> str:
        """``GPU`` or ``CPU``: what this process trains on (sweep.training.environment)."""
        from sweep.training.environment import describe_environment

        return describe_environment()["device"]

    def train(self, placement: dict, seed: int, sink: EpochSink,
              callbacks: Sequence[Any] = (), *, resume: Resume | None = None,
              on_resume: Callable[[dict[str, Any]], None] | None = None,
              settings: Mapping[str, Any] | None = None) -> Trained:
        """``fit``, then the final figures on every split (none for a pruned training).
        Raises TrialFailed when the training failed (a non-finite loss)."""
        from sweep.training.callbacks import PruningCallback
        from sweep.training.environment import GpuUsage

        usage = GpuUsage.of_this_process()
        usage.start()
        fitted = self.fit(placement, seed, sink, callbacks, resume=resume, on_resume=on_resume,
                          settings=settings)
        gpu = usage.figures()
        if fitted.failure:
            raise TrialFailed(fitted.failure)
        pruned_at = next((c.pruned_at for c in callbacks if isinstance(c, PruningCallback)
                          and c.pruned_at is not None), None)
        final = {} if pruned_at is not None else self.final_figures(fitted)
        return Trained(fitted.model, fitted.epochs_run, pruned_at, final, gpu)

    def fit(self, placement: dict, seed: int, sink: EpochSink,
            callbacks: Sequence[Any] = (), *, resume: Resume | None = None,
            on_resume: Callable[[dict[str, Any]], None] | None = None,
            settings: Mapping[str, Any] | None = None) -> Fitted:
        """Build the base model from ``seed``, apply ``placement``, train. ``settings``:
        the trial's values of what the study searches besides the penalties
        (sweep.placement.searched; a value not given takes its search's typical one).
        Every epoch's Keras logs plus weight norms and penalties go to ``sink``. With
        ``resume``, the training state saved there is restored first (``on_resume`` is
        told what was restored) and saved again as ``resume.every`` says."""
        from sweep.placement.searched import resolve, structure_settings
        from sweep.placement.slots import describe_model, slot_names
        from sweep.training import checkpoint
        from sweep.training.cache import ModelCache
        from sweep.training.callbacks import (
            NonFiniteLossGuard,
            StopRequestCheck,
            TrainingCheckpoint,
            WeightNormCallback,
        )
        from sweep.training.data import load_data
        from sweep.training.fit import Batches, execution_steps, fit
        from sweep.training.model import build_base_model
        from sweep.training.runtime import import_keras

        keras = import_keras()
        spec = self.spec
        train, model_spec = resolve(spec, settings or {}) if self.searched else \
            (spec.train, spec.model)
        splits = load_data(spec.data, spec.seed)
        keras.utils.set_random_seed(seed)
        # The base model is built for every training (its initial weights come from the
        # seed) but never trained: its weights are loaded into a cached compiled model.
        base = build_base_model(model_spec, splits.input_shape, splits.n_classes,
                                mixed_precision=train.mixed_precision)
        slots = slot_names(describe_model(base))
        batches = self._batches.get(train.batch_size)
        if batches is None:
            batches = self._batches[train.batch_size] = Batches(splits, train, spec.data)
        if self._models is None:
            self._models = ModelCache(train)
        model = self._models.model_for(
            base, placement, slots, train=train,
            steps_per_execution=execution_steps(train.steps_per_execution,
                                                batches.steps_per_epoch()),
            structure=structure_settings(settings or {}, self.searched))

        uses_activity = any("activity" in targets for targets in placement.values())
        if uses_activity and self._probe is None:
            self._probe = splits.head("val", 64)  # an image folder's: decoded once
        probe = self._probe if uses_activity else None
        norms = WeightNormCallback(slots, sink, probe=probe, penalized=list(placement),
                                   threshold=spec.tracking.sparsity_threshold)
        guard = NonFiniteLossGuard()
        extra: list[Any] = []
        initial_epoch = 0
        writer = None
        if resume is not None:
            # Weights, random generators and optimizer state (the cached model's
            # optimizer is built).
            state = checkpoint.restore(model, resume.path)
            if state is not None:
                initial_epoch = int(state["epoch"])
                if on_resume is not None:
                    on_resume(state)
            writer = checkpoint.Writer(resume.path, resume.trial)
            extra.append(TrainingCheckpoint(writer, every=resume.every))
        interrupt.check()
        try:
            fit(model, batches, [StopRequestCheck(), guard, norms, *callbacks, *extra],
                seed=seed, initial_epoch=initial_epoch)
        finally:
            if writer is not None:  # a stopped trial leaves its last epoch on disk
                writer.flush()
        history = model.history.epoch if model.history else []
        epochs_run = history[-1] + 1 if history else initial_epoch
        return Fitted(model=model, norms=norms, epochs_run=epochs_run, failure=guard.reason,
                      batches=batches)

    def final_figures(self, fitted: Fitted) -> dict[str, float]:
        """``final/<split>_<metric>`` on every split, plus the penalty, the total weight
        norm and the sparsity. The test split is evaluated here, after training, only."""
        from sweep.training.fit import evaluate

        final = evaluate(fitted.model, fitted.batches)
        measured = fitted.norms.measure()
        final[f"{FINAL}penalty_total"] = measured["penalty/total"]
        final[f"{FINAL}weights_l2_total"] = measured.get("weights/l2_total", 0.0)
        final[f"{FINAL}weights_sparsity"] = measured.get("weights/sparsity", 0.0)
        return final
