"""How a study is judged and run: objectives, report, pruner, budget, workers, tracking."""

from __future__ import annotations

import re
import warnings
from typing import Any, Literal

from pydantic import (
    Field,
    NonNegativeInt,
    PositiveInt,
    field_validator,
    model_validator,
)

from sweep.spec.base import DERIVED_OBJECTIVES, GAP_PREFIX, PRUNERS, Frozen


# --------------------------------------------------------------------------- objective
class ObjectiveSpec(Frozen):
    metric: str = "val_accuracy"
    direction: Literal["maximize", "minimize"] | None = None

    @field_validator("metric")
    @classmethod
    def _on_validation_data(cls, metric: str):
        if metric in DERIVED_OBJECTIVES or (metric.startswith(GAP_PREFIX)
                                            and len(metric) > len(GAP_PREFIX)):
            return metric
        if not metric.startswith("val_"):
            raise ValueError(
                "must be measured on the validation split, i.e. start with 'val_' "
                f"(got {metric!r}); the test split is only for final evaluation "
                f"(or one of {', '.join(DERIVED_OBJECTIVES)}, gap/<metric>)"
            )
        if metric == "val_loss":
            raise ValueError(
                "'val_loss' includes the regularization penalty and would favour weak "
                "penalties; use 'val_data_loss' (the same loss without the penalty)"
            )
        return metric

    @property
    def is_keras_metric(self) -> bool:
        return self.metric.startswith("val_")

    @property
    def natural_direction(self) -> str:
        if self.is_keras_metric and self.metric.endswith("accuracy"):
            return "maximize"
        return "minimize"

    @property
    def resolved_direction(self) -> str:
        return self.direction or self.natural_direction

    @model_validator(mode="after")
    def _sensible_direction(self) -> ObjectiveSpec:
        natural = self.natural_direction
        if self.direction is not None and self.direction != natural:
            raise ValueError(
                f"direction {self.direction!r} contradicts metric {self.metric!r} "
                f"(it should be {natural!r})"
            )
        return self


# Keys are named as users write them; `register` also names a method every pydantic model
# class inherits from ABCMeta, which a field may shadow (pydantic warns at class creation).
with warnings.catch_warnings():
    warnings.filterwarnings("ignore", message='Field name "register"', category=UserWarning)

    class ReportSpec(Frozen):
        """What `sweep report` (and `sweep run --confirm`) re-trains to tell signal from noise:
        the best `confirm_top` configurations (chosen on validation) and the unregularized
        baseline, each over `seeds.confirm` fresh seeds, evaluated once on the test split."""

        confirm_top: int = Field(3, ge=0)
        # The MLflow registered model the best configuration becomes a new version of, only
        # when the confirmation says it beats no regularization beyond seed noise.
        register: str | None = None

        @field_validator("register")
        @classmethod
        def _model_name(cls, name: str | None) -> str | None:
            if name is not None and not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.\-]{0,255}", name):
                raise ValueError("must be a model name of letters, digits, '_', '.' and '-' "
                                 f"(got {name!r})")
            return name


def default_warmup(pruner: str, epochs: int) -> int:
    """Epochs a pruner waits when the study file does not say: half of them for Optuna's
    median pruner (it compares every trial with all others), a third for the others
    (median_per_placement compares like with like; Hyperband's rungs start there)."""
    return max(1, epochs // 2 if pruner == "median" else epochs // 3)


class PrunerSpec(Frozen):
    name: Literal[PRUNERS] = "none"  # type: ignore[valid-type]
    warmup_epochs: int = Field(1, ge=0)
    interval: PositiveInt = 1
    # The per-epoch validation metric reported to the pruner; default: the objective's.
    monitor: str | None = None


_DURATION = re.compile(r"^\s*(?:(\d+(?:\.\d+)?)\s*h)?\s*(?:(\d+(?:\.\d+)?)\s*m)?"
                       r"\s*(?:(\d+(?:\.\d+)?)\s*s)?\s*$")


# The longest duration a study file may give: a date a year on is still a date, while
# `wall_time: 1.0e+12` overflowed the deadline (datetime) in every worker and in
# `sweep status`, and a timer's wait (threading.TIMEOUT_MAX) long before that.
MAX_DURATION = 366 * 24 * 3600.0


def parse_duration(value: Any) -> float:
    """Seconds from a number or a string such as ``"90m"``, ``"8h"``, ``"1h30m"``,
    ``"45s"``; positive and at most :data:`MAX_DURATION`."""
    given = value
    if isinstance(value, bool):
        raise ValueError(f"must be seconds or a duration like '90m' or '8h' (got {given!r})")
    if isinstance(value, str) and re.fullmatch(r"\s*\d+(\.\d+)?\s*", value):
        value = float(value)
    if isinstance(value, int | float):
        seconds = float(value)
    else:
        match = _DURATION.match(str(value)) if isinstance(value, str) else None
        if match is None or not any(match.groups()):
            raise ValueError(
                f"must be seconds or a duration like '90m' or '8h' (got {given!r})")
        hours, minutes, secs = (float(g) if g else 0.0 for g in match.groups())
        seconds = hours * 3600 + minutes * 60 + secs
    if not seconds > 0 or seconds != seconds:
        raise ValueError(f"must be a positive duration (got {given!r})")
    if seconds > MAX_DURATION:
        raise ValueError(f"must be at most 366 days ({MAX_DURATION:.0f} s) (got {given!r})")
    return seconds


class BudgetSpec(Frozen):
    """How much the study may spend, across all its workers. Operational: a resumed study
    may change any of these."""

    # Distinct configurations trained: a trial that samples one already trained (e.g.
    # l1_on/l2_on both false, the same model as placement none) is recorded but free.
    n_trials: PositiveInt = 20
    # No trial starts later than this after the study's first trial started.
    wall_time: float | None = None
    # A trial running longer ends FAIL ('timeout ...'), even if its training step hangs.
    trial_timeout: float | None = None
    # Trials FAILED for their own reasons (errors, non-finite loss, timeouts; not
    # interruptions, not lost workers) after which no worker starts another trial.
    max_failures: PositiveInt = 10
    # A sampled configuration that was already trained reuses that trial's figures and uses
    # no budget; after this many such trials in a row the space is taken as exhausted.
    max_duplicates: PositiveInt = 20
    # Stop once the best value has gained no more than the study's own seed noise (the
    # no-regularization baseline's sd over `seeds.noise` seeds) over the last `patience`
    # trials (sweep.search.noise).
    stop_within_noise: bool = False
    patience: PositiveInt = 10

    @field_validator("wall_time", "trial_timeout", mode="before")
    @classmethod
    def _duration(cls, value: Any) -> float | None:
        return None if value is None else parse_duration(value)


class RacingSpec(Frozen):
    """Seed racing (sweep.search.racing): every configuration trains on ``min`` seeds; the
    best ``top_fraction`` of those that reached a seed count get more seeds (1 → 3 → 7 …
    with min 1), up to ``max``; configurations are ranked by their mean over seeds."""

    min: int = Field(1, ge=1, le=20)
    max: int = Field(5, ge=1, le=50)
    top_fraction: float = Field(1 / 3, gt=0.0, lt=1.0)

    @model_validator(mode="after")
    def _ordered(self) -> RacingSpec:
        if self.max < self.min:
            raise ValueError(f"max must be at least min (got min {self.min}, max {self.max})")
        return self


class SeedsSpec(Frozen):
    """Every seed setting of a study, by what the seeds are for (derived from the study's
    `seed`: sweep.seeds). Operational: a resumed study may change any of these."""

    # While the study runs: the leading configurations are trained again on further seeds
    # and ranked by their mean. A mapping (RacingSpec), `true` (its defaults) or `false`;
    # unset: on for single-objective studies of RACING_FROM trials or more.
    racing: RacingSpec | bool | None = None
    # The no-regularization baseline's seeds that measure the study's seed noise, for
    # `budget.stop_within_noise`.
    noise: int = Field(3, ge=2, le=20)
    # After the study: the fresh seeds each confirmed configuration and the baseline are
    # re-trained on and tested once (`sweep report`, `sweep run --confirm`).
    confirm: int = Field(5, ge=2, le=100)


class WorkersSpec(Frozen):
    """How workers share a study (RDB storage): liveness and retries."""

    # A running trial records a heartbeat every `heartbeat_interval` seconds; one silent
    # for `grace_period` seconds belongs to a dead worker and is failed, then retried with
    # the same parameters at most `max_retry` times.
    heartbeat_interval: PositiveInt = 30
    grace_period: PositiveInt = 120
    max_retry: int = Field(2, ge=0)
    # A worker process replaces itself with a fresh one (same pid, os.execv) after this many
    # trials. TensorFlow never frees traced graphs or GPU memory inside a process; trials
    # reuse compiled models (sweep.training.cache), which keeps host memory flat, and renewal bounds
    # whatever a long-lived process would still accumulate.
    recycle_after: PositiveInt = 50
    # Training state (weights, optimizer, epoch) saved every `checkpoint_every` epochs, so
    # that a pre-empted or killed trial resumes where it stopped. The folder must be one
    # that every worker of the study reaches (a shared file system on a cluster); by
    # default `sweep-checkpoints/` next to a SQLite storage, else in the worker's folder.
    checkpoint_dir: str | None = None
    # `auto`: at the first epoch end 30 s or more after the previous save (or the start),
    # so a save costs nothing measurable on short epochs and is made every epoch on long
    # ones; a stopped trial then loses at most about 30 s of training. 0: no checkpoints.
    checkpoint_every: NonNegativeInt | Literal["auto"] = "auto"

    @model_validator(mode="after")
    def _grace_exceeds_interval(self) -> WorkersSpec:
        if self.grace_period <= self.heartbeat_interval:
            raise ValueError(
                f"grace_period must exceed heartbeat_interval (got {self.grace_period} <= "
                f"{self.heartbeat_interval})")
        return self


class TrackingSpec(Frozen):
    experiment: str | None = None
    # |w| below this counts as zero in sparsity/<layer>.
    sparsity_threshold: float = Field(1e-3, gt=0.0)


