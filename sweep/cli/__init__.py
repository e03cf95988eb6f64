"""The ``sweep`` command line, one module per command group: ``train`` (validate, run,
create, worker, reap), ``results`` (status, best, export, list), ``report``, ``serve``
(sync, proxy, ui). Shared options are in ``options``, the group and its exit codes in
``group``. Nothing in sweep/ imports this package: it is the outermost layer."""

from __future__ import annotations

from sweep.cli import report, results, serve, train  # noqa: F401  (they register commands)
from sweep.cli.group import answered, cli, leave


def main() -> None:
    try:
        cli(prog_name="sweep")
    except SystemExit as done:
        if answered():
            leave(done.code)
        raise


__all__ = ["cli", "main"]
