"""The Python API: run a study and read its answer in a few lines, from a notebook or a
script, with what the CLI does underneath (same stores, same MLflow layout)::

    import sweep

    study = sweep.run("studies/digits.yaml", storage="sqlite:///sweep.db", n_trials=12)
    study.best          # Best(trial=7, value=0.97, placement='dense_1: kernel l2=…', …)
    study.trials        # a pandas DataFrame: the rows of `sweep export`
    study.status()      # what `sweep status --format json` prints
    study.report(output="report-digits")  # tables and plots, logged on the study's run

    sweep.load("digits", storage="sqlite:///sweep.db").best   # later, or elsewhere

Bad input raises :class:`sweep.errors.SpecError` (its ``field`` names the argument)
before anything is written; a study limit that failed it raises
:class:`sweep.errors.StudyHalted`.

This is the one application layer: every ``sweep`` command parses its options, calls
these functions and prints what they return, so that a command and a notebook do the
same thing in the same order.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
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
        from sweep.study.results import best_rows

        return best_rows(self.optuna, self.spec, k)

    def top(self, k: int = 1) -> list[Best]:
        """The best configurations, chosen on the validation objective.

        Args:
            k: How many (the whole Pareto front with several objectives).

        Returns:
            A :class:`Best` per configuration, best first.
        """
        from sweep.answers.rows import coefficients
        from sweep.study.grouping import group_label

        by_number = {t.number: t for t in self.optuna.get_trials(deepcopy=False)}
        found = []
        for row in self.best_rows(k):
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
        """The best configuration (:class:`Best`), or None while none has completed."""
        found = self.top(1)
        return found[0] if found else None

    def rows(self) -> list[dict[str, Any]]:
        """Every trial, one record each: what `sweep export` writes.

        Returns:
            A list of dicts: number, state, values, params, resolved placement, final
            figures, MLflow run id.
        """
        from sweep.study.results import export_rows

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
        from sweep.study.results import status

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
        from sweep.study import optuna_internals as internals
        from sweep.study.reaper import reap
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


def plan_workers(storage: str, workers: int = 1, gpus: Sequence[str] = (),
                 trials_per_gpu: int = 1) -> list[Any]:
    """The worker processes a study runs in on this machine.

    Args:
        storage: The study's storage URL.
        workers: Worker processes (without GPUs).
        gpus: GPU ids, one worker per GPU (``trials_per_gpu`` each).
        trials_per_gpu: Workers sharing each GPU.

    Returns:
        The slots, for :meth:`Study.work`.

    Raises:
        SpecError: More than one worker on SQLite (it takes one writer at a time), or a
            count below 1.
    """
    from sweep.workers.launcher import plan_slots

    _whole("workers", workers)
    _whole("trials_per_gpu", trials_per_gpu)
    slots = plan_slots(workers, list(gpus), trials_per_gpu)
    if len(slots) > 1 and storage.startswith("sqlite"):
        from sweep.errors import SpecError

        raise SpecError("workers", "SQLite takes one writer at a time; for several workers "
                        "use a server database, postgresql://user@host/db (see README, "
                        "'Many workers')", len(slots))
    return slots


def create(study_file: str | os.PathLike[str], *, storage: str | None = None,
           tracking_uri: str | None = None, n_trials: int | None = None,
           force_new: bool = False, warm_start: Any = None,
           warm_start_storage: str | None = None, warm_start_top: int = 3) -> Study:
    """Create (or resume) a study for workers to join, as `sweep create` does: the file
    checked (the model built once), the study and its MLflow run created, its baselines
    queued.

    Args:
        study_file: The study file (YAML).
        storage: The Optuna storage URL (default ``$SWEEP_STORAGE``, else SQLite here).
        tracking_uri: The MLflow tracking URI (default ``$MLFLOW_TRACKING_URI``, else
            SQLite here).
        n_trials: Overrides ``budget.n_trials``.
        force_new: Archive a stored study whose spec differs and start anew.
        warm_start: An earlier study's name whose best configurations are queued as the
            first trials (or a ``WarmStart`` the CLI has opened).
        warm_start_storage: That study's storage URL (default ``storage``).
        warm_start_top: How many of its best configurations.

    Returns:
        The :class:`Study`.

    Raises:
        SpecError: Bad input (the file, an argument, a stored spec that differs), named
            by its field, before anything is written.
    """
    from sweep.spec import load_spec
    from sweep.study.check import check_study
    from sweep.study.source import git_commit
    from sweep.study.warm import WarmStart
    from sweep.workers.session import create_study

    storage, tracking_uri = _stores(storage, tracking_uri)
    _whole("n_trials", n_trials)
    _whole("warm_start_top", warm_start_top)
    if isinstance(warm_start, str):
        warm_start = WarmStart(warm_start, check_storage_url(
            warm_start_storage or storage, "warm_start_storage"), warm_start_top).opened()
    elif warm_start_storage is not None and warm_start is None:
        from sweep.errors import SpecError

        raise SpecError("warm_start_storage", "needs warm_start (an earlier study's name)",
                        warm_start_storage, show_value=False)
    spec = load_spec(study_file)
    space = check_study(spec)
    return Study(create_study(spec, space, storage, tracking_uri, force_new=force_new,
                              n_trials=n_trials, warm_start=warm_start,
                              commit=git_commit(study_file)))


def run(study_file: str | os.PathLike[str], *, storage: str | None = None,
        tracking_uri: str | None = None, n_trials: int | None = None,
        force_new: bool = False, show_progress: bool = True, workers: int = 1,
        gpus: Sequence[str] = (), trials_per_gpu: int = 1, warm_start: Any = None,
        warm_start_storage: str | None = None, warm_start_top: int = 3,
        on_created: Callable[[Study], None] | None = None) -> Study:
    """Create (or resume) a study and run it to its budget on this machine, as
    `sweep run` does.

    Args:
        study_file, storage, tracking_uri, n_trials, force_new, warm_start,
        warm_start_storage, warm_start_top: As in :func:`create`.
        show_progress: Progress bars on a terminal, one line per trial elsewhere.
        workers, gpus, trials_per_gpu: As in :func:`plan_workers` (default: this
            process alone).
        on_created: Called with the study before its first trial (the CLI prints what
            the budget buys there).

    Returns:
        The :class:`Study`, trained.

    Raises:
        SpecError: Bad input, before anything is written.
        StudyHalted: A study limit stopped it.
    """
    from sweep.tracking.spool import check_spool_dir

    storage, tracking_uri = _stores(storage, tracking_uri)
    slots = plan_workers(storage, workers, gpus, trials_per_gpu)
    check_spool_dir()
    study = create(study_file, storage=storage, tracking_uri=tracking_uri, n_trials=n_trials,
                   force_new=force_new, warm_start=warm_start,
                   warm_start_storage=warm_start_storage, warm_start_top=warm_start_top)
    if on_created is not None:
        on_created(study)
    study.work(slots, gpus=bool(gpus), show_progress=show_progress)
    return study


def load(name: str, *, storage: str | None = None, tracking_uri: str | None = None,
         writable: bool = False) -> Study:
    """An existing study, by name (`sweep list` shows them).

    Args:
        name: The study's name.
        storage: As in :func:`create`.
        tracking_uri: As in :func:`create`.
        writable: Open the storage for writing (confirming, registering, reaping);
            read-only skips the schema check, which is quicker.

    Returns:
        The :class:`Study`.

    Raises:
        SpecError: No such study or storage.
    """
    from sweep.study.create import load_named
    from sweep.workers.session import Session

    storage, tracking_uri = _stores(storage, tracking_uri)
    _, study, spec = load_named(storage, name, read_only=not writable, field="storage")
    return Study(Session(study, spec, storage, tracking_uri))


def join(name: str, *, storage: str | None = None, tracking_uri: str | None = None,
         max_trials: int | None = None, wait_seconds: int = 0,
         show_progress: bool = True) -> Study:
    """Work on an existing study as one more worker, as `sweep worker` does.

    Args:
        name: The study's name.
        storage: As in :func:`create`.
        tracking_uri: As in :func:`create`.
        max_trials: Stop this worker after this many trials (the budget still holds).
        wait_seconds: Wait this long for the study to exist (a cluster worker may start
            before `sweep create` has run).
        show_progress: Progress bars on a terminal, one line per trial elsewhere.

    Returns:
        The :class:`Study`, once its budget is spent or this worker's share is done.

    Raises:
        SpecError: No such study after ``wait_seconds``.
    """
    from sweep.tracking.spool import check_spool_dir
    from sweep.workers.session import Session, wait_for_study, work_in_batches

    storage, tracking_uri = _stores(storage, tracking_uri)
    _whole("max_trials", max_trials)
    check_spool_dir()
    _, optuna_study, spec = wait_for_study(storage, name, wait_seconds)
    session = Session(optuna_study, spec, storage, tracking_uri)
    work_in_batches(session, max_trials=max_trials, show_progress=show_progress)
    return Study(session)
