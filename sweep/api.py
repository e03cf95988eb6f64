"""The Python API: run a study and read its answer in a few lines, from a notebook or a
script, with what the CLI does underneath (same stores, same MLflow layout)::

    import sweep

    study = sweep.run("studies/digits.yaml", storage="sqlite:///sweep.db", n_trials=12)
    study.best          # Best(trial=7, value=0.97, placement='dense_1: kernel l2=…', …)
    study.trials        # a pandas DataFrame: the rows of `sweep export`
    study.status()      # what `sweep status --format json` prints
    study.report(output="report-digits")  # tables and plots, logged on the study's run

    sweep.load("digits", storage="sqlite:///sweep.db").best   # later, or elsewhere

Bad input raises :class:`sweep.errors.SpecError` before anything is written; a study
limit that failed it raises :class:`sweep.errors.StudyHalted`.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sweep.keys import PLACEMENT, SETTINGS
from sweep.locations import (
    DEFAULT_STORAGE,
    DEFAULT_TRACKING_URI,
    check_storage_url,
    check_tracking_uri,
)


@dataclass(frozen=True)
class Best:
    """One of the best trials, chosen on the validation objective."""

    trial: int
    metric: str
    value: float
    placement: str  # where penalties went, in words ("none" for no regularization)
    resolved_placement: dict[str, Any]  # {slot: {target: {l1|l2: coefficient}}}
    coefficients: dict[str, float]  # the searched (or applied) l1/l2 values
    vs_baseline: float | None  # value minus the no-regularization baseline's
    baseline_trial: int | None
    mlflow_run_id: str | None
    # Seed racing: ``value`` is the configuration's mean over ``seeds`` seeds, ``sd`` their
    # standard deviation (None over one seed), ``vs_baseline`` against the baseline's mean.
    seeds: int = 1
    sd: float | None = None
    # What else the study searches, at this configuration's values ({name: value}).
    settings: dict[str, Any] = field(default_factory=dict)


class Study:
    """A study in its storage, with its stored spec; read again on every access, so that
    a study other workers are running shows its current state."""

    def __init__(self, optuna_study: Any, spec: Any, *, storage: str, tracking_uri: str):
        self.optuna = optuna_study
        self.spec = spec
        self.storage = storage
        self.tracking_uri = tracking_uri

    @property
    def name(self) -> str:
        return self.spec.name

    def __repr__(self) -> str:
        from sweep.redact import mask_url

        return f"Study({self.name!r}, storage={mask_url(self.storage)!r})"

    def top(self, k: int = 1) -> list[Best]:
        """The best ``k`` completed trials (the Pareto front of a multi-objective study)."""
        from sweep.answers.rows import coefficients
        from sweep.study.grouping import group_label
        from sweep.study.results import best_rows

        by_number = {t.number: t for t in self.optuna.get_trials(deepcopy=False)}
        found = []
        for row in best_rows(self.optuna, self.spec, k):
            trial = by_number[row["number"]]
            found.append(Best(
                trial=row["number"], metric=self.spec.primary.metric, value=row["value"],
                placement=group_label(trial, self.spec),
                resolved_placement=trial.user_attrs.get(PLACEMENT) or {},
                coefficients=coefficients(trial), vs_baseline=row["vs_baseline"],
                baseline_trial=row["baseline_trial"], mlflow_run_id=row["mlflow_run_id"],
                seeds=row["seeds"], sd=row["sd"],
                settings=trial.user_attrs.get(SETTINGS) or {}))
        return found

    @property
    def best(self) -> Best | None:
        """The best completed trial, or None while none has completed."""
        found = self.top(1)
        return found[0] if found else None

    @property
    def trials(self) -> Any:
        """Every trial as a pandas DataFrame, one row each (the columns of `sweep export`)."""
        import pandas as pd

        from sweep.study.results import export_rows

        return pd.DataFrame(export_rows(self.optuna, self.spec))

    def status(self) -> dict[str, Any]:
        """Counts by state, budget, best so far, running workers, throughput."""
        from sweep.study.results import status

        return status(self.optuna, self.spec)

    @property
    def registration(self) -> Any:
        """What ``report.register`` did at the last report: a
        ``sweep.answers.register.Registration`` (registered version, or why not), or None."""
        from sweep.answers.register import stored_registration

        return stored_registration(self.optuna)

    def report(self, output: str | os.PathLike[str] | None = None, *,
               confirm: bool | None = False, show_progress: bool = False) -> Path:
        """Write the report (Markdown, HTML, JSON, pictures) into ``output`` (default
        ``./report-NAME/``), log it on the study's MLflow run and return the folder.
        ``confirm``: re-train the best configurations over seeds first (None: as the
        spec's ``report.confirm_top`` says)."""
        from sweep.answers.report import make_report

        out = Path(output if output is not None else f"report-{self.name}")
        make_report(self.optuna, self.spec, self.tracking_uri, out, confirm=confirm,
                    show_progress=show_progress)
        return out


def _stores(storage: str | None, tracking_uri: str | None) -> tuple[str, str]:
    """The stores given, else the environment's (as the CLI), else the defaults."""
    storage = storage or os.environ.get("SWEEP_STORAGE") or DEFAULT_STORAGE
    tracking_uri = tracking_uri or os.environ.get("MLFLOW_TRACKING_URI") \
        or DEFAULT_TRACKING_URI
    return check_storage_url(storage, "storage"), check_tracking_uri(tracking_uri, "tracking_uri")


def _whole(name: str, value: Any) -> None:
    if value is not None and (not isinstance(value, int) or isinstance(value, bool)
                              or value < 1):
        from sweep.errors import SpecError

        raise SpecError(name, "must be a whole number of at least 1", value)


def _created(study_file: str | os.PathLike[str], storage: str, tracking_uri: str, *,
             n_trials: int | None, force_new: bool, warm_start: str | None,
             warm_start_storage: str | None, warm_start_top: int) -> tuple[Any, Any, Any]:
    from sweep.spec import load_spec
    from sweep.study.check import check_study
    from sweep.study.source import git_commit
    from sweep.study.warm import WarmStart
    from sweep.workers.session import create_study

    _whole("n_trials", n_trials)
    _whole("warm_start_top", warm_start_top)
    warm = None
    if warm_start is not None:
        warm = WarmStart(warm_start, check_storage_url(
            warm_start_storage or storage, "warm_start_storage"), warm_start_top)
    spec = load_spec(study_file)
    space = check_study(spec)
    study, spec = create_study(spec, space, storage, tracking_uri, force_new=force_new,
                               n_trials=n_trials, warm_start=warm,
                               commit=git_commit(study_file))
    return study, spec, space


def create(study_file: str | os.PathLike[str], *, storage: str | None = None,
           tracking_uri: str | None = None, warm_start: str | None = None,
           warm_start_storage: str | None = None, warm_start_top: int = 3) -> Study:
    """Create the study of ``study_file`` for workers to join, as `sweep create` does.
    ``warm_start``: an earlier study (in ``warm_start_storage``, default ``storage``)
    whose best ``warm_start_top`` configurations are queued as the first trials."""
    storage, tracking_uri = _stores(storage, tracking_uri)
    study, spec, _ = _created(study_file, storage, tracking_uri, n_trials=None,
                              force_new=False, warm_start=warm_start,
                              warm_start_storage=warm_start_storage,
                              warm_start_top=warm_start_top)
    return Study(study, spec, storage=storage, tracking_uri=tracking_uri)


def run(study_file: str | os.PathLike[str], *, storage: str | None = None,
        tracking_uri: str | None = None, n_trials: int | None = None,
        force_new: bool = False, show_progress: bool = True,
        warm_start: str | None = None, warm_start_storage: str | None = None,
        warm_start_top: int = 3) -> Study:
    """Create (or resume) the study of ``study_file`` and run it to its budget in this
    process, as `sweep run` does; ``n_trials`` overrides ``budget.n_trials``; the
    ``warm_start`` arguments as in :func:`create`."""
    from sweep.tracking.spool import check_spool_dir
    from sweep.workers.launcher import plan_slots
    from sweep.workers.session import run_here

    storage, tracking_uri = _stores(storage, tracking_uri)
    check_spool_dir()
    study, spec, space = _created(study_file, storage, tracking_uri, n_trials=n_trials,
                                  force_new=force_new, warm_start=warm_start,
                                  warm_start_storage=warm_start_storage,
                                  warm_start_top=warm_start_top)
    run_here(study, spec, space, storage, tracking_uri, plan_slots(1, [], 1), gpus=False,
             show_progress=show_progress)
    return Study(study, spec, storage=storage, tracking_uri=tracking_uri)


def load(name: str, *, storage: str | None = None, tracking_uri: str | None = None) -> Study:
    """An existing study, by name (``sweep list`` shows them)."""
    from sweep.study.create import load_named

    storage, tracking_uri = _stores(storage, tracking_uri)
    _, study, spec = load_named(storage, name, field="storage")
    return Study(study, spec, storage=storage, tracking_uri=tracking_uri)
