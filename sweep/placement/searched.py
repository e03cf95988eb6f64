"""The values a study searches besides its penalties (sweep.spec.searched): their Optuna
parameter names, a trial's suggestions of them, and the concrete ``train`` and ``model``
sections a trial trains with.

Names say where a value is: ``train/learning_rate``, ``train/batch_size``,
``train/optimizer``, ``train/weight_decay``; ``<layer>/<argument>`` for a layer of
``model.layers`` (``dropout/rate``, ``dense_1/units``, named as the layers are:
sweep.placement.slots.declared_layer_names); ``builder/<argument>`` for
``model.arguments``. A trial's values are its *settings* (``{name: value}``): with its
resolved placement, they are its configuration.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sweep.placement.slots import declared_layer_names
from sweep.spec import ModelSpec, StudySpec, TrainSpec
from sweep.spec.searched import (
    REGULARIZING_ARGUMENTS,
    WEIGHT_DECAY,
    SearchChoices,
    SearchRange,
    is_search,
    parse_search,
)

Settings = dict[str, Any]


@dataclass(frozen=True)
class Searched:
    """One searched value of the study file."""

    name: str  # the Optuna parameter (and MLflow param) name
    # ("train", key) | ("layers", index, class, argument) | ("arguments", key)
    where: tuple[Any, ...]
    search: SearchRange | SearchChoices
    # The regularizer family this value is (``dropout``, ``noise``, ``weight_decay``), or
    # None for a training setting (learning rate, batch size, optimizer, a layer's size).
    family: str | None
    # Whether it changes the compiled graph (a layer's or the builder's argument), so a
    # new value needs a model of its own (sweep.training.cache).
    structural: bool

    @property
    def field(self) -> str:
        """The key path in the study file (``model.layers[1].Dropout.rate``)."""
        if self.where[0] == "train":
            return f"train.{self.where[1]}"
        if self.where[0] == "layers":
            _, index, class_name, argument = self.where
            return f"model.layers[{index}].{class_name}.{argument}"
        return f"model.arguments.{self.where[1]}"


def searched_values(spec: StudySpec) -> list[Searched]:
    """Every value the study file searches besides the penalties, in file order."""
    found: list[Searched] = []
    for key, search in spec.train.searched.items():
        found.append(Searched(f"train/{key}", ("train", key), search,
                              WEIGHT_DECAY if key == WEIGHT_DECAY else None, False))
    model = spec.model
    names = declared_layer_names(model.layers) if model.layers is not None else []
    for index, entry in enumerate(model.layers or ()):
        for class_name, kwargs in entry.items():
            for argument, value in (kwargs or {}).items():
                if is_search(value):
                    found.append(Searched(
                        f"{names[index]}/{argument}", ("layers", index, class_name, argument),
                        parse_search(value), REGULARIZING_ARGUMENTS.get((class_name, argument)),
                        True))
    for argument, value in (model.arguments or {}).items():
        if is_search(value):
            found.append(Searched(f"builder/{argument}", ("arguments", argument),
                                  parse_search(value), None, True))
    return found


def switch_name(item: Searched) -> str:
    """The parameter that switches a regularizer with ``allow_zero`` on or off."""
    return f"{item.name}_on"


def suggest_settings(trial: Any, searched: Sequence[Searched]) -> Settings:
    """A trial's values of the searched keys (Optuna's suggest_* under their names); a
    regularizer with ``allow_zero`` first draws whether it is on (``dropout/rate_on``),
    and its value only when it is, so that no parameter is dead."""
    settings: Settings = {}
    for item in searched:
        search = item.search
        if isinstance(search, SearchRange) and search.allow_zero and \
                not trial.suggest_categorical(switch_name(item), [True, False]):
            settings[item.name] = _off(item)
        elif isinstance(search, SearchChoices):
            settings[item.name] = trial.suggest_categorical(item.name, list(search.choices))
        elif search.is_int:
            settings[item.name] = int(trial.suggest_int(item.name, int(search.low),
                                                        int(search.high), log=search.log))
        else:
            settings[item.name] = float(trial.suggest_float(
                item.name, float(search.low), float(search.high), log=search.log))
    return settings


def typical_settings(searched: Sequence[Searched], *, regularized: bool = True) -> Settings:
    """The values a trial outside the sampler trains with (a baseline): each search's
    middle value, and with ``regularized=False`` no regularizer (a searched dropout rate
    or weight decay at 0)."""
    return {item.name: _off(item) if not regularized and item.family is not None
            else item.search.typical() for item in searched}


def _off(item: Searched) -> int | float:
    """A regularizer switched off, of the search's own type (0.0 for a rate), so that the
    baseline is the same configuration as a trial that drew 0.0."""
    return 0 if item.search.is_int else 0.0


def grid_values(searched: Sequence[Searched]) -> dict[str, list[Any]]:
    """Every searched value with its choices, for Optuna's GridSampler (a range has no
    finite list: the caller refuses it)."""
    return {item.name: list(item.search.choices) for item in searched
            if isinstance(item.search, SearchChoices)}


def resolve(spec: StudySpec, settings: Mapping[str, Any]) -> tuple[TrainSpec, ModelSpec]:
    """The ``train`` and ``model`` sections a trial trains with: every search replaced by
    the trial's value (a value missing from ``settings`` by its search's typical one)."""
    train_updates: dict[str, Any] = {}
    layers = [{c: dict(kwargs or {}) for c, kwargs in entry.items()}
              for entry in (spec.model.layers or ())]
    arguments = dict(spec.model.arguments or {})
    for item in searched_values(spec):
        value = settings[item.name] if item.name in settings else item.search.typical()
        if item.where[0] == "train":
            train_updates[item.where[1]] = value
        elif item.where[0] == "layers":
            _, index, class_name, argument = item.where
            layers[index][class_name][argument] = value
        else:
            arguments[item.where[1]] = value
    train = spec.train.model_copy(update=train_updates)
    model = spec.model.model_copy(update={
        "layers": tuple(layers) if spec.model.layers is not None else None,
        "arguments": arguments if spec.model.arguments is not None else None})
    return train, model


def structure_settings(settings: Mapping[str, Any], searched: Sequence[Searched]) -> tuple:
    """The part of a trial's settings that changes the compiled graph (layer and builder
    arguments), as a hashable key."""
    structural = {item.name for item in searched if item.structural}
    return tuple(sorted((name, value) for name, value in settings.items()
                        if name in structural))


def regularizer_families(placement: Mapping[str, Any], settings: Mapping[str, Any],
                         searched: Sequence[Searched]) -> list[str]:
    """The regularizers a configuration uses: ``l1``/``l2`` where its placement puts them,
    and each searched regularizer (``dropout``, ``noise``, ``weight_decay``) set above 0.
    Empty: no regularization (of what the study searches)."""
    kinds = sorted({kind for targets in placement.values() for kinds in targets.values()
                    for kind in kinds})
    families = {item.family for item in searched if item.family is not None
                and isinstance(settings.get(item.name), int | float)
                and settings[item.name] > 0}
    return kinds + sorted(families)


def searches_regularizers(searched: Sequence[Searched]) -> bool:
    """Whether the study searches a regularizer besides the penalties (dropout, noise,
    weight decay): its comparison is then per regularizer family, not per placement."""
    return any(item.family is not None for item in searched)


def family_label(placement_label: str, placement: Mapping[str, Any],
                 settings: Mapping[str, Any], searched: Sequence[Searched]) -> str:
    """A configuration's regularizer family, as the comparison names its row: the
    penalties with their placement (``l2 (all)``), then each searched regularizer it
    uses (``l2 (all) + dropout``, ``weight decay``); ``none`` when it uses none."""
    families = regularizer_families(placement, settings, searched)
    kinds = [f for f in families if f in ("l1", "l2")]
    parts = [f"{'+'.join(kinds)} ({placement_label})"] if kinds else []
    parts += [f.replace("_", " ") for f in families if f not in kinds]
    return " + ".join(parts) or "none"


def describe_settings(settings: Mapping[str, Any]) -> str:
    """``learning_rate=0.003 dropout/rate=0.2``: a configuration's settings in one short
    line (a ``train/`` name without its prefix); empty without settings."""
    return " ".join(f"{name.removeprefix('train/')}="
                    f"{format(value, '.3g') if isinstance(value, float) else value}"
                    for name, value in settings.items())
