"""The study file: YAML (safe loading only) → validated, frozen, keyword-only objects.

Structural checks (types, unknown keys, ranges) live here; checks that need the model's
layers or the data on disk live in ``sweep.study.check`` so that this module stays pure.
"""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Discriminator,
    Field,
    PositiveFloat,
    PositiveInt,
    Tag,
    ValidationError,
    field_validator,
    model_validator,
)

from sweep.errors import SpecError, SpecErrors

TOP_LEVEL_KEYS = (
    "name", "seed", "data", "model", "train", "search", "objective",
    "sampler", "pruner", "budget", "tracking", "workers", "report",
)
SAMPLERS = ("tpe", "random", "cmaes", "gp", "nsga2", "grid")
PRUNERS = ("none", "median", "hyperband", "successive_halving")
OPTIMIZERS = ("adam", "adamw", "sgd", "rmsprop", "nadam", "adagrad")
CLASSIFICATION_LOSSES = (
    "sparse_categorical_crossentropy", "categorical_crossentropy", "binary_crossentropy",
)
REGRESSION_LOSSES = ("mse", "mae", "huber")
TARGETS = ("kernel", "bias", "activity")
BASELINES = ("none", "uniform_l2")
# Keys that say how much and how to run, not what a trial is: changing them resumes a study.
OPERATIONAL_KEYS = ("budget", "workers", "report")
# Objectives that are not Keras metrics: measured by regsweep at the end of a trial, all to
# be minimized. `gap/<metric>` is the generalization gap (train minus validation for
# accuracies, validation minus train for losses).
DERIVED_OBJECTIVES = ("penalty/total", "weights/l2_total")
GAP_PREFIX = "gap/"
MULTI_OBJECTIVE_SAMPLERS = ("tpe", "random", "nsga2", "grid", "gp")


class _Frozen(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, strict=False)


# --------------------------------------------------------------------------- data
class _SplitFractions(_Frozen):
    validation_split: float = Field(0.2, gt=0.0, lt=1.0)
    test_split: float = Field(0.2, ge=0.0, lt=1.0)

    @model_validator(mode="after")
    def _fractions_leave_training_data(self) -> _SplitFractions:
        if self.validation_split + self.test_split >= 1.0:
            raise ValueError(
                "validation_split + test_split must be < 1 "
                f"(got {self.validation_split} + {self.test_split})"
            )
        return self


class DigitsData(_SplitFractions):
    source: Literal["digits"]


class SyntheticData(_SplitFractions):
    source: Literal["synthetic"]
    n_samples: PositiveInt = 256
    shape: tuple[PositiveInt, ...] = (8,)
    n_classes: int = Field(2, ge=2)
    noise: float = Field(1.0, ge=0.0)


class NpzData(_SplitFractions):
    source: Literal["npz"]
    path: Path


class ImageFolderData(_SplitFractions):
    source: Literal["image_folder"]
    path: Path
    test_path: Path | None = None
    image_size: tuple[PositiveInt, PositiveInt] = (64, 64)
    grayscale: bool = False


DataSpec = Annotated[
    DigitsData | SyntheticData | NpzData | ImageFolderData, Field(discriminator="source")
]


# --------------------------------------------------------------------------- model
class ModelSpec(_Frozen):
    layers: tuple[dict[str, dict[str, Any]], ...] | None = None
    builder: str | None = None
    file: Path | None = None

    @field_validator("layers")
    @classmethod
    def _one_class_per_entry(cls, layers: tuple[dict[str, Any], ...] | None):
        if layers is None:
            return layers
        if not layers:
            raise ValueError("must list at least one layer")
        for index, entry in enumerate(layers):
            if len(entry) != 1:
                raise ValueError(
                    f"entry {index} must map one Keras layer class to its arguments, "
                    f"e.g. 'Dense: {{units: 10}}' (got {entry!r})"
                )
        return layers

    @field_validator("builder")
    @classmethod
    def _module_colon_function(cls, builder: str | None):
        if builder is not None and not re.fullmatch(r"[\w.]+:\w+", builder):
            raise ValueError(f"must be 'package.module:function' (got {builder!r})")
        return builder

    @model_validator(mode="after")
    def _exactly_one_source(self) -> ModelSpec:
        given = [k for k in ("layers", "builder", "file") if getattr(self, k) is not None]
        if len(given) != 1:
            raise ValueError(
                f"give exactly one of layers, builder, file (got {given or 'none'})"
            )
        return self

    @property
    def source(self) -> str:
        return "layers" if self.layers is not None else "builder" if self.builder else "file"


# --------------------------------------------------------------------------- train
class TrainSpec(_Frozen):
    epochs: PositiveInt = 10
    batch_size: PositiveInt = 32
    optimizer: Literal[OPTIMIZERS] = "adam"  # type: ignore[valid-type]
    learning_rate: PositiveFloat = 1e-3
    loss: Literal[CLASSIFICATION_LOSSES + REGRESSION_LOSSES] = (  # type: ignore[valid-type]
        "sparse_categorical_crossentropy"
    )
    # Speed switches; none changes what a model computes beyond float rounding.
    # Batches run per tf.function call: fewer Python round trips for small models.
    steps_per_execution: PositiveInt = 1
    jit_compile: bool = False  # XLA-compile the train step (GPU: often faster)
    # float16 compute, float32 variables (GPUs with tensor cores); the declared output
    # layer stays float32 so that the softmax and the loss are computed in full precision.
    mixed_precision: bool = False

    @property
    def is_classification(self) -> bool:
        return self.loss in CLASSIFICATION_LOSSES


# --------------------------------------------------------------------------- search
class CoefficientRange(_Frozen):
    low: float = Field(ge=0.0)
    high: float = Field(ge=0.0)
    log: bool = True
    allow_zero: bool = False

    @model_validator(mode="after")
    def _ordered(self) -> CoefficientRange:
        if self.low > self.high:
            raise ValueError(f"low must be <= high (got low={self.low}, high={self.high})")
        if self.log and self.low <= 0:
            raise ValueError(f"low must be > 0 when log is true (got low={self.low})")
        return self


class CoefficientChoices(_Frozen):
    choices: tuple[Annotated[float, Field(ge=0.0)], ...] = Field(min_length=1)


def _coefficient_form(value: Any) -> str:
    if isinstance(value, CoefficientChoices) or (isinstance(value, dict) and "choices" in value):
        return "<choices>"
    if isinstance(value, CoefficientRange | dict):
        return "<range>"
    return "<fixed>"


# A plain number fixes the coefficient; a range or a list of choices searches it. The
# discriminator picks the form from the value's shape, so an error speaks of that form only.
Coefficient = Annotated[
    Annotated[Annotated[float, Field(ge=0.0)], Tag("<fixed>")]
    | Annotated[CoefficientRange, Tag("<range>")]
    | Annotated[CoefficientChoices, Tag("<choices>")],
    Discriminator(_coefficient_form),
]


class PlacementSpec(_Frozen):
    choices: tuple[str, ...] | None = None
    # ``true`` searches every slot on/off; a selector string limits which slots are searched.
    mask: bool | str | None = None

    @model_validator(mode="after")
    def _one_form(self) -> PlacementSpec:
        if (self.choices is None) == (self.mask is None or self.mask is False):
            raise ValueError("give exactly one of choices, mask")
        if self.choices is not None and not self.choices:
            raise ValueError("choices must not be empty")
        if self.choices is not None and len(set(self.choices)) != len(self.choices):
            raise ValueError(f"choices must be distinct (got {list(self.choices)})")
        return self


class SearchSpec(_Frozen):
    targets: tuple[Literal[TARGETS], ...] = ("kernel",)  # type: ignore[valid-type]
    placement: PlacementSpec = PlacementSpec(choices=("all",))
    coefficients: Literal["shared", "per_layer"] = "shared"
    l1: Coefficient | None = None
    l2: Coefficient | None = None
    # Trained first, before anything the sampler proposes: `none` (no regularization) and
    # `uniform_l2` (the same L2 on every kernel). `[]` trains none of them.
    baselines: tuple[Literal[BASELINES], ...] = BASELINES  # type: ignore[valid-type]

    @field_validator("targets")
    @classmethod
    def _targets_distinct(cls, targets: tuple[str, ...]):
        if not targets:
            raise ValueError("must name at least one of kernel, bias, activity")
        if len(set(targets)) != len(targets):
            raise ValueError(f"must be distinct (got {list(targets)})")
        return targets

    @model_validator(mode="after")
    def _some_penalty(self) -> SearchSpec:
        if self.l1 is None and self.l2 is None:
            raise ValueError("give l1, l2 or both")
        return self

    @property
    def kinds(self) -> tuple[str, ...]:
        return tuple(k for k in ("l1", "l2") if getattr(self, k) is not None)


# --------------------------------------------------------------------------- objective
class ObjectiveSpec(_Frozen):
    metric: str = "val_accuracy"
    direction: Literal["maximize", "minimize"] | None = None

    @field_validator("metric")
    @classmethod
    def _on_validation_data(cls, metric: str):
        if metric in DERIVED_OBJECTIVES or (metric.startswith(GAP_PREFIX)
                                            and len(metric) > len(GAP_PREFIX)):
            return metric
        if not metric.startswith("val_"):
            raise ValueError(
                "must be measured on the validation split, i.e. start with 'val_' "
                f"(got {metric!r}); the test split is only for final evaluation "
                f"(or one of {', '.join(DERIVED_OBJECTIVES)}, gap/<metric>)"
            )
        if metric == "val_loss":
            raise ValueError(
                "'val_loss' includes the regularization penalty and would favour weak "
                "penalties; use 'val_data_loss' (the same loss without the penalty)"
            )
        return metric

    @property
    def is_keras_metric(self) -> bool:
        return self.metric.startswith("val_")

    @property
    def natural_direction(self) -> str:
        if self.is_keras_metric and self.metric.endswith("accuracy"):
            return "maximize"
        return "minimize"

    @property
    def resolved_direction(self) -> str:
        return self.direction or self.natural_direction

    @model_validator(mode="after")
    def _sensible_direction(self) -> ObjectiveSpec:
        natural = self.natural_direction
        if self.direction is not None and self.direction != natural:
            raise ValueError(
                f"direction {self.direction!r} contradicts metric {self.metric!r} "
                f"(it should be {natural!r})"
            )
        return self


class ReportSpec(_Frozen):
    """What `sweep report` (and `sweep run --confirm`) re-trains to tell signal from noise:
    the best `confirm_top` configurations (chosen on validation) and the unregularized
    baseline, each over `seeds` fresh seeds, evaluated once on the test split."""

    confirm_top: int = Field(3, ge=0)
    seeds: int = Field(5, ge=2, le=100)


class PrunerSpec(_Frozen):
    name: Literal[PRUNERS] = "none"  # type: ignore[valid-type]
    warmup_epochs: int = Field(1, ge=0)
    interval: PositiveInt = 1
    # The per-epoch validation metric reported to the pruner; default: the objective's.
    monitor: str | None = None


_DURATION = re.compile(r"^\s*(?:(\d+(?:\.\d+)?)\s*h)?\s*(?:(\d+(?:\.\d+)?)\s*m)?"
                       r"\s*(?:(\d+(?:\.\d+)?)\s*s)?\s*$")


def parse_duration(value: Any) -> float:
    """Seconds from a number or a string such as ``"90m"``, ``"8h"``, ``"1h30m"``,
    ``"45s"``."""
    if isinstance(value, bool):
        raise ValueError(f"must be seconds or a duration like '90m' or '8h' (got {value!r})")
    if isinstance(value, str) and re.fullmatch(r"\s*\d+(\.\d+)?\s*", value):
        value = float(value)
    if isinstance(value, int | float):
        seconds = float(value)
    else:
        match = _DURATION.match(str(value)) if isinstance(value, str) else None
        if match is None or not any(match.groups()):
            raise ValueError(
                f"must be seconds or a duration like '90m' or '8h' (got {value!r})")
        hours, minutes, secs = (float(g) if g else 0.0 for g in match.groups())
        seconds = hours * 3600 + minutes * 60 + secs
    if not seconds > 0 or seconds != seconds or seconds == float("inf"):
        raise ValueError(f"must be a positive duration (got {value!r})")
    return seconds


class BudgetSpec(_Frozen):
    """How much the study may spend, across all its workers. Operational: a resumed study
    may change any of these."""

    n_trials: PositiveInt = 20
    # No trial starts later than this after the study's first trial started.
    wall_time: float | None = None
    # A trial running longer ends FAIL ('timeout ...'), even if its training step hangs.
    trial_timeout: float | None = None
    # Trials FAILED for their own reasons (errors, non-finite loss, timeouts; not
    # interruptions, not lost workers) after which no worker starts another trial.
    max_failures: PositiveInt = 10

    @field_validator("wall_time", "trial_timeout", mode="before")
    @classmethod
    def _duration(cls, value: Any) -> float | None:
        return None if value is None else parse_duration(value)


class WorkersSpec(_Frozen):
    """How workers share a study (RDB storage): liveness and retries."""

    # A running trial records a heartbeat every `heartbeat_interval` seconds; one silent
    # for `grace_period` seconds belongs to a dead worker and is failed, then retried with
    # the same parameters at most `max_retry` times.
    heartbeat_interval: PositiveInt = 30
    grace_period: PositiveInt = 120
    max_retry: int = Field(2, ge=0)
    # A worker process replaces itself with a fresh one (same pid, os.execv) after this many
    # trials. TensorFlow never frees traced graphs or GPU memory inside a process; trials
    # reuse compiled models (sweep.training.cache), which keeps host memory flat, and renewal bounds
    # whatever a long-lived process would still accumulate.
    recycle_after: PositiveInt = 50
    # Training state (weights, optimizer, epoch) saved every `checkpoint_every` epochs, so
    # that a pre-empted or killed trial resumes where it stopped. The folder must be one
    # that every worker of the study reaches (a shared file system on a cluster); by
    # default `sweep-checkpoints/` next to a SQLite storage, else in the worker's folder.
    checkpoint_dir: str | None = None
    checkpoint_every: int = Field(1, ge=0)  # 0: no checkpoints

    @model_validator(mode="after")
    def _grace_exceeds_interval(self) -> WorkersSpec:
        if self.grace_period <= self.heartbeat_interval:
            raise ValueError(
                f"grace_period must exceed heartbeat_interval (got {self.grace_period} <= "
                f"{self.heartbeat_interval})")
        return self


class TrackingSpec(_Frozen):
    experiment: str | None = None
    # |w| below this counts as zero in sparsity/<layer>.
    sparsity_threshold: float = Field(1e-3, gt=0.0)


# --------------------------------------------------------------------------- study
class StudySpec(_Frozen):
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

    @field_validator("objective", mode="before")
    @classmethod
    def _one_or_several(cls, value: Any):
        return [value] if isinstance(value, dict) else value

    @field_validator("pruner", mode="before")
    @classmethod
    def _pruner_by_name(cls, value: Any):
        return {"name": value} if isinstance(value, str) else value

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
        if not operational:
            for key in OPERATIONAL_KEYS:
                data.pop(key)
        return data

    def fingerprint(self) -> str:
        """Hash of everything that changes what a trial means (the budget and the worker
        settings do not)."""
        text = json.dumps(self.canonical(operational=False), sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()[:16]


# --------------------------------------------------------------------------- loading
_SOURCES = ("digits", "synthetic", "npz", "image_folder")


class FieldError(ValueError):
    """A check across several keys (a model validator has no location of its own): names
    the key the message is about."""

    def __init__(self, field: str, message: str):
        super().__init__(message)
        self.field = field


def _is_union_tag(item: str) -> bool:
    return bool(item) and (
        item[0].isupper() or item[0] == "<" or item.startswith("function-")
        or item in ("float", "constrained-float", "str", "tagged-union"))


def _field_path(loc: tuple[Any, ...]) -> str:
    # pydantic puts union-member tags (e.g. 'CoefficientRange', 'float') into the location
    # of union errors; users know their own keys, so keep the keys and drop the tags.
    parts: list[str] = []
    for index, item in enumerate(loc):
        if isinstance(item, int):
            parts.append(f"[{item}]")
        elif _is_union_tag(item) or (index == 1 and loc[0] == "data" and item in _SOURCES):
            continue  # (`data.synthetic.x`: the source's tag, not a key of the file)
        else:
            parts.append(("." if parts else "") + item)
    return "".join(parts)


def _errors_from_pydantic(error: ValidationError, *, single_objective: bool) -> SpecErrors:
    seen: dict[str, SpecError] = {}
    for item in error.errors(include_url=False):
        field = _field_path(tuple(item["loc"]))
        if single_objective:
            field = re.sub(r"^objective\[0\]", "objective", field)
        kind = item["type"]
        if kind == "extra_forbidden":
            message = "unknown key"
        elif kind == "missing":
            message = "required key is missing"
        elif kind == "literal_error":
            message = f"must be one of {item['ctx']['expected']}"
        elif kind == "union_tag_invalid":
            message = f"must be one of {item['ctx']['expected_tags']}"
            item = {**item, "input": item["ctx"]["tag"]}
        elif kind in ("model_type", "dict_type", "model_attributes_type"):
            message = "must be a mapping of keys"  # not pydantic's class names
        elif kind == "tuple_type" and item.get("input") is None:
            message = "required: a mapping such as {metric: val_accuracy, direction: maximize}"
        else:
            message = item["msg"].removeprefix("Value error, ")
        cause = (item.get("ctx") or {}).get("error")
        if isinstance(cause, FieldError):
            field, message = cause.field, str(cause)
        value = item.get("input")
        show = kind != "missing" and not (isinstance(value, dict) and kind != "extra_forbidden") \
            and f"(got {value!r})" not in message
        # Union members each report a failure for the same field; the first is enough.
        seen.setdefault(field, SpecError(field, message, value, show_value=show))
    return SpecErrors(list(seen.values()))


def parse_spec(data: Any) -> StudySpec:
    """Validate already-loaded data (a mapping) into a :class:`StudySpec`."""
    if not isinstance(data, dict):
        raise SpecError("", "a study file must be a mapping of the keys "
                        f"{', '.join(TOP_LEVEL_KEYS)}", type(data).__name__)
    try:
        return StudySpec.model_validate(data)
    except ValidationError as error:
        # A single objective is written as a mapping: name its fields the same way.
        single = isinstance(data.get("objective"), dict)
        raise _errors_from_pydantic(error, single_objective=single) from None


def load_spec(path: str | Path) -> StudySpec:
    """Read and validate a study file; every problem is a :class:`SpecError`."""
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as error:
        raise SpecError("STUDY_FILE", f"cannot read: {error.strerror}", str(path)) from None
    try:
        data = yaml.load(text, Loader=_StrictLoader)  # a SafeLoader: no Python tags
    except yaml.YAMLError as error:
        raise SpecError("STUDY_FILE", f"not valid YAML: {error}", str(path),
                        show_value=False) from None
    if _nodes(data, MAX_SPEC_NODES) > MAX_SPEC_NODES:
        raise SpecError("STUDY_FILE", f"expands to more than {MAX_SPEC_NODES} values "
                        "(YAML aliases?)", str(path))
    return parse_spec(data)


# A study file has a few hundred values; aliases can make a small file expand into
# millions (and the spec is stored in the database and in MLflow).
MAX_SPEC_NODES = 10_000


def _nodes(data: Any, limit: int) -> int:
    """How many values ``data`` holds once aliases are expanded, counting up to ``limit``."""
    count, stack = 0, [data]
    while stack and count <= limit:
        item = stack.pop()
        count += 1
        if isinstance(item, dict):
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return count


class _StrictLoader(yaml.SafeLoader):
    """Safe YAML that refuses a key given twice in one mapping (YAML keeps the last one
    silently, so a typo'd override would go unnoticed)."""

    def construct_mapping(self, node: Any, deep: bool = False) -> dict[Any, Any]:
        seen: set[Any] = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            if isinstance(key, str) and key in seen:
                line = key_node.start_mark.line + 1
                raise SpecError("STUDY_FILE", f"key {key!r} appears twice in one mapping "
                                f"(line {line})", key)
            seen.add(key)
        return super().construct_mapping(node, deep=deep)
