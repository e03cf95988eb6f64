"""The whole study file: :class:`StudySpec`, its cross-section checks and its hash."""

from __future__ import annotations

import hashlib
import json
from typing import Any, Literal

from pydantic import (
    Field,
    field_validator,
    model_validator,
)

from sweep.spec.base import (
    LATER_KEYS,
    MULTI_OBJECTIVE_SAMPLERS,
    OPERATIONAL_DATA_KEYS,
    OPERATIONAL_KEYS,
    OPERATIONAL_SEARCH_KEYS,
    OPERATIONAL_TRAIN_KEYS,
    RACING_FROM,
    SAMPLERS,
    FieldError,
    Frozen,
)
from sweep.spec.inputs import DataSpec, ModelSpec, SearchSpec, TrainSpec
from sweep.spec.settings import (
    BudgetSpec,
    ObjectiveSpec,
    PrunerSpec,
    RacingSpec,
    ReportSpec,
    SeedsSpec,
    TrackingSpec,
    WorkersSpec,
    default_warmup,
)


# --------------------------------------------------------------------------- study
class StudySpec(Frozen):
    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")
    seed: int = Field(0, ge=0, lt=2**31)
    data: DataSpec
    model: ModelSpec
    train: TrainSpec = TrainSpec()
    search: SearchSpec
    # One objective, or several (a Pareto front); the first is the primary one.
    objective: tuple[ObjectiveSpec, ...] = Field((ObjectiveSpec(),), min_length=1)
    sampler: Literal[SAMPLERS] = "tpe"  # type: ignore[valid-type]
    pruner: PrunerSpec = PrunerSpec()
    budget: BudgetSpec = BudgetSpec()
    tracking: TrackingSpec = TrackingSpec()
    workers: WorkersSpec = WorkersSpec()
    report: ReportSpec = ReportSpec()
    seeds: SeedsSpec = SeedsSpec()

    @field_validator("objective", mode="before")
    @classmethod
    def _one_or_several(cls, value: Any):
        return [value] if isinstance(value, dict) else value

    @field_validator("pruner", mode="before")
    @classmethod
    def _pruner_by_name(cls, value: Any):
        return {"name": value} if isinstance(value, str) else value

    @model_validator(mode="before")
    @classmethod
    def _pruner_warmup_from_epochs(cls, data: Any) -> Any:
        """A named pruner without ``warmup_epochs`` waits a share of the epochs first
        (default_warmup): penalties slow early learning, and a pruner that judges from
        epoch 1 stops regularized trials that would have won (bench/pruning.py)."""
        if not isinstance(data, dict):
            return data
        pruner = data.get("pruner")
        pruner = {"name": pruner} if isinstance(pruner, str) else pruner
        if not isinstance(pruner, dict) or pruner.get("name", "none") == "none" or \
                "warmup_epochs" in pruner:
            return data
        train = data.get("train")
        epochs = train.get("epochs") if isinstance(train, dict) else \
            getattr(train, "epochs", None)
        if epochs is None:
            epochs = TrainSpec.model_fields["epochs"].default
        if not isinstance(epochs, int) or isinstance(epochs, bool) or epochs < 1:
            return data  # train.epochs itself is refused, naming the field
        return {**data, "pruner": {**pruner, "warmup_epochs": default_warmup(
            str(pruner.get("name")), epochs)}}

    @model_validator(mode="after")
    def _classification_metrics(self) -> StudySpec:
        for item in self.objective:
            if item.metric.endswith("accuracy") and not self.train.is_classification:
                raise FieldError(
                    "objective", f"objective metric {item.metric!r} needs a classification "
                    f"loss (train.loss is {self.train.loss!r})"
                )
        return self

    @model_validator(mode="after")
    def _objectives_fit_together(self) -> StudySpec:
        if not self.primary.is_keras_metric:
            raise FieldError(
                "objective", f"the first objective must be a validation metric (val_...), got "
                f"{self.primary.metric!r}; list derived ones after it")
        metrics = [item.metric for item in self.objective]
        if len(set(metrics)) != len(metrics):
            raise FieldError("objective", f"objective lists a metric twice: {metrics}")
        if self.is_multi_objective:
            if self.pruner.name != "none":
                raise FieldError(
                    "pruner", f"pruner {self.pruner.name!r} cannot be used with several "
                    "objectives (Optuna prunes single-objective studies only); use pruner: none")
            if self.sampler not in MULTI_OBJECTIVE_SAMPLERS:
                raise FieldError(
                    "sampler", f"sampler {self.sampler!r} optimizes one objective only; with "
                    f"several use one of {', '.join(MULTI_OBJECTIVE_SAMPLERS)}")
        return self

    @model_validator(mode="after")
    def _noise_can_be_measured(self) -> StudySpec:
        budget = self.budget
        if not budget.stop_within_noise:
            return self
        if self.is_multi_objective:
            raise FieldError("budget.stop_within_noise", "stopping within noise needs a "
                             "single objective (a Pareto front has no one best value)")
        if "none" not in self.search.baselines:
            raise FieldError("budget.stop_within_noise", "the seed noise is measured on the "
                             "no-regularization baseline: keep `none` in search.baselines")
        least = len(self.search.baselines) + self.seeds.noise - 1 + budget.patience
        if budget.n_trials < least:
            raise FieldError("budget.n_trials", f"with stop_within_noise the study needs at "
                             f"least {least} trials (baselines, seeds.noise - 1 extra seeds, "
                             f"then patience {budget.patience}); got {budget.n_trials}")
        return self

    @model_validator(mode="after")
    def _racing_needs_one_objective(self) -> StudySpec:
        racing = self.seeds.racing
        if self.is_multi_objective and racing not in (None, False):
            raise FieldError("seeds.racing", "seed racing ranks configurations by one value; "
                             "a study with several objectives cannot race (remove "
                             "seeds.racing or set it to false)")
        return self

    @property
    def racing(self) -> RacingSpec | None:
        """The seed racing this study runs, or None (sweep.search.racing)."""
        racing = self.seeds.racing
        if racing is None:
            racing = self.budget.n_trials >= RACING_FROM and not self.is_multi_objective
        if racing is True:
            racing = RacingSpec()
        if racing is False or racing.max == 1:
            return None
        return racing

    @model_validator(mode="after")
    def _monitor_agrees_with_objective(self) -> StudySpec:
        monitor = self.pruner.monitor
        if monitor is not None and ObjectiveSpec(metric=monitor).natural_direction != \
                self.primary.resolved_direction:
            raise FieldError(
                "pruner.monitor", f"pruner.monitor {monitor!r} improves in the other direction "
                f"than the objective {self.primary.metric!r}; the pruner compares trials in "
                "the study's direction")
        return self

    @property
    def pruning_metric(self) -> str:
        return self.pruner.monitor or self.primary.metric

    @property
    def primary(self) -> ObjectiveSpec:
        """The first objective: what progress shows, pruning watches and tables sort by."""
        return self.objective[0]

    @property
    def is_multi_objective(self) -> bool:
        return len(self.objective) > 1

    @property
    def directions(self) -> list[str]:
        return [item.resolved_direction for item in self.objective]

    @property
    def experiment_name(self) -> str:
        return self.tracking.experiment or self.name

    def canonical(self, *, operational: bool = True) -> dict[str, Any]:
        """The spec as plain JSON data, the form stored inside the Optuna study."""
        data = self.model_dump(mode="json")
        return data if operational else identity_part(data)

    def fingerprint(self) -> str:
        """Hash of everything that changes what a trial means (the budget and the worker
        settings do not)."""
        text = json.dumps(self.canonical(operational=False), sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()[:16]


def identity_part(canonical: dict[str, Any]) -> dict[str, Any]:
    """A stored or new canonical spec without the keys that say how to run (changing
    them resumes a study): what the fingerprint covers."""
    data = {k: v for k, v in canonical.items() if k not in OPERATIONAL_KEYS}
    for section, keys in (("data", OPERATIONAL_DATA_KEYS), ("search", OPERATIONAL_SEARCH_KEYS),
                          ("train", OPERATIONAL_TRAIN_KEYS)):
        if isinstance(data.get(section), dict):
            data[section] = {k: v for k, v in data[section].items() if k not in keys}
    for (section, key), absent in LATER_KEYS.items():
        part = data.get(section)
        if isinstance(part, dict) and key in part and part[key] == absent:
            data[section] = {k: v for k, v in part.items() if k != key}
    return data
