"""The ``sweep`` command line.

Exit codes: 0 success, 2 bad input (spec, flags, unknown study) with the field and the
value named, 1 a runtime failure. Commands that do not train never import TensorFlow or
MLflow, so they answer at once.
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
import os
import signal
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import click

from sweep.errors import FatalError, SpecError, StudyHalted
from sweep.interrupt import stop_exit_code
from sweep.locations import (
    DEFAULT_STORAGE,
    DEFAULT_TRACKING_URI,
    blocking_file,
    check_storage_url,
    check_tracking_uri,
)
from sweep.redact import mask_url


class _Group(click.Group):
    """Turns our exceptions into the documented exit codes and one-line messages."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except SpecError as error:
            click.echo(f"error: {error}", err=True)
            ctx.exit(2)
        except FatalError as error:
            from sweep.training.runtime import VERBOSE

            if os.environ.get(VERBOSE):
                raise
            click.echo(f"error: {error}", err=True)
            ctx.exit(1)
        except StudyHalted as error:
            click.echo(f"{'error: ' if error.failed else ''}{error}", err=True)
            ctx.exit(1 if error.failed else 0)
        except (click.ClickException, click.exceptions.Exit, click.exceptions.Abort):
            raise
        except KeyboardInterrupt as error:
            name = (str(error) or "SIGINT").split()[0]
            if ctx.invoked_subcommand in ("run", "worker"):
                # The running trial has already been closed (FAIL "interrupted", run
                # KILLED) and its configuration queued again.
                click.echo(f"stopped ({name}): a trial in progress was queued again with "
                           "its place in the budget; the next worker resumes it from its "
                           "last checkpoint.", err=True)
            else:
                click.echo(f"stopped ({name}); what was finished is kept.", err=True)
            ctx.exit(stop_exit_code(name))
        except Exception as error:  # anything else: its cause in one line, not a traceback
            from sweep.errors import describe_failure, root_cause
            from sweep.training.runtime import VERBOSE

            if os.environ.get(VERBOSE):
                raise
            click.echo(f"error: {describe_failure(root_cause(error), 300)} "
                       "(sweep --verbose shows where)", err=True)
            ctx.exit(1)


@contextlib.contextmanager
def _sigterm_as_interrupt() -> Iterator[None]:
    """SIGTERM stops a blocking server the way Ctrl-C does. (Workers instead use
    ``sweep.interrupt``, which stops only at safe points.)"""
    previous = signal.signal(signal.SIGTERM, signal.default_int_handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _storage_url(ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
    # A URL that cannot work is bad input: refused here, before any command writes.
    return check_storage_url(value) if value else value


def _tracking_uri(ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
    return check_tracking_uri(value) if value else value


def _output_file(ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
    if value is not None and (blocking := blocking_file(Path(value))) is not None:
        raise SpecError(f"--{param.name}", f"{blocking} is a file, not a folder", value)
    return value


def _output_folder(ctx: click.Context, param: click.Parameter,
                   value: str | None) -> str | None:
    if value is not None and (blocking := blocking_file(Path(value) / "x")) is not None:
        raise SpecError("--out", f"{blocking} is a file, not a folder", value)
    return value


storage_option = click.option(
    "--storage", envvar="SWEEP_STORAGE", default=DEFAULT_STORAGE, show_default=True,
    callback=_storage_url,
    help="Optuna storage URL (env SWEEP_STORAGE), e.g. postgresql://user@host/db.")
tracking_option = click.option(
    "--tracking-uri", envvar="MLFLOW_TRACKING_URI", default=DEFAULT_TRACKING_URI,
    show_default=True, callback=_tracking_uri,
    help="MLflow tracking URI (env MLFLOW_TRACKING_URI).")
json_option = click.option("--json", "as_json", is_flag=True,
                           help="Print one JSON document on stdout and nothing else.")
progress_option = click.option("--no-progress", is_flag=True,
                               help="One line per finished trial instead of progress bars.")


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="regsweep")
@click.option("--verbose", is_flag=True,
              help="Show TensorFlow's start-up lines and a traceback with any error.")
def cli(verbose: bool) -> None:
    """regsweep: find where L1/L2 penalties belong in a Keras network, and how strong."""
    from sweep.training.runtime import VERBOSE

    if verbose:
        os.environ[VERBOSE] = "1"  # also for the worker processes a launcher starts


# ------------------------------------------------------------------ helpers
def _quiet_optuna() -> None:
    import optuna

    # Our own progress lines say what finished and why; Optuna's INFO lines would repeat it.
    optuna.logging.set_verbosity(optuna.logging.ERROR)


def _read_storage(url: str, *, read_only: bool = True):
    """Open a storage that must already exist (read-only commands)."""
    from sweep.study.storage import open_storage

    if url.startswith("sqlite:///") and url != "sqlite:///:memory:":
        path = Path(url.removeprefix("sqlite:///"))
        if not path.exists():
            raise SpecError("--storage", "no study storage at this path", url)
    return open_storage(url, read_only=read_only)


def _load(storage_url: str, name: str, *, read_only: bool = True):
    from sweep.study.create import load

    _quiet_optuna()
    storage = _read_storage(storage_url, read_only=read_only)
    study, spec = load(storage, name, storage_url=storage_url)
    return storage, study, spec


def _load_waiting(storage_url: str, name: str, seconds: int):
    """``_load``, retried every 2 s for up to ``seconds`` while the study (or the database)
    is not there yet."""
    deadline = time.monotonic() + seconds
    said = False
    while True:
        try:
            return _load(storage_url, name, read_only=False)
        except (SpecError, FatalError) as error:
            if time.monotonic() >= deadline or (
                    isinstance(error, SpecError) and error.field != "STUDY_NAME"
                    and "no study storage" not in error.message):
                raise
            if not said:  # once: a cluster log shows why the worker has not started yet
                click.echo(f"waiting up to {seconds} s for study '{name}' in "
                           f"{mask_url(storage_url)} ({error})", err=True)
                said = True
            time.sleep(2)


def _checked_spec(study_file: str):
    from sweep.spec import load_spec
    from sweep.study.check import check_study

    spec = load_spec(study_file)
    return spec, check_study(spec)


UI_PORT = 5000


def _ui_hint(tracking_uri: str, experiment: str | None = None, study: Any = None,
             spec: Any = None, *, look_up: bool = True) -> str:
    """Where to look: the runs view of the study's experiment, on the tracking server or
    on the `sweep ui` this prints, and with ``study`` the links to the study's run and
    its best trial's run. The ids come from what the study recorded (keys.MLFLOW_PLACE),
    else from MLflow when ``look_up`` (which costs the import of MLflow)."""
    from sweep.keys import MLFLOW_PLACE
    from sweep.tracking.tracker import find_experiment_id, runs_view_url, sorted_runs_query

    served = tracking_uri.startswith(("http://", "https://"))
    base = mask_url(tracking_uri) if served else f"http://127.0.0.1:{UI_PORT}"
    place = {} if study is None else study.user_attrs.get(MLFLOW_PLACE) or {}
    if place.get("tracking") != mask_url(tracking_uri):  # recorded for another store
        place = {}
    experiment_id = place.get("experiment_id") or (
        find_experiment_id(tracking_uri, experiment) if experiment and look_up else None)
    query = sorted_runs_query(spec) if spec is not None else None
    link = runs_view_url(base, experiment_id, query) if experiment_id else base
    if served:
        first = f"open {link}"
    else:
        flag = "" if tracking_uri == os.environ.get("MLFLOW_TRACKING_URI",
                                                    DEFAULT_TRACKING_URI) \
            else f" --tracking-uri '{mask_url(tracking_uri)}'"
        first = f"sweep ui{flag}, then open {link}"
    if experiment_id is None or study is None:
        return first
    study_run = place.get("study_run_id")
    if study_run is None and not look_up:
        return first
    return "\n".join([first, *(f"  {label}: {url}" for label, url in _run_links(
        tracking_uri, base, experiment_id, study, spec, study_run))])


def _run_links(tracking_uri: str, base: str, experiment_id: str, study: Any, spec: Any,
               study_run: str | None) -> list[tuple[str, str]]:
    """(label, link) of the study's own run and of the best trial's run, where they exist."""
    from sweep.study.create import UID_ATTR
    from sweep.study.results import logged_run_id, sorted_complete
    from sweep.tracking.tracker import find_study_run, run_url

    links = []
    if study_run is None:
        study_run = find_study_run(tracking_uri, experiment_id,
                                   study.user_attrs.get(UID_ATTR, ""))
    if study_run is not None:
        links.append(("study run", run_url(base, experiment_id, study_run)))
    ranked = [] if spec is None or spec.is_multi_objective else sorted_complete(study, spec)
    best_run = logged_run_id(ranked[0], study.user_attrs) if ranked else None
    if best_run is not None:
        links.append((f"best run (trial #{ranked[0].number})",
                      run_url(base, experiment_id, best_run)))
    return links


def _print_best(study: Any, spec: Any, tracking_uri: str, storage: str = DEFAULT_STORAGE) -> None:
    from sweep.study.results import best_rows

    rows = best_rows(study, spec, 1)
    if not rows:
        click.echo("no trial completed.")
    else:
        best = rows[0]
        params = ", ".join(f"{k[6:]}={v:.3g}" if isinstance(v, float) else f"{k[6:]}={v}"
                           for k, v in best.items() if k.startswith("param:"))
        click.echo(f"best trial: #{best['number']}  {spec.primary.metric} = "
                   f"{best['value']:.4f}")
        click.echo(f"  placement:    {best['placement']}")
        click.echo(f"  parameters:   {params or '(none searched)'}")
        click.echo(f"  mlflow run:   {best['mlflow_run_id']}")
        if best["vs_baseline"] is not None:
            click.echo(f"  vs no regularization: {best['vs_baseline']:+.4f} "
                       f"(trial #{best['baseline_trial']})")
        if spec.is_multi_objective:
            click.echo(f"Pareto front: {len(rows)} trials; list them with: "
                       f"sweep best {spec.name}")
    click.echo(f"inspect it with: {_ui_hint(tracking_uri, spec.experiment_name, study, spec)}")
    if rows:
        # Flags the environment does not already supply, so that the line works as printed.
        flags = "".join(
            f" {flag} '{mask_url(value)}'" for flag, value, variable, default in (
                ("--storage", storage, "SWEEP_STORAGE", DEFAULT_STORAGE),
                ("--tracking-uri", tracking_uri, "MLFLOW_TRACKING_URI", DEFAULT_TRACKING_URI))
            if value != os.environ.get(variable, default))
        click.echo(f"tables, plots and a check against seed noise: "
                   f"sweep report {spec.name}{flags}")


# ------------------------------------------------------------------ commands
@cli.command()
@click.argument("study_file", type=click.Path(dir_okay=False))
@click.option("--run-builder", is_flag=True,
              help="Import and run model.builder (user code) to check the placements "
                   "against its layers; without it, validate runs no code of the study.")
@click.option("--build", is_flag=True,
              help="Also build the model and run it on two samples of the data (layer "
                   "keywords, input shape, outputs against the classes): imports "
                   "TensorFlow, so seconds instead of a fraction of one. run and create "
                   "always do it.")
def validate(study_file: str, run_builder: bool, build: bool) -> None:
    """Check a study file: keys, types, ranges, selectors, data paths. Writes nothing."""
    from sweep.spec import load_spec
    from sweep.study.check import check_study

    spec = load_spec(study_file)
    space = check_study(spec, run_builder=run_builder, build_model=build)
    slots = "not checked" if space is None else ", ".join(space.candidate_slots) or "none"
    click.echo(f"ok: study '{spec.name}', {spec.budget.n_trials} trials, "
               f"sampler {spec.sampler}, objective {spec.primary.metric} "
               f"({spec.primary.resolved_direction}); slots searched: {slots}")
    if space is None:
        click.echo(f"note: model.builder {spec.model.builder!r} is code and was not run; "
                   "`sweep validate --run-builder` builds the model and checks the "
                   "placements against its layers (run and create always do).")


def _parse_gpus(ctx: click.Context, param: click.Parameter, value: str | None) -> list[str]:
    if not value:
        return []
    gpus = [g.strip() for g in value.split(",")]
    if not all(g.isdigit() for g in gpus) or len(set(gpus)) != len(gpus):
        raise click.BadParameter(f"must be distinct GPU ids like 0,1,2 (got {value!r})")
    return gpus


@cli.command()
@click.argument("study_file", type=click.Path(dir_okay=False))
@storage_option
@tracking_option
@click.option("--n-trials", type=click.IntRange(min=1),
              help="Study-wide budget for this run (overrides budget.n_trials).")
@click.option("--workers", type=click.IntRange(min=1), default=1, show_default=True,
              help="Worker processes on this machine (needs a server database, not SQLite).")
@click.option("--gpus", callback=_parse_gpus,
              help="One worker per GPU, e.g. 0,1,2,3 (CUDA_VISIBLE_DEVICES per worker).")
@click.option("--trials-per-gpu", type=click.IntRange(min=1), default=1, show_default=True,
              help="Workers sharing each GPU (for small models).")
@click.option("--force-new", is_flag=True,
              help="If the stored spec differs, archive the old study and start a new one.")
@click.option("--confirm", "confirm_top", type=click.IntRange(min=0),
              help="Afterwards re-train the best K configs and the no-regularization "
                   "baseline over report.seeds seeds, tested once on the test split "
                   "(default: none; `sweep report` does it with report.confirm_top).")
@progress_option
def run(study_file: str, storage: str, tracking_uri: str, n_trials: int | None, workers: int,
        gpus: list[str], trials_per_gpu: int, force_new: bool, confirm_top: int | None,
        no_progress: bool) -> None:
    """Create (or resume) a study from STUDY_FILE and run it to its budget."""
    from sweep.workers.launcher import plan_slots

    slots = plan_slots(workers, gpus, trials_per_gpu)
    if len(slots) > 1 and storage.startswith("sqlite"):
        raise SpecError(
            "--workers", "SQLite takes one writer at a time; for several workers use "
            "--storage postgresql://user@host/db (see README, 'Many workers')", len(slots))
    from sweep.study.budget import used_budget
    from sweep.tracking.spool import check_spool_dir

    check_spool_dir()
    spec, space = _checked_spec(study_file)
    study, spec = _create(spec, space, storage, tracking_uri, force_new, n_trials)
    remaining = spec.budget.n_trials - used_budget(study.get_trials(deepcopy=False))
    if len(slots) == 1 and not gpus and remaining <= spec.workers.recycle_after:
        # Small enough for this process (see workers.recycle_after): no start-up cost.
        _work(study, spec, space, tracking_uri, None, no_progress, worker_index=0)
    else:
        _supervise(study, spec, storage, tracking_uri, slots,
                   show_progress=len(slots) == 1 and not no_progress)
        _raise_if_halted(study, spec)
    _print_best(study, spec, tracking_uri, storage)
    if confirm_top:
        _print_confirmation(_confirm(study, spec, tracking_uri, top=confirm_top,
                                     show_progress=not no_progress))


def _confirm(study: Any, spec: Any, tracking_uri: str, *, top: int | None = None,
             show_progress: bool = True) -> Any:
    """Re-train the best configs and the baseline over seeds (sweep.answers.confirm); Ctrl-C
    stops between trainings and keeps what is done."""
    from sweep.answers.confirm import ensure_confirmation
    from sweep.interrupt import stop_on_signals

    with stop_on_signals():
        return ensure_confirmation(study, spec, tracking_uri=tracking_uri, top=top,
                                   show_progress=show_progress)


def _print_confirmation(confirmation: Any) -> None:
    if confirmation is None:
        click.echo("nothing to confirm: no completed trial besides the baseline.")
        return
    metric = confirmation.metric
    click.echo(f"confirmed over {len(confirmation.configs[0].seeds)} seeds "
               f"({metric}, mean ± std; vs no regularization, 95% CI):")
    for config in confirmation.configs:
        mean, std = config.mean(metric), config.std(metric)
        figure = "failed" if mean is None else f"{mean:.4f} ± {std or 0.0:.4f}"
        line = f"  {config.label:<44} {figure}"
        comparison = confirmation.compare(config)
        if comparison is not None:
            verdict = "exceeds seed noise" if comparison.significant else "within seed noise"
            line += (f"  {comparison.difference:+.4f} [{comparison.ci_low:+.4f}, "
                     f"{comparison.ci_high:+.4f}] p={comparison.p_value:.3g} ({verdict})")
        click.echo(line)


def _create(spec: Any, space: Any, storage_url: str, tracking_uri: str, force_new: bool,
            n_trials: int | None):
    from sweep.locations import first_use_lock
    from sweep.study.create import configure, create_or_resume
    from sweep.study.storage import open_storage
    from sweep.workers.loop import make_tracker

    _quiet_optuna()
    with first_use_lock(storage_url, tracking_uri):
        storage = open_storage(storage_url)
        study, spec = create_or_resume(spec, storage, force_new=force_new,
                                       n_trials=n_trials, space=space)
        configure(study, spec, space)
        make_tracker(study, spec, tracking_uri)
    return study, spec


def _work(study: Any, spec: Any, space: Any, tracking_uri: str, max_trials: int | None,
          no_progress: bool, *, worker_index: int) -> int:
    from sweep.interrupt import stop_on_signals
    from sweep.locations import first_use_lock
    from sweep.study.create import configure
    from sweep.workers.loop import checkpoint_root, enable_heartbeats, make_tracker, run_worker

    configure(study, spec, space, worker_index=worker_index)
    enable_heartbeats(study._storage, spec, tracking_uri)
    with first_use_lock(tracking_uri):  # workers started together share a fresh store
        tracker = make_tracker(study, spec, tracking_uri)
    with stop_on_signals():
        return run_worker(study, spec, space, tracker, max_trials=max_trials,
                          show_progress=not no_progress,
                          checkpoint_root=checkpoint_root(study, spec))


def _supervise(study: Any, spec: Any, storage: str, tracking_uri: str, slots: list[Any], *,
               show_progress: bool) -> None:
    from sweep.study.limits import halt_reason
    from sweep.workers.launcher import supervise

    extra: list[str] = [] if show_progress else ["--no-progress"]
    if len(slots) > 1:
        click.echo(f"starting {len(slots)} workers on study '{spec.name}'", err=True)
    supervise(spec.name, storage, tracking_uri, slots, extra_args=extra,
              halted=lambda: halt_reason(study.get_trials(deepcopy=False), spec) is not None)


def _raise_if_halted(study: Any, spec: Any) -> None:
    """Workers that stopped on a study limit said so; the launcher repeats the verdict."""
    from sweep.study.limits import halt_reason

    halted = halt_reason(study.get_trials(deepcopy=False), spec)
    if halted is not None and halted.failed:
        raise halted


@cli.command()
@click.argument("study_file", type=click.Path(dir_okay=False))
@storage_option
@tracking_option
def create(study_file: str, storage: str, tracking_uri: str) -> None:
    """Create a study (spec stored inside it) for workers to join."""
    spec, space = _checked_spec(study_file)
    _, spec = _create(spec, space, storage, tracking_uri, False, None)
    click.echo(f"study '{spec.name}' is ready in {mask_url(storage)}; start workers with:\n"
               f"  sweep worker {spec.name} --storage '{mask_url(storage)}'")


@cli.command()
@click.argument("study_name")
@storage_option
@tracking_option
@click.option("--max-trials", type=click.IntRange(min=1),
              help="Stop this worker after this many trials (the study budget still holds).")
@click.option("--gpu", type=click.IntRange(min=0),
              help="Use only this GPU (sets CUDA_VISIBLE_DEVICES before TensorFlow starts).")
@click.option("--wait", "wait_seconds", type=click.IntRange(min=0), default=0,
              show_default=True,
              help="Wait up to this many seconds for the storage and the study to exist "
                   "(cluster workers that may start before `sweep create` has run).")
@progress_option
def worker(study_name: str, storage: str, tracking_uri: str, max_trials: int | None,
           gpu: int | None, wait_seconds: int, no_progress: bool) -> None:
    """Work on an existing study until its budget is spent."""
    from sweep.study.check import check_study
    from sweep.tracking.spool import check_spool_dir
    from sweep.workers.lifecycle import TRIALS_LEFT, renew_process
    from sweep.workers.loop import settled, worker_index

    if gpu is not None:
        os.environ["CUDA_VISIBLE_DEVICES"] = str(gpu)
    check_spool_dir()
    _, study, spec = _load_waiting(storage, study_name, wait_seconds)
    space = check_study(spec)
    # This process runs at most `recycle_after` trials, then renews itself (see the spec).
    left = int(os.environ.get(TRIALS_LEFT, 0)) or max_trials
    batch = spec.workers.recycle_after if left is None else min(left, spec.workers.recycle_after)
    done = _work(study, spec, space, tracking_uri, batch, no_progress,
                 worker_index=worker_index())
    left = None if left is None else left - done
    if done == batch and (left is None or left > 0) and (
            _budget_left(study, spec) or not settled(study)):
        renew_process(left)
    click.echo(f"worker finished its trials of study '{study_name}'.", err=True)
    click.echo(f"inspect it with: {_ui_hint(tracking_uri, spec.experiment_name, study, spec)}",
               err=True)


def _budget_left(study: Any, spec: Any) -> bool:
    from sweep.study.budget import used_budget

    return used_budget(study.get_trials(deepcopy=False)) < spec.budget.n_trials


@cli.command()
@click.argument("study_name")
@storage_option
@tracking_option
def reap(study_name: str, storage: str, tracking_uri: str) -> None:
    """Fail the trials of dead workers now (stale heartbeat), queue their retries and mark
    their MLflow runs FAILED. Workers do this on their own before each trial."""
    from sweep.study.reaper import reap as reap_study
    from sweep.workers.loop import enable_heartbeats

    storage_obj, study, spec = _load(storage, study_name, read_only=False)
    enable_heartbeats(storage_obj, spec, tracking_uri)
    failed = reap_study(study)
    if failed:
        click.echo(f"failed {len(failed)} stale trials ({', '.join(map(str, failed))}); "
                   "retries are queued where max_retry allows.")
    else:
        click.echo("no stale trials.")


@cli.command()
@click.argument("study_name")
@storage_option
@tracking_option
@json_option
def status(study_name: str, storage: str, tracking_uri: str, as_json: bool) -> None:
    """Counts by state, budget and best value so far, and where to see it in MLflow."""
    from sweep.study.results import status as study_status

    _, study, spec = _load(storage, study_name)
    doc = study_status(study, spec)
    if as_json:
        click.echo(json.dumps(doc, indent=2))
        return
    states = "  ".join(f"{k.lower()} {v}" for k, v in doc["states"].items())
    click.echo(f"study {doc['study']}: {doc['finished']}/{doc['budget']} finished  ({states})")
    if doc["best_value"] is None:
        click.echo("no trial completed yet")
    else:
        click.echo(f"best {doc['metric']} = {doc['best_value']:.4f} (trial "
                   f"#{doc['best_trial']}, {doc['best_placement']})")
    if doc["stopped"]:
        click.echo(doc["stopped"])
    elif doc["seconds_left"] is not None:
        click.echo(f"wall time left: {_duration(doc['seconds_left'])} (budget.wall_time)")
    if doc["requeued"]:
        click.echo(f"{doc['requeued']} trials were stopped or lost and queued again")
    if doc["trials_per_hour"] is not None:
        eta = doc["eta_seconds"]
        left = "" if not eta else f", about {_duration(eta)} left"
        click.echo(f"{doc['trials_per_hour']:.1f} trials/hour{left}")
    for w in doc["workers"]:
        beat = w["seconds_since_heartbeat"]
        click.echo(f"  running: trial #{w['trial']} on {w['host']} pid {w['pid']}"
                   f"{'' if w['gpu'] is None else ' gpu ' + w['gpu']}"
                   f"{'' if beat is None else f', heartbeat {beat:.0f} s ago'}")
    hint = _ui_hint(tracking_uri, spec.experiment_name, study, spec, look_up=False)
    click.echo(f"inspect it with: {hint}")


@cli.command()
@click.argument("study_name")
@storage_option
@click.option("--top", type=click.IntRange(min=1), default=1, show_default=True)
@json_option
def best(study_name: str, storage: str, top: int, as_json: bool) -> None:
    """The best completed trials, chosen on the validation metric."""
    from sweep.study.results import best_rows

    _, study, spec = _load(storage, study_name)
    rows = best_rows(study, spec, top)
    if as_json:
        click.echo(json.dumps(rows, indent=2))
        return
    if not rows:
        raise FatalError(f"study '{study_name}' has no completed trial yet")
    from rich.console import Console
    from rich.table import Table

    metrics = [item.metric for item in spec.objective]
    title = (f"{study_name}: Pareto front ({len(rows)} trials) of {', '.join(metrics)}"
             if spec.is_multi_objective else
             f"{study_name}: best {len(rows)} by {spec.primary.metric}")
    value_columns = [f"value:{m}" for m in metrics] if spec.is_multi_objective else ["value"]
    table = Table(title=title)
    for column in ("#", *metrics, "vs no-reg", "placement", "params", "test_accuracy",
                   "mlflow run"):
        table.add_column(column)
    for row in rows:
        params = ", ".join(f"{k[6:]}={_fmt(v)}" for k, v in row.items() if k.startswith("param:"))
        label = f"{row['number']} ({row['baseline']})" if row["baseline"] else str(row["number"])
        delta = row["vs_baseline"]
        table.add_row(label, *(_fmt(row[c]) for c in value_columns),
                      "-" if delta is None else f"{delta:+.4g}", row["placement"], params,
                      _fmt(row.get("final/test_accuracy")), str(row["mlflow_run_id"]))
    Console().print(table)
    if rows and rows[0]["baseline_trial"] is None:
        click.echo("no completed no-regularization baseline yet: 'vs no-reg' is empty.",
                   err=True)


def _duration(seconds: float) -> str:
    minutes, secs = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m" if hours else f"{minutes}m{secs:02d}s"


def _fmt(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


@cli.command()
@click.argument("study_name")
@storage_option
@click.option("--format", "fmt", type=click.Choice(["csv", "json"]), required=True)
@click.option("-o", "--output", type=click.Path(dir_okay=False, writable=True),
              callback=_output_file, help="Write here instead of stdout.")
def export(study_name: str, storage: str, fmt: str, output: str | None) -> None:
    """Every trial: params, resolved placement, final figures, MLflow run id, state."""
    from sweep.study.results import export_rows

    _, study, spec = _load(storage, study_name)
    rows = export_rows(study, spec)
    if fmt == "json":
        text = json.dumps(rows, indent=2) + "\n"
    else:
        columns: list[str] = []
        for row in rows:
            columns += [c for c in row if c not in columns]
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, fieldnames=columns, lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
        text = buffer.getvalue()
    if output is None:
        click.echo(text, nl=False)
        return
    # Written whole or not at all: a crash never leaves half a file under the real name.
    target = Path(output)
    partial = target.with_name(f".{target.name}.partial")
    partial.write_text(text)
    partial.replace(target)
    click.echo(f"wrote {len(rows)} trials to {target}", err=True)


@cli.command(name="list")
@storage_option
@json_option
def list_(storage: str, as_json: bool) -> None:
    """Every study in the storage."""
    from sweep.study.results import list_studies

    _quiet_optuna()
    rows = list_studies(_read_storage(storage))
    if as_json:
        click.echo(json.dumps(rows, indent=2))
        return
    if not rows:
        click.echo(f"no studies in {mask_url(storage)}")
        return
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"studies in {mask_url(storage)}")
    for column in ("study", "finished/budget", "complete", "pruned", "fail", "running", "best"):
        table.add_column(column)
    for row in rows:
        table.add_row(row["study"], f"{row['finished']}/{row['budget']}", str(row["complete"]),
                      str(row["pruned"]), str(row["fail"]), str(row["running"]),
                      _fmt(row["best_value"]))
    Console().print(table)


@cli.command()
@click.option("--tracking-uri", envvar="MLFLOW_TRACKING_URI", callback=_tracking_uri,
              help="Replay into this MLflow store (default: the store each run was meant for).")
@click.option("--storage", envvar="SWEEP_STORAGE", default=DEFAULT_STORAGE, show_default=True,
              callback=_storage_url, help="Optuna storage whose trials get the new MLflow run ids.")
def sync(tracking_uri: str | None, storage: str) -> None:
    """Replay trial runs spooled while MLflow was unreachable ($SWEEP_SPOOL_DIR, default
    ./sweep-spool), each exactly once."""
    from sweep.tracking.spool import pending, spooled_studies
    from sweep.tracking.tracker import sync as replay_all

    if not pending():
        click.echo("nothing to sync.")
        return
    # The new run ids go into the studies' trials: without the storage that holds those
    # studies they would be lost for good once the spool is replayed and deleted.
    wanted = spooled_studies()
    if wanted:
        import optuna

        _quiet_optuna()
        try:
            held = set(optuna.get_all_study_names(_read_storage(storage)))
        except SpecError:  # no such SQLite file: the same answer, without creating it
            held = set()
        missing = sorted(wanted - held)
        if missing:
            raise SpecError("--storage", f"does not hold the studies of the spooled runs "
                            f"({', '.join(missing)}); pass the storage they live in",
                            mask_url(storage))
    replayed = replay_all(tracking_uri)
    linked = _link_runs(storage, replayed)
    ops = sum(r.operations for r in replayed)
    click.echo(f"synced {len(replayed)} runs ({ops} operations); linked {linked} trials.")


def _link_runs(storage_url: str, replayed: list[Any]) -> int:
    """Record the new run ids on their studies (a finished Optuna trial is read-only)."""
    import optuna

    from sweep.keys import MLFLOW_RUN_ID
    from sweep.study.storage import open_storage

    fresh = [r for r in replayed if r.study_name is not None and r.trial_number is not None]
    if not fresh:
        return 0
    _quiet_optuna()
    try:
        storage = open_storage(storage_url)
    except FatalError as error:
        click.echo(f"warning: trials not linked to their runs: {error}", err=True)
        return 0
    linked = 0
    for item in fresh:
        try:
            study = optuna.load_study(study_name=item.study_name, storage=storage)
        except KeyError:
            continue
        study.set_user_attr(f"{MLFLOW_RUN_ID}/{item.trial_number}", item.run_id)
        linked += 1
    return linked


@cli.command()
@storage_option
@click.option("--host", default="127.0.0.1", show_default=True,
              help="Interface to listen on. The proxy has no authentication and no TLS: "
                   "bind another interface only inside a private network.")
@click.option("--port", type=click.IntRange(1, 65535), default=13000, show_default=True)
def proxy(storage: str, host: str, port: int) -> None:
    """Optuna's gRPC storage proxy, for clusters larger than the database's connection
    limit: workers use --storage grpc://HOST:PORT and share this process's connections.
    The exact study budget is enforced here."""
    if host not in ("127.0.0.1", "localhost", "::1"):
        # Whoever reaches the port can read and rewrite every study (README, Security).
        click.echo(f"warning: the proxy on {host} has no authentication and no TLS; anyone "
                   "who reaches this port can read and change every study: keep it inside a "
                   "private network.", err=True)
    import optuna

    from sweep.study.storage import open_storage

    if storage.startswith("grpc://"):
        raise SpecError("--storage", "the proxy serves a database, not another proxy", storage)
    _quiet_optuna()
    # Optuna's documentation asks for its cached storage in front of an RDB storage: the
    # proxy then answers most reads from memory. Our budget lock sits below the cache
    # (`_create_new_trial`), so it still holds.
    backend = optuna.storages.get_storage(open_storage(storage))
    click.echo(f"serving {mask_url(storage)} on grpc://{host}:{port} (Ctrl-C stops)", err=True)
    with _sigterm_as_interrupt():
        try:
            optuna.storages.run_grpc_proxy_server(backend, host=host, port=port)
        except KeyboardInterrupt:
            click.echo("proxy stopped.", err=True)


@cli.command()
@tracking_option
@click.option("--host", default="127.0.0.1", show_default=True,
              help="Interface to listen on (the UI has no login: keep it local).")
@click.option("--port", type=click.IntRange(1, 65535), default=UI_PORT, show_default=True)
def ui(tracking_uri: str, host: str, port: int) -> None:
    """Start a lean MLflow UI for this tracking store and print each study's runs view."""
    from sweep.tracking.tracker import runs_view_url

    if tracking_uri.startswith(("http://", "https://")):
        click.echo(f"this store is served by a tracking server: open {mask_url(tracking_uri)}")
        return
    base = f"http://{'127.0.0.1' if host in ('0.0.0.0', '::') else host}:{port}"
    for name, experiment_id, query in _studies_in(tracking_uri):
        click.echo(f"  {name}: {runs_view_url(base, experiment_id, query)}")
    command = [sys.executable, "-m", "mlflow", "ui", "--backend-store-uri", tracking_uri,
               "--host", host, "--port", str(port), "--workers", "1"]
    click.echo(f"MLflow UI for {mask_url(tracking_uri)} on {base} (Ctrl-C stops it)", err=True)
    # One web worker and no job runner: the UI of a sweep needs neither (MLflow's default
    # started 16 processes, about 3.7 GB, on a 2-core machine).
    os.environ["MLFLOW_SERVER_ENABLE_JOB_EXECUTION"] = "false"
    sys.stdout.flush()
    os.execv(sys.executable, command)


def _studies_in(tracking_uri: str) -> list[tuple[str, str, str | None]]:
    """(experiment name, id, runs-view query) of the experiments that hold a regsweep
    study run; the query is the one the study recorded on its experiment."""
    from mlflow.entities import ViewType

    from sweep.tracking.tracker import ROLE_STUDY, ROLE_TAG, RUNS_VIEW_TAG, _client

    client = _client(tracking_uri)
    found = []
    for experiment in client.search_experiments(view_type=ViewType.ACTIVE_ONLY):
        if client.search_runs([experiment.experiment_id], max_results=1,
                              filter_string=f"tags.`{ROLE_TAG}` = '{ROLE_STUDY}'"):
            found.append((experiment.name, experiment.experiment_id,
                          experiment.tags.get(RUNS_VIEW_TAG)))
    return found


@cli.command()
@click.argument("study_name")
@storage_option
@tracking_option
@click.option("--out", "out_dir", type=click.Path(file_okay=False), callback=_output_folder,
              help="Folder for the report files  [default: ./report-STUDY_NAME/]")
@click.option("--confirm/--no-confirm", default=None,
              help="Re-train the best report.confirm_top configurations and the baseline "
                   "over report.seeds seeds first (needs TensorFlow; a stored confirmation "
                   "is reused)  [default: confirm when report.confirm_top > 0]")
@progress_option
def report(study_name: str, storage: str, tracking_uri: str, out_dir: str | None,
           confirm: bool | None, no_progress: bool) -> None:
    """The comparison per placement (terminal, Markdown, HTML) and its pictures, written to
    --out and logged on the study's MLflow parent run under report/."""
    import optuna

    from sweep.answers.report import build, print_terminal, publish
    from sweep.study.create import UID_ATTR
    from sweep.tracking.tracker import StudyTracker

    _, study, spec = _load(storage, study_name, read_only=confirm is False)
    complete = study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))
    if not complete:
        raise FatalError(f"study '{study_name}' has no completed trial, so there is nothing "
                         f"to compare yet (`sweep status {study_name}` shows its trials)")
    if confirm is None:
        confirm = spec.report.confirm_top > 0
    # Only this step may load TensorFlow; the rest of the report reads the stores.
    confirmation = _confirm(study, spec, tracking_uri, show_progress=not no_progress) \
        if confirm else None
    out = Path(out_dir or f"report-{study_name}")
    tracker = StudyTracker(tracking_uri, experiment=spec.experiment_name, study_name=spec.name,
                           study_uid=study.user_attrs[UID_ATTR], worker="sweep-report")
    built = build(study, spec, out, tracker=tracker, confirmation=confirmation)
    print_terminal(built)
    try:
        stale = publish(built, study, spec, out, tracker)
    except Exception as error:  # the files are written; say where they did not go
        raise FatalError(f"report written to {out}/ but not logged to MLflow at "
                         f"{mask_url(tracking_uri)}: {type(error).__name__}: {error}") from None
    if stale:
        click.echo(f"note: MLflow params cannot change; {', '.join(stale)} keep the value of "
                   "an earlier report, the run's tags of the same names hold the current one.",
                   err=True)
    click.echo(f"wrote the report to {out}/ ({out / 'report.html'}) and logged it on the "
               "study's MLflow run under report/.")
    click.echo(f"inspect it with: {_ui_hint(tracking_uri, spec.experiment_name, study, spec)}")


def main() -> None:
    cli(prog_name="sweep")
