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
import os
import signal
import threading
import time
from collections.abc import Iterator
from typing import Any

FORCE_AFTER_SECONDS = 2.0
_STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


class _Request:
    at: float | None = None
    signal_name: str = ""
    handled: int = 0  # runs of the Python handler since the request
    timeout: str = ""  # set by the watchdog when the running trial is past its time


_request = _Request()


def requested() -> bool:
    """Whether a stop has been requested (and not yet consumed by ``reset``)."""
    return _request.at is not None


def check() -> None:
    """Raise ``KeyboardInterrupt`` if a stop has been requested, ``TrialTimedOut`` if the
    running trial is past its time. Call at safe points."""
    if _request.at is not None:
        raise KeyboardInterrupt(_request.signal_name)
    if _request.timeout:
        from sweep.errors import TrialTimedOut

        raise TrialTimedOut(_request.timeout)


def requested_signal() -> str:
    """The name of the signal that requested the stop ('' if none)."""
    return _request.signal_name


def expire(reason: str) -> None:
    """Ask the running trial to end as timed out at its next safe point (watchdog)."""
    _request.timeout = reason


def clear_timeout() -> None:
    _request.timeout = ""


def stop_exit_code(signal_name: str) -> int:
    """SIGTERM is how clusters pre-empt: a clean stop whose work resumes elsewhere, exit 0
    (SLURM and Kubernetes then record success). Ctrl-C keeps the shell's 130."""
    return 0 if signal_name.startswith("SIGTERM") else 130


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
    _request.handled = 0
    _request.timeout = ""


def _record(signum: int) -> None:
    if _request.at is None:
        _request.at = time.monotonic()
        _request.signal_name = signal.Signals(signum).name


def _handler(signum: int, frame: Any) -> None:
    _record(signum)
    _request.handled += 1
    # Only the Python handler forces: the listener below may have recorded this very
    # signal long before the main thread got to run its handler.
    if _request.handled >= 2 and time.monotonic() - (_request.at or 0.0) >= \
            FORCE_AFTER_SECONDS:
        raise KeyboardInterrupt(f"{signal.Signals(signum).name} (forced)")


def _listen(read_fd: int) -> None:
    """Python runs signal handlers in the main thread only, between bytecodes: while a
    training step is blocked in TensorFlow's runtime it never does. CPython's C-level
    handler also writes each signal's number to the wakeup fd at once, from whatever
    thread received it; this thread reads them, so ``requested()`` is true at once and
    the watchdog can act on a stop that the main thread cannot see."""
    while True:
        try:
            data = os.read(read_fd, 64)
        except OSError:
            return
        if not data:
            return
        for number in data:
            if number in _STOP_SIGNALS:
                _record(number)


@contextlib.contextmanager
def stop_on_signals() -> Iterator[None]:
    """Within this block SIGINT/SIGTERM request a stop instead of raising anywhere. Only
    the main thread can install signal handlers: elsewhere (the Python API called from a
    thread) signals keep their usual effect."""
    reset()
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {s: signal.signal(s, _handler) for s in _STOP_SIGNALS}
    read_fd, write_fd = os.pipe()
    os.set_blocking(write_fd, False)
    previous_fd = signal.set_wakeup_fd(write_fd, warn_on_full_buffer=False)
    listener = threading.Thread(target=_listen, args=(read_fd,), daemon=True,
                                name="sweep-signals")
    listener.start()
    try:
        yield
    finally:
        signal.set_wakeup_fd(previous_fd)
        for number, old in previous.items():
            signal.signal(number, old)
        os.close(write_fd)  # ends the listener
        listener.join(timeout=5)
        os.close(read_fd)
