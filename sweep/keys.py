"""Every name a study, a trial or an MLflow run carries, defined once: Optuna user and
system attributes, MLflow tags, metric and param prefixes, and fail reasons. Everything
else in sweep/ imports these; tests spell them out as literals, since they are the
contract that stored studies and runs keep."""

from __future__ import annotations

# ---------------------------------------------------------------- study user attrs
SPEC = "spec"  # the canonical study file (workers read the spec from here)
FINGERPRINT = "spec_fingerprint"  # hash of what defines the trials (StudySpec.fingerprint)
STUDY_UID = "study_uid"  # names the study's MLflow run across resumes
CONFIRMATION = "confirmation"  # the stored confirmation over seeds (JSON)
REGISTRATION = "registration"  # what report.register did, or why not (JSON)
# Of a finite search space (choices and fixed values only): the key (placement_key) of
# every distinct configuration it holds, so every worker and `sweep status` see when all
# are trained. Absent when the space is continuous or too large to list.
SPACE_CONFIGURATIONS = "space_configurations"
GIT_COMMIT = "git_commit"  # of the study file's repository (sweep.study.source)
# {"tracking": masked tracking URI, "experiment_id", "study_run_id"}, so that read-only
# commands print MLflow links without importing MLflow (bench/startup.py checks it).
MLFLOW_PLACE = "mlflow_place"

# ---------------------------------------------------------------- trial user attrs
PLACEMENT = "placement"  # the resolved placement: {slot: {target: {l1|l2: value}}}
# The trial's values of what the study searches besides the penalties ({name: value},
# sweep.placement.searched); with the placement, its configuration. Absent: none searched.
SETTINGS = "settings"
BASELINE = "baseline"  # of the queued baseline trials: their kind (none, uniform_l2)
# Of the no-regularization baseline's extra seeds (budget.stop_within_noise): 1, 2, …; such
# a trial trains even though its configuration was trained (it measures seed noise).
SEED_REPLICATE = "seed_replicate"
# Seed racing (sweep.search.racing). A re-run of a configuration on a further seed carries
# SEED_OF (the number of the configuration's first trial) and SEED_INDEX (which of its
# seeds: the first training is 0); once finished, SEED_VALUE (its own value on that seed)
# and SEEDS (how many seeds its Optuna value, the configuration's mean, is over).
SEED_OF = "seed_of"
SEED_INDEX = "seed_index"
SEED_VALUE = "seed_value"
SEEDS = "seeds"
SEED = "seed"
MLFLOW_RUN_ID = "mlflow_run_id"
WORKER = "worker"  # host:pid of the worker that ran it
GPU = "gpu"  # the worker's CUDA_VISIBLE_DEVICES
WORKER_RSS_MB = "worker_rss_mb"
EPOCHS_RUN = "epochs_run"
PRUNED_AT_EPOCH = "pruned_at_epoch"
DUPLICATE_OF = "duplicate_of"  # an earlier trial of the same configuration, reused
ENVIRONMENT = "environment"  # where it trained: versions, device, host (a dict)
GPU_SECONDS = "gpu/seconds"  # wall seconds times GPUs used (GPU workers only)
GPU_PEAK_MB = "gpu/peak_memory_mb"  # peak device memory of the trial (GPU workers only)
WARM_START_OF = "warm_start_of"  # "study#trial": a configuration queued from an older study
# Every trial that trains the same configuration after a stop (re-queued after SIGTERM,
# or retried after its worker died) shares the checkpoint of the first one: its number.
CHECKPOINT = "checkpoint_of"
RESUMED_FROM_EPOCH = "resumed_from_epoch"  # the first epoch a resumed trial trained itself
RESUMED_FROM_TRIAL = "resumed_from_trial"  # the trial whose checkpoint it resumed from
FAIL_REASON = "fail_reason"  # why a FAIL trial failed
# MLFLOW_RUN_ID of a run spooled during a tracking outage: "spool:<key>" until `sweep sync`
# stores its real id on the study (synced_run_key).
SPOOL_PREFIX = "spool:"

# Optuna's own system attr: the trial numbers a retried trial descends from.
RETRY_HISTORY = "retry_history"

# ---------------------------------------------------------------- fail reasons
INTERRUPTED = "interrupted"  # FAIL_REASON of a trial stopped by SIGINT/SIGTERM (re-queued)
TIMEOUT = "timeout"  # FAIL_REASON of a trial past budget.trial_timeout starts with this
LOST = "lost"  # FAIL_REASON of a trial whose worker or database connection was lost starts so

# ---------------------------------------------------------------- metric and param prefixes
FINAL = "final/"  # a trial's final figures (user attrs and MLflow metrics)
# A trial's per-epoch kernel norm of each layer (``weights_l2/<layer>``): its run's curves
# and its weights picture.
WEIGHTS_L2_PREFIX = "weights_l2/"
# A configuration's figures over its seeds: seeds/mean, seeds/sd, seeds/n and
# seeds/estimate (what the ranking orders by) on the run that names it (its first trial's);
# best/seeds/... on the study's run.
SEEDS_PREFIX = "seeds/"
# A trial run's coefficients on a log scale (``coefficients/log10_l2``; per layer when the
# layers differ), as metrics: MLflow's charts draw params on linear axes only.
LOG10_COEFFICIENT_PREFIX = "coefficients/log10_"
BEST = "best/"  # the best trial's figures on the study's run
CONFIRM = "confirm/"  # confirmation figures on the study's run
STUDY_PARAM = "study/"  # the study's settings, params of its run

# ---------------------------------------------------------------- MLflow tags
ROLE_TAG = "sweep.role"  # what a run is: one of the roles below
ROLE_STUDY, ROLE_TRIAL = "study", "trial"
ROLE_CONFIRMATION, ROLE_CONFIRM = "confirmation", "confirm"  # the holder, a re-training
STUDY_UID_TAG = "sweep.study_uid"  # on the study's run: the Optuna study's uid
WORKER_TAG = "sweep.worker"
STUDY_NAME_TAG = "optuna.study_name"  # the names Optuna's own MLflow callback uses
TRIAL_NUMBER_TAG = "optuna.trial_number"
RUN_KEY_TAG = "sweep.run_key"  # finds a spooled run again when it is replayed
BASELINE_TAG = "sweep.baseline"
DUPLICATE_OF_TAG = "sweep.duplicate_of"
WARM_START_OF_TAG = "sweep.warm_start_of"
SEED_OF_TAG = "sweep.seed_of"  # a re-run's: "#N seed K" (SEED_OF, SEED_INDEX)
# On every run of a configuration: its name ("#7"), what the runs view groups by.
CONFIGURATION_TAG = "sweep.configuration"
ENV_TAG_PREFIX = "sweep.env."  # one tag per environment entry: sweep.env.tensorflow, …
GPU_SECONDS_TOTAL = "gpu/seconds_total"  # on the study's run: summed over its trials
PRUNED_AT_EPOCH_TAG = "sweep.pruned_at_epoch"
FAIL_REASON_TAG = "sweep.fail_reason"
RESUMED_FROM_RUN_TAG = "sweep.resumed_from_run"
CONFIRM_LABEL_TAG = "sweep.confirm_label"
CONFIRM_OF_TAG = "sweep.confirm_of"
CONFIRMATION_OF_TAG = "sweep.confirmation_of"
CONFIRMATION_TAG = "best/confirmation"  # the verdict: changes as reports come
# On the study's run: what report.register did ("MODEL version N" or why not), and the
# registered version's page in the MLflow UI.
REGISTERED_MODEL_TAG = "sweep.registered_model"
REGISTERED_MODEL_LINK_TAG = "sweep.registered_model_link"
# On the experiment: the query of its runs view (see runs_view_query), for `sweep ui`.
RUNS_VIEW_TAG = "sweep.runs_view"
# On the experiment: a saved view of its runs table (columns, sort, grouping), which MLflow's
# UI opens for the URL parameter VIEW_STATE_PARAM=<key> (read in MLflow 3.17's UI bundle).
VIEW_STATE_TAG_PREFIX = "mlflow.sharedViewState."
VIEW_STATE_PARAM = "viewStateShareKey"
NOTE_TAG = "mlflow.note.content"  # MLflow's description of a run or an experiment
PARENT_RUN_TAG = "mlflow.parentRunId"
RUN_NAME_TAG = "mlflow.runName"
# Without a kind, MLflow's UI guesses one and asks the user to confirm it in a dialog
# over the runs table (3.7 and later); a sweep is model development, said once here.
EXPERIMENT_KIND_TAG = "mlflow.experimentKind"
MODEL_DEVELOPMENT = "custom_model_development"


def synced_run_key(trial_number: int) -> str:
    """The study user attr where `sweep sync` records a spooled trial's real run id."""
    return f"{MLFLOW_RUN_ID}/{trial_number}"


def is_own_failure(reason: object) -> bool:
    """A failure of the trial itself (error, non-finite loss, timeout), which counts
    toward ``budget.max_failures``; interruptions, lost workers and lost database
    connections do not."""
    return isinstance(reason, str) and bool(reason) and reason != INTERRUPTED \
        and not reason.startswith(LOST)
