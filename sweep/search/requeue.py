"""A stopped trial's configuration, queued again with its place in the budget.

A trial stopped by SIGTERM/SIGINT (pre-emption, Ctrl-C) ends FAIL with reason
'interrupted', which gives its place in the budget back (``sweep.storage.budget``); the new
WAITING trial created here takes that place, with the same parameters, user attributes
(placement, seed, the checkpoint it resumes from) and intermediate values. Workers take
waiting trials before sampling new ones, so the next one to ask resumes it.

It is created the way Optuna's own ``RetryHeartbeatStaleTrialCallback`` creates a retry
(``failed_trial`` marks it as replacing a failed trial, so the budget lock lets it in),
but without adding to ``retry_history``: a pre-emption is not a failure and must not use
up ``workers.max_retry``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from sweep.keys import (
    EPOCHS_RUN,
    FAIL_REASON,
    GPU,
    PRUNED_AT_EPOCH,
    RETRY_HISTORY,
    WORKER,
    WORKER_RSS_MB,
)
from sweep.storage import optuna_internals as internals

if TYPE_CHECKING:
    import optuna

# User attrs that describe how one attempt ended, not the configuration.
_NOT_INHERITED = (FAIL_REASON, WORKER, GPU, WORKER_RSS_MB, EPOCHS_RUN, PRUNED_AT_EPOCH)


def requeue(study: optuna.Study, trial: Any) -> None:
    """Queue ``trial``'s configuration again (``trial``: a FrozenTrial of this study)."""
    import optuna

    system_attrs = dict(trial.system_attrs)
    system_attrs.setdefault("failed_trial", trial.number)
    system_attrs.setdefault(RETRY_HISTORY, [])
    study.add_trial(optuna.create_trial(
        state=optuna.trial.TrialState.WAITING,
        params=trial.params, distributions=trial.distributions,
        user_attrs={k: v for k, v in trial.user_attrs.items() if k not in _NOT_INHERITED},
        system_attrs=system_attrs,
        intermediate_values=trial.intermediate_values,
    ))


def frozen(trial: Any) -> Any:
    """The stored state of a live ``optuna.Trial``."""
    return internals.storage(trial.study).get_trial(internals.trial_id(trial))
