"""One trial, end to end: suggest → clone with regularizers → fit → evaluate → record.

The value handed to Optuna is ``objective.metric`` on the validation split, a pure data
metric (never the penalty-biased ``val_loss``), plus any further objectives of a
multi-objective study (penalty, weight norm, generalization gap). Final
train/validation/test figures are stored on both the Optuna trial (user attrs) and the
MLflow run.
"""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sweep import interrupt
from sweep.answers.norms_picture import WeightsPicture
from sweep.errors import TrialFailed, describe_failure
from sweep.keys import (
    BASELINE,
    BASELINE_TAG,
    CHECKPOINT,
    CONFIGURATION_TAG,
    DUPLICATE_OF,
    DUPLICATE_OF_TAG,
    ENV_TAG_PREFIX,
    ENVIRONMENT,
    EPOCHS_RUN,
    FAIL_REASON,
    FINAL,
    GIT_COMMIT,
    GPU,
    INTERRUPTED,
    MLFLOW_RUN_ID,
    NOTE_TAG,
    PLACEMENT,
    PRUNED_AT_EPOCH,
    PRUNED_AT_EPOCH_TAG,
    RESUMED_FROM_EPOCH,
    RESUMED_FROM_TRIAL,
    RUN_NAME_TAG,
    SEED,
    SEED_INDEX,
    SEED_OF,
    SEED_OF_TAG,
    SEED_REPLICATE,
    SEED_VALUE,
    SEEDS,
    SETTINGS,
    WARM_START_OF,
    WARM_START_OF_TAG,
    WORKER,
    WORKER_RSS_MB,
)
from sweep.placement.space import SearchSpace
from sweep.results.queries import generalization_gap
from sweep.search import requeue
from sweep.search.grouping import Configuration, seed_index
from sweep.seeds import trial_seed
from sweep.spec import GAP_PREFIX, StudySpec
from sweep.storage import optuna_internals as internals
from sweep.storage.budget import set_user_attrs
from sweep.tracking.names import duplicate_run_name, trial_note, trial_run_name
from sweep.tracking.tracker import StudyTracker
from sweep.tracking.trial_run import TrialRun
from sweep.training import checkpoint
from sweep.training.trainer import Trainer
from sweep.workers import watchdog
from sweep.workers.claim import claim

if TYPE_CHECKING:
    import optuna

log = logging.getLogger("sweep")


@dataclass(frozen=True)
class Drawn:
    """What a trial trains: its configuration, its seed and what it goes on from."""

    placement: dict[str, Any]
    settings: dict[str, Any]
    seed: int
    baseline: str | None
    origin: int  # the trial whose checkpoint it resumes (itself when new)
    previous_run: str | None  # that trial's MLflow run, whose history it continues
    environment: dict[str, str]


class Objective:
    """The callable given to ``study.optimize``: one trial's life, in named steps."""

    def __init__(self, spec: StudySpec, space: SearchSpace, tracker: StudyTracker, *,
                 checkpoint_root: Path | None = None,
                 on_epoch: Callable[[int, int, dict[str, Any]], None] | None = None,
                 on_trial_start: Callable[[int, str], None] | None = None):
        self.spec = spec
        self.space = space
        self.tracker = tracker
        self.checkpoint_root = checkpoint_root
        self.on_epoch = on_epoch
        self.on_trial_start = on_trial_start
        self.trainer = Trainer(spec)
        self._epochs_done = 0  # epochs of the running trial so far (resumed ones included)
        self._environment: dict[str, str] | None = None
        self.weights = WeightsPicture(tracker)  # each trial's weights.svg

    def __call__(self, trial: optuna.Trial) -> float | list[float]:
        """A trial's life, step by step: ``begin`` (a stop asked for between trials ends
        here) → ``draw`` its configuration, seed and what it goes on from → ``claim`` it
        (or find the trained configuration it duplicates) → ``open_run`` in MLflow →
        ``reuse`` the duplicate's figures, or ``run`` the training and close the run."""
        self.begin(trial)
        drawn = self.draw(trial)
        earlier = self.claim(trial, drawn)
        run = self.open_run(trial, drawn)
        if earlier is not None:
            return self._reuse(trial, run, earlier)
        return self.run(trial, run, drawn)

    def begin(self, trial: optuna.Trial) -> None:
        try:
            interrupt.check()  # a stop requested between trials: do not start this one
        except KeyboardInterrupt:
            self._interrupted(trial)
            raise

    def draw(self, trial: optuna.Trial) -> Drawn:
        # Described before sampling (the first time imports TensorFlow, seconds): what is
        # sampled is stored at once, so a stop in between cannot lose the configuration.
        environment = self.environment(trial)
        attrs = trial.user_attrs
        baseline = attrs.get(BASELINE)
        # A baseline trial was queued with its placement and settings; it searches nothing.
        placement = attrs[PLACEMENT] if baseline else self.space.suggest(trial)
        settings = (attrs.get(SETTINGS) or {}) if baseline else \
            self.space.suggest_settings(trial)
        # A trial that goes on with a stopped one's configuration (re-queued after a stop,
        # or retried after its worker died) inherits its seed, checkpoint and MLflow run.
        origin = attrs.get(CHECKPOINT, trial.number)
        # A re-run or noise seed was queued with its seed (sweep.seeds.extra_seed).
        seed = attrs[SEED] if SEED in attrs else trial_seed(self.spec.seed, trial.number)
        return Drawn(placement, settings, seed, baseline, origin,
                     attrs.get(MLFLOW_RUN_ID) if origin != trial.number else None, environment)

    def claim(self, trial: optuna.Trial, drawn: Drawn) -> Configuration | None:
        started = {SEED: drawn.seed, PLACEMENT: drawn.placement, CHECKPOINT: drawn.origin,
                   WORKER: self.tracker.worker, ENVIRONMENT: drawn.environment}
        if drawn.settings:
            started[SETTINGS] = drawn.settings
        if os.environ.get("CUDA_VISIBLE_DEVICES") is not None:
            started[GPU] = os.environ["CUDA_VISIBLE_DEVICES"]
        if SEED_REPLICATE in trial.user_attrs or SEED_OF in trial.user_attrs:
            # Seed replicates and racing re-runs train a configuration again on purpose.
            set_user_attrs(trial, started)
            return None
        try:
            return claim(trial, drawn.placement, drawn.settings, started,
                         on_wait=lambda number: log.info(
                             "trial %d: the same model as trial %d, which is training: "
                             "waiting for its figures", trial.number, number))
        except KeyboardInterrupt:
            self._interrupted(trial)
            raise

    def open_run(self, trial: optuna.Trial, drawn: Drawn) -> TrialRun:
        from sweep.placement.searched import describe_settings
        from sweep.placement.space import describe_placement

        attrs, baseline, placement = trial.user_attrs, drawn.baseline, drawn.placement
        label = baseline or self.space.label(trial.params, placement)
        tags = {BASELINE_TAG: baseline} if baseline else {}
        if WARM_START_OF in attrs:
            tags[WARM_START_OF_TAG] = attrs[WARM_START_OF]
        if SEED_OF in attrs:
            tags[SEED_OF_TAG] = f"#{attrs[SEED_OF]} seed {attrs.get(SEED_INDEX, 0) + 1}"
            # In its configuration's group of the runs view while it trains (a first
            # training is tagged when it finishes: it may turn out a duplicate).
            tags[CONFIGURATION_TAG] = f"#{attrs[SEED_OF]}"
        tags.update({ENV_TAG_PREFIX + key: value for key, value in drawn.environment.items()})
        run = self.tracker.start_trial(
            trial.number, {**drawn.settings, **trial.params}, placement, drawn.seed, tags=tags,
            label=label, name=trial_run_name(
                trial.number, label, placement, baseline, settings=drawn.settings,
                seed_of=(attrs[SEED_OF], attrs.get(SEED_INDEX, 0)) if SEED_OF in attrs else None))
        trial.set_user_attr(MLFLOW_RUN_ID, run.reference)
        if self.on_trial_start:
            self.on_trial_start(trial.number, " ".join(filter(None, (
                describe_placement(placement), describe_settings(drawn.settings)))))
        return run

    def run(self, trial: optuna.Trial, run: TrialRun, drawn: Drawn) -> float | list[float]:
        import optuna

        self._epochs_done = 0
        self.weights.start()
        run.watch_system(drawn.environment["device"])
        folder = None if self.checkpoint_root is None else \
            checkpoint.folder(self.checkpoint_root, self.tracker.study_uid, drawn.origin)
        try:
            with watchdog.watch(
                    self.spec.budget.trial_timeout,
                    on_stuck_timeout=lambda reason: self._abandon(trial, run, reason, folder),
                    on_stuck_stop=lambda: self._abandon(trial, run, INTERRUPTED, folder)):
                values = self._train(trial, run, drawn, folder)
        except optuna.TrialPruned:
            run.finish("PRUNED", tags={
                PRUNED_AT_EPOCH_TAG: str(trial.user_attrs.get(PRUNED_AT_EPOCH, ""))},
                wait=False)
            checkpoint.remove(folder)
            raise
        except KeyboardInterrupt:
            # The checkpoint stays: the re-queued configuration resumes from it.
            trial.set_user_attr(EPOCHS_RUN, self._epochs_done)
            self._interrupted(trial)
            run.finish("INTERRUPTED", reason=INTERRUPTED, wait=False)
            raise
        except TrialFailed as error:
            self._fail(trial, run, str(error))
            checkpoint.remove(folder)
            raise
        except Exception as error:  # a failing trial never kills the worker
            reason = describe_failure(error)
            self._fail(trial, run, reason)
            checkpoint.remove(folder)
            raise TrialFailed(reason) from error
        checkpoint.remove(folder)
        return values

    def environment(self, trial: optuna.Trial) -> dict[str, str]:
        """What this worker trains on (the same for all its trials), with the study file's
        git commit when `sweep create` found one."""
        if self._environment is None:
            from sweep.training.environment import describe_environment

            self._environment = describe_environment()
            commit = trial.study.user_attrs.get(GIT_COMMIT)
            if commit:
                self._environment["git_commit"] = commit
        return dict(self._environment)

    @staticmethod
    def _interrupted(trial: optuna.Trial) -> None:
        """Stopped by SIGINT/SIGTERM: the trial gives its place back and, if it was given
        a configuration (queued, retried or already sampled), that configuration is
        queued again with the place."""
        trial.set_user_attr(FAIL_REASON, INTERRUPTED)
        stored = requeue.frozen(trial)
        if stored.params or "fixed_params" in stored.system_attrs:
            requeue.requeue(trial.study, stored)

    def _abandon(self, trial: optuna.Trial, run: TrialRun, reason: str,
                 folder: Path | None) -> None:
        """The watchdog's way out of a training step that never returns (runs on the
        watchdog's thread): record how the trial ended, then replace this process (a
        timeout: the worker goes on with its next trial) or end it (a stop request)."""
        from optuna.trial import TrialState

        from sweep.workers.lifecycle import leave_process

        storage, trial_id = internals.storage(trial.study), internals.trial_id(trial)
        try:
            if reason == INTERRUPTED:
                self._interrupted(trial)
            else:
                storage.set_trial_user_attr(trial_id, FAIL_REASON, reason)
                storage.set_trial_user_attr(trial_id, EPOCHS_RUN, self._epochs_done)
                checkpoint.remove(folder)
            storage.set_trial_state_values(trial_id, TrialState.FAIL)
            run.finish("INTERRUPTED" if reason == INTERRUPTED else "FAIL", reason=reason)
        finally:
            self.tracker.settle(timeout=30)  # earlier runs' last calls, bounded: it leaves
            leave_process(stopped=reason == INTERRUPTED)

    @staticmethod
    def _reuse(trial: optuna.Trial, run: TrialRun, earlier: Configuration) -> float | list[float]:
        """Same resolved placement as a trained configuration: the model would be the same,
        so the configuration's figures (its means over its seeds) are reused instead of
        training again (a zero coefficient is no penalty, so differently-named searches
        often land on the same model). The duplicate names the configuration (``#7``)."""
        named = earlier.named
        final = earlier.final_means()
        set_user_attrs(trial, {**final, DUPLICATE_OF: named.number})
        # Renamed: the UI then says at a glance that this run trained nothing.
        run.finish("COMPLETE", final, tags={
            DUPLICATE_OF_TAG: str(named.number),
            RUN_NAME_TAG: duplicate_run_name(trial.number, named.number)}, wait=False)
        values = [float(v) for v in named.values]
        values[0] = earlier.mean  # the sampler learns the configuration's figure
        return values[0] if len(values) == 1 else values

    def _fail(self, trial: optuna.Trial, run: TrialRun, reason: str) -> None:
        # The run is closed first: if the failure is the database itself, recording the
        # reason on the trial fails too, and the MLflow run must not stay RUNNING.
        run.finish("FAIL", reason=reason, wait=False)
        set_user_attrs(trial, {FAIL_REASON: reason, EPOCHS_RUN: self._epochs_done})

    def _train(self, trial: optuna.Trial, run: TrialRun, drawn: Drawn,
               folder: Path | None) -> float | list[float]:
        import optuna

        from sweep.training.callbacks import EpochProgress, PruningCallback
        from sweep.training.trainer import Resume

        # Intermediate values go to Optuna only for a pruner (single-objective studies
        # only): each is a storage commit per epoch; the curves themselves are in MLflow.
        # A racing re-run measures its seed: pruning it would keep only the good seeds.
        pruning = None if self.spec.is_multi_objective or self.spec.pruner.name == "none" \
            or SEED_OF in trial.user_attrs else PruningCallback(trial, self.spec.pruning_metric)
        callbacks: list[Any] = [pruning] if pruning is not None else []
        if self.on_epoch is not None:
            on_epoch = self.on_epoch
            callbacks.append(EpochProgress(lambda done, logs: on_epoch(trial.number, done, logs)))
        def resumed(state: dict[str, Any]) -> None:
            epoch = int(state["epoch"])
            trial.set_user_attr(RESUMED_FROM_EPOCH, epoch + 1)
            trial.set_user_attr(RESUMED_FROM_TRIAL, int(state["trial"]))
            if drawn.previous_run:  # the run then shows the whole history, not the tail
                run.copy_history(drawn.previous_run, up_to_step=epoch)

        every = self.spec.workers.checkpoint_every
        resume = None if folder is None or every == 0 else Resume(folder, every, trial.number)
        def sink(epoch: int, metrics: dict[str, float]) -> None:
            self._epochs_done = epoch  # what a failed or stopped trial reached
            self.weights.epoch(epoch, metrics)
            run.log_epoch(epoch, metrics)

        trained = self.trainer.train(drawn.placement, drawn.seed, sink, callbacks,
                                     resume=resume, on_resume=resumed, settings=drawn.settings)
        set_user_attrs(trial, {EPOCHS_RUN: trained.epochs_run, **trained.usage})
        if trained.pruned_at is not None:
            trial.set_user_attr(PRUNED_AT_EPOCH, trained.pruned_at)
            raise optuna.TrialPruned(f"pruned after epoch {trained.pruned_at}")
        final = trained.final
        values = objective_values(self.spec, final)
        attrs: dict[str, Any] = {}
        if SEED_OF in trial.user_attrs:
            from sweep.search.racing import seed_mean

            # Optuna (and so the sampler) is told the configuration's mean over its seeds.
            # (The run shows its own draw; the configuration's figures are on the run that
            # names it: sweep.answers.runs_view.)
            mean, count = seed_mean(trial, values[0])
            attrs = {SEED_VALUE: values[0], SEEDS: count}
            values[0] = mean
        set_user_attrs(trial, {**final, **attrs, WORKER_RSS_MB: _rss_mb()})
        self.weights.draw(trial, run)
        origin = trial.user_attrs.get(SEED_OF)
        note = trial_note(trial.number, drawn.placement, self.spec.primary.metric,
                          attrs.get(SEED_VALUE, values[0]), origin=origin,
                          index=seed_index(trial))
        # The run's last calls go on while the next trial starts (the worker settles them).
        run.finish("COMPLETE", {**final, **trained.usage}, tags={NOTE_TAG: note}, wait=False)
        return values[0] if len(values) == 1 else values


def objective_values(spec: StudySpec, final: dict[str, float]) -> list[float]:
    """The values told to Optuna, one per objective, from a trial's ``final/*`` figures."""
    values = []
    for item in spec.objective:
        metric = item.metric
        if metric.startswith(GAP_PREFIX):
            value = generalization_gap(final, metric.removeprefix(GAP_PREFIX))
        else:
            value = final.get(FINAL + metric.replace("/", "_"))
        if value is None or not math.isfinite(value):
            raise TrialFailed(f"{metric} is not a finite number ({value})")
        values.append(float(value))
    return values


def _rss_mb() -> float:
    """This process's resident memory, to see that trials do not accumulate memory."""
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
