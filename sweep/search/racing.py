"""Seed racing: the leading configurations are trained again on further seeds while the
study runs, and configurations are ranked by their mean over seeds, not by one lucky draw.

Picking the best of many single-seed values picks the luckiest draw as much as the best
configuration (the optimizer's curse: Smith & Winkler, "The Optimizer's Curse", Management
Science 2006). The schedule is successive halving with seeds as the resource (Jamieson &
Talwalkar, AISTATS 2016), promoted asynchronously as in ASHA (Li et al., "A System for
Massively Parallel Hyperparameter Tuning", MLSys 2020) so that no worker waits for a rung
to fill:

- every configuration trains on ``seeds.racing.min`` seeds (rung 0);
- rung sizes grow 1 → 3 → 7 → … seeds (with min 1: each rung adds twice the previous
  rung's extra seeds; ``2·n + min``), capped at ``seeds.racing.max``;
- of the k configurations that have finished rung r, the best ⌊k · top_fraction⌋ by their
  mean over the rung's seeds are promoted to rung r + 1: their extra seeds are queued as
  trials of the study, which any worker takes before sampling anything new; one
  promotion at a time, decided when a trial ends and nothing waits to be run;
- the no-regularization baseline is trained on as many seeds as the most-seeded
  configuration, so that the pick's effect is measured against it on equal terms.

Extra seed ``k`` of any configuration uses the same seed (``sweep.seeds.extra_seed``): the pick and
the baseline share all but their first seed.

Re-runs are ordinary trials: counted in the budget, run by whichever worker is free,
reusing the compiled model of their structure (sweep.training.cache). A re-run's Optuna
value is its configuration's mean over the seeds finished so far (its own draw is
``seed_value``): the sampler is shown that value for the configuration and nothing of its
single draws (sweep.search.history), so TPE stops chasing lucky draws.

The ranking (``ranked``) is by each configuration's estimate shrunk toward the mean of all
configurations, the more the noisier its mean (``estimates``: empirical Bayes under a
normal model, the remedy Smith & Winkler give for the optimizer's curse; James & Stein
1961, Efron & Morris 1975): a single lucky draw counts for little where seeds are noisy,
and a configuration found late, on fewer seeds, can still beat an early survivor of more
seeds. (Ranking survivors of the last rung first, as plain successive halving would, made
the answer the best of the first dozen configurations: only one reaches the top rung of a
budget of 30, bench/selection.py.)
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from sweep.keys import BASELINE, PLACEMENT, SEED, SEED_INDEX, SEED_OF, SETTINGS
from sweep.search.grouping import Configuration, configurations, grouped
from sweep.seeds import extra_seed
from sweep.spec import RacingSpec, StudySpec
from sweep.storage import optuna_internals as internals

if TYPE_CHECKING:
    import optuna
    from optuna.trial import FrozenTrial

log = logging.getLogger("sweep")

__all__ = ["Configuration", "configurations", "due", "estimates", "promote",
           "ranked", "rung_sizes", "seed_mean"]


def rung_sizes(seeds: RacingSpec) -> tuple[int, ...]:
    """Seeds a configuration has at each rung: (1, 3, 5) for min 1, max 5."""
    sizes = [seeds.min]
    while sizes[-1] < seeds.max:
        sizes.append(min(seeds.max, 2 * sizes[-1] + seeds.min))
    return tuple(sizes)


def direction_sign(spec: StudySpec) -> float:
    """+1 when the primary objective is maximized, -1 when minimized."""
    return 1.0 if spec.primary.resolved_direction == "maximize" else -1.0


def estimates(found: Sequence[Configuration]) -> dict[int, float]:
    """Each configuration's posterior mean (by key): its mean over seeds shrunk toward
    the mean of all configurations by ``n·τ² / (n·τ² + σ²)``, where σ² is the seed noise
    (the variance between seeds of one configuration, pooled over every configuration
    with several) and τ² the spread of the configurations' true values (the variance of
    their means less the noise in them; method of moments). Without a configuration of
    several seeds the noise is unknown: the plain means.

    τ² has a floor, σ² / (the most seeds of any configuration): below the precision of the
    best-measured mean the data cannot tell "no spread" from "too little to see". Without
    it, a spread estimated at 0 made every estimate the grand mean, and the tie went to
    the configuration with the most seeds: the baseline, raced to match them (a 0.70 over
    3 seeds lost to the baseline's 0.65 over 5)."""
    plain = {c.key: c.mean for c in found}
    repeated = [c for c in found if c.n > 1]
    freedom = sum(c.n - 1 for c in repeated)
    if not freedom or len(found) < 2:
        return plain
    noise = sum((v - c.mean) ** 2 for c in repeated for v in c.draws) / freedom
    if noise <= 0.0:  # deterministic training: every mean is exact
        return plain
    means = list(plain.values())
    centre = sum(means) / len(means)
    between = sum((m - centre) ** 2 for m in means) / (len(means) - 1)
    spread = max(noise / max(c.n for c in found),
                 between - sum(noise / c.n for c in found) / len(found))
    return {c.key: centre + (c.mean - centre) * c.n * spread / (c.n * spread + noise)
            for c in found}


def ranking_estimates(found: Sequence[Configuration], spec: StudySpec) -> dict[int, float]:
    """What the ranking orders configurations by (by key): ``estimates`` with seed racing,
    the plain mean without. Without racing only the baseline's noise replicates have
    several seeds: shrinking every single draw by their noise would rank by something
    nobody asked for."""
    return estimates(found) if spec.racing is not None else {c.key: c.mean for c in found}


def ranked(trials: Sequence[FrozenTrial], spec: StudySpec, *, study: optuna.Study | None = None
           ) -> list[Configuration]:
    """Finished configurations, best first: by ``estimates`` (with seed racing; without,
    by the mean), then the better mean;
    never by the number of seeds, which the baseline gets by matching the most-seeded
    configuration. Ties go to the earlier configuration. With ``study`` (``trials`` are then all
    of its trials), its grouping is kept across calls (a report ranks seven times)."""
    sign = direction_sign(spec)
    grouping = configurations(trials) if study is None else grouped(study, trials)
    found = [c for c in grouping if c.complete]
    estimate = ranking_estimates(found, spec)
    return sorted(found, key=lambda c: (-sign * estimate[c.key], -sign * c.mean,
                                        c.first.number))


def due(found: Sequence[Configuration], spec: StudySpec) -> list[tuple[Configuration, int]]:
    """(configuration, extra seeds to queue) that the schedule asks for now, the highest
    rung first."""
    from sweep.placement.space import BASELINE_NONE

    seeds = spec.racing
    if seeds is None:
        return []
    sizes = rung_sizes(seeds)
    sign = direction_sign(spec)
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


def promote(study: optuna.Study, spec: StudySpec) -> int:
    """Queue the extra seeds of the next promotion the schedule asks for (after each trial;
    any worker), and the baseline's, once nothing of the study waits to be run.
    Under the database's racing lock, so two workers finishing at once queue each seed
    once; behind `sweep proxy` (no lock on this side) a seed may rarely be queued twice,
    which costs a trial but not the ranking. Returns how many trials were queued."""
    import contextlib

    from optuna.trial import TrialState

    from sweep.placement.space import BASELINE_NONE
    from sweep.storage.budget import budgeted_backend, is_budget_exhausted

    if spec.racing is None:
        return 0
    backend = budgeted_backend(internals.storage(study))
    lock = backend.study_lock(internals.study_id(study), "racing") if backend is not None else \
        contextlib.nullcontext()
    queued = 0
    with lock:
        trials = study.get_trials(deepcopy=False)
        # As in ASHA, a promotion is decided when a worker frees up, on what has finished
        # by then: queued ahead, decisions would be stale and the queue would grow by a
        # trial per trial while promotions are owed; and every read of the study re-reads
        # each waiting trial (Optuna's cache keeps finished ones only).
        if any(t.state == TrialState.WAITING for t in trials):
            return 0
        found = due(grouped(study, trials), spec)
        # One promotion (the highest rung's best) and the baseline's, so switching racing
        # on for a large study does not queue its whole budget at once.
        chosen = [item for item in found if item[0].baseline != BASELINE_NONE][:1] + \
            [item for item in found if item[0].baseline == BASELINE_NONE]
        for configuration, extra in chosen:
            first = configuration.first
            for index in range(configuration.scheduled, configuration.scheduled + extra):
                attrs = {PLACEMENT: configuration.placement, SEED_OF: first.number,
                         SEED_INDEX: index, SEED: extra_seed(spec.seed, index)}
                if configuration.baseline:
                    attrs[BASELINE] = configuration.baseline
                if configuration.settings:  # a baseline's (a sampled one's are its params)
                    attrs[SETTINGS] = configuration.settings
                try:
                    study.enqueue_trial(first.params, user_attrs=attrs, skip_if_exists=False)
                except Exception as error:
                    if is_budget_exhausted(error):
                        return queued  # the budget is spent: the ranking uses what ran
                    raise
                queued += 1
    if queued:
        log.info("seed racing: %d re-runs queued", queued)
    return queued


def seed_mean(trial: Any, own: float) -> tuple[float, int]:
    """A finishing re-run's value: the mean of its configuration's finished seeds and its
    own draw, and how many seeds that is."""
    origin = trial.user_attrs[SEED_OF]
    trials = trial.study.get_trials(deepcopy=False)
    first = next((t for t in trials if t.number == origin), None)
    kind = None if first is None else first.user_attrs.get(BASELINE)
    # The trials that can belong to this configuration, grouped by the one rule
    # (configurations): at 10,000 trials grouping them all cost 80 ms per re-run.
    near = [t for t in trials if t.number == origin or t.user_attrs.get(SEED_OF) == origin
            or (kind is not None and t.user_attrs.get(BASELINE) == kind)]
    others = next((c.draws for c in configurations(near) if c.key == origin), [])
    values = [*others, own]
    return sum(values) / len(values), len(values)


def budget_plan(spec: StudySpec) -> tuple[int, int] | None:
    """(distinct configurations, re-runs on further seeds) that ``budget.n_trials`` buys
    with seed racing, as one worker spends it (None without racing). Simulated with the
    schedule itself (``due``; after each trial one promotion and the baseline's, as
    ``promote``): the counts depend on how many configurations reach each rung, not on
    their values. Budgets above 2,000 trials are simulated at 2,000 and scaled."""
    import random
    from types import SimpleNamespace

    from sweep.placement.space import BASELINE_NONE

    if spec.racing is None:
        return None
    budget = spec.budget.n_trials
    simulated = min(budget, 2000)
    draw = random.Random(0).random
    found: list[Configuration] = []
    queue: list[Configuration] = []
    kinds = list(spec.search.baselines)
    reruns = 0
    for number in range(simulated):
        if queue:
            configuration = queue.pop(0)
            reruns += 1
        else:
            kind = kinds.pop(0) if kinds else None
            configuration = Configuration(number, {})
            configuration.members.append(SimpleNamespace(
                number=number, user_attrs={BASELINE: kind} if kind else {}))
            configuration.scheduled = 1
            found.append(configuration)
        configuration.complete.append(configuration.first)
        configuration.draws.append(draw())
        if queue:
            continue
        wanted = due(found, spec)
        chosen = [item for item in wanted if item[0].baseline != BASELINE_NONE][:1] + \
            [item for item in wanted if item[0].baseline == BASELINE_NONE]
        for item, extra in chosen:
            item.scheduled += extra
            queue.extend([item] * extra)
    scale = budget / simulated
    return round(len(found) * scale), round(reruns * scale)
