"""Stop when more trials cannot beat the noise (``budget.stop_within_noise``).

The study measures its own seed noise: the no-regularization baseline is queued
``seeds.noise`` times, on its extra seeds (sweep.seeds.extra_seed), and the standard
deviation of its objective over those seeds is what one configuration's value moves by
from seed to seed alone. The study stops when the best value has gained no more than that
over the last ``budget.patience`` trials that used budget: a better value from here would
most likely be a luckier draw, not a better configuration.

The rule is the patience rule of early stopping (Keras' ``EarlyStopping(min_delta,
patience)``) with ``min_delta`` measured rather than guessed, in the spirit of Makarova et
al., "Automatic Termination for Hyperparameter Optimization" (AutoML Conf 2022), who stop
when the remaining improvement is below the evaluation's statistical error (Optuna's
Terminator, deprecated in Optuna 5, implemented their bound with a Gaussian process; this
rule needs no model of the search space, so it works with every sampler and placement).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from sweep.keys import BASELINE, DUPLICATE_OF, SEED_OF, SEED_REPLICATE
from sweep.placement.space import BASELINE_NONE
from sweep.spec import StudySpec

if TYPE_CHECKING:
    from optuna.trial import FrozenTrial


@dataclass(frozen=True)
class NoiseState:
    """How close the study is to stopping within noise."""

    noise: float | None  # sd of the objective over the baseline's seeds (None: not yet)
    seeds: int  # completed baseline seeds the noise is measured on
    gain: float | None  # best value's gain over the last `patience` trials (good direction)
    window: int  # trials in that window so far (at most patience)
    patience: int
    stop: bool

    def describe(self, metric: str) -> str:
        if self.noise is None:
            return (f"seed noise of {metric}: not measured yet ({self.seeds} of the "
                    "baseline's seeds done)")
        text = (f"seed noise of {metric}: sd {self.noise:.4g} over {self.seeds} seeds of the "
                "no-regularization baseline")
        if self.gain is None:
            return f"{text}; waiting for {self.patience} trials after the first result"
        if self.stop:
            return (f"{text}; the best gained {self.gain:+.4g} over the last {self.window} "
                    "trials, within noise: stopped")
        left = self.patience - self.window
        return (f"{text}; the best gained {self.gain:+.4g} over the last {self.window} of "
                f"{self.patience} trials (budget.patience)" +
                ("" if self.gain > self.noise else
                 f": stops after {left} more trials without a gain above {self.noise:.4g}"))


def _counted(trials: list[FrozenTrial]) -> list[Any]:
    """Finished trials that used budget, in trial order."""
    from optuna.trial import TrialState

    from sweep.storage.budget import given_back

    returned = given_back(trials)
    return sorted((t for t in trials
                   if t.state in (TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL)
                   and t.number not in returned and DUPLICATE_OF not in t.user_attrs),
                  key=lambda t: t.number)


def seed_noise(trials: list[FrozenTrial]) -> tuple[float | None, int]:
    """The sd of the no-regularization baseline's configuration over its seeds (its
    replicates and racing re-runs, each seed's own draw), and how many seeds it is
    measured on (None below two)."""
    from sweep.search.grouping import configurations

    base = next((c for c in configurations(t for t in trials
                                            if t.user_attrs.get(BASELINE) == BASELINE_NONE
                                            or SEED_OF in t.user_attrs)
                 if c.baseline == BASELINE_NONE), None)
    return (None, 0) if base is None else (base.sd, base.n)


def noise_state(trials: list[FrozenTrial], spec: StudySpec) -> NoiseState | None:
    """None unless ``budget.stop_within_noise``."""
    from sweep.search.grouping import configurations
    from sweep.search.racing import direction_sign

    budget = spec.budget
    if not budget.stop_within_noise:
        return None
    noise, seeds = seed_noise(trials)
    counted = _counted(trials)
    sign = direction_sign(spec)

    def best(among: list[Any]) -> float | None:
        # The best configuration's mean over the seeds these trials gave it (a single
        # draw is never the best), in the direction of the study.
        means = [sign * c.mean for c in configurations(among) if c.draws]
        return max(means) if means else None

    # The window starts once the noise replicates are done: they are not the search.
    start = next((i for i, t in enumerate(counted)
                  if SEED_REPLICATE not in t.user_attrs and t.user_attrs.get(BASELINE) is None),
                 len(counted))
    window = min(budget.patience, max(0, len(counted) - start))
    before = best(counted[:len(counted) - window]) if window else None
    now = best(counted)
    gain = None if before is None or now is None else now - before
    stop = noise is not None and gain is not None and window >= budget.patience \
        and gain <= noise
    return NoiseState(noise, seeds, gain, window, budget.patience, stop)
