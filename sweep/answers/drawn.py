"""The trials the report's pictures are drawn from.

Optuna's plotting functions deep-copy every trial they read (a 10,000-trial study: 10 s
of copies) and the parallel-coordinate, slice and importance pictures cost seconds per
thousand trials, for pictures nobody can read at 10,000 lines anyway. So every picture
reads through a study that holds what pictures need of the trials, read once and never
copied again (``Drawn``), one point per configuration (its mean over seeds), and the heavy
ones through a seeded sample of at most ``MAX_DRAWN`` completed configurations that keeps
every one that set a new best, the ``KEEP_BEST`` best and the baselines, and draws the
rest at random. Each keeps the number of the trial that names it.
"""

from __future__ import annotations

import random
from collections.abc import Container, Sequence
from typing import Any

import optuna
from optuna.study import StudyDirection
from optuna.trial import FrozenTrial, TrialState

from sweep.keys import BASELINE
from sweep.spec import StudySpec
from sweep.storage import optuna_internals as internals

__all__ = ["KEEP_BEST", "MAX_DRAWN", "SD_ATTR", "SEEDS_ATTR", "Drawn", "configuration_trial",
           "drawn", "pictured"]

MAX_DRAWN = 1000
KEEP_BEST = 100


class Drawn(optuna.Study):
    """A study (Optuna's plots check for one) over trials held in memory: handed out
    uncopied, never read again from the storage, and sendable to another process (the
    painter, sweep.answers.painter) as plain trials."""

    def __init__(self, name: str, directions: Sequence[StudyDirection],
                 trials: Sequence[FrozenTrial]) -> None:
        storage = optuna.storages.InMemoryStorage()
        storage.create_new_study(list(directions), name)
        super().__init__(study_name=name, storage=storage)
        self.held = list(trials)

    def get_trials(self, deepcopy: bool = True,
                   states: Container[TrialState] | None = None) -> list[FrozenTrial]:
        return self._get_trials(deepcopy, states)

    def _get_trials(self, deepcopy: bool = True, states: Container[TrialState] | None = None,
                    use_cache: bool = False) -> list[FrozenTrial]:
        if states is None:
            return list(self.held)
        return [t for t in self.held if t.state in states]

    @property
    def trials(self) -> list[FrozenTrial]:
        return self.get_trials()


def drawn(study: optuna.Study, spec: StudySpec) -> tuple[Drawn, Drawn, str | None]:
    """(every configuration, the sample, what a reader should know about the sample), read
    once. A study of one objective is pictured by its configurations
    (``configuration_trial``): a re-run on another seed is not a point of its own. One of
    several objectives has no configuration ranking: its trials."""
    trials = study.get_trials(deepcopy=False)
    if spec.is_multi_objective:
        held = [pictured(t) for t in trials]
    else:
        from sweep.results.ranking import ranked_configurations

        held = sorted((configuration_trial(c) for c in ranked_configurations(study, spec)),
                      key=lambda t: t.number)
    everything = Drawn(study.study_name, study.directions, held)
    complete = everything.get_trials(states=(TrialState.COMPLETE,))
    if len(complete) <= MAX_DRAWN:
        return everything, everything, None
    chosen = {t.number for t in _milestones(complete, spec)}
    sign = -1.0 if spec.primary.resolved_direction == "maximize" else 1.0
    ranked = sorted(complete, key=lambda t: (sign * t.values[0], t.number))
    chosen |= {t.number for t in ranked[:KEEP_BEST]}
    chosen |= {t.number for t in trials
               if t.state == TrialState.COMPLETE and t.user_attrs.get(BASELINE)} & \
        {t.number for t in complete}
    rest = sorted(t.number for t in complete if t.number not in chosen)
    room = max(0, MAX_DRAWN - len(chosen))
    chosen |= set(random.Random(0).sample(rest, min(room, len(rest))))
    what = "trials" if spec.is_multi_objective else "configurations"
    note = (f"drawn from {len(chosen):,} of the {len(complete):,} completed {what}: every "
            f"one that set a new best, the {KEEP_BEST} best, the baselines and a random "
            "rest")
    sample = Drawn(study.study_name, study.directions,
                   [t for t in everything.held if t.number in chosen])
    return everything, sample, note


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


# On a configuration's trial: its seed count and the sd of its draws (error bars).
SEEDS_ATTR, SD_ATTR = "seeds", "sd"


def configuration_trial(configuration: Any) -> FrozenTrial:
    """A configuration as the one point a picture draws of it: the trial that names it
    (its number, parameters, times) with the configuration's mean over its seeds as its
    value, and its seed count and sd as its only user attributes."""
    named = configuration.named
    return FrozenTrial(number=named.number, state=TrialState.COMPLETE, value=None,
                       values=[configuration.mean], datetime_start=named.datetime_start,
                       datetime_complete=named.datetime_complete, params=named.params,
                       distributions=named.distributions,
                       user_attrs={SEEDS_ATTR: configuration.n, SD_ATTR: configuration.sd},
                       system_attrs={}, intermediate_values={}, trial_id=internals.trial_id(named))


def pictured(trial: FrozenTrial) -> FrozenTrial:
    """What a picture reads of a trial: its number, state, times, values and parameters.
    The user attributes (about 20 per trial) and per-epoch values are left out: nothing
    drawn reads them, and a 10,000-trial study sent to the painter shrinks from 10 MB to
    under 2 MB."""
    return FrozenTrial(number=trial.number, state=trial.state, value=None,
                       values=trial.values, datetime_start=trial.datetime_start,
                       datetime_complete=trial.datetime_complete, params=trial.params,
                       distributions=trial.distributions, user_attrs={},
                       system_attrs=trial.system_attrs, intermediate_values={},
                       trial_id=internals.trial_id(trial))
