"""Stopping a worker cleanly on SIGINT (Ctrl-C) and SIGTERM (pre-emption, ``kill``,
``docker stop``).

The signal handler only records the request; ``check()`` turns it into a
``KeyboardInterrupt`` at points where that is safe (between training steps, before a
trial, while sleeping). Raising straight from the handler lands the exception at an
arbitrary bytecode: inside a ``queue.Queue.put`` holding its lock (the tracking thread's
clean-up then deadlocks), or inside code run by ``eval`` (``collections.namedtuple``),
after which CPython 3.11 kills the process with SIGINT at exit even though the exception
was handled. Both were seen in CI.

A second signal *well after* the first forces an immediate ``KeyboardInterrupt`` for a
user who does not want to wait; one arriving at the same moment is the same request
seen twice (a terminal's Ctrl-C reaches a worker directly and through its launcher).
"""

from __future__ import annotations

import contextlib
import signal
import time
from collections.abc import Iterator
from typing import Any

FORCE_AFTER_SECONDS = 2.0
_STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


class _Request:
    at: float | None = None
    signal_name: str = ""


_request = _Request()


def requested() -> bool:
    """Whether a stop has been requested (and not yet consumed by ``reset``)."""
    return _request.at is not None


def check() -> None:
    """Raise ``KeyboardInterrupt`` if a stop has been requested. Call at safe points."""
    if _request.at is not None:
        raise KeyboardInterrupt(_request.signal_name)


def sleep(seconds: float) -> None:
    """``time.sleep`` that ends early, with ``KeyboardInterrupt``, on a stop request."""
    deadline = time.monotonic() + seconds
    while True:
        check()
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return
        time.sleep(min(0.2, remaining))


def reset() -> None:
    _request.at = None
    _request.signal_name = ""


def _handler(signum: int, frame: Any) -> None:
    now = time.monotonic()
    if _request.at is None:
        _request.at = now
        _request.signal_name = signal.Signals(signum).name
        return
    if now - _request.at >= FORCE_AFTER_SECONDS:
        raise KeyboardInterrupt(f"{signal.Signals(signum).name} (forced)")


@contextlib.contextmanager
def stop_on_signals() -> Iterator[None]:
    """Within this block SIGINT/SIGTERM request a stop instead of raising anywhere."""
    reset()
    previous = {s: signal.signal(s, _handler) for s in _STOP_SIGNALS}
    try:
        yield
    finally:
        for number, old in previous.items():
            signal.signal(number, old)
