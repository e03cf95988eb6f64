"""The exception tree: what went wrong decides what the caller does next.

- ``SpecError``: bad input (study file, flags, unknown study). Nothing is written; the CLI
  exits 2 with the field and the value named.
- ``TrialFailed``: one trial could not finish (NaN loss, a model that does not build, ...).
  The trial is recorded as FAIL with the reason and the worker goes on.
- ``FatalError``: the worker cannot go on (storage unreachable, ...). The CLI exits 1.
- ``StudyHalted``: the study itself may start no more trials (too many failures, or past
  its wall time). Every worker stops starting trials.
- ``BudgetExhausted``: the study's trial budget is spent; the worker ends normally.
"""

from __future__ import annotations

import re

_ERROR_LINE = re.compile(r"^\s*([A-Za-z_][\w.]*(?:Error|Exception|Exhausted)): (.+)$")


class SweepError(Exception):
    """Base class of every error regsweep raises on purpose."""


class SpecError(SweepError):
    """Invalid user input. ``field`` is the dotted path of the offending value."""

    def __init__(self, field: str, message: str, value: object = None, *, show_value: bool = True):
        self.field = field
        self.message = message
        self.value = value
        self.show_value = show_value
        text = f"{field}: {message}" if field else message
        if show_value:
            text += f" (got {value!r})"
        super().__init__(text)

    def renamed(self, field: str) -> SpecError:
        """The same error, its field named as the caller's user knows it (the CLI names
        the Python API's ``n_trials`` ``--n-trials``)."""
        return SpecError(field, self.message, self.value, show_value=self.show_value)


class SpecErrors(SpecError):
    """Several spec errors reported at once, so a user fixes a file in one pass."""

    def __init__(self, errors: list[SpecError]):
        self.errors = errors
        SweepError.__init__(self, "\n".join(str(e) for e in errors))
        self.field = errors[0].field if errors else ""
        self.message = str(self)
        self.value = None


class TrialFailed(SweepError):
    """A trial ended without a usable value; the reason is stored on the trial."""


class TrialTimedOut(TrialFailed):
    """A trial ran past ``budget.trial_timeout``; its reason starts with 'timeout'."""


class StudyHalted(SweepError):
    """The study may start no more trials: ``budget.max_failures`` or ``budget.wall_time``
    was reached. ``failed`` tells which (the CLI exits 1 for failures, 0 for time)."""

    def __init__(self, message: str, *, failed: bool):
        self.failed = failed
        super().__init__(message)


class BudgetExhausted(SweepError):
    """The study's budget is spent: nothing is left for this worker to start (raised by
    the storage when a worker asks for a trial, sweep.storage.budget)."""


class FatalError(SweepError):
    """The worker cannot continue."""


class StorageBusy(FatalError):
    """The database refused a connection because it has none left (its max_connections, or
    a role's or database's connection limit): a fault that passes as other workers end."""


def describe_failure(error: BaseException, limit: int = 500) -> str:
    """One line for an exception: its type and message, passwords masked. TensorFlow's
    runtime errors carry whole Python tracebacks in their message; the root cause is the
    last line of the form ``SomeError: message`` in it."""
    text = str(error)
    lines = [line for line in text.splitlines() if line.strip()]
    causes = [m for m in map(_ERROR_LINE.match, lines) if m]
    if len(lines) > 1 and causes:
        kind, message = causes[-1].groups()
        reason = f"{type(error).__name__} ({kind}: {message.strip()})"
    else:
        reason = f"{type(error).__name__}: {lines[0].strip() if lines else ''}".rstrip(": ")
    from sweep.redact import mask_url  # a message may quote a URL with its password

    reason = mask_url(reason)
    return reason if len(reason) <= limit else reason[:limit - 1] + "…"


def root_cause(error: BaseException) -> BaseException:
    """The innermost exception of a chain: SQLAlchemy and Optuna wrap "connection refused"
    in "An exception is raised during the commit ..."; the user needs the former."""
    seen = {id(error)}
    while True:
        inner = error.__cause__ or error.__context__
        if inner is None or id(inner) in seen:
            return error
        seen.add(id(inner))
        error = inner
