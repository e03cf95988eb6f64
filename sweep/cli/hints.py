"""What commands print about a study: where to look in MLflow, and its best trial."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

import click

from sweep.keys import MLFLOW_PLACE, STUDY_UID
from sweep.locations import DEFAULT_STORAGE, DEFAULT_TRACKING_URI
from sweep.redact import mask_url

if TYPE_CHECKING:
    import optuna

    from sweep.spec import StudySpec

UI_PORT = 5000


def ui_hint(tracking_uri: str, experiment: str | None = None, study: optuna.Study | None = None,
             spec: StudySpec | None = None, *, look_up: bool = True) -> str:
    """Where to look: the runs view of the study's experiment, on the tracking server or
    on the `sweep ui` this prints, and with ``study`` the links to the study's run and
    its best trial's run. The ids come from what the study recorded (keys.MLFLOW_PLACE),
    else from MLflow when ``look_up`` (which costs the import of MLflow)."""
    from sweep.tracking.links import find_experiment_id, runs_view_url, sorted_runs_query

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


def _run_links(tracking_uri: str, base: str, experiment_id: str, study: optuna.Study,
               spec: StudySpec, study_run: str | None) -> list[tuple[str, str]]:
    """(label, link) of the study's own run and of the best trial's run, where they exist."""
    from sweep.results.queries import logged_run_id
    from sweep.results.ranking import sorted_complete
    from sweep.tracking.links import find_study_run, run_url

    links = []
    if study_run is None:
        study_run = find_study_run(tracking_uri, experiment_id,
                                   study.user_attrs.get(STUDY_UID, ""))
    if study_run is not None:
        links.append(("study run", run_url(base, experiment_id, study_run)))
    ranked = [] if spec is None or spec.is_multi_objective else sorted_complete(study, spec)
    best_run = logged_run_id(ranked[0], study.user_attrs) if ranked else None
    if best_run is not None:
        links.append((f"best configuration #{ranked[0].number}",
                      run_url(base, experiment_id, best_run)))
    return links


def print_best(found: Any) -> None:
    """What `sweep run` prints at the end: the verdict, the best configuration, where to
    look (``found``: the API's Study)."""
    from sweep.placement.searched import searched_values, searches_regularizers
    from sweep.search.grouping import figure_text

    study, spec, tracking_uri, storage = found.optuna, found.spec, found.tracking_uri, \
        found.storage
    rows = found.best_rows(1)
    click.echo(found.headline)
    if not rows:
        click.echo("no trial completed.")
    else:
        best = rows[0]
        params = ", ".join(f"{k[6:]}={v:.3g}" if isinstance(v, float) else f"{k[6:]}={v}"
                           for k, v in best.items() if k.startswith("param:"))
        click.echo(f"best configuration: #{best['number']}  {spec.primary.metric} = "
                   f"{figure_text(best['value'], best['sd'], best['seeds'])}")
        if searches_regularizers(searched_values(spec)):
            click.echo(f"  regularizer:  {best['group']}")
        click.echo(f"  placement:    {best['placement']}")
        click.echo(f"  parameters:   {params or '(none searched)'}")
        click.echo(f"  mlflow run:   {best['mlflow_run_id']}")
        if best["vs_baseline"] is not None:
            click.echo(f"  vs no regularization: {best['vs_baseline']:+.4f} "
                       f"(#{best['baseline_trial']}, means over seeds on validation)")
        if spec.is_multi_objective:
            click.echo(f"Pareto front: {len(rows)} trials; list them with: "
                       f"sweep best {spec.name}")
    click.echo(f"inspect it with: {ui_hint(tracking_uri, spec.experiment_name, study, spec)}")
    if rows:
        # Flags the environment does not already supply, so that the line works as printed.
        flags = "".join(
            f" {flag} '{mask_url(value)}'" for flag, value, variable, default in (
                ("--storage", storage, "SWEEP_STORAGE", DEFAULT_STORAGE),
                ("--tracking-uri", tracking_uri, "MLFLOW_TRACKING_URI", DEFAULT_TRACKING_URI))
            if value != os.environ.get(variable, default))
        click.echo(f"tables, plots and a check against seed noise: "
                   f"sweep report {spec.name}{flags}")


