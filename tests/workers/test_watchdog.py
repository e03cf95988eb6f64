"""The watchdog thread: a trial past its timeout is asked to stop, then abandoned; a stop
request the main thread cannot honour is acted on from the watchdog's thread."""

from __future__ import annotations

import os
import signal
import threading
import time

import pytest

from sweep import interrupt
from sweep.errors import TrialTimedOut
from sweep.workers import watchdog


@pytest.fixture(autouse=True)
def _short_graces(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setattr(watchdog, "HARD_GRACE", 0.5)
    monkeypatch.setattr(watchdog, "STOP_GRACE", 0.5)
    interrupt.reset()
    yield
    interrupt.reset()


def _never(*_: object) -> None:
    raise AssertionError("the watchdog acted on a trial that was not stuck")


def test_a_trial_past_its_timeout_ends_at_the_next_safe_point() -> None:
    with pytest.raises(TrialTimedOut, match=r"^timeout: ran longer than budget.trial_timeout"
                                            r" \(0.3 s\)$"), \
            watchdog.watch(0.3, on_stuck_timeout=_never, on_stuck_stop=_never):
        for _ in range(200):  # a training loop: check() between steps
            time.sleep(0.02)
            interrupt.check()
    interrupt.check()  # the timeout ends with the trial


def test_a_trial_that_never_reaches_a_safe_point_is_abandoned() -> None:
    abandoned = threading.Event()
    reasons: list[str] = []

    def stuck(reason: str) -> None:
        reasons.append(reason)
        abandoned.set()

    with watchdog.watch(0.2, on_stuck_timeout=stuck, on_stuck_stop=_never):
        assert abandoned.wait(5)  # a blocked step: no check() ever runs
    assert reasons == ["timeout: ran longer than budget.trial_timeout (0.2 s)"]


def test_a_stop_request_the_main_thread_cannot_see_is_acted_on() -> None:
    stopped = threading.Event()
    with interrupt.stop_on_signals(), \
            watchdog.watch(None, on_stuck_timeout=_never, on_stuck_stop=stopped.set):
        os.kill(os.getpid(), signal.SIGTERM)
        # (That the request is seen while the main thread is blocked inside TensorFlow's
        # runtime is shown end to end in test_resilience.)
        assert stopped.wait(5)
        assert interrupt.requested_signal() == "SIGTERM"
    interrupt.reset()


def test_no_action_without_timeout_or_request() -> None:
    with watchdog.watch(None, on_stuck_timeout=_never, on_stuck_stop=_never):
        time.sleep(0.6)
