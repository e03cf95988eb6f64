"""What a trial is made of: the data, the model, the training, the search space."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    Discriminator,
    Field,
    NonNegativeFloat,
    PositiveFloat,
    PositiveInt,
    Tag,
    ValidationError,
    field_validator,
    model_validator,
)

from sweep.spec.base import (
    BASELINES,
    CLASSIFICATION_LOSSES,
    OPTIMIZERS,
    REGRESSION_LOSSES,
    TARGETS,
    FieldError,
    Frozen,
)
from sweep.spec.searched import (
    SEARCHABLE_TRAIN_KEYS,
    SearchChoices,
    SearchRange,
    choices_within,
    is_search,
    parse_search,
    searchable,
)


# --------------------------------------------------------------------------- data
class _SplitFractions(Frozen):
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


class ImageAugment(Frozen):
    """Random changes to training batches (never to validation or test), as Keras'
    preprocessing layers make them: factors are fractions (rotation of a full turn, zoom
    and contrast of the image's size and contrast)."""

    flip: Literal["horizontal", "vertical", "horizontal_and_vertical"] | None = None
    rotation: float = Field(0.0, ge=0.0, le=1.0)
    zoom: float = Field(0.0, ge=0.0, lt=1.0)
    contrast: float = Field(0.0, ge=0.0, le=1.0)

    @model_validator(mode="after")
    def _changes_something(self) -> ImageAugment:
        if self.flip is None and not (self.rotation or self.zoom or self.contrast):
            raise ValueError("give at least one of flip, rotation, zoom, contrast "
                             "(or leave augment out)")
        return self


class ImageFolderData(_SplitFractions):
    source: Literal["image_folder"]
    path: Path
    test_path: Path | None = None
    image_size: tuple[PositiveInt, PositiveInt] = (64, 64)
    grayscale: bool = False
    augment: ImageAugment | None = None
    # Images are shuffled through a buffer of this many (the training set never has to
    # fit in memory); the split itself is shuffled whole.
    shuffle_buffer: PositiveInt = 4096
    # Where each worker keeps its decoded copy (default: the system's temporary folder,
    # which on a cluster node is usually a local disk).
    cache_dir: Path | None = None


DataSpec = Annotated[
    DigitsData | SyntheticData | NpzData | ImageFolderData, Field(discriminator="source")
]


# --------------------------------------------------------------------------- model
class ModelSpec(Frozen):
    layers: tuple[dict[str, dict[str, Any]], ...] | None = None
    builder: str | None = None
    file: Path | None = None
    # Keyword arguments the builder is called with besides input_shape and n_classes;
    # like a layer's, each may be a search (sweep.spec.searched).
    arguments: dict[str, Any] | None = None

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
    def _searches_are_well_formed(self) -> ModelSpec:
        if self.arguments is not None and self.builder is None:
            raise FieldError("arguments", "are the builder's: give them with model.builder",
                             value=self.arguments)
        for path, value in self.searches():
            try:
                parse_search(value)
            except ValidationError as error:
                detail = error.errors(include_url=False)[0]
                raise FieldError(path, detail["msg"].removeprefix("Value error, "),
                                 value=value) from None
        return self

    def searches(self) -> list[tuple[str, dict[str, Any]]]:
        """Every search written in the layers' and the builder's keyword arguments, with
        its key path in this section (``layers[2].Dropout.rate``, ``arguments.width``)."""
        found = []
        for index, entry in enumerate(self.layers or ()):
            for class_name, kwargs in entry.items():
                found += [(f"layers[{index}].{class_name}.{name}", value)
                          for name, value in (kwargs or {}).items() if is_search(value)]
        found += [(f"arguments.{name}", value) for name, value in (self.arguments or {}).items()
                  if is_search(value)]
        return found

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
class TrainSpec(Frozen):
    epochs: PositiveInt = 10
    # These four may be searched (sweep.spec.searched): a range or a list of choices.
    batch_size: searchable(PositiveInt) = 32  # type: ignore[valid-type]
    optimizer: searchable(Literal[OPTIMIZERS]) = "adam"  # type: ignore[valid-type]
    learning_rate: searchable(PositiveFloat) = 1e-3  # type: ignore[valid-type]
    # Decoupled weight decay (Keras' `weight_decay`, which every optimizer takes): each
    # step shrinks the weights by learning_rate x weight_decay, apart from the loss. Unset:
    # the optimizer's own default (AdamW 0.004, the others none).
    weight_decay: searchable(NonNegativeFloat) | None = None  # type: ignore[valid-type]
    loss: Literal[CLASSIFICATION_LOSSES + REGRESSION_LOSSES] = (  # type: ignore[valid-type]
        "sparse_categorical_crossentropy"
    )
    # Speed switches; none changes what a model computes beyond float rounding.
    # Batches run per tf.function call: fewer Python round trips for small models. `auto`:
    # a whole epoch per call up to AUTO_STEPS batches, else the largest divisor of the
    # epoch's batches below it (sweep.training.fit.execution_steps). Operational.
    steps_per_execution: PositiveInt | Literal["auto"] = "auto"
    jit_compile: bool = False  # XLA-compile the train step (GPU: often faster)
    # float16 compute, float32 variables (GPUs with tensor cores); the declared output
    # layer stays float32 so that the softmax and the loss are computed in full precision.
    mixed_precision: bool = False

    @model_validator(mode="after")
    def _searches_fit_their_keys(self) -> TrainSpec:
        for name, low_ok, whole in (("batch_size", lambda v: v >= 1, True),
                                    ("learning_rate", lambda v: v > 0, False),
                                    ("weight_decay", lambda v: v >= 0, False)):
            value = getattr(self, name)
            if isinstance(value, SearchRange):
                if whole and not value.is_int:
                    raise FieldError(name, "a batch size range needs whole numbers",
                                     value=value.model_dump())
                if not low_ok(value.low):
                    raise FieldError(name, f"low is out of range for {name} "
                                     f"(got {value.low})", value=value.model_dump())
            elif isinstance(value, SearchChoices):
                bad = [c for c in value.choices if isinstance(c, bool | str)
                       or (whole and not isinstance(c, int)) or not low_ok(c)]
                if bad:
                    raise FieldError(name, f"choices must be {'whole ' if whole else ''}"
                                     f"numbers valid for {name} (got {bad})",
                                     value=list(value.choices))
        try:
            choices_within(self.optimizer, OPTIMIZERS, "optimizer")
        except ValueError as error:
            raise FieldError("optimizer", str(error), value=_dumped(self.optimizer)) from None
        return self

    @property
    def is_classification(self) -> bool:
        return self.loss in CLASSIFICATION_LOSSES

    @property
    def searched(self) -> dict[str, SearchRange | SearchChoices]:
        """The keys of this section that are searched, with their searches."""
        return {name: value for name in SEARCHABLE_TRAIN_KEYS
                if isinstance(value := getattr(self, name), SearchRange | SearchChoices)}


def _dumped(value: Any) -> Any:
    return value.model_dump() if isinstance(value, Frozen) else value


# --------------------------------------------------------------------------- search
class CoefficientRange(Frozen):
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


class CoefficientChoices(Frozen):
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


class PlacementSpec(Frozen):
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


class SearchSpec(Frozen):
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


