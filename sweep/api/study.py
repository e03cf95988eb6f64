"""The study as the Python API hands it out (:class:`Study`) and its answer
(:class:`Best`); made by ``sweep.run``, ``create``, ``load`` and ``join`` (sweep.api)."""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sweep.keys import PLACEMENT, SETTINGS


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
    a study other workers are running shows its current state.

    Made by :func:`run`, :func:`create`, :func:`load` and :func:`join`, not directly:
    each holds the process's ``Session`` (sweep.workers.session), the one object that
    commands, the API and the worker loop share.

    Attributes:
        optuna: The ``optuna.Study`` itself.
        spec: The study file as stored in the study (``sweep.StudySpec``).
        storage: The Optuna storage URL.
        tracking_uri: The MLflow tracking URI.
    """

    def __init__(self, session: Any):
        self._session = session
        self.optuna = session.study
        self.spec = session.spec
        self.storage = session.storage
        self.tracking_uri = session.tracking_uri

    @property
    def space(self) -> Any:
        """The study's search space, checked against its model (built once, on first
        use: imports TensorFlow)."""
        return self._session.space

    @property
    def name(self) -> str:
        """The study's name."""
        return self.spec.name

    def __repr__(self) -> str:
        from sweep.redact import mask_url

        return f"Study({self.name!r}, storage={mask_url(self.storage)!r})"

    def best_rows(self, k: int = 1) -> list[dict[str, Any]]:
        """The best configurations, as `sweep best --format json` prints them.

        Args:
            k: How many (the whole Pareto front with several objectives).

        Returns:
            One record per configuration, best first: its number, value over seeds, sd,
            params, final figures, the difference to no regularization, the MLflow run.
        """
        from sweep.results.queries import best_rows

        return best_rows(self.optuna, self.spec, k)

    def top(self, k: int = 1) -> list[Best]:
        """The best configurations, chosen on the validation objective.

        Args:
            k: How many (the whole Pareto front with several objectives).

        Returns:
            A :class:`Best` per configuration, best first.
        """
        from sweep.answers.rows import coefficients

        by_number = {t.number: t for t in self.optuna.get_trials(deepcopy=False)}
        found = []
        for row in self.best_rows(k):
            trial = by_number[row["number"]]
            found.append(Best(
                trial=row["number"], metric=self.spec.primary.metric, value=row["value"],
                placement=row["group"],
                resolved_placement=trial.user_attrs.get(PLACEMENT) or {},
                coefficients=coefficients(trial), vs_baseline=row["vs_baseline"],
                baseline_trial=row["baseline_trial"], mlflow_run_id=row["mlflow_run_id"],
                seeds=row["seeds"], sd=row["sd"],
                settings=trial.user_attrs.get(SETTINGS) or {}))
        return found

    @property
    def plan(self) -> tuple[int, int] | None:
        """What the budget buys with seed racing: (configurations explored, re-runs of
        the leaders on further seeds), or None without racing."""
        from sweep.search.racing import budget_plan

        return budget_plan(self.spec)

    @property
    def headline(self) -> str:
        """The study's answer in one sentence, as `sweep run`, `sweep best`, the report
        and the study's MLflow run say it (the verdict over seeds once confirmed)."""
        from sweep.answers.headline import study_headline

        return study_headline(self.optuna, self.spec)

    @property
    def best(self) -> Best | None:
        """The best configuration (:class:`Best`), or None while none has completed."""
        found = self.top(1)
        return found[0] if found else None

    def rows(self) -> list[dict[str, Any]]:
        """Every trial, one record each: what `sweep export` writes.

        Returns:
            A list of dicts: number, state, values, params, resolved placement, final
            figures, MLflow run id.
        """
        from sweep.results.queries import export_rows

        return export_rows(self.optuna, self.spec)

    @property
    def trials(self) -> Any:
        """Every trial as a pandas DataFrame, one row each (the columns of `sweep export`)."""
        import pandas as pd

        return pd.DataFrame(self.rows())

    def status(self) -> dict[str, Any]:
        """What `sweep status --format json` prints.

        Returns:
            Counts by state, the budget, the best so far, the running workers and the
            throughput.
        """
        from sweep.results.queries import status

        return status(self.optuna, self.spec)

    @property
    def registration(self) -> Any:
        """What ``report.register`` did at the last report: a
        ``sweep.answers.register.Registration`` (registered version, or why not), or None."""
        from sweep.answers.register import stored_registration

        return stored_registration(self.optuna)

    def reap(self) -> list[int]:
        """Fail the trials of dead workers now, as `sweep reap` does (workers do it on
        their own before each trial): stale heartbeat, retry queued, MLflow run FAILED.

        Returns:
            The numbers of the trials failed.

        Raises:
            FatalError: The storage cannot be written (open it with ``writable=True``).
        """
        from sweep.search.reaper import reap
        from sweep.storage import optuna_internals as internals
        from sweep.workers.loop import enable_heartbeats

        enable_heartbeats(internals.storage(self.optuna), self.spec, self.tracking_uri)
        return reap(self.optuna)

    def work(self, slots: Sequence[Any] | None = None, *, gpus: bool = False,
             show_progress: bool = True) -> None:
        """Train the study to its budget on this machine.

        Args:
            slots: Worker processes (:func:`plan_workers`) that this one supervises;
                None: this process alone.
            gpus: Whether the slots are GPUs (``CUDA_VISIBLE_DEVICES`` per worker).
            show_progress: Progress bars on a terminal, one line per trial elsewhere.

        Raises:
            StudyHalted: A study limit (``budget.max_failures``, ``wall_time``) stopped it.
        """
        from sweep.workers.launcher import plan_slots
        from sweep.workers.session import run_here

        run_here(self._session, list(slots) if slots is not None else plan_slots(1, [], 1),
                 gpus=gpus, show_progress=show_progress)

    def confirm(self, top: int | None = None, *, show_progress: bool = True) -> Any:
        """Re-train the best configurations and no regularization over fresh seeds,
        each tested once on the test split. Stored in the study, so asking again
        re-trains nothing; Ctrl-C or SIGTERM stop between trainings and keep what is done.

        Args:
            top: How many of the best (default ``report.confirm_top``); a study that
                searches a regularizer besides the penalties also gets each family's best.
            show_progress: A progress bar on a terminal.

        Returns:
            The ``Confirmation`` (its configs, their figures per seed, the comparison
            with no regularization), or None with nothing to confirm.
        """
        from sweep.answers.confirm import confirm_stoppable

        return confirm_stoppable(self.optuna, self.spec, tracking_uri=self.tracking_uri,
                                 top=top, show_progress=show_progress)

    def report(self, output: str | os.PathLike[str] | None = None, *,
               confirm: bool | None = False, show_progress: bool = False,
               show: Callable[..., None] | None = None, painter: Any = None,
               on_note: Callable[[str], None] | None = None) -> Path:
        """Write the report (Markdown, HTML, JSON, pictures) and log it on the study's
        MLflow run, as `sweep report` does.

        Args:
            output: The folder (default ``./report-NAME/``).
            confirm: Re-train the best configurations over seeds first; None: as the
                spec's ``report.confirm_top`` says.
            show_progress: A progress bar while confirming.
            show: Also called with the tables (the CLI prints them on the terminal).
            painter: A started ``Painter`` to draw the pictures in (the CLI starts it
                while the study loads).
            on_note: Called with what the reader should know (MLflow params that kept
                an earlier report's value).

        Returns:
            The folder written.
        """
        from sweep.answers.report import make_report

        out = Path(output if output is not None else f"report-{self.name}")
        _, stale = make_report(self.optuna, self.spec, self.tracking_uri, out,
                               confirm=confirm, show_progress=show_progress, show=show,
                               painter=painter)
        if stale and on_note is not None:
            on_note(f"MLflow params cannot change; {', '.join(stale)} keep the value of an "
                    "earlier report, the run's tags of the same names hold the current one.")
        return out
