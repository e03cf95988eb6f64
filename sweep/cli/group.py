"""The ``sweep`` group: its exit codes and one-line errors, and ``--verbose``.

Exit codes: 0 success, 2 bad input (spec, flags, unknown study) with the field and the
value named, 1 a runtime failure. Commands that do not train never import TensorFlow or
MLflow, so they answer at once.
"""

from __future__ import annotations

import contextlib
import os
from typing import Any, NoReturn

import click

from sweep.errors import FatalError, SpecError, StudyHalted
from sweep.interrupt import stop_exit_code

# The Python API (sweep.api, which every command calls) names a bad argument by its
# keyword; a command's user knows it by its flag.
FLAGS = {"storage": "--storage", "tracking_uri": "--tracking-uri", "n_trials": "--n-trials",
         "workers": "--workers", "trials_per_gpu": "--trials-per-gpu",
         "warm_start": "--warm-start", "warm_start_storage": "--warm-start-storage",
         "warm_start_top": "--warm-start-top", "max_trials": "--max-trials"}


class _Group(click.Group):
    """Turns our exceptions into the documented exit codes and one-line messages."""

    def invoke(self, ctx: click.Context) -> Any:
        from sweep.redact import mask_url  # a message may quote a library's, URL and all

        try:
            result = super().invoke(ctx)
        except SpecError as error:
            if error.field in FLAGS and type(error) is SpecError:
                error = error.renamed(FLAGS[error.field])
            click.echo(f"error: {mask_url(str(error))}", err=True)
            ctx.exit(2)
        except FatalError as error:
            from sweep.training.runtime import VERBOSE

            if os.environ.get(VERBOSE):
                raise
            click.echo(f"error: {mask_url(str(error))}", err=True)
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
        if ctx.invoked_subcommand in QUICK_EXIT:
            _answered.append(ctx.invoked_subcommand)
        return result


# Commands that read or train a study and write their answer: once it is written, the
# process may end without Python's teardown (see leave; 2.3 s after a `run` or `worker`,
# whose TensorFlow and Keras modules are freed one at a time). Servers end normally.
QUICK_EXIT = frozenset({"status", "best", "export", "list", "report", "run", "worker"})
_answered: list[str] = []


def answered() -> bool:
    """Whether a QUICK_EXIT command has run to its end in this process."""
    return bool(_answered)


def leave(code: Any) -> NoReturn:
    """End the process with ``code`` (a SystemExit's) now: exit handlers run and output
    is flushed, but Python's teardown, which frees every module and object one at a time,
    is skipped (1.1 s after a 10,000-trial report, 0.5 s of it for MLflow's modules).
    Only when no other thread runs: a normal exit would wait for it."""
    import atexit
    import sys
    import threading

    if any(t.is_alive() and not t.daemon and t is not threading.main_thread()
           for t in threading.enumerate()):
        raise SystemExit(code)
    if code is None:
        status = 0
    elif isinstance(code, int):
        status = code
    else:
        print(code, file=sys.stderr)
        status = 1
    atexit._run_exitfuncs()
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):
            stream.flush()
    os._exit(status)


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="regsweep")
@click.option("--verbose", is_flag=True,
              help="Show TensorFlow's start-up lines and a traceback with any error.")
def cli(verbose: bool) -> None:
    """regsweep: find where L1/L2 penalties belong in a Keras network, and how strong."""
    from sweep.training.runtime import VERBOSE

    if verbose:
        os.environ[VERBOSE] = "1"  # also for the worker processes a launcher starts


