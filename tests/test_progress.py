"""sweep.study.progress: live bars when the worker's stderr is a terminal (a real pseudo-
terminal here), one line per finished trial with the study-wide count otherwise."""

from __future__ import annotations

import os
import pty
import re
import subprocess
import sys
from pathlib import Path

from conftest import tiny_study, write_study


def _run(workdir: Path, storage_url: str, tracking_uri: str, name: str, *,
         terminal: bool) -> str:
    path = write_study(workdir / f"{name}.yaml", tiny_study(name=name, budget={"n_trials": 2}))
    command = [sys.executable, "-m", "sweep", "run", str(path), "--storage", storage_url,
               "--tracking-uri", tracking_uri]
    env = {**os.environ, "COLUMNS": "120", "TERM": "xterm-256color"}
    if not terminal:
        done = subprocess.run(command, capture_output=True, text=True, env=env, timeout=300)
        assert done.returncode == 0, done.stderr
        return done.stderr
    leader, follower = pty.openpty()
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=follower, env=env)
    os.close(follower)
    chunks = []
    while True:
        try:
            chunk = os.read(leader, 65536)
        except OSError:  # EIO: the worker closed the terminal
            break
        if not chunk:
            break
        chunks.append(chunk)
    os.close(leader)
    assert process.wait(timeout=300) == 0
    return b"".join(chunks).decode(errors="replace")


def test_a_terminal_gets_live_bars(workdir: Path, storage_url: str, tracking_uri: str) -> None:
    shown = _run(workdir, storage_url, tracking_uri, "bars", terminal=True)
    text = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", shown)  # without the cursor moves
    assert "\x1b[" in shown  # redrawn in place
    assert "study bars" in text and "━" in text
    assert re.search(r"trial 0 .*\d/2", text)  # the trial's epochs, 2 per trial
    assert re.search(r"study bars .*2/2", text)  # the study bar reached the budget
    assert "trial 1 COMPLETE val_accuracy=" in text
    assert "[2/2]" not in text  # no log lines on a terminal


def test_a_log_gets_one_line_per_trial(workdir: Path, storage_url: str,
                                       tracking_uri: str) -> None:
    shown = _run(workdir, storage_url, tracking_uri, "lines", terminal=False)
    assert re.search(r"^\[1/2\] trial 0 COMPLETE val_accuracy=\d\.\d{4} \(best \d\.\d{4}\)$",
                     shown, re.MULTILINE), shown
    assert re.search(r"^\[2/2\] trial 1 COMPLETE", shown, re.MULTILINE), shown
    assert "━" not in shown and "\x1b[" not in shown


def _line(directions: list[str], values: list[list[float]]) -> str:
    import io

    import optuna
    from rich.console import Console

    from sweep.study.progress import StudyProgress

    study = optuna.create_study(directions=directions)
    for value in values:
        study.add_trial(optuna.trial.create_trial(values=value))
    failed = optuna.trial.create_trial(state=optuna.trial.TrialState.FAIL)
    study.add_trial(failed)
    out = io.StringIO()
    progress = StudyProgress(study_name="s", budget=5, done=0, epochs=1, metric="m",
                             console=Console(file=out, width=200), enabled=False)
    trials = study.get_trials(deepcopy=False)
    progress.trial_finished(study, trials[1], trials)
    return out.getvalue().strip()


def test_the_line_names_the_best_of_the_trials_read_once() -> None:
    # The count and the best come from the trials the worker read once after the trial.
    line = "[4/5] trial 1 COMPLETE m=0.3000"
    assert _line(["maximize"], [[0.5], [0.3], [0.7]]) == f"{line} (best 0.7000)"
    assert _line(["minimize"], [[0.5], [0.3], [0.7]]) == f"{line} (best 0.3000)"
    # Several objectives have no single best.
    assert _line(["maximize", "minimize"], [[0.5, 1.0], [0.3, 2.0]]) == \
        "[3/5] trial 1 COMPLETE m=0.3000"
