"""Values the study file searches besides the penalties: wherever a number or a name
stands in ``train``, in a layer's keyword arguments (``model.layers``) or in a builder's
(``model.arguments``), a search range ``{low, high, log}`` or a list ``{choices: [...]}``
may stand instead. Each is an Optuna parameter of its own (sweep.placement.searched
names them and resolves a trial's values into concrete ``train`` and ``model``
sections).
"""

from __future__ import annotations

import re
from typing import Annotated, Any

from pydantic import (
    Discriminator,
    Field,
    StrictBool,
    StrictFloat,
    StrictInt,
    StrictStr,
    Tag,
    model_validator,
)

from sweep.spec.base import Frozen

RANGE_KEYS = frozenset({"low", "high", "log", "allow_zero"})
SEARCHABLE_TRAIN_KEYS = ("batch_size", "optimizer", "learning_rate", "weight_decay")
# YAML 1.1 reads `1e-4` (no dot) as a string: such a string is the number it spells.
_NUMBER = re.compile(r"[+-]?(\d+\.?\d*|\.\d+)[eE][+-]?\d+")


def _number(value: Any) -> Any:
    return float(value) if isinstance(value, str) and _NUMBER.fullmatch(value) else value


class SearchRange(Frozen):
    """A number searched from ``low`` to ``high``, on a log scale with ``log``. Two whole
    numbers search whole numbers (``units: {low: 16, high: 128}``)."""

    low: StrictInt | StrictFloat
    high: StrictInt | StrictFloat
    log: StrictBool = False
    # A regularizer's range may also switch it off (0: no dropout, no weight decay), as
    # the coefficients' ``allow_zero`` does, so that the study compares with and without
    # it (sweep.placement.searched refuses it on a value that does not regularize).
    allow_zero: StrictBool = False

    @model_validator(mode="before")
    @classmethod
    def _numbers(cls, data: Any) -> Any:
        if isinstance(data, dict):
            data = {k: _number(v) if k in ("low", "high") else v for k, v in data.items()}
            for key in ("low", "high"):
                value = data.get(key)
                if isinstance(value, bool) or (value is not None
                                               and not isinstance(value, int | float)):
                    raise ValueError(f"{key} must be a number (got {value!r})")
        return data

    @model_validator(mode="after")
    def _ordered(self) -> SearchRange:
        if self.low >= self.high:
            raise ValueError(f"low must be below high (got low={self.low}, high={self.high})")
        if self.log and self.low <= 0:
            raise ValueError(f"low must be > 0 when log is true (got low={self.low})")
        return self

    @property
    def is_int(self) -> bool:
        return isinstance(self.low, int) and isinstance(self.high, int)

    def typical(self) -> float | int:
        """The middle of the range (geometric with ``log``): what a check builds with."""
        middle = (self.low * self.high) ** 0.5 if self.log else (self.low + self.high) / 2
        return round(middle) if self.is_int else float(middle)


Choice = StrictBool | StrictInt | StrictFloat | StrictStr


class SearchChoices(Frozen):
    """One of a list of values: numbers, or names (an optimizer, an activation)."""

    choices: tuple[Choice, ...] = Field(min_length=1)

    @model_validator(mode="before")
    @classmethod
    def _numbers(cls, data: Any) -> Any:
        if isinstance(data, dict) and isinstance(data.get("choices"), list | tuple):
            data = {**data, "choices": [_number(v) for v in data["choices"]]}
        return data

    @model_validator(mode="after")
    def _one_kind(self) -> SearchChoices:
        kinds = {_kind(value) for value in self.choices}
        if len(kinds) > 1:
            raise ValueError(f"choices must all be numbers, or all names, or all true/false "
                             f"(got {list(self.choices)})")
        if len(set(self.choices)) != len(self.choices):
            raise ValueError(f"choices must be distinct (got {list(self.choices)})")
        return self

    @property
    def is_int(self) -> bool:
        return all(isinstance(v, int) and not isinstance(v, bool) for v in self.choices)

    def typical(self) -> Any:
        """The middle choice: what a check builds with."""
        return self.choices[len(self.choices) // 2]


def _kind(value: Any) -> str:
    if isinstance(value, bool):
        return "bool"
    return "number" if isinstance(value, int | float) else "name"


def is_search(value: Any) -> bool:
    """Whether a raw value of the file is written as a search (a mapping with ``low`` and
    ``high``, or with ``choices``), not as a value."""
    return isinstance(value, dict) and ("choices" in value or (
        "low" in value and "high" in value and set(value) <= RANGE_KEYS))


def search_form(value: Any) -> str:
    if isinstance(value, SearchChoices) or (isinstance(value, dict) and "choices" in value):
        return "<choices>"
    if isinstance(value, SearchRange | dict):
        return "<range>"
    return "<fixed>"


def searchable(fixed: Any) -> Any:
    """A field that holds ``fixed`` or a search of it; the discriminator picks the form
    from the value's shape, so an error speaks of that form only."""
    return Annotated[
        Annotated[fixed, Tag("<fixed>")]
        | Annotated[SearchRange, Tag("<range>")]
        | Annotated[SearchChoices, Tag("<choices>")],
        Discriminator(search_form),
    ]


def parse_search(value: dict[str, Any]) -> SearchRange | SearchChoices:
    """A raw search mapping (``is_search``) as its type; raises pydantic's errors."""
    if "choices" in value:
        return SearchChoices.model_validate(value)
    return SearchRange.model_validate(value)


def choices_within(value: Any, allowed: tuple[Any, ...], name: str) -> None:
    """Raises when a search of names offers one that is not ``allowed``."""
    if isinstance(value, SearchChoices):
        unknown = [c for c in value.choices if c not in allowed]
        if unknown:
            raise ValueError(f"{name} choices must be among {list(allowed)} (got {unknown})")
    elif isinstance(value, SearchRange):
        raise ValueError(f"{name} is a name: search it with choices, not a range")


SEARCHABLE = (*(f"train.{key}" for key in SEARCHABLE_TRAIN_KEYS),
              "a layer's keyword arguments (model.layers)", "model.arguments", "search.*")
CANNOT_SEARCH = f"cannot be searched (a range or choices stands only at {', '.join(SEARCHABLE)})"

# Layer arguments that regularize, by family: 0 is "none of it" (the no-regularization
# baseline trains with 0 where the study searches them, and ``allow_zero`` may switch
# them off).
REGULARIZING_ARGUMENTS = {
    ("Dropout", "rate"): "dropout", ("SpatialDropout1D", "rate"): "dropout",
    ("SpatialDropout2D", "rate"): "dropout", ("SpatialDropout3D", "rate"): "dropout",
    ("GaussianDropout", "rate"): "dropout", ("AlphaDropout", "rate"): "dropout",
    ("GaussianNoise", "stddev"): "noise",
}
WEIGHT_DECAY = "weight_decay"
NOT_A_REGULARIZER = ("allow_zero switches a regularizer off: it stands only on a dropout "
                     "rate, a GaussianNoise stddev or train.weight_decay")


def unsearchable(data: Any) -> list[tuple[str, Any, str]]:
    """Where a raw study file writes a search at a key that cannot be searched (``name``,
    ``seed``, ``data.*``, ``train.epochs``, a layer's ``name``, ...), or ``allow_zero`` on
    a value that does not regularize: (key path, value, what is wrong). Said before the
    file is validated, so that the message says why, not that a number was expected."""
    found: list[tuple[str, Any, str]] = []
    if not isinstance(data, dict):
        return found

    def walk(value: Any, path: str, allowed: bool, regularizer: bool = False) -> None:
        if is_search(value):
            if not allowed:
                found.append((path, value, CANNOT_SEARCH))
            elif value.get("allow_zero") is True and not regularizer:
                found.append((path, value, NOT_A_REGULARIZER))
            return
        if isinstance(value, dict):
            for key, item in value.items():
                walk(item, f"{path}.{key}" if path else str(key), False)
        elif isinstance(value, list | tuple):
            for index, item in enumerate(value):
                walk(item, f"{path}[{index}]", False)

    for section, value in data.items():
        if section == "search":
            continue  # the penalties' own searches (sweep.spec.inputs.SearchSpec)
        if section == "train" and isinstance(value, dict):
            for key, item in value.items():
                walk(item, f"train.{key}", key in SEARCHABLE_TRAIN_KEYS, key == WEIGHT_DECAY)
        elif section == "model" and isinstance(value, dict):
            for key, item in value.items():
                if key == "arguments" and isinstance(item, dict):
                    for name, argument in item.items():
                        walk(argument, f"model.arguments.{name}", True)
                elif key == "layers" and isinstance(item, list | tuple):
                    for index, entry in enumerate(item):
                        for class_name, kwargs in (entry.items() if isinstance(entry, dict)
                                                   else ()):
                            for name, argument in (kwargs or {}).items() if isinstance(
                                    kwargs, dict) else ():
                                walk(argument, f"model.layers[{index}].{class_name}.{name}",
                                     name != "name",
                                     (class_name, name) in REGULARIZING_ARGUMENTS)
                else:
                    walk(item, f"model.{key}", False)
        else:
            walk(value, str(section), False)
    return found
