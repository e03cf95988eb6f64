"""Every seed regsweep trains or samples with, derived from the study seed in one place.

A seed is ``SeedSequence([study seed, *words])`` with a word that says what it is for, so
that no two purposes can hand out the same seed: a trial's first training (its number), a
configuration's extra seed ``k`` (shared by every configuration, so that configurations
raced to the same rung and the baseline are compared on the same seeds), a confirmation's
fresh seeds (no trial trained on them), and a sampler's seed per worker.
"""

from __future__ import annotations

__all__ = ["confirmation_seeds", "derive", "extra_seed", "sampler_seed", "trial_seed"]

# What each seed is for, the last entropy word (a trial's first seed has none: its words
# are the study seed and the trial number, as every study so far has trained with).
_EXTRA = 0x5EED
_CONFIRM = 0xC0F1
_SAMPLER = 0x5A3


def derive(study_seed: int, *words: int) -> int:
    """A seed in [0, 2**31) that depends on ``study_seed`` and ``words`` only."""
    import numpy as np

    return int(np.random.SeedSequence([study_seed, *words]).generate_state(1)[0] % 2**31)


def trial_seed(study_seed: int, trial_number: int) -> int:
    """The seed a trial trains its configuration on first (a re-run keeps its own)."""
    return derive(study_seed, trial_number)


def extra_seed(study_seed: int, index: int) -> int:
    """A configuration's extra seed ``index`` (1, 2, …), the same for every configuration:
    seed racing's re-runs and the baseline's noise seeds."""
    return derive(study_seed, index, _EXTRA) or 1


def confirmation_seeds(study_seed: int, count: int) -> tuple[int, ...]:
    """The fresh seeds a confirmation re-trains every configuration on (the same for all,
    so the comparison with the baseline is paired); no trial trains on them."""
    return tuple(derive(study_seed, index, _CONFIRM) for index in range(count))


def sampler_seed(study_seed: int, worker_index: int, trials_so_far: int) -> int:
    """The sampler's seed in one worker process: the study seed for the first worker of a
    fresh study (reproducible, as Optuna's own sampler with that seed), otherwise its own,
    so that the random start-up trials of two workers differ and a renewed or resumed
    worker does not replay the draws it made before."""
    if worker_index == 0 and trials_so_far == 0:
        return study_seed
    return derive(study_seed, worker_index, trials_so_far, _SAMPLER)
