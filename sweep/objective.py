"""One trial, end to end: suggest → clone with regularizers → fit → evaluate → record.

The value handed to Optuna is ``objective.metric`` on the validation split, a pure data
metric (never the penalty-biased ``val_loss``), plus any further objectives of a
multi-objective study (penalty, weight norm, generalization gap). Final
train/validation/test figures are stored on both the Optuna trial (user attrs) and the
MLflow run.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable
from typing import Any

import numpy as np

from sweep import interrupt
from sweep.errors import TrialFailed
from sweep.space import SearchSpace
from sweep.spec import GAP_PREFIX, StudySpec
from sweep.study import BASELINE_ATTR
from sweep.tracking import StudyTracker, TrialRun
from sweep.trainer import Trainer

INTERRUPTED = "interrupted"


def trial_seed(study_seed: int, trial_number: int) -> int:
    """A per-trial seed that depends on the study seed and the trial number only."""
    return int(np.random.SeedSequence([study_seed, trial_number]).generate_state(1)[0] % 2**31)


class Objective:
    """The callable given to ``study.optimize``."""

    def __init__(self, spec: StudySpec, space: SearchSpace, tracker: StudyTracker, *,
                 on_epoch: Callable[[int, int, dict[str, Any]], None] | None = None,
                 on_trial_start: Callable[[int, str], None] | None = None):
        self.spec = spec
        self.space = space
        self.tracker = tracker
        self.on_epoch = on_epoch
        self.on_trial_start = on_trial_start
        self.trainer = Trainer(spec)

    def __call__(self, trial: Any) -> float | list[float]:
        import optuna

        from sweep.space import describe_placement

        try:
            interrupt.check()  # a stop requested between trials: do not start this one
        except KeyboardInterrupt:
            trial.set_user_attr("fail_reason", INTERRUPTED)
            raise
        baseline = trial.user_attrs.get(BASELINE_ATTR)
        # A baseline trial was queued with its placement; it searches nothing.
        placement = trial.user_attrs["placement"] if baseline else self.space.suggest(trial)
        seed = trial_seed(self.spec.seed, trial.number)
        trial.set_user_attr("seed", seed)
        trial.set_user_attr("placement", placement)
        trial.set_user_attr("worker", self.tracker.worker)
        if os.environ.get("CUDA_VISIBLE_DEVICES") is not None:
            trial.set_user_attr("gpu", os.environ["CUDA_VISIBLE_DEVICES"])
        run = self.tracker.start_trial(trial.number, trial.params, placement, seed,
                                       tags={"sweep.baseline": baseline} if baseline else None)
        trial.set_user_attr("mlflow_run_id", run.reference)
        if self.on_trial_start:
            self.on_trial_start(trial.number, describe_placement(placement))
        earlier = _same_config(trial, placement)
        if earlier is not None:
            return self._reuse(trial, run, earlier)
        try:
            return self._train(trial, run, placement, seed)
        except optuna.TrialPruned:
            run.finish("PRUNED", tags={
                "sweep.pruned_at_epoch": str(trial.user_attrs.get("pruned_at_epoch", ""))})
            raise
        except KeyboardInterrupt:
            trial.set_user_attr("fail_reason", INTERRUPTED)
            run.finish("INTERRUPTED", reason=INTERRUPTED)
            raise
        except TrialFailed as error:
            self._fail(trial, run, str(error))
            raise
        except Exception as error:  # a failing trial never kills the worker
            reason = f"{type(error).__name__}: {error}"
            self._fail(trial, run, reason)
            raise TrialFailed(reason) from error

    @staticmethod
    def _reuse(trial: Any, run: TrialRun, earlier: Any) -> float | list[float]:
        """Same resolved placement as a finished trial: the model would be the same, so its
        figures are reused instead of training again (a zero coefficient is no penalty,
        so differently-named searches often land on the same model)."""
        final = {k: v for k, v in earlier.user_attrs.items() if k.startswith("final/")}
        for name, figure in final.items():
            trial.set_user_attr(name, figure)
        trial.set_user_attr("duplicate_of", earlier.number)
        run.finish("COMPLETE", final, tags={"sweep.duplicate_of": str(earlier.number)})
        values = [float(v) for v in earlier.values]
        return values[0] if len(values) == 1 else values

    @staticmethod
    def _fail(trial: Any, run: TrialRun, reason: str) -> None:
        # The run is closed first: if the failure is the database itself, recording the
        # reason on the trial fails too, and the MLflow run must not stay RUNNING.
        run.finish("FAIL", reason=reason)
        trial.set_user_attr("fail_reason", reason)

    def _train(self, trial: Any, run: TrialRun, placement: dict,
               seed: int) -> float | list[float]:
        import optuna

        from sweep.callbacks import EpochProgress, PruningCallback

        # Intermediate values go to Optuna only for a pruner (single-objective studies
        # only): each is a storage commit per epoch; the curves themselves are in MLflow.
        pruning = None if self.spec.is_multi_objective or self.spec.pruner.name == "none" \
            else PruningCallback(trial, self.spec.pruning_metric)
        callbacks: list[Any] = [pruning] if pruning is not None else []
        if self.on_epoch is not None:
            on_epoch = self.on_epoch
            callbacks.append(EpochProgress(lambda done, logs: on_epoch(trial.number, done, logs)))
        fitted = self.trainer.fit(placement, seed, run.log_epoch, callbacks)
        trial.set_user_attr("epochs_run", fitted.epochs_run)
        if fitted.failure:
            raise TrialFailed(fitted.failure)
        if pruning is not None and pruning.pruned_at is not None:
            trial.set_user_attr("pruned_at_epoch", pruning.pruned_at)
            raise optuna.TrialPruned(f"pruned after epoch {pruning.pruned_at}")

        final = self.trainer.final_figures(fitted)
        values = objective_values(self.spec, final)
        for name, figure in final.items():
            trial.set_user_attr(name, figure)
        trial.set_user_attr("worker_rss_mb", _rss_mb())
        run.finish("COMPLETE", final)
        return values[0] if len(values) == 1 else values


def objective_values(spec: StudySpec, final: dict[str, float]) -> list[float]:
    """The values told to Optuna, one per objective, from a trial's ``final/*`` figures."""
    values = []
    for item in spec.objective:
        metric = item.metric
        if metric.startswith(GAP_PREFIX):
            name = metric.removeprefix(GAP_PREFIX)
            train, val = final.get(f"final/train_{name}"), final.get(f"final/val_{name}")
            value = None if train is None or val is None else (
                train - val if name.endswith("accuracy") else val - train)
        else:
            value = final.get("final/" + metric.replace("/", "_"))
        if value is None or not math.isfinite(value):
            raise TrialFailed(f"{metric} is not a finite number ({value})")
        values.append(float(value))
    return values


def _same_config(trial: Any, placement: dict) -> Any:
    """The earliest COMPLETE trial of this study that trained exactly this placement."""
    import optuna

    for other in trial.study.get_trials(deepcopy=False,
                                        states=(optuna.trial.TrialState.COMPLETE,)):
        if other.user_attrs.get("placement") == placement and "duplicate_of" not in \
                other.user_attrs:
            return other
    return None


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
