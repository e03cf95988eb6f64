"""SIGTERM / SIGINT close the running trial cleanly: FAIL with reason "interrupted", its
MLflow run KILLED, its configuration queued again, and the worker exits without a
traceback."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import optuna
import pytest
from conftest import tiny_study, write_study
from mlflow.tracking import MlflowClient

from sweep import interrupt


def _running_trial(storage: str, name: str):
    try:
        study = optuna.load_study(study_name=name, storage=storage)
    except KeyError:
        return None
    for trial in study.get_trials(states=(optuna.trial.TrialState.RUNNING,)):
        if "mlflow_run_id" in trial.user_attrs:
            return trial
    return None


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_signal_closes_the_running_trial(workdir: Path, storage_url: str, tracking_uri: str,
                                         signum: int) -> None:
    # Saved at every epoch end (`auto` would save every 30 s): the stop loses nothing
    # but the epoch in progress.
    study = tiny_study(name=f"sig{signum}", budget={"n_trials": 2},
                       workers={"checkpoint_every": 1})
    study["train"]["epochs"] = 5000  # long enough to be caught mid-trial
    path = write_study(workdir / "s.yaml", study)
    # Created first: this test then polls a storage whose schema exists (two processes
    # creating the same fresh SQLite schema race in its migration).
    created = subprocess.run([sys.executable, "-m", "sweep", "create", str(path), "--storage",
                              storage_url, "--tracking-uri", tracking_uri],
                             capture_output=True, text=True)
    assert created.returncode == 0, created.stderr
    process = subprocess.Popen(
        [sys.executable, "-m", "sweep", "run", str(path), "--storage", storage_url,
         "--tracking-uri", tracking_uri, "--no-progress"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    trial = None
    while trial is None and time.monotonic() < deadline and process.poll() is None:
        time.sleep(0.5)
        trial = _running_trial(storage_url, study["name"])
    assert trial is not None, process.communicate(timeout=5)
    # Signalled once an epoch has reached MLflow: the worker is inside model.fit, not in
    # TensorFlow's import or the model's build.
    client = MlflowClient(tracking_uri)
    run_id = trial.user_attrs["mlflow_run_id"]
    logged: list[int] = []
    while not logged and time.monotonic() < deadline and process.poll() is None:
        time.sleep(0.5)
        logged = [m.step for m in client.get_metric_history(run_id, "val_accuracy")]
    assert logged, process.communicate(timeout=5)
    process.send_signal(signum)
    _, stderr = process.communicate(timeout=60)
    # SIGTERM is a pre-emption, a clean stop (exit 0); Ctrl-C keeps the shell's 130.
    assert process.returncode == (0 if signum == signal.SIGTERM else 130), stderr
    assert "Traceback" not in stderr
    assert "queued again" in stderr

    trials = optuna.load_study(study_name=study["name"], storage=storage_url).trials
    closed = trials[trial.number]
    assert closed.state == optuna.trial.TrialState.FAIL
    assert closed.user_attrs["fail_reason"] == "interrupted"
    (queued,) = [t for t in trials if t.state == optuna.trial.TrialState.WAITING]
    assert queued.params == closed.params
    assert client.get_run(run_id).info.status == "KILLED"
    # Where it stopped: between two training steps of a later epoch than the one seen,
    # with the epochs done saved for the configuration's next trial to resume from.
    epochs = [m.step for m in client.get_metric_history(run_id, "val_accuracy")]
    (saved,) = (Path(storage_url.removeprefix("sqlite:///")).parent /
                "sweep-checkpoints").glob(f"study-*/trial-{closed.number}/state.json")
    assert 1 <= max(logged) <= max(epochs) == json.loads(saved.read_text())["epoch"] < 5000


def _deliver(signum: int) -> None:
    os.kill(os.getpid(), signum)
    time.sleep(0.05)  # the handler runs at the next bytecode boundary of this thread


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_a_signal_is_only_a_request_until_a_safe_point(signum: int) -> None:
    with interrupt.stop_on_signals():
        _deliver(signum)  # nothing raised here, wherever the signal lands
        assert interrupt.requested()
        _deliver(signum)  # the same request seen twice (terminal + launcher): no force
        with pytest.raises(KeyboardInterrupt, match=signal.Signals(signum).name):
            interrupt.check()
    interrupt.reset()


def test_a_late_second_signal_forces_the_interrupt(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(interrupt, "FORCE_AFTER_SECONDS", 0.0)
    with interrupt.stop_on_signals(), pytest.raises(KeyboardInterrupt, match="forced"):
        _deliver(signal.SIGINT)
        _deliver(signal.SIGINT)
    interrupt.reset()


def test_sleep_ends_early_on_a_request() -> None:
    # A job a shell starts in the background has SIGINT ignored; this test checks that
    # Python's own handler comes back, so it starts from that handler.
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        _sleep_ends_early()
    finally:
        signal.signal(signal.SIGINT, previous)


def _sleep_ends_early() -> None:
    with interrupt.stop_on_signals():
        started = time.monotonic()
        # Another thread sends the signal (no ITIMER_REAL: pytest-timeout's alarm uses it).
        sender = threading.Timer(0.1, os.kill, (os.getpid(), signal.SIGTERM))
        sender.start()
        try:
            with pytest.raises(KeyboardInterrupt):
                interrupt.sleep(30)
        finally:
            sender.join()
        assert time.monotonic() - started < 5
    interrupt.reset()
    assert not interrupt.requested()
    # outside the block the previous handlers are back
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
