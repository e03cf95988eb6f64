"""The options commands share, each defined once: the stores, ``-o/--output``,
``--format``, progress; and the old spellings they replace, kept for one release."""

from __future__ import annotations

import csv
import functools
import io
import json
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import click

from sweep.errors import SpecError
from sweep.locations import (
    DEFAULT_STORAGE,
    DEFAULT_TRACKING_URI,
    blocking_file,
    check_storage_url,
    check_tracking_uri,
)

FORMATS = ("table", "json", "csv")


def deprecated(old: str, new: str) -> None:
    click.echo(f"warning: {old} is deprecated and goes in the next release; use {new}.",
               err=True)


def _storage_url(ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
    # A URL that cannot work is bad input: refused here, before any command writes.
    return check_storage_url(value, _flag(param)) if value else value


def _flag(param: click.Parameter) -> str:
    """The option as the user types it (``--warm-start-storage``), for messages."""
    return max(param.opts, key=len) if param.opts else str(param.name)


def _at_least_one(ctx: click.Context, param: click.Parameter, value: int | None
                  ) -> int | None:
    # Our one-line form, not click's usage block (what click.IntRange gives).
    if value is not None and value < 1:
        raise SpecError(_flag(param), "must be at least 1", value)
    return value


def _tracking_uri(ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
    return check_tracking_uri(value) if value else value


def storage_option(help: str = "Optuna storage URL (env SWEEP_STORAGE), e.g. "
                               "postgresql://user@host/db.") -> Callable:
    return click.option("--storage", envvar="SWEEP_STORAGE", default=DEFAULT_STORAGE,
                        show_default=True, callback=_storage_url, help=help)


def tracking_option(default: str | None = DEFAULT_TRACKING_URI,
                    help: str = "MLflow tracking URI (env MLFLOW_TRACKING_URI).") -> Callable:
    return click.option("--tracking-uri", envvar="MLFLOW_TRACKING_URI", default=default,
                        show_default=default is not None, callback=_tracking_uri, help=help)


def output_option(*, folder: bool = False, old: str | None = None,
                  help: str = "Write here instead of stdout.") -> Callable:
    """``-o/--output`` for every path a command writes; ``old`` is a previous spelling
    still accepted with a warning."""

    def check(ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
        if value is None:
            return value
        if param.name == "old_output":
            deprecated(old or "", "-o/--output")
        probe = Path(value) / "x" if folder else Path(value)
        if (blocking := blocking_file(probe)) is not None:
            raise SpecError("--output", f"{blocking} is a file, not a folder", value)
        return value

    kind = click.Path(file_okay=False) if folder else click.Path(dir_okay=False)

    def decorate(command: Callable) -> Callable:
        @functools.wraps(command)
        def merged(*args: Any, old_output: str | None = None, **kwargs: Any) -> Any:
            if old_output is not None and kwargs.get("output") is None:
                kwargs["output"] = old_output
            return command(*args, **kwargs)

        if old is not None:
            merged = click.option(old, "old_output", type=kind, callback=check, hidden=True,
                                  expose_value=True)(merged)
        return click.option("-o", "--output", type=kind, callback=check, help=help)(merged)

    return decorate


def format_option(default: str = "table") -> Callable:
    """``--format table|json|csv`` (``--json``: the previous spelling, with a warning)."""

    def decorate(command: Callable) -> Callable:
        @functools.wraps(command)
        def merged(*args: Any, as_json: bool = False, **kwargs: Any) -> Any:
            if as_json:
                deprecated("--json", "--format json")
                kwargs["fmt"] = "json"
            return command(*args, **kwargs)

        merged = click.option("--json", "as_json", is_flag=True, hidden=True)(merged)
        return click.option("--format", "fmt", type=click.Choice(FORMATS), default=default,
                            show_default=True,
                            help="table for people; json or csv for programs (nothing "
                                 "else is printed on stdout).")(merged)

    return decorate


def warm_start_option(command: Callable) -> Callable:
    """``--warm-start OLD_STUDY`` (``--warm-start-storage``, ``--warm-start-top``), merged
    into one ``warm_start`` argument: a ``sweep.study.warm.WarmStart`` or None."""

    @functools.wraps(command)
    def merged(*args: Any, warm_study: str | None, warm_storage: str | None, warm_top: int,
               **kwargs: Any) -> Any:
        from sweep.study.warm import WarmStart

        warm = None
        if warm_study is not None:
            warm = WarmStart(warm_study, warm_storage or kwargs["storage"], warm_top).opened()
        elif warm_storage is not None:
            raise SpecError("--warm-start-storage", "needs --warm-start OLD_STUDY",
                            warm_storage, show_value=False)
        return command(*args, warm_start=warm, **kwargs)

    merged = click.option("--warm-start-top", "warm_top", type=int, callback=_at_least_one,
                          default=3, show_default=True,
                          help="How many of its best configurations to queue.")(merged)
    merged = click.option("--warm-start-storage", "warm_storage", callback=_storage_url,
                          help="The old study's storage URL (default: --storage).")(merged)
    return click.option("--warm-start", "warm_study", metavar="OLD_STUDY",
                        help="Queue the best configurations of this earlier study as the "
                             "first trials (re-trained, not copied).")(merged)


progress_option = click.option("--no-progress", is_flag=True,
                               help="One line per finished trial instead of progress bars.")


def as_csv(rows: Sequence[dict[str, Any]]) -> str:
    """Rows as CSV, columns in order of first appearance; nested values as JSON."""
    columns: list[str] = []
    for row in rows:
        columns += [c for c in row if c not in columns]
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=columns, lineterminator="\n")
    writer.writeheader()
    writer.writerows({k: json.dumps(v) if isinstance(v, dict | list) else v
                      for k, v in row.items()} for row in rows)
    return buffer.getvalue()


def emit(text: str, output: str | None, what: str) -> None:
    """``text`` on stdout, or into ``output`` whole or not at all: a crash never leaves
    half a file under the real name."""
    if output is None:
        click.echo(text, nl=False)
        return
    target = Path(output)
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(f".{target.name}.partial")
    partial.write_text(text)
    partial.replace(target)
    click.echo(f"wrote {what} to {target}", err=True)
