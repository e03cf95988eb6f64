"""Seed racing: the leading configurations are trained again on further seeds while the
study runs, and configurations are ranked by their mean over seeds, not by one lucky draw.

Picking the best of many single-seed values picks the luckiest draw as much as the best
configuration (the optimizer's curse: Smith & Winkler, "The Optimizer's Curse", Management
Science 2006). The schedule is successive halving with seeds as the resource (Jamieson &
Talwalkar, AISTATS 2016), promoted asynchronously as in ASHA (Li et al., "A System for
Massively Parallel Hyperparameter Tuning", MLSys 2020) so that no worker waits for a rung
to fill:

- every configuration trains on ``search.seeds.min`` seeds (rung 0);
- rung sizes grow 1 → 3 → 7 → … seeds (with min 1: each rung adds twice the previous
  rung's extra seeds; ``2·n + min``), capped at ``search.seeds.max``;
- of the k configurations that have finished rung r, the best ⌊k · top_fraction⌋ by their
  mean over the rung's seeds are promoted to rung r + 1: their extra seeds are queued as
  trials of the study, which any worker takes before sampling anything new;
- the no-regularization baseline is trained on as many seeds as the most-seeded
  configuration, so that the pick's effect is measured against it on equal terms.

Extra seed ``k`` of any configuration uses the same seed (``racing_seed``): the pick and
the baseline share all but their first seed.

Re-runs are ordinary trials: counted in the budget, run by whichever worker is free,
reusing the compiled model of their structure (sweep.training.cache). A re-run's Optuna
value is its configuration's mean over the seeds finished so far (its own draw is
``seed_value``): the sampler is shown that value for the configuration and nothing of its
single draws (sweep.study.history), so TPE stops chasing lucky draws.

The ranking (``ranked``): configurations that earned more seeds first, then by mean; the
answer of successive halving is the best survivor of the last rung reached.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from sweep.keys import (
    BASELINE,
    DUPLICATE_OF,
    PLACEMENT,
    SEED,
    SEED_INDEX,
    SEED_OF,
    SEED_VALUE,
    SEEDS,
)
from sweep.spec import SeedsSpec, StudySpec

log = logging.getLogger("sweep")

__all__ = ["Configuration", "configurations", "due", "over_seeds", "promote", "racing_seed",
           "ranked", "rung_sizes", "seed_mean"]


def rung_sizes(seeds: SeedsSpec) -> tuple[int, ...]:
    """Seeds a configuration has at each rung: (1, 3, 5) for min 1, max 5."""
    sizes = [seeds.min]
    while sizes[-1] < seeds.max:
        sizes.append(min(seeds.max, 2 * sizes[-1] + seeds.min))
    return tuple(sizes)


def racing_seed(study_seed: int, index: int) -> int:
    """The seed of every configuration's extra seed ``index`` (1, 2, …): shared, so that
    configurations raced to the same rung are compared on the same seeds."""
    import numpy as np

    # A fourth entropy word keeps these apart from trial seeds (study seed, trial number).
    state = np.random.SeedSequence([study_seed, index, 0x5EED]).generate_state(1)[0]
    return int(state % 2**31) or 1


def draw(trial: Any) -> float:
    """A finished trial's own value on its seed (a re-run's value is the mean)."""
    return float(trial.user_attrs.get(SEED_VALUE, trial.values[0]))


@dataclass
class Configuration:
    """One configuration and every trial that trained it (duplicates aside)."""

    key: int  # the number of its first trial
    placement: dict
    members: list[Any] = field(default_factory=list)  # by trial number
    complete: list[Any] = field(default_factory=list)  # members with a value, by number
    draws: list[float] = field(default_factory=list)  # their own values, same order
    scheduled: int = 0  # members that hold or held a seed (finished, running, waiting)

    @property
    def first(self) -> Any:
        return self.members[0]

    @property
    def baseline(self) -> str | None:
        return self.first.user_attrs.get(BASELINE)

    @property
    def n(self) -> int:
        return len(self.draws)

    @property
    def mean(self) -> float:
        return sum(self.draws) / len(self.draws)

    @property
    def sd(self) -> float | None:
        if len(self.draws) < 2:
            return None
        mean = self.mean
        return math.sqrt(sum((v - mean) ** 2 for v in self.draws) / (len(self.draws) - 1))

    @property
    def shown(self) -> Any:
        """The finished trial that stands for the configuration: the one whose value is
        over the most seeds (the latest such), else its first finished training."""
        return max(self.complete, key=lambda t: (t.user_attrs.get(SEEDS, 1), t.number))


def configurations(trials: Iterable[Any]) -> list[Configuration]:
    """The study's configurations, by first trial. A configuration is a trial the sampler
    proposed, with its re-runs (``seed_of``); or a baseline kind, with its seed replicates
    and re-runs. Grouped by those links, not by hashing placements: this runs after every
    trial, and at 10,000 trials keying every placement cost 100-350 ms. A duplicate
    trained nothing; a FAIL trial whose place went to a retry or a re-queued trial is not
    a member (its successor is)."""
    from optuna.trial import TrialState

    from sweep.study.budget import given_back

    trials = sorted(trials, key=lambda t: t.number)
    returned = given_back(trials)
    baselines: dict[str, int] = {}
    found: dict[int, Configuration] = {}
    for trial in trials:
        attrs = trial.user_attrs
        placement = attrs.get(PLACEMENT)
        if placement is None or DUPLICATE_OF in attrs or trial.number in returned:
            continue
        origin = attrs.get(SEED_OF)
        if origin is None:
            kind = attrs.get(BASELINE)
            origin = trial.number if kind is None else baselines.setdefault(kind, trial.number)
        configuration = found.get(origin)
        if configuration is None:
            configuration = found[origin] = Configuration(origin, placement)
        configuration.members.append(trial)
        configuration.scheduled += 1
        if trial.state == TrialState.COMPLETE and trial.values:
            configuration.complete.append(trial)
            configuration.draws.append(draw(trial))
    return list(found.values())


def _sign(spec: StudySpec) -> float:
    return 1.0 if spec.primary.resolved_direction == "maximize" else -1.0


def ranked(trials: Iterable[Any], spec: StudySpec) -> list[Configuration]:
    """Finished configurations, best first. With seed racing: the survivors of later
    rungs first (the rung a configuration's finished seeds reach), then the better mean
    over its seeds; without, by mean alone. Ties go to the earlier configuration."""
    sign = _sign(spec)
    sizes = rung_sizes(spec.racing) if spec.racing is not None else (1,)

    def rung(configuration: Configuration) -> int:
        return max(r for r, size in enumerate(sizes) if configuration.n >= size or r == 0)

    found = [c for c in configurations(trials) if c.complete]
    return sorted(found, key=lambda c: (-rung(c), -sign * c.mean, c.first.number))


def due(found: Sequence[Configuration], spec: StudySpec) -> list[tuple[Configuration, int]]:
    """(configuration, extra seeds to queue) that the schedule asks for now, the highest
    rung first."""
    from sweep.placement.space import BASELINE_NONE

    seeds = spec.racing
    if seeds is None:
        return []
    sizes = rung_sizes(seeds)
    sign = _sign(spec)
    wanted: dict[str, int] = {}
    for rung in reversed(range(len(sizes) - 1)):
        size = sizes[rung]
        arrived = [c for c in found if c.n >= size]
        # ASHA's rule with η = 1 / top_fraction; the epsilon keeps 3 × (1/3) at 1.
        promoted = math.floor(len(arrived) * seeds.top_fraction + 1e-9)
        best = sorted(arrived, key=lambda c: (-sign * sum(c.draws[:size]) / size,
                                              c.first.number))[:promoted]
        for configuration in best:
            wanted.setdefault(configuration.key, sizes[rung + 1])
    for configuration in found:  # rung 0: every configuration's first `min` seeds
        if configuration.complete:
            wanted.setdefault(configuration.key, sizes[0])
    baseline = next((c for c in found if c.baseline == BASELINE_NONE and c.complete), None)
    if baseline is not None:
        most = max((max(wanted.get(c.key, 0), c.scheduled) for c in found
                    if c is not baseline), default=0)
        wanted[baseline.key] = max(wanted.get(baseline.key, 0), min(most, seeds.max))
    by_key = {c.key: c for c in found}
    order = sorted(wanted, key=lambda key: -wanted[key])
    return [(by_key[key], wanted[key] - by_key[key].scheduled) for key in order
            if wanted[key] > by_key[key].scheduled]


def promote(study: Any, spec: StudySpec) -> int:
    """Queue the extra seeds of the next promotion the schedule asks for (after each trial;
    any worker), and the baseline's.
    Under the database's racing lock, so two workers finishing at once queue each seed
    once; behind `sweep proxy` (no lock on this side) a seed may rarely be queued twice,
    which costs a trial but not the ranking. Returns how many trials were queued."""
    import contextlib

    from sweep.study.budget import BudgetExhausted, budgeted_backend, is_budget_exhausted

    if spec.racing is None:
        return 0
    backend = budgeted_backend(study._storage)
    lock = backend.study_lock(study._study_id, "racing") if backend is not None else \
        contextlib.nullcontext()
    from sweep.placement.space import BASELINE_NONE

    queued = 0
    with lock:
        found = due(configurations(study.get_trials(deepcopy=False)), spec)
        # As ASHA does when a worker frees up: one promotion (the highest rung's best), so
        # switching racing on for a large study does not queue its whole budget at once.
        chosen = [item for item in found if item[0].baseline != BASELINE_NONE][:1] + \
            [item for item in found if item[0].baseline == BASELINE_NONE]
        for configuration, extra in chosen:
            first = configuration.first
            for index in range(configuration.scheduled, configuration.scheduled + extra):
                attrs = {PLACEMENT: configuration.placement, SEED_OF: first.number,
                         SEED_INDEX: index, SEED: racing_seed(spec.seed, index)}
                if configuration.baseline:
                    attrs[BASELINE] = configuration.baseline
                try:
                    study.enqueue_trial(first.params, user_attrs=attrs, skip_if_exists=False)
                except Exception as error:
                    if isinstance(error, BudgetExhausted) or is_budget_exhausted(error):
                        return queued  # the budget is spent: the ranking uses what ran
                    raise
                queued += 1
    if queued:
        log.info("seed racing: %d re-runs queued", queued)
    return queued


def over_seeds(configuration: Any | None, *, short: bool = False) -> str:
    """`` ± 0.0123 over 5 seeds (seed racing)`` for a configuration raced over several
    seeds; empty for one seed."""
    if configuration is None or configuration.n < 2:
        return ""
    if short:
        return f", {configuration.n} seeds"
    return f" ± {configuration.sd:.4f} over {configuration.n} seeds (seed racing)"


def seed_mean(trial: Any, own: float) -> tuple[float, int]:
    """A finishing re-run's value: the mean of its configuration's finished seeds and its
    own draw, and how many seeds that is."""
    origin = trial.user_attrs[SEED_OF]
    others = next((c.draws for c in configurations(trial.study.get_trials(deepcopy=False))
                   if c.key == origin), [])
    values = [*others, own]
    return sum(values) / len(values), len(values)
