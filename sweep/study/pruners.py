"""A pruner that compares like with like.

Penalties slow early learning: after two epochs a strongly regularized model often trails
an unregularized one it will beat by the last epoch. Optuna's median and Hyperband
pruners compare a trial with every other trial at the same epoch, so they stop exactly the
regularized trials a regularization study is looking for (bench/README, pruning: Hyperband
from epoch 1 missed the unpruned best on 2 of 3 seeds). ``PlacementMedianPruner`` compares
a trial only with completed trials of the same *structure* (the same penalty kinds on the
same layers and targets; sweep.placement.configurations.structure_key), and only once
enough of them exist and the warm-up epochs are over: an unregularized trial is judged
against unregularized ones, an L2-on-every-kernel trial against its own kind.
"""

from __future__ import annotations

import statistics

import optuna
from optuna.pruners import BasePruner
from optuna.trial import TrialState

from sweep.keys import PLACEMENT
from sweep.placement.configurations import structure_key


class PlacementMedianPruner(BasePruner):
    """Prune a trial whose intermediate value at an epoch is worse than the median of the
    completed trials of its structure at that epoch."""

    def __init__(self, *, n_startup_trials: int = 3, n_warmup_steps: int = 1,
                 interval_steps: int = 1):
        self.n_startup_trials = n_startup_trials
        self.n_warmup_steps = n_warmup_steps
        self.interval_steps = interval_steps

    def prune(self, study: optuna.Study, trial: optuna.trial.FrozenTrial) -> bool:
        step = trial.last_step
        if step is None or step < self.n_warmup_steps or \
                (step - self.n_warmup_steps) % self.interval_steps:
            return False
        placement = trial.user_attrs.get(PLACEMENT)
        if placement is None:
            return False
        key = structure_key(placement)
        values = [t.intermediate_values[step]
                  for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
                  if step in t.intermediate_values and PLACEMENT in t.user_attrs
                  and structure_key(t.user_attrs[PLACEMENT]) == key]
        if len(values) < self.n_startup_trials:
            return False
        median = statistics.median(values)
        mine = trial.intermediate_values[step]
        if study.direction == optuna.study.StudyDirection.MAXIMIZE:
            return mine < median
        return mine > median
