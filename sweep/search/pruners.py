"""A pruner that compares like with like.

Penalties slow early learning: after two epochs a strongly regularized model often trails
an unregularized one it will beat by the last epoch. Optuna's median and Hyperband
pruners compare a trial with every other trial at the same epoch, so they stop exactly the
regularized trials a regularization study is looking for (bench/README, pruning: Hyperband
from epoch 1 missed the unpruned best on 2 of 3 seeds). ``PlacementMedianPruner`` compares
a trial only with completed trials of the same *structure* (the same penalty kinds on the
same layers and targets; sweep.placement.configurations.structure_key; the same searched
layer arguments, and the same other regularizers on or off: a dropout model too learns
slowly at first), and only once
enough of them exist and the warm-up epochs are over: an unregularized trial is judged
against unregularized ones, an L2-on-every-kernel trial against its own kind.
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from typing import Any

import optuna
from optuna.pruners import BasePruner
from optuna.trial import TrialState

from sweep.keys import PLACEMENT, SETTINGS
from sweep.placement.configurations import structure_key
from sweep.placement.searched import Searched, regularizer_families, structure_settings


class PlacementMedianPruner(BasePruner):
    """Prune a trial whose intermediate value at an epoch is worse than the median of the
    completed trials of its structure at that epoch."""

    def __init__(self, *, n_startup_trials: int = 3, n_warmup_steps: int = 1,
                 interval_steps: int = 1, searched: Sequence[Searched] = ()):
        self.n_startup_trials = n_startup_trials
        self.n_warmup_steps = n_warmup_steps
        self.interval_steps = interval_steps
        self.searched = list(searched)  # what the study searches besides the penalties

    def _like(self, attrs: dict[str, Any]) -> tuple:
        """What a trial is compared by: its penalty structure, its searched layer
        arguments and which searched regularizers it switches on (a learning rate or a
        coefficient does not make it another kind)."""
        placement, settings = attrs[PLACEMENT], attrs.get(SETTINGS) or {}
        # A dropout rate changes the graph but is compared like a coefficient: by its
        # family being on, not by its value.
        sizes = [item for item in self.searched if item.family is None]
        return (structure_key(placement), structure_settings(settings, sizes),
                tuple(regularizer_families({}, settings, self.searched)))

    def prune(self, study: optuna.Study, trial: optuna.trial.FrozenTrial) -> bool:
        step = trial.last_step
        if step is None or step < self.n_warmup_steps or \
                (step - self.n_warmup_steps) % self.interval_steps:
            return False
        if PLACEMENT not in trial.user_attrs:
            return False
        key = self._like(trial.user_attrs)
        values = [t.intermediate_values[step]
                  for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
                  if step in t.intermediate_values and PLACEMENT in t.user_attrs
                  and self._like(t.user_attrs) == key]
        if len(values) < self.n_startup_trials:
            return False
        median = statistics.median(values)
        mine = trial.intermediate_values[step]
        if study.direction == optuna.study.StudyDirection.MAXIMIZE:
            return mine < median
        return mine > median
