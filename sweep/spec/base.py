"""The study file's vocabulary: the values its keys accept, and the frozen base of
every section."""

from __future__ import annotations

import types
from typing import Any, Union, get_args, get_origin

from pydantic import (
    BaseModel,
    ConfigDict,
    model_validator,
)

TOP_LEVEL_KEYS = (
    "name", "seed", "data", "model", "train", "search", "objective",
    "sampler", "pruner", "budget", "tracking", "workers", "report", "seeds",
)
SAMPLERS = ("tpe", "random", "cmaes", "gp", "nsga2", "grid")
PRUNERS = ("none", "median", "median_per_placement", "hyperband", "successive_halving")
OPTIMIZERS = ("adam", "adamw", "sgd", "rmsprop", "nadam", "adagrad")
CLASSIFICATION_LOSSES = (
    "sparse_categorical_crossentropy", "categorical_crossentropy", "binary_crossentropy",
)
REGRESSION_LOSSES = ("mse", "mae", "huber")
TARGETS = ("kernel", "bias", "activity")
BASELINES = ("none", "uniform_l2")
# Keys that say how much and how to run, not what a trial is: changing them resumes a study.
OPERATIONAL_KEYS = ("budget", "workers", "report", "seeds")
# Likewise inside `data`: where a worker keeps its decoded images.
OPERATIONAL_DATA_KEYS = ("cache_dir",)
# And inside `search`: `seeds` of a study stored before the key moved to `seeds.racing`.
OPERATIONAL_SEARCH_KEYS = ("seeds",)
# And inside `train`: how many batches run per compiled call (the same batches, the same
# order, the same epochs: sweep.training.fit.execution_steps).
OPERATIONAL_TRAIN_KEYS = ("steps_per_execution",)
# Keys added after studies were stored, with the value they stand for when absent: at
# that value they are left out of the fingerprint, so a study stored before they existed
# resumes as it was.
LATER_KEYS = {("train", "weight_decay"): None, ("model", "arguments"): None}
# Keys that moved (old path -> new path): a study file that uses the old one still loads,
# with one warning line (sweep.spec.load).
MOVED_KEYS = {
    "search.seeds": "seeds.racing",
    "budget.noise_seeds": "seeds.noise",
    "report.seeds": "seeds.confirm",
}
# Seed racing is on by default from this budget on (fewer trials leave too few
# configurations to race).
RACING_FROM = 20
# Objectives that are not Keras metrics: measured by regsweep at the end of a trial, all to
# be minimized. `gap/<metric>` is the generalization gap (train minus validation for
# accuracies, validation minus train for losses).
DERIVED_OBJECTIVES = ("penalty/total", "weights/l2_total")
GAP_PREFIX = "gap/"
MULTI_OBJECTIVE_SAMPLERS = ("tpe", "random", "nsga2", "grid", "gp")


SOURCES = ("digits", "synthetic", "npz", "image_folder")


class Frozen(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, strict=False)

    # Lax pydantic takes `max_failures: true` as 1 and `stop_within_noise: "yes"` as true.
    # Numbers stay lax otherwise: YAML 1.1 reads `1e-4` (no dot) as a string.
    @model_validator(mode="before")
    @classmethod
    def _strict_kinds(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        for name, value in data.items():
            field = cls.model_fields.get(name) if isinstance(name, str) else None
            if field is None or value is None:
                continue
            kinds = _kinds(field.annotation)
            if isinstance(value, bool) and bool not in kinds and kinds & {int, float}:
                raise FieldError(name, "must be a number, not true/false", value=value)
            if not isinstance(value, bool) and kinds == {bool}:
                raise FieldError(name, "must be true or false", value=value)
        return data


def _kinds(annotation: Any) -> set[Any]:
    """The plain types a field's annotation admits (a union's members; nothing for
    anything else)."""
    members = get_args(annotation) if isinstance(annotation, types.UnionType) or \
        get_origin(annotation) is Union else (annotation,)
    return {member for member in members if isinstance(member, type)} - {type(None)}


class FieldError(ValueError):
    """A check across several keys (a model validator has no location of its own): names
    the key the message is about."""

    def __init__(self, field: str, message: str, **value: Any):
        super().__init__(message)
        self.field = field
        # Given (`value=`): the key is relative to the section it was raised in, whose
        # path the loader puts in front, and this is the value to show.
        self.relative = "value" in value
        self.value = value.get("value")


