"""The study's answer in order: its completed trials best first, the one ranking that
``best``, ``report``, the MLflow study run, ``sweep.load(...).best`` and the confirmation
all read (with seed racing, ``sweep.study.racing``'s noise-aware order)."""

from __future__ import annotations

import weakref
from collections.abc import Sequence
from typing import Any

from sweep.spec import StudySpec

__all__ = ["ranked_trials", "sorted_complete"]


def ranked_trials(study: Any, spec: StudySpec) -> tuple[list[Any], dict[int, Any]]:
    """Completed trials, best first by the primary objective (validation data only), and
    with seed racing each configuration (sweep.study.racing.Configuration: mean, sd, n,
    draws) by the number of the trial that stands for it (else empty). With seed racing,
    one trial per configuration (the one whose value is its mean over the most seeds), in
    the noise-aware order of ``sweep.study.racing.ranked``: both from one ranking."""
    trials = study.get_trials(deepcopy=False)
    # A report ranks the same trials seven times (its tables, summary, curves, note, the
    # best on MLflow, the hints), a quarter-second each at 10,000 trials with seed racing:
    # the ranking is kept for as long as the study's trials are the same trials.
    last = _rankings.get(study)
    if last is not None and (last[0] is spec or last[0] == spec) and _same(last[1], trials):
        ordered, seeds = last[2]
        return list(ordered), dict(seeds)
    if spec.racing is not None:
        from sweep.study.racing import ranked

        found = ranked(trials, spec, study=study)
        ordered, seeds = [c.shown for c in found], {c.shown.number: c for c in found}
    else:
        import optuna

        complete = [t for t in trials if t.state == optuna.trial.TrialState.COMPLETE]
        sign = -1.0 if spec.primary.resolved_direction == "maximize" else 1.0
        # Ties go to the earlier trial, in either direction.
        ordered, seeds = sorted(complete, key=lambda t: (sign * t.values[0], t.number)), {}
    _rankings[study] = (spec, trials, (ordered, seeds))
    return list(ordered), dict(seeds)


_rankings: weakref.WeakKeyDictionary[Any, tuple[StudySpec, list[Any], Any]] = \
    weakref.WeakKeyDictionary()


def _same(before: Sequence[Any], now: Sequence[Any]) -> bool:
    """The same trials: a finished trial is the very object Optuna's cache handed out
    before (it never changes); an unfinished one is read again each time, so compared by
    its contents."""
    return len(before) == len(now) and all(
        a is b or a == b for a, b in zip(before, now, strict=True))


def sorted_complete(study: Any, spec: StudySpec) -> list[Any]:
    """``ranked_trials``' order alone."""
    return ranked_trials(study, spec)[0]
