"""Distinct configurations: the key that says two resolved placements train the same
model, and every configuration of a finite search space.

A space of choices and fixed values only (no coefficient range) holds a finite number of
distinct models, often far fewer than its parameter combinations: with ``allow_zero``-like
choices or a mask, many combinations resolve to the same placement (every mask switched
off is placement ``none``, whatever the coefficients). Listing them lets a study end when
all are trained (``space exhausted``) instead of sampling duplicates until its budget.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from typing import Any

from sweep.placement.space import Placement, SearchSpace

# Parameter combinations walked before giving up on listing the space: beyond this, the
# study relies on budget.max_duplicates to notice an exhausted space.
MAX_COMBINATIONS = 20_000
MAX_CONFIGURATIONS = 2_000  # keys stored on the study (16 characters each)


def placement_key(placement: Placement) -> str:
    """A short stable key of a resolved placement: equal placements, equal keys (a
    placement read back from a trial's JSON attribute gives the same key)."""
    text = json.dumps(placement, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def configuration_key(placement: Placement, settings: Mapping[str, Any] | None = None) -> str:
    """A short stable key of a configuration: its resolved placement and its settings
    (what else the study searches: sweep.placement.searched). Without settings it is the
    placement's key, as it was before settings existed."""
    if not settings:
        return placement_key(placement)
    text = json.dumps({"placement": placement, "settings": dict(settings)}, sort_keys=True,
                      separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def structure_key(placement: Placement) -> tuple:
    """What a placement is made of, coefficients aside: which penalty kinds sit on which
    layer targets. Trials of one structure share a compiled model (sweep.training.cache)
    and are compared with each other by the placement pruner (sweep.search.pruners)."""
    return tuple(sorted((layer, target, tuple(sorted(kinds)))
                        for layer, targets in placement.items()
                        for target, kinds in targets.items()))


class _Continuous(Exception):
    """The space has a coefficient range: it cannot be listed."""


class _Walker:
    """A stand-in for an Optuna trial that takes the categorical choices of ``path``
    (index per decision, in the order the space asks) and records the decisions made."""

    def __init__(self, path: Sequence[int]):
        self.path = list(path)
        self.decisions: list[tuple[int, int]] = []  # (index taken, number of choices)

    def suggest_categorical(self, name: str, choices: Sequence[Any]) -> Any:
        depth = len(self.decisions)
        index = self.path[depth] if depth < len(self.path) else 0
        self.decisions.append((index, len(choices)))
        return list(choices)[index]

    def suggest_float(self, name: str, low: float, high: float, *, log: bool = False
                      ) -> float:
        raise _Continuous(name)

    def suggest_int(self, name: str, low: int, high: int, *, log: bool = False) -> int:
        raise _Continuous(name)  # a range of whole numbers is listed by no one either


def space_configurations(space: SearchSpace) -> list[Placement] | None:
    """Every distinct resolved placement the space can produce, or None when it has a
    coefficient range or more than the limits above."""
    found = _walk(space, settings=False)
    return None if found is None else [placement for placement, _ in found.values()]


def space_keys(space: SearchSpace) -> list[str] | None:
    """The keys (``configuration_key``) of every distinct configuration the space can
    produce, its settings included, or None when it has a range or more than the limits
    above."""
    found = _walk(space, settings=True)
    return None if found is None else sorted(found)


def _walk(space: SearchSpace, *, settings: bool
          ) -> dict[str, tuple[Placement, dict[str, Any]]] | None:
    """The walk visits each branch of the define-by-run space once (a depth-first
    odometer over the categorical decisions)."""
    found: dict[str, tuple[Placement, dict[str, Any]]] = {}
    path: list[int] = []
    for _ in range(MAX_COMBINATIONS):
        walker = _Walker(path)
        try:
            placement = space.suggest(walker)
            values = space.suggest_settings(walker) if settings else {}
        except _Continuous:
            return None
        found.setdefault(configuration_key(placement, values), (placement, values))
        if len(found) > MAX_CONFIGURATIONS:
            return None
        decisions = walker.decisions
        while decisions and decisions[-1][0] + 1 >= decisions[-1][1]:
            decisions.pop()
        if not decisions:
            return found
        path = [index for index, _ in decisions[:-1]] + [decisions[-1][0] + 1]
    return None
