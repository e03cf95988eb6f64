"""Commands that build and train: validate, run, create, worker, reap."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

import click

from sweep.cli.group import cli
from sweep.cli.hints import print_best, ui_hint
from sweep.cli.options import (
    progress_option,
    storage_option,
    tracking_option,
    warm_start_option,
)
from sweep.redact import mask_url

if TYPE_CHECKING:
    from sweep.spec import StudySpec


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
    from sweep import api

    checked = api.validate(study_file, run_builder=run_builder, build=build)
    spec, space = checked.spec, checked.space
    slots = "not checked" if space is None else ", ".join(space.candidate_slots) or "none"
    click.echo(f"ok: study '{spec.name}', {spec.budget.n_trials} trials, "
               f"sampler {spec.sampler}, objective {spec.primary.metric} "
               f"({spec.primary.resolved_direction}); slots searched: {slots}")
    if checked.searched:
        click.echo("also searched: " + ", ".join(checked.searched))
    plan = budget_line(spec, checked.plan)
    if plan:
        click.echo(plan)
    if checked.configurations is not None and checked.configurations < spec.budget.n_trials:
        click.echo(f"note: the search space holds {checked.configurations} distinct "
                   f"configurations, fewer than budget.n_trials ({spec.budget.n_trials}): "
                   "the study ends when all are trained (space exhausted).")
    if space is None:
        click.echo(f"note: model.builder {spec.model.builder!r} is code and was not run; "
                   "`sweep validate --run-builder` builds the model and checks the "
                   "placements against its layers (run and create always do).")


def budget_line(spec: StudySpec, plan: tuple[int, int] | None) -> str | None:
    """What the budget buys with seed racing (``plan``: sweep.search.racing.budget_plan,
    configurations explored and re-runs)."""
    if plan is None:
        return None
    explored, reruns = plan
    return (f"budget: {spec.budget.n_trials} trials explore about {explored} configurations "
            f"(baselines included); about {reruns} go to seed racing's re-runs of the "
            "leaders on further seeds (seeds.racing: a lower max or top_fraction, or a "
            "larger budget, explores more)")


def _parse_gpus(ctx: click.Context, param: click.Parameter, value: str | None) -> list[str]:
    if not value:
        return []
    gpus = [g.strip() for g in value.split(",")]
    if not all(g.isdigit() for g in gpus) or len(set(gpus)) != len(gpus):
        raise click.BadParameter(f"must be distinct GPU ids like 0,1,2 (got {value!r})")
    return gpus


@cli.command()
@click.argument("study_file", type=click.Path(dir_okay=False))
@storage_option()
@tracking_option()
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
                   "baseline over seeds.confirm seeds, tested once on the test split "
                   "(default: none; `sweep report` does it with report.confirm_top).")
@warm_start_option
@progress_option
def run(study_file: str, storage: str, tracking_uri: str, n_trials: int | None, workers: int,
        gpus: list[str], trials_per_gpu: int, force_new: bool, confirm_top: int | None,
        warm_start: Any, no_progress: bool) -> None:
    """Create (or resume) a study from STUDY_FILE and run it to its budget."""
    from sweep import api

    def created(study: api.Study) -> None:
        # Of the budget the study runs with (--n-trials overrides the file's).
        plan = budget_line(study.spec, study.plan)
        if plan:
            click.echo(plan, err=True)

    study = api.run(study_file, storage=storage, tracking_uri=tracking_uri, n_trials=n_trials,
                    force_new=force_new, show_progress=not no_progress, workers=workers,
                    gpus=gpus, trials_per_gpu=trials_per_gpu, warm_start=warm_start,
                    on_created=created)
    # Confirmed first, so that the answer printed opens with the verdict it supports.
    confirmation = study.confirm(confirm_top, show_progress=not no_progress) \
        if confirm_top else None
    print_best(study)
    if confirm_top:
        print_confirmation(confirmation)


def print_confirmation(confirmation: Any) -> None:
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


@cli.command()
@click.argument("study_file", type=click.Path(dir_okay=False))
@storage_option()
@tracking_option()
@warm_start_option
def create(study_file: str, storage: str, tracking_uri: str, warm_start: Any) -> None:
    """Create a study (spec stored inside it) for workers to join."""
    from sweep import api
    from sweep.keys import WARM_START_OF

    study = api.create(study_file, storage=storage, tracking_uri=tracking_uri,
                       warm_start=warm_start)
    queued = [t.user_attrs[WARM_START_OF] for t in study.optuna.get_trials(deepcopy=False)
              if WARM_START_OF in t.user_attrs]
    if queued:
        click.echo(f"warm start: queued {len(queued)} configurations of "
                   f"{', '.join(queued)} as the first trials")
    click.echo(f"study '{study.name}' is ready in {mask_url(storage)}; start workers with:\n"
               f"  sweep worker {study.name} --storage '{mask_url(storage)}'")


@cli.command()
@click.argument("study_name")
@storage_option()
@tracking_option()
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
    from sweep import api

    if gpu is not None:
        os.environ["CUDA_VISIBLE_DEVICES"] = str(gpu)
    study = api.join(study_name, storage=storage, tracking_uri=tracking_uri,
                     max_trials=max_trials, wait_seconds=wait_seconds,
                     show_progress=not no_progress)
    click.echo(f"worker finished its trials of study '{study_name}'.", err=True)
    click.echo("inspect it with: "
               f"{ui_hint(tracking_uri, study.spec.experiment_name, study.optuna, study.spec)}",
               err=True)


@cli.command()
@click.argument("study_name")
@storage_option()
@tracking_option()
def reap(study_name: str, storage: str, tracking_uri: str) -> None:
    """Fail the trials of dead workers now (stale heartbeat), queue their retries and mark
    their MLflow runs FAILED. Workers do this on their own before each trial."""
    from sweep import api

    failed = api.load(study_name, storage=storage, tracking_uri=tracking_uri,
                      writable=True).reap()
    if failed:
        click.echo(f"failed {len(failed)} stale trials ({', '.join(map(str, failed))}); "
                   "retries are queued where max_retry allows.")
    else:
        click.echo("no stale trials.")
