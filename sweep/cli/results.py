"""Commands that read a study and print results: status, best, export, list. Each takes
``--format table|json|csv`` and ``-o/--output``, and imports neither TensorFlow nor MLflow."""

from __future__ import annotations

import io
import json
from typing import Any

import click

from sweep.cli.group import cli
from sweep.cli.hints import ui_hint
from sweep.cli.options import (
    as_csv,
    emit,
    format_option,
    output_option,
    storage_option,
    tracking_option,
)
from sweep.errors import FatalError
from sweep.keys import FINAL
from sweep.redact import mask_url


def _print(rows: list[dict[str, Any]] | dict[str, Any], fmt: str, output: str | None,
           what: str, table: Any = None) -> None:
    """Rows (or one document) as JSON or CSV; as a table, ``table`` (a rich renderable)."""
    if fmt == "json":
        emit(json.dumps(rows, indent=2) + "\n", output, what)
    elif fmt == "csv":
        emit(as_csv(rows if isinstance(rows, list) else [_flat(rows)]), output, what)
    else:
        from rich.console import Console

        if output is None:
            Console().print(table)
            return
        console = Console(record=True, width=160, file=io.StringIO())
        console.print(table)
        emit(console.export_text(), output, what)


def _flat(doc: dict[str, Any]) -> dict[str, Any]:
    """One CSV row of a document: a nested mapping's keys become ``key:inner``."""
    row: dict[str, Any] = {}
    for key, value in doc.items():
        if isinstance(value, dict):
            row.update({f"{key}:{inner}": v for inner, v in value.items()})
        else:
            row[key] = value
    return row


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


def _explored(doc: dict[str, Any]) -> str:
    """Trials and configurations apart: a re-run is a trial, not a configuration."""
    reruns = (doc.get("racing") or {}).get("reruns", 0)
    return (f"{doc['finished']} trials finished: {doc['configurations']} configurations "
            f"ranked" + (f", {reruns} seed re-runs" if reruns else ""))


def _params(row: dict[str, Any]) -> str:
    return ", ".join(f"{k[6:]}={_fmt(v)}" for k, v in row.items() if k.startswith("param:"))


@cli.command()
@click.argument("study_name")
@storage_option()
@tracking_option()
@format_option()
@output_option()
def status(study_name: str, storage: str, tracking_uri: str, fmt: str,
           output: str | None) -> None:
    """Counts by state, budget and best value so far, and where to see it in MLflow."""
    from sweep import api

    loaded = api.load(study_name, storage=storage, tracking_uri=tracking_uri)
    study, spec = loaded.optuna, loaded.spec
    doc = loaded.status()
    if fmt != "table":
        _print(doc, fmt, output, f"the status of study '{study_name}'")
        return
    from sweep.placement.searched import searched_values, searches_regularizers

    lines = _status_lines(doc, storage, searches_regularizers(searched_values(spec)))
    lines.append(f"inspect it with: "
                 f"{ui_hint(tracking_uri, spec.experiment_name, study, spec, look_up=False)}")
    emit("\n".join(lines) + "\n", output, f"the status of study '{study_name}'")


def _status_lines(doc: dict[str, Any], storage: str, per_family: bool = False) -> list[str]:
    states = "  ".join(f"{k.lower()} {v}" for k, v in doc["states"].items())
    lines = [f"study {doc['study']}: {doc['finished']}/{doc['budget']} finished  ({states})"]
    if doc["best_value"] is None:
        lines.append("no trial completed yet")
    else:
        from sweep.search.grouping import figure_text

        lines.append(f"best {doc['metric']} = "
                     f"{figure_text(doc['best_value'], doc['best_sd'], doc['best_seeds'])}"
                     f": configuration #{doc['best_trial']}, {doc['best_placement']}"
                     + (f" ({doc['best_group']})" if per_family else ""))
    lines.append(_explored(doc))
    if doc["stopped"]:
        lines.append(doc["stopped"])
    elif doc["seconds_left"] is not None:
        lines.append(f"wall time left: {_duration(doc['seconds_left'])} (budget.wall_time)")
    if doc["requeued"]:
        lines.append(f"{doc['requeued']} trials were stopped or lost and queued again")
    if doc.get("noise"):
        lines.append(doc["noise"]["summary"])
    if doc.get("racing"):
        lines.append(doc["racing"]["summary"])
    if doc["duplicates"]:
        lines.append(f"{doc['duplicates']} trials sampled a configuration already trained "
                     "(figures reused, no budget used)")
    if doc["trials_per_hour"] is not None:
        eta = doc["eta_seconds"]
        left = "" if not eta else f", about {_duration(eta)} left"
        if (doc["remaining"] or doc["states"]["WAITING"]) and not doc["workers"] \
                and not doc["stopped"]:
            left = (f"; no trial is running, start a worker to go on: sweep worker "
                    f"{doc['study']} --storage '{mask_url(storage)}'")
        lines.append(f"{doc['trials_per_hour']:.1f} trials/hour{left}")
    for w in doc["workers"]:
        beat = w["seconds_since_heartbeat"]
        lines.append(f"  running: trial #{w['trial']} on {w['host']} pid {w['pid']}"
                     f"{'' if w['gpu'] is None else ' gpu ' + w['gpu']}"
                     f"{'' if beat is None else f', heartbeat {beat:.0f} s ago'}")
    return lines


@cli.command()
@click.argument("study_name")
@storage_option()
@click.option("--top", type=click.IntRange(min=1), default=1, show_default=True)
@format_option()
@output_option()
def best(study_name: str, storage: str, top: int, fmt: str, output: str | None) -> None:
    """The best configurations, chosen on the validation metric: each named by its first
    trial, with its mean over seeds."""
    from sweep import api
    from sweep.placement.searched import searched_values, searches_regularizers

    loaded = api.load(study_name, storage=storage)
    spec = loaded.spec
    rows = loaded.best_rows(top)
    if fmt != "table":
        _print(rows, fmt, output, f"{len(rows)} trials")
        return
    if not rows:
        raise FatalError(f"study '{study_name}' has no completed trial yet")
    from rich.table import Table

    metrics = [item.metric for item in spec.objective]
    title = (f"{study_name}: Pareto front ({len(rows)} trials) of {', '.join(metrics)}"
             if spec.is_multi_objective else
             f"{study_name}: best {len(rows)} by {spec.primary.metric}")
    value_columns = [f"value:{m}" for m in metrics] if spec.is_multi_objective else ["value"]
    if spec.racing is not None:
        title += " (mean over seeds; ranked by that mean shrunk by its seed noise)"
    from rich.console import Console

    # The figures never wrap or get cut (`val_ac…` at 80 columns): the params and the run
    # id (both in --format json) are shown only where the terminal has room for them.
    width = 160 if output is not None else Console().width
    extra = [("params", _params)] if width >= 120 else []
    if width >= 150:
        extra.append(("mlflow run", lambda row: str(row["mlflow_run_id"])))
    table = Table(title=title)
    table.add_column("configuration", no_wrap=True)
    for metric in metrics:
        table.add_column(metric, no_wrap=True)
    for column in ("seeds", "vs no-reg", "test acc"):
        table.add_column(column, no_wrap=True)
    per_family = searches_regularizers(searched_values(spec))
    if per_family:
        table.add_column("regularizer", overflow="fold", min_width=12)
    table.add_column("placement", overflow="fold", min_width=12)
    for column, _ in extra:
        table.add_column(column, overflow="fold", no_wrap=column == "mlflow run")
    for row in rows:
        label = f"#{row['number']}" + (f" ({row['baseline']})" if row["baseline"] else "")
        delta = row["vs_baseline"]
        values = [_fmt(row[c]) for c in value_columns]
        if row["sd"] is not None:
            values[0] = f"{row['value']:.4f} ± {row['sd']:.4f}"
        table.add_row(label, *values, str(row["seeds"]),
                      "-" if delta is None else f"{delta:+.4f}",
                      _fmt(row.get(f"{FINAL}test_accuracy")),
                      *([row["group"]] if per_family else []), row["placement"],
                      *(show(row) for _, show in extra))
    _print(rows, fmt, output, f"{len(rows)} configurations", table)
    if rows[0]["baseline_trial"] is None:
        click.echo("no completed no-regularization baseline yet: 'vs no-reg' is empty.",
                   err=True)


@cli.command()
@click.argument("study_name")
@storage_option()
@format_option(default="csv")
@output_option()
def export(study_name: str, storage: str, fmt: str, output: str | None) -> None:
    """Every trial: params, resolved placement, final figures, MLflow run id, state."""
    from sweep import api

    loaded = api.load(study_name, storage=storage)
    spec = loaded.spec
    rows = loaded.rows()
    table = None
    if fmt == "table":
        from rich.table import Table

        metrics = [item.metric for item in spec.objective]
        value_columns = [f"value:{m}" for m in metrics] if spec.is_multi_objective \
            else ["value"]
        table = Table(title=f"{study_name}: {len(rows)} trials")
        for column in ("#", "state", *metrics, "placement", "params", "mlflow run"):
            table.add_column(column)
        for row in rows:
            table.add_row(str(row["number"]), row["state"],
                          *(_fmt(row.get(c)) for c in value_columns), row["placement"],
                          _params(row), _fmt(row["mlflow_run_id"]))
    _print(rows, fmt, output, f"{len(rows)} trials", table)


@cli.command(name="list")
@storage_option()
@format_option()
@output_option()
def list_(storage: str, fmt: str, output: str | None) -> None:
    """Every study in the storage."""
    from sweep.results.queries import list_studies
    from sweep.storage.connect import quiet_optuna, read_storage

    quiet_optuna()
    rows = list_studies(read_storage(storage))
    table = None
    if fmt == "table":
        if not rows:
            click.echo(f"no studies in {mask_url(storage)}")
            return
        from rich.table import Table

        table = Table(title=f"studies in {mask_url(storage)}")
        for column in ("study", "finished/budget", "complete", "pruned", "fail", "running",
                       "best"):
            table.add_column(column)
        for row in rows:
            table.add_row(row["study"], f"{row['finished']}/{row['budget']}",
                          str(row["complete"]), str(row["pruned"]), str(row["fail"]),
                          str(row["running"]), _fmt(row["best_value"]))
    _print(rows, fmt, output, f"{len(rows)} studies", table)
