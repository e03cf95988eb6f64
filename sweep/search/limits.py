"""The study's limits besides ``budget.n_trials``: ``budget.max_failures``,
``budget.wall_time`` and an exhausted search space (every distinct configuration of a
finite space trained, or ``budget.max_duplicates`` trials in a row that sampled one already
trained). Read from the stored trials, so every worker (and ``sweep status``) reaches the
same verdict; no trial starts once one is reached.
"""

from __future__ import annotations

import datetime as _dt
from typing import TYPE_CHECKING, Any

from sweep.errors import StudyHalted
from sweep.keys import (
    DUPLICATE_OF,
    FAIL_REASON,
    PLACEMENT,
    SETTINGS,
    SPACE_CONFIGURATIONS,
    is_own_failure,
)
from sweep.spec import StudySpec

if TYPE_CHECKING:
    import optuna
    from optuna.trial import FrozenTrial


def own_failures(trials: list[FrozenTrial]) -> list[Any]:
    """FAIL trials that failed for their own reasons, oldest first."""
    from optuna.trial import TrialState

    return [t for t in trials
            if t.state == TrialState.FAIL and is_own_failure(t.user_attrs.get(FAIL_REASON))]


def deadline(trials: list[FrozenTrial], spec: StudySpec) -> _dt.datetime | None:
    """When the study's wall time ends: ``budget.wall_time`` after its first trial
    started (Optuna's local-time stamps, as the trials record them)."""
    if spec.budget.wall_time is None:
        return None
    starts = [t.datetime_start for t in trials if t.datetime_start is not None]
    if not starts:
        return None
    return min(starts) + _dt.timedelta(seconds=spec.budget.wall_time)


def study_halt(study: optuna.Study, spec: StudySpec, trials: list[FrozenTrial] | None = None
               ) -> StudyHalted | None:
    """``halt_reason`` of a stored study (its trials, and its space's configurations)."""
    if trials is None:
        trials = study.get_trials(deepcopy=False)
    return halt_reason(trials, spec, study.user_attrs.get(SPACE_CONFIGURATIONS))


def trained_configurations(trials: list[FrozenTrial]) -> set[str]:
    """Keys of the configurations the study has trained (complete or pruned; a duplicate
    trained nothing)."""
    from optuna.trial import TrialState

    from sweep.placement.configurations import configuration_key

    return {configuration_key(t.user_attrs[PLACEMENT], t.user_attrs.get(SETTINGS))
            for t in trials
            if PLACEMENT in t.user_attrs and DUPLICATE_OF not in t.user_attrs
            and t.state in (TrialState.COMPLETE, TrialState.PRUNED)}


def exhausted(trials: list[FrozenTrial], spec: StudySpec, configurations: list[str] | None = None
              ) -> str | None:
    """Why the search space has nothing new to give, or None. Every worker asks after
    every trial: the trained configurations are keyed only when the answer can depend on
    them (keying all of 10,000 trials took 190 ms per trial)."""
    import heapq

    from optuna.trial import TrialState

    done = (TrialState.COMPLETE, TrialState.PRUNED)
    finished = [t for t in trials if t.state in done]
    if configurations:
        distinct = set(configurations)
        # Fewer trainings than configurations cannot have trained them all.
        trainings = sum(DUPLICATE_OF not in t.user_attrs for t in finished)
        if trainings >= len(distinct) and distinct <= trained_configurations(finished):
            return f"space exhausted: {len(distinct)} distinct configurations, all trained"
    cap = spec.budget.max_duplicates
    last = heapq.nlargest(cap, finished, key=lambda t: t.number)
    if len(last) == cap and all(DUPLICATE_OF in t.user_attrs for t in last):
        return (f"space exhausted: the last {cap} trials sampled configurations already "
                f"trained (budget.max_duplicates); {len(trained_configurations(finished))} "
                "distinct configurations trained")
    return None


def halt_reason(trials: list[FrozenTrial], spec: StudySpec, configurations: list[str] | None = None
                ) -> StudyHalted | None:
    """Why the study may start no more trials, or None. ``configurations``: the keys of a
    finite space's configurations (study attr SPACE_CONFIGURATIONS)."""
    failures = own_failures(trials)
    cap = spec.budget.max_failures
    if len(failures) >= cap:
        last = failures[-1]
        return StudyHalted(
            f"study stopped: {len(failures)} trials failed, budget.max_failures is {cap}; "
            f"last failure (trial #{last.number}): {last.user_attrs.get(FAIL_REASON)}. "
            "Fix the cause, or raise budget.max_failures and start a worker to continue",
            failed=True)
    end = deadline(trials, spec)
    if end is not None and _dt.datetime.now() >= end:
        return StudyHalted(
            f"study stopped: budget.wall_time ({spec.budget.wall_time:g} s from the first "
            f"trial) ended at {end:%Y-%m-%d %H:%M:%S}", failed=False)
    reason = exhausted(trials, spec, configurations)
    if reason is not None:
        return StudyHalted(f"study stopped: {reason}", failed=False)
    from sweep.search.noise import noise_state

    noise = noise_state(trials, spec)
    if noise is not None and noise.stop:
        return StudyHalted(
            f"study stopped: the best {spec.primary.metric} gained {noise.gain:+.4g} over the "
            f"last {noise.patience} trials, within the seed noise (sd {noise.noise:.4g} over "
            f"{noise.seeds} seeds of the no-regularization baseline; "
            "budget.stop_within_noise)", failed=False)
    return None
