"""The study's answer in order: its configurations best first, the one ranking that
``best``, ``report``, the MLflow study run, ``sweep.load(...).best`` and the confirmation
all read (with seed racing, ``sweep.search.racing``'s noise-aware order)."""

from __future__ import annotations

import weakref
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from sweep.spec import StudySpec

if TYPE_CHECKING:
    import optuna

__all__ = ["figure_of", "ranked_configurations", "ranked_trials", "sorted_complete"]


def ranked_trials(study: optuna.Study, spec: StudySpec) -> tuple[list[Any], dict[int, Any]]:
    """The study's configurations best first, each as the trial that names it (its first
    finished training, ``Configuration.named``), and every configuration
    (sweep.search.grouping.Configuration: mean, sd, n, draws) by that trial's number.

    A configuration's figure is its mean over its seeds, never the named trial's own
    value (one draw): read ``seeds[trial.number].mean``. With seed racing the order is
    ``sweep.search.racing.ranked``'s (noise-aware); without, by the mean, ties to the
    earlier configuration. Duplicates trained nothing and are no configuration."""
    trials = study.get_trials(deepcopy=False)
    # A report ranks the same trials seven times (its tables, summary, curves, note, the
    # best on MLflow, the hints), a quarter-second each at 10,000 trials with seed racing:
    # the ranking is kept for as long as the study's trials are the same trials.
    last = _rankings.get(study)
    if last is not None and (last[0] is spec or last[0] == spec) and _same(last[1], trials):
        ordered, seeds = last[2]
        return list(ordered), dict(seeds)
    from sweep.search.racing import ranked

    found = ranked(trials, spec, study=study)
    ordered, seeds = [c.named for c in found], {c.named.number: c for c in found}
    _rankings[study] = (spec, trials, (ordered, seeds))
    return list(ordered), dict(seeds)


def ranked_configurations(study: optuna.Study, spec: StudySpec) -> list[Any]:
    """``ranked_trials``' configurations, best first."""
    ordered, seeds = ranked_trials(study, spec)
    return [seeds[t.number] for t in ordered]


_rankings: weakref.WeakKeyDictionary[Any, tuple[StudySpec, list[Any], Any]] = \
    weakref.WeakKeyDictionary()


def _same(before: Sequence[Any], now: Sequence[Any]) -> bool:
    """The same trials: a finished trial is the very object Optuna's cache handed out
    before (it never changes); an unfinished one is read again each time, so compared by
    its contents."""
    return len(before) == len(now) and all(
        a is b or a == b for a, b in zip(before, now, strict=True))


def sorted_complete(study: optuna.Study, spec: StudySpec) -> list[Any]:
    """``ranked_trials``' order alone."""
    return ranked_trials(study, spec)[0]


def figure_of(trial: Any, seeds: Mapping[int, Any]) -> float:
    """The figure of the configuration ``trial`` names (its mean over seeds), or the
    trial's own value where it names none (a duplicate, an unranked trial)."""
    found = seeds.get(trial.number)
    return found.mean if found is not None else float(trial.values[0])
