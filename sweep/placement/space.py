"""The search space, define-by-run: placement, penalty kinds, coefficients.

Parameter names (as Optuna and MLflow show them):

- ``placement``: the named placement, when ``search.placement.choices`` has several;
- ``mask/<layer>``: on/off per slot, with ``search.placement.mask``;
- ``l1_on``/``l2_on``: whether that penalty is used at all, when ``allow_zero`` is set;
- ``l1``/``l2`` (``coefficients: shared``) or ``l1/<layer>``/``l2/<layer>`` (``per_layer``).

Coefficients are suggested only for layers a trial actually regularizes, so no parameter
is ever dead. The result of :meth:`SearchSpace.suggest` is the *resolved placement*
``{layer: {target: {kind: value}}}`` with zero coefficients dropped, so that two
configurations that train the same model compare equal.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any, Protocol

from sweep.errors import SpecError
from sweep.placement.searched import (
    Searched,
    Settings,
    grid_values,
    suggest_settings,
    typical_settings,
)
from sweep.placement.selectors import SelectorError, select
from sweep.placement.slots import LayerInfo
from sweep.spec import CoefficientChoices, CoefficientRange, SearchSpec
from sweep.spec.searched import SearchRange

Placement = dict[str, dict[str, dict[str, float]]]
BASELINE_NONE = "none"  # no regularization anywhere
BASELINE_UNIFORM_L2 = "uniform_l2"  # the same L2 on every kernel


class _Trial(Protocol):  # the part of optuna.Trial used here
    def suggest_categorical(self, name: str, choices: Sequence[Any]) -> Any: ...
    def suggest_float(self, name: str, low: float, high: float, *, log: bool = False
                      ) -> float: ...


class SearchSpace:
    def __init__(self, search: SearchSpec, layers: Sequence[LayerInfo],
                 searched: Sequence[Searched] = ()):
        self.search = search
        self.layers = list(layers)
        # What the study searches besides the penalties (sweep.placement.searched): a
        # trial's values of them are its settings.
        self.searched = list(searched)
        self._slots = {layer.name: layer for layer in self.layers if layer.is_slot}
        self.choices: dict[str, tuple[str, ...]] = {}
        self.mask_slots: tuple[str, ...] = ()
        placement = search.placement
        if placement.choices is not None:
            for index, choice in enumerate(placement.choices):
                self.choices[choice] = self._select(
                    choice, f"search.placement.choices[{index}]")
        else:
            selector = "all" if placement.mask is True else str(placement.mask)
            # A slot no target applies to (a bias target, a layer without a bias) is never
            # regularized: switching it on or off would be a dead parameter.
            self.mask_slots = tuple(slot for slot in self._select(
                selector, "search.placement.mask") if self._targets(slot))
        if not any(self._targets(slot) for slot in self.candidate_slots):
            raise SpecError("search.targets", "no slot the placement can pick has any of these "
                            "targets (a bias target needs layers with use_bias)",
                            list(search.targets))

    def _select(self, selector: str, field: str) -> tuple[str, ...]:
        try:
            return select(selector, self.layers)
        except SelectorError as error:
            raise SpecError(field, str(error), selector) from None

    @property
    def candidate_slots(self) -> tuple[str, ...]:
        """Every slot some trial may regularize, in model order."""
        chosen = set(self.mask_slots).union(*self.choices.values())
        return tuple(name for name in self._slots if name in chosen and self._targets(name))

    def _targets(self, slot: str) -> tuple[str, ...]:
        # Bias is regularized only where a bias exists (and only if asked: second seed).
        has_bias = self._slots[slot].has_bias
        return tuple(t for t in self.search.targets if t != "bias" or has_bias)

    # ------------------------------------------------------------------ suggest
    def suggest(self, trial: _Trial) -> Placement:
        selected = self._suggest_slots(trial)
        selected = [slot for slot in selected if self._targets(slot)]
        if not selected:
            return {}
        coefficients: dict[str, dict[str, float]] = {slot: {} for slot in selected}
        for kind in self.search.kinds:
            spec = getattr(self.search, kind)
            if isinstance(spec, CoefficientRange) and spec.allow_zero and not \
                    trial.suggest_categorical(f"{kind}_on", [True, False]):
                continue
            if self.search.coefficients == "shared":
                value = _suggest_value(trial, kind, spec)
                for slot in selected:
                    coefficients[slot][kind] = value
            else:
                for slot in selected:
                    coefficients[slot][kind] = _suggest_value(trial, f"{kind}/{slot}", spec)
        return _resolved(
            {slot: {t: coefficients[slot] for t in self._targets(slot)} for slot in selected})

    def suggest_settings(self, trial: Any) -> Settings:
        """A trial's values of what the study searches besides the penalties."""
        return suggest_settings(trial, self.searched)

    def baseline_settings(self) -> Settings:
        """A baseline's settings: the searches' typical values, and none of the searched
        regularizers (dropout, weight decay): no regularization has none of them, and
        uniform L2 is L2 alone."""
        return typical_settings(self.searched, regularized=False)

    def _suggest_slots(self, trial: _Trial) -> list[str]:
        if self.choices:
            names = list(self.choices)
            name = names[0] if len(names) == 1 else trial.suggest_categorical("placement", names)
            return list(self.choices[name])
        return [s for s in self.mask_slots if trial.suggest_categorical(f"mask/{s}", [True, False])]

    def label(self, params: Mapping[str, Any], placement: Placement) -> str:
        """The placement's name as the user wrote it: the chosen selector, or for a mask
        search the slots switched on."""
        if self.choices:
            return str(params.get("placement", next(iter(self.choices))))
        return "+".join(placement) or "none"

    # ------------------------------------------------------------------ baselines
    def baselines(self) -> list[tuple[str, Placement]]:
        """The reference points every study trains first: no regularization at all, and,
        when the space searches L2, plain uniform L2 (weight decay) on every slot's
        kernel with a typical coefficient of the space (the log-midpoint of a range)."""
        wanted = self.search.baselines
        found: list[tuple[str, Placement]] = []
        if BASELINE_NONE in wanted:
            found.append((BASELINE_NONE, {}))
        value = _typical(self.search.l2)
        if BASELINE_UNIFORM_L2 in wanted and value and "kernel" in self.search.targets:
            found.append((BASELINE_UNIFORM_L2, {slot: {"kernel": {"l2": value}}
                                                for slot in self._slots}))
        return found

    # ------------------------------------------------------------------ grid
    def grid(self) -> dict[str, list[Any]]:
        """Every parameter with its values, for Optuna's GridSampler."""
        space: dict[str, list[Any]] = {}
        if len(self.choices) > 1:
            space["placement"] = list(self.choices)
        for slot in self.mask_slots:
            space[f"mask/{slot}"] = [True, False]
        for kind in self.search.kinds:
            spec = getattr(self.search, kind)
            if isinstance(spec, CoefficientRange):
                raise SpecError(f"search.{kind}", "the grid sampler needs a fixed value or "
                                "a list of choices, not a range",
                                spec.model_dump(), show_value=False)
            if isinstance(spec, float):
                continue
            names = [kind] if self.search.coefficients == "shared" else [
                f"{kind}/{slot}" for slot in self.candidate_slots]
            for name in names:
                space[name] = list(spec.choices)
        ranges = [item for item in self.searched if isinstance(item.search, SearchRange)]
        if ranges:
            raise SpecError(ranges[0].field, "the grid sampler needs a list of choices, not a "
                            "range", ranges[0].search.model_dump(), show_value=False)
        return {**space, **grid_values(self.searched)}


def _typical(spec: Any) -> float:
    """A representative coefficient of a search range, list of choices or fixed value."""
    if spec is None:
        return 0.0
    if isinstance(spec, CoefficientRange):
        if spec.log:
            return float(math.sqrt(spec.low * spec.high))
        return (spec.low + spec.high) / 2
    if isinstance(spec, CoefficientChoices):
        positive = sorted(c for c in spec.choices if c > 0)
        return float(positive[len(positive) // 2]) if positive else 0.0
    return float(spec)


def _suggest_value(trial: _Trial, name: str, spec: Any) -> float:
    if isinstance(spec, CoefficientRange):
        return trial.suggest_float(name, spec.low, spec.high, log=spec.log)
    if isinstance(spec, CoefficientChoices):
        return float(trial.suggest_categorical(name, list(spec.choices)))
    return float(spec)


def _resolved(placement: Placement) -> Placement:
    """Drop zero coefficients and then-empty entries: a zero penalty is no penalty."""
    out: Placement = {}
    for slot, targets in placement.items():
        kept = {t: {k: v for k, v in kinds.items() if v > 0} for t, kinds in targets.items()}
        kept = {t: kinds for t, kinds in kept.items() if kinds}
        if kept:
            out[slot] = kept
    return out


def describe_placement(placement: Placement) -> str:
    """One line a human reads: ``conv2d: kernel l2=1e-04; dense_1: kernel l1=1e-05``."""
    if not placement:
        return "none"
    parts = []
    for slot, targets in placement.items():
        items = ", ".join(
            f"{target} " + " ".join(f"{kind}={value:.3g}" for kind, value in kinds.items())
            for target, kinds in targets.items()
        )
        parts.append(f"{slot}: {items}")
    return "; ".join(parts)
