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

import bisect
import heapq
import weakref
from collections import Counter
from collections.abc import Container, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import optuna
from optuna.samplers import BaseSampler
from optuna.trial import FrozenTrial, TrialState

from sweep.storage import optuna_internals as internals

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
    """With seed racing (sweep.search.racing): each raced configuration shown once, by its
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
        return internals.pareto_front(complete, directions)[:keep_best]
    if directions[0] == optuna.study.StudyDirection.MAXIMIZE:
        return heapq.nlargest(keep_best, complete, key=lambda t: t.values[0])
    return heapq.nsmallest(keep_best, complete, key=lambda t: t.values[0])


@dataclass
class _Fold:
    """What ``shown(seed_means(trials))`` needs of a study's trials, with each finished
    trial folded in once (a finished trial never changes): a worker then pays for the
    trials that are new or were unfinished, not for the study. Passing over every trial
    instead, TPE's ask cost 29 ms at 10,000 trials against 7 ms at 1,000; folded, 9 ms
    (bench/README, scale_trials). Several objectives keep the Pareto front, computed anew
    each time."""

    maximize: bool
    single: bool  # one objective
    count: int = 0  # the trials numbered below it have been looked at
    unfinished: dict[int, TrialState] = field(default_factory=dict)  # number -> state
    version: int = 0  # counts the looks that found a trial new, started or finished
    best: dict[int, FrozenTrial] = field(default_factory=dict)  # origin -> shown re-run
    visible: set[int] = field(default_factory=set)  # finished trials seed_means keeps
    by_state: Counter[TrialState] = field(default_factory=Counter)  # of the visible
    ranked: list[tuple[float, int]] = field(default_factory=list)  # visible COMPLETE, best first

    def update(self, trials: Sequence[FrozenTrial]) -> bool:
        """Fold in what finished since the last look. False when ``trials`` are not every
        trial of the study by number (0 to n - 1) or fewer than before: start a new fold."""
        n = len(trials)
        if n < self.count or (n and (trials[0].number != 0 or trials[-1].number != n - 1)):
            return False
        # Numbers are unique and sorted: the ends in place, every trial i is number i.
        changed = n > self.count
        for i in [*self.unfinished, *range(self.count, n)]:
            trial = trials[i]
            if trial.state in _FINISHED:
                self.unfinished.pop(i, None)
                self._fold(trial, trials)
                changed = True
            elif self.unfinished.get(i) != trial.state:
                self.unfinished[i] = trial.state
                changed = True
        self.count = n
        self.version += changed
        return True

    def _fold(self, trial: FrozenTrial, trials: Sequence[FrozenTrial]) -> None:
        from sweep.keys import SEED_OF, SEEDS

        origin = trial.user_attrs.get(SEED_OF)
        if origin is None:
            if trial.number not in self.best:
                self._show(trial)
            return
        if trial.state != TrialState.COMPLETE:
            return  # a re-run that did not complete is never shown
        held = self.best.get(origin)
        if held is not None and (held.user_attrs.get(SEEDS, 1), held.number) >= \
                (trial.user_attrs.get(SEEDS, 1), trial.number):
            return
        self.best[origin] = trial
        if held is not None:
            self._hide(held)
        elif origin in self.visible:
            self._hide(trials[origin])  # the configuration's first training
        self._show(trial)

    def _rank(self, trial: FrozenTrial) -> tuple[float, int] | None:
        if trial.state != TrialState.COMPLETE or not trial.values:
            return None
        # Ties go to the earlier trial, as heapq.nlargest/nsmallest give them.
        value = trial.values[0]
        return (-value if self.maximize else value, trial.number)

    def _show(self, trial: FrozenTrial) -> None:
        self.visible.add(trial.number)
        self.by_state[trial.state] += 1
        rank = self._rank(trial)
        if rank is not None:
            bisect.insort(self.ranked, rank)

    def _hide(self, trial: FrozenTrial) -> None:
        self.visible.discard(trial.number)
        self.by_state[trial.state] -= 1
        rank = self._rank(trial)
        if rank is not None:
            del self.ranked[bisect.bisect_left(self.ranked, rank)]

    def shown(self, trials: Sequence[FrozenTrial], states: Container[TrialState] | None,
              limit: int, keep_best: int) -> list[FrozenTrial] | None:
        """``shown(seed_means(raw))`` for ``raw``, the trials of ``trials`` (every trial,
        as folded) in ``states``; None where the cap does not apply (at most ``limit``
        finished trials to show): that is every shown trial, a pass over them all."""
        from sweep.keys import SEED_OF

        if states is not None:
            assert isinstance(states, Iterable)
        finished = _FINISHED if states is None else _FINISHED & set(states)
        if not self.single or sum(self.by_state[state] for state in finished) <= limit:
            return None
        kept = {number for _, number in self.ranked[:keep_best]} \
            if TrialState.COMPLETE in finished else set()
        for i in range(len(trials) - 1, -1, -1):  # the most recent, up to the limit
            if len(kept) >= limit:
                break
            if i in self.visible and trials[i].state in finished:
                kept.add(i)
        # Running and waiting trials (constant_liar needs them), but an unfinished re-run
        # and a first training whose re-run completed, as seed_means hides them.
        kept.update(i for i in self.unfinished
                    if (states is None or trials[i].state in states)
                    and trials[i].user_attrs.get(SEED_OF) is None and i not in self.best)
        return [trials[i] for i in sorted(kept)]


class _View:
    """The study as the inner sampler sees it: everything delegated, the trials capped."""

    def __init__(self, study: optuna.Study, limit: int, keep_best: int,
                 memo: dict[Any, Any], seen: dict[Any, Any],
                 folds: weakref.WeakKeyDictionary[Any, dict[int, _Fold]]):
        self._study = study
        self._limit = limit
        self._keep_best = keep_best
        self._memo = memo
        self._seen = seen
        self._folds = folds

    def __getattr__(self, name: str) -> Any:
        return getattr(self._study, name)

    def _fold(self, everything: Sequence[FrozenTrial]) -> _Fold | None:
        """The study's fold, brought up to date (None: not every trial by number)."""
        key = internals.study_id(self._study)
        folds = self._folds.setdefault(internals.storage(self._study), {})
        fold = folds.get(key)
        if fold is None or not fold.update(everything):
            directions = self._study.directions
            fold = folds[key] = _Fold(
                maximize=directions[0] == optuna.study.StudyDirection.MAXIMIZE,
                single=len(directions) == 1)
            if not fold.update(everything):
                return None
        return fold

    def _get_trials(self, deepcopy: bool = True, states: Container[TrialState] | None = None,
                    use_cache: bool = False) -> list[FrozenTrial]:
        if deepcopy:  # copies asked for: no fold and no reuse of an earlier answer
            raw = internals.study_trials(self._study, deepcopy=True, states=states,
                                         use_cache=use_cache)
            return shown(seed_means(raw), self._study.directions, self._limit,
                         self._keep_best)
        everything = internals.study_trials(self._study, deepcopy=False, states=None,
                                            use_cache=use_cache)
        fold = self._fold(everything)
        selector = tuple(sorted(states, key=str)) if states else None
        # TPE asks once per parameter within one trial (and the study grows by a trial
        # between two trials): the same answer while the trials are the same ones.
        key = (len(everything), None if fold is None else (id(fold), fold.version))
        seen = self._seen.get(selector)
        if seen is not None and seen[0] == key:
            return seen[1]
        trials = None if fold is None else fold.shown(everything, states, self._limit,
                                                      self._keep_best)
        if trials is None:
            raw = everything if states is None else [t for t in everything
                                                     if t.state in states]
            # One memo per filter: the finished trials differ with the states asked for.
            trials = shown(seed_means(raw), self._study.directions, self._limit,
                           self._keep_best, self._memo.setdefault(selector, {}))
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
        self._folds: weakref.WeakKeyDictionary[Any, dict[int, _Fold]] = \
            weakref.WeakKeyDictionary()

    def _view(self, study: optuna.Study) -> Any:
        return _View(study, self._limit, self._keep_best, self._memo, self._seen,
                     self._folds)

    def infer_relative_search_space(self, study: optuna.Study, trial: FrozenTrial
                                    ) -> dict[str, Any]:
        return self.inner.infer_relative_search_space(self._view(study), trial)

    def sample_relative(self, study: optuna.Study, trial: FrozenTrial,
                        search_space: dict[str, Any]) -> dict[str, Any]:
        return self.inner.sample_relative(self._view(study), trial, search_space)

    def sample_independent(self, study: optuna.Study, trial: FrozenTrial, param_name: str,
                           param_distribution: Any) -> Any:
        return self.inner.sample_independent(self._view(study), trial, param_name,
                                             param_distribution)

    def before_trial(self, study: optuna.Study, trial: FrozenTrial) -> None:
        self.inner.before_trial(self._view(study), trial)

    def after_trial(self, study: optuna.Study, trial: FrozenTrial, state: TrialState,
                    values: Sequence[float] | None) -> None:
        self.inner.after_trial(self._view(study), trial, state, values)

    def reseed_rng(self) -> None:
        self.inner.reseed_rng()
