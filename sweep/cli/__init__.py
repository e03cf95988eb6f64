"""The ``sweep`` command line, one module per command group: ``train`` (validate, run,
create, worker, reap), ``results`` (status, best, export, list), ``report``, ``serve``
(sync, proxy, ui). Shared options are in ``options``, the group and its exit codes in
``group``. Nothing in sweep/ imports this package: it is the outermost layer."""

from __future__ import annotations

from sweep.cli import report, results, serve, train  # noqa: F401  (they register commands)
from sweep.cli.group import cli


def main() -> None:
    cli(prog_name="sweep")


__all__ = ["cli", "main"]
