"""The study's limits besides ``budget.n_trials``: ``budget.max_failures`` and
``budget.wall_time``. Read from the stored trials, so every worker (and ``sweep status``)
reaches the same verdict; no trial starts once either is reached.
"""

from __future__ import annotations

import datetime as _dt
from typing import Any

from sweep.errors import StudyHalted
from sweep.keys import FAIL_REASON, is_own_failure
from sweep.spec import StudySpec


def own_failures(trials: list[Any]) -> list[Any]:
    """FAIL trials that failed for their own reasons, oldest first."""
    from optuna.trial import TrialState

    return [t for t in trials
            if t.state == TrialState.FAIL and is_own_failure(t.user_attrs.get(FAIL_REASON))]


def deadline(trials: list[Any], spec: StudySpec) -> _dt.datetime | None:
    """When the study's wall time ends: ``budget.wall_time`` after its first trial
    started (Optuna's local-time stamps, as the trials record them)."""
    if spec.budget.wall_time is None:
        return None
    starts = [t.datetime_start for t in trials if t.datetime_start is not None]
    if not starts:
        return None
    return min(starts) + _dt.timedelta(seconds=spec.budget.wall_time)


def halt_reason(trials: list[Any], spec: StudySpec) -> StudyHalted | None:
    """Why the study may start no more trials, or None."""
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
    return None
