"""The study file's vocabulary: the values its keys accept, and the frozen base of
every section."""

from __future__ import annotations

from pydantic import (
    BaseModel,
    ConfigDict,
)

TOP_LEVEL_KEYS = (
    "name", "seed", "data", "model", "train", "search", "objective",
    "sampler", "pruner", "budget", "tracking", "workers", "report",
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
OPERATIONAL_KEYS = ("budget", "workers", "report")
# Likewise inside `data`: where a worker keeps its decoded images.
OPERATIONAL_DATA_KEYS = ("cache_dir",)
# And inside `search`: how many seeds the leading configurations get (the configurations
# a trial can be do not change).
OPERATIONAL_SEARCH_KEYS = ("seeds",)
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


class FieldError(ValueError):
    """A check across several keys (a model validator has no location of its own): names
    the key the message is about."""

    def __init__(self, field: str, message: str):
        super().__init__(message)
        self.field = field


