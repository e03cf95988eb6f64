"""A thread that watches the running trial from outside the main thread.

A training step blocked in TensorFlow's runtime (a deadlocked input pipeline, a stuck GPU
kernel, a ``tf.py_function`` that never returns) runs no Keras callback and no Python
signal handler, while Optuna's heartbeat thread keeps the trial looking alive. Only
another thread can notice. This one acts in two steps:

1. past ``budget.trial_timeout`` it asks the trial to end at its next safe point
   (``sweep.interrupt.expire``: the trial ends FAIL 'timeout ...' and the worker goes on);
   a stop request (SIGTERM/SIGINT) is honoured at the next safe point anyway;
2. if the main thread has not come back ``HARD_GRACE`` (timeout) or ``STOP_GRACE``
   (stop request) seconds later, it is stuck: the given handler records the trial's end
   from this thread and replaces or ends the process, abandoning the blocked step.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Callable, Iterator

from sweep import interrupt

log = logging.getLogger("sweep")

# Seconds the main thread has to reach a safe point before it counts as stuck. A stop must
# end the process well inside the 30 s clusters give between SIGTERM and SIGKILL.
STOP_GRACE = 15.0
HARD_GRACE = 10.0
_TICK = 0.25


def timeout_reason(seconds: float) -> str:
    return f"timeout: ran longer than budget.trial_timeout ({seconds:g} s)"


@contextlib.contextmanager
def watch(timeout: float | None, *, on_stuck_timeout: Callable[[str], None],
          on_stuck_stop: Callable[[], None]) -> Iterator[None]:
    """Watch the code inside the block (one trial). The handlers run on the watchdog's
    thread and are expected not to return (they exec or exit the process)."""
    done = threading.Event()
    started = time.monotonic()

    def run() -> None:
        expired_at: float | None = None
        stop_seen: float | None = None
        while not done.wait(_TICK):
            now = time.monotonic()
            if timeout is not None and expired_at is None and now - started >= timeout:
                expired_at = now
                interrupt.expire(timeout_reason(timeout))
            if expired_at is not None and now - expired_at >= HARD_GRACE:
                log.error("trial stuck past its timeout; abandoning its training step")
                on_stuck_timeout(timeout_reason(timeout or 0.0))
                return
            if interrupt.requested():
                stop_seen = stop_seen or now
                if now - stop_seen >= STOP_GRACE:
                    log.error("no safe point reached %.0f s after the stop request; "
                              "abandoning the training step", STOP_GRACE)
                    on_stuck_stop()
                    return

    thread = threading.Thread(target=run, name="sweep-watchdog", daemon=True)
    thread.start()
    try:
        yield
    finally:
        done.set()
        thread.join()
        interrupt.clear_timeout()
