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

__all__ = ["Best", "Checked", "Study", "create", "join", "load", "plan_workers", "run",
           "validate"]

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from sweep.api.study import Best, Study
from sweep.locations import (
    DEFAULT_STORAGE,
    DEFAULT_TRACKING_URI,
    check_storage_url,
    check_tracking_uri,
)

if TYPE_CHECKING:
    from sweep.spec import StudySpec


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


@dataclass(frozen=True)
class Checked:
    """A study file as :func:`validate` found it.

    Attributes:
        spec: The study file (``sweep.StudySpec``).
        space: Its search space, checked against the model; None for a builder's model
            that was not run.
        searched: The parameters searched besides the penalties (``train/learning_rate``).
        configurations: How many distinct configurations the space holds, when finite.
        plan: What the budget buys with seed racing (configurations explored, re-runs),
            or None without racing.
    """

    spec: StudySpec
    space: Any
    searched: tuple[str, ...]
    configurations: int | None
    plan: tuple[int, int] | None


def validate(study_file: str | os.PathLike[str], *, run_builder: bool = False,
             build: bool = False) -> Checked:
    """Check a study file as `sweep validate` does; writes nothing.

    Args:
        study_file: The study file (YAML).
        run_builder: Import and run ``model.builder`` (user code) to check the
            placements against its layers.
        build: Also build the model and run it on two samples of the data (imports
            TensorFlow).

    Returns:
        What was found (:class:`Checked`).

    Raises:
        SpecError: Bad input, named by its field.
    """
    from sweep.placement.configurations import space_keys
    from sweep.placement.searched import searched_values
    from sweep.search.racing import budget_plan
    from sweep.spec import load_spec
    from sweep.study.check import check_study

    spec = load_spec(study_file)
    space = check_study(spec, run_builder=run_builder, build_model=build)
    found = None if space is None else space_keys(space)
    return Checked(spec, space, tuple(item.name for item in searched_values(spec)),
                   None if found is None else len(found), budget_plan(spec))


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
