"""How much of a study's history TPE looks at.

TPE's own work grows with every finished trial (three passes over all of them per trial,
and its group search space recomputed from all of them): 36-48 ms per trial at 100
trials, 237-282 ms at 10,000 (../findings: the 10k-trial profile). Past
``MAX_HISTORY`` finished trials, TPE is shown the ``KEEP_BEST`` best and the most recent
others, plus every running trial (constant_liar needs them). Its "good" group (at most
the best 25 trials, Optuna's default gamma) is then exactly what it would be with the
whole history; only the oldest unremarkable trials drop out of the "bad" group, where
Optuna's default weights already count old trials least.
"""

from __future__ import annotations

import heapq
from collections.abc import Container, Sequence
from typing import Any

import optuna
from optuna.samplers import BaseSampler
from optuna.trial import FrozenTrial, TrialState

__all__ = ["KEEP_BEST", "MAX_HISTORY", "RecentHistory", "seed_means"]

MAX_HISTORY = 1000
KEEP_BEST = 100


_FINISHED = frozenset(state for state in TrialState if state.is_finished())


def shown(trials: Sequence[FrozenTrial], directions: Sequence[Any], limit: int = MAX_HISTORY,
          keep_best: int = KEEP_BEST, memo: dict[Any, set[int]] | None = None
          ) -> list[FrozenTrial]:
    """The trials a capped sampler sees, in their original order. TPE asks for them
    several times per trial: which finished trials are kept depends on the finished
    trials only (they never change), so ``memo`` keeps that choice until one more
    finishes. At 10,000 trials choosing anew each time cost more than the cap saved."""
    finished = [t for t in trials if t.state in _FINISHED]
    if len(finished) <= limit:
        return list(trials)
    # The sum changes when seed racing swaps which trial shows a configuration.
    key = (len(finished), finished[0].number, finished[-1].number,
           sum(t.number for t in finished))
    kept = None if memo is None else memo.get(key)
    if kept is None:
        kept = {t.number for t in _best(finished, directions, keep_best)}
        # Optuna hands trials over in number order: the most recent finished are the last.
        for trial in reversed(finished):
            if len(kept) >= limit:
                break
            kept.add(trial.number)
        if memo is not None:
            memo.clear()
            memo[key] = kept
    return [t for t in trials if t.state not in _FINISHED or t.number in kept]


def seed_means(trials: Sequence[FrozenTrial]) -> list[FrozenTrial]:
    """With seed racing (sweep.study.racing): each raced configuration shown once, by its
    re-run whose value is the mean over the most seeds; its single-seed trials (the first
    training, the other re-runs, running or queued ones) hidden. Without it, ``trials``."""
    from sweep.keys import SEED_OF, SEEDS

    # One pass, and no copy when nothing was raced: TPE asks for the trials several times
    # per trial, so this runs on every one of them.
    best: dict[int, FrozenTrial] = {}
    raced = False
    complete = TrialState.COMPLETE
    for trial in trials:
        origin = trial.user_attrs.get(SEED_OF)
        if origin is None:
            continue
        raced = True
        if trial.state != complete:
            continue
        held = best.get(origin)
        if held is None or (trial.user_attrs.get(SEEDS, 1), trial.number) > \
                (held.user_attrs.get(SEEDS, 1), held.number):
            best[origin] = trial
    if not raced:
        return trials if isinstance(trials, list) else list(trials)
    return [t for t in trials
            if (SEED_OF not in t.user_attrs and t.number not in best)
            or best.get(t.user_attrs.get(SEED_OF, -1)) is t]


def _best(finished: Sequence[FrozenTrial], directions: Sequence[Any],
          keep_best: int) -> list[FrozenTrial]:
    complete = [t for t in finished if t.state == TrialState.COMPLETE and t.values]
    if len(directions) > 1:
        # Several objectives: the non-dominated trials (TPE's good group starts there).
        from optuna.study._multi_objective import _get_pareto_front_trials_by_trials

        return list(_get_pareto_front_trials_by_trials(complete, directions))[:keep_best]
    if directions[0] == optuna.study.StudyDirection.MAXIMIZE:
        return heapq.nlargest(keep_best, complete, key=lambda t: t.values[0])
    return heapq.nsmallest(keep_best, complete, key=lambda t: t.values[0])


class _View:
    """The study as the inner sampler sees it: everything delegated, the trials capped."""

    def __init__(self, study: Any, limit: int, keep_best: int,
                 memo: dict[Any, Any], seen: dict[Any, Any]):
        self._study = study
        self._limit = limit
        self._keep_best = keep_best
        self._memo = memo
        self._seen = seen

    def __getattr__(self, name: str) -> Any:
        return getattr(self._study, name)

    def _get_trials(self, deepcopy: bool = True, states: Container[TrialState] | None = None,
                    use_cache: bool = False) -> list[FrozenTrial]:
        raw = self._study._get_trials(deepcopy=deepcopy, states=states, use_cache=use_cache)
        selector = tuple(sorted(states, key=str)) if states else None
        # TPE asks once per parameter within one trial (and the study grows by a trial
        # between two trials): the same answer while the trials are the same ones.
        key = (len(raw), raw[-1].number if raw else None)
        seen = self._seen.get(selector)
        if not deepcopy and seen is not None and seen[0] == key:
            return seen[1]
        # One memo per filter: the finished trials differ with the states asked for.
        memo = self._memo.setdefault(selector, {})
        trials = shown(seed_means(raw), self._study.directions, self._limit,
                       self._keep_best, memo)
        if not deepcopy:
            self._seen[selector] = (key, trials)
        return trials

    def get_trials(self, deepcopy: bool = True,
                   states: Container[TrialState] | None = None) -> list[FrozenTrial]:
        return self._get_trials(deepcopy=deepcopy, states=states, use_cache=False)

    @property
    def trials(self) -> list[FrozenTrial]:
        return self.get_trials()


class RecentHistory(BaseSampler):
    """``sampler`` (TPE) shown at most ``limit`` finished trials of the study."""

    def __init__(self, sampler: BaseSampler, limit: int = MAX_HISTORY,
                 keep_best: int = KEEP_BEST):
        self.inner = sampler
        self._limit = limit
        self._keep_best = keep_best
        self._memo: dict[Any, Any] = {}
        self._seen: dict[Any, Any] = {}

    def _view(self, study: Any) -> Any:
        return _View(study, self._limit, self._keep_best, self._memo, self._seen)

    def infer_relative_search_space(self, study: Any, trial: FrozenTrial) -> dict[str, Any]:
        return self.inner.infer_relative_search_space(self._view(study), trial)

    def sample_relative(self, study: Any, trial: FrozenTrial,
                        search_space: dict[str, Any]) -> dict[str, Any]:
        return self.inner.sample_relative(self._view(study), trial, search_space)

    def sample_independent(self, study: Any, trial: FrozenTrial, param_name: str,
                           param_distribution: Any) -> Any:
        return self.inner.sample_independent(self._view(study), trial, param_name,
                                             param_distribution)

    def before_trial(self, study: Any, trial: FrozenTrial) -> None:
        self.inner.before_trial(self._view(study), trial)

    def after_trial(self, study: Any, trial: FrozenTrial, state: TrialState,
                    values: Sequence[float] | None) -> None:
        self.inner.after_trial(self._view(study), trial, state, values)

    def reseed_rng(self) -> None:
        self.inner.reseed_rng()
