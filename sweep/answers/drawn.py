"""The trials the report's pictures are drawn from.

Optuna's plotting functions deep-copy every trial they read (a 10,000-trial study: 10 s
of copies) and the parallel-coordinate, slice and importance pictures cost seconds per
thousand trials, for pictures nobody can read at 10,000 lines anyway. So every picture
reads through a study that never copies, and the heavy ones through a seeded sample of
at most ``MAX_DRAWN`` completed trials that keeps every trial that set a new best, the
``KEEP_BEST`` best and the baselines, and draws the rest at random. Trials keep their
numbers.
"""

from __future__ import annotations

import random
from collections.abc import Container
from typing import Any

import optuna

from sweep.keys import BASELINE
from sweep.spec import StudySpec

__all__ = ["KEEP_BEST", "MAX_DRAWN", "Drawn", "drawn"]

MAX_DRAWN = 1000
KEEP_BEST = 100


class Drawn(optuna.Study):
    """A study (Optuna's plots check for one) that hands out its trials uncopied and,
    with ``keep``, only the trials whose numbers it holds."""

    keep: frozenset[int] | None = None

    def get_trials(self, deepcopy: bool = True,
                   states: Container[optuna.trial.TrialState] | None = None) -> list[Any]:
        return self._get_trials(deepcopy, states, use_cache=False)

    def _get_trials(self, deepcopy: bool = True,
                    states: Container[optuna.trial.TrialState] | None = None,
                    use_cache: bool = False) -> list[Any]:
        trials = super()._get_trials(deepcopy=False, states=states, use_cache=use_cache)
        if self.keep is None:
            return trials
        return [t for t in trials if t.number in self.keep]

    @property
    def trials(self) -> list[Any]:
        return self.get_trials()


def drawn(study: Any, spec: StudySpec) -> tuple[Drawn, Drawn, str | None]:
    """(every trial, the sample, what a reader should know about the sample)."""
    everything = _view(study, None)
    complete = everything.get_trials(states=(optuna.trial.TrialState.COMPLETE,))
    if len(complete) <= MAX_DRAWN:
        return everything, everything, None
    chosen = {t.number for t in _milestones(complete, spec)}
    sign = -1.0 if spec.primary.resolved_direction == "maximize" else 1.0
    ranked = sorted(complete, key=lambda t: (sign * t.values[0], t.number))
    chosen |= {t.number for t in ranked[:KEEP_BEST]}
    chosen |= {t.number for t in complete if t.user_attrs.get(BASELINE)}
    rest = sorted(t.number for t in complete if t.number not in chosen)
    room = max(0, MAX_DRAWN - len(chosen))
    chosen |= set(random.Random(0).sample(rest, min(room, len(rest))))
    note = (f"drawn from {len(chosen):,} of the {len(complete):,} completed trials: every "
            f"trial that set a new best, the {KEEP_BEST} best, the baselines and a random "
            "rest")
    return everything, _view(study, frozenset(chosen)), note


def _milestones(complete: list[Any], spec: StudySpec) -> list[Any]:
    """The trials that improved the best value so far (on the primary objective)."""
    maximize = spec.primary.resolved_direction == "maximize"
    found, best = [], None
    for trial in sorted(complete, key=lambda t: t.number):
        value = trial.values[0]
        if best is None or (value > best if maximize else value < best):
            found.append(trial)
            best = value
    return found


def _view(study: Any, keep: frozenset[int] | None) -> Drawn:
    # Same storage object: the trials read once are shared, not read again.
    view = Drawn(study_name=study.study_name, storage=study._storage)
    view.keep = keep
    return view
