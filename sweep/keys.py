"""Names of what a trial records, defined once (Optuna user attrs and their values).

MLflow tag names and the remaining trial attributes still live next to their single
writer; new names that cross modules go here.
"""

from __future__ import annotations

FAIL_REASON = "fail_reason"  # why a FAIL trial failed
INTERRUPTED = "interrupted"  # FAIL_REASON of a trial stopped by SIGINT/SIGTERM (re-queued)
TIMEOUT = "timeout"  # FAIL_REASON of a trial past budget.trial_timeout starts with this
LOST = "lost"  # FAIL_REASON of a trial whose worker or database connection was lost starts so
MLFLOW_RUN_ID = "mlflow_run_id"
# MLFLOW_RUN_ID of a run spooled during a tracking outage: "spool:<key>" until `sweep sync`
# stores its real id as the study's user attr "mlflow_run_id/<trial number>".
SPOOL_PREFIX = "spool:"
# Study user attr: {"tracking": masked tracking URI, "experiment_id", "study_run_id"}, so
# that read-only commands print MLflow links without importing MLflow (bench/startup.py
# checks that they do not).
MLFLOW_PLACE = "mlflow_place"
SEED = "seed"
PLACEMENT = "placement"
# Every trial that trains the same configuration after a stop (re-queued after SIGTERM,
# or retried after its worker died) shares the checkpoint of the first one: its number.
CHECKPOINT = "checkpoint_of"
RESUMED_FROM_EPOCH = "resumed_from_epoch"  # the first epoch a resumed trial trained itself
RESUMED_FROM_TRIAL = "resumed_from_trial"  # the trial whose checkpoint it resumed from
EPOCHS_RUN = "epochs_run"


def is_own_failure(reason: object) -> bool:
    """A failure of the trial itself (error, non-finite loss, timeout), which counts
    toward ``budget.max_failures``; interruptions, lost workers and lost database
    connections do not."""
    return isinstance(reason, str) and bool(reason) and reason != INTERRUPTED \
        and not reason.startswith(LOST)
