"""One compiled model per placement *structure*, reused across trials.

Every new Keras model makes TensorFlow trace its training and evaluation functions again,
which costs seconds per trial for a small model on two CPU cores (bench/overhead.py: a
fresh model per configuration, (a), against this path, (a2)) and host memory that is
never given back (tests/workers/test_launcher.py holds a worker's RSS flat over 30 trials).
Trials that put
the same kinds of penalty on the same slots differ only in coefficient values and initial
weights, so they share one model here: its penalties read their coefficients from
variables, and each trial loads its own seed's initial weights and a fresh optimizer
state into it. A trial ends with the weights a freshly cloned model with Keras' own
penalties reaches from the same seed (tests/training/test_trainer.py); only random layers such as
Dropout draw another (equally seeded, reproducible) stream, the base model's.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Mapping
from typing import Any

from sweep.placement.configurations import structure_key
from sweep.spec import TrainSpec
from sweep.training.fit import compile_model, set_rates, weight_decay
from sweep.training.model import Placement, regularize
from sweep.training.runtime import import_keras

# Structures kept per worker; an evicted model's traces stay in memory until the worker
# renews itself (workers.recycle_after), so this bounds memory, not correctness.
MAX_MODELS = 16


def _penalty_class():
    keras = import_keras()
    from keras import ops

    class AdjustablePenalty(keras.regularizers.Regularizer):
        """l1·Σ|w| + l2·Σw² (Keras' L1L2 formula) with coefficients held in variables."""

        def __init__(self, kinds: tuple[str, ...]):
            self.coefficients = {k: keras.Variable(0.0, trainable=False, dtype="float32",
                                                   name=f"{k}_coefficient") for k in kinds}

        def set(self, values: Mapping[str, float]) -> None:
            for kind, variable in self.coefficients.items():
                variable.assign(float(values.get(kind, 0.0)))

        def __call__(self, x):
            total = 0.0
            if "l1" in self.coefficients:
                total += ops.cast(self.coefficients["l1"], x.dtype) * ops.sum(ops.abs(x))
            if "l2" in self.coefficients:
                total += ops.cast(self.coefficients["l2"], x.dtype) * ops.sum(ops.square(x))
            return total

        def get_config(self) -> dict[str, float]:
            return {k: float(v.numpy()) for k, v in self.coefficients.items()}

    return AdjustablePenalty


class ModelCache:
    def __init__(self, train: TrainSpec, steps_per_execution: int = 1):
        self.train = train
        self.steps_per_execution = steps_per_execution
        self._entries: OrderedDict[tuple, tuple[Any, dict, list]] = OrderedDict()
        self._penalty = _penalty_class()

    def model_for(self, base: Any, placement: Placement, slots: list[str], *,
                  train: TrainSpec | None = None, steps_per_execution: int | None = None,
                  structure: tuple = ()) -> Any:
        """A compiled model with ``placement``'s penalties and ``base``'s weights, trained
        as ``train`` says (default: the cache's). ``structure``: what else the base model's
        graph depends on (searched layer arguments: sweep.placement.searched)."""
        train = train or self.train
        steps = steps_per_execution or self.steps_per_execution
        # What a compiled model depends on; the learning rate and weight decay are
        # variables (sweep.training.fit.set_rates), a coefficient too (AdjustablePenalty).
        key = (structure_key(placement), structure, train.optimizer,
               weight_decay(train) is not None, steps)
        entry = self._entries.get(key)
        if entry is None:
            entry = self._build(base, placement, slots, train, steps)
            self._entries[key] = entry
            if len(self._entries) > MAX_MODELS:
                self._entries.popitem(last=False)
        self._entries.move_to_end(key)
        model, penalties, optimizer_state = entry
        for (layer, target), penalty in penalties.items():
            penalty.set(placement[layer][target])
        source = base.variables
        if len(source) != len(model.variables):
            raise RuntimeError("base model and cached model have different variables")
        for target, value in zip(model.variables, source, strict=True):
            target.assign(value)
        for variable, value in zip(model.optimizer.variables, optimizer_state, strict=True):
            variable.assign(value)
        set_rates(model, train)  # after the fresh state, which holds the first trial's
        return model

    def _build(self, base: Any, placement: Placement, slots: list[str], train: TrainSpec,
               steps_per_execution: int):
        penalties: dict[tuple[str, str], Any] = {}

        def make(keras: Any, kinds: Mapping[str, float] | None, layer: str, target: str):
            if not kinds:
                return None
            penalty = penalties[(layer, target)] = self._penalty(tuple(sorted(kinds)))
            return penalty

        model = regularize(base, placement, slots, make_regularizer=make)
        compile_model(model, train, steps_per_execution)
        model.optimizer.build(model.trainable_variables)
        # A fresh optimizer's state (zero moments, step 0, the learning rate) to restore.
        optimizer_state = [v.numpy() for v in model.optimizer.variables]
        return model, penalties, optimizer_state
