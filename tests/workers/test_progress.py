"""sweep.workers.progress: live bars when the worker's stderr is a terminal (a real pseudo-
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
    assert re.search(r"^\[1/2\] trial 0 COMPLETE val_accuracy=\d\.\d{4} "
                     r"\(best #0 \d\.\d{4}, 1 seed\)$",
                     shown, re.MULTILINE), shown
    assert re.search(r"^\[2/2\] trial 1 COMPLETE", shown, re.MULTILINE), shown
    assert "━" not in shown and "\x1b[" not in shown


def _line(directions: list[str], values: list[list[float]], finished: int = 1,
          extra: list[tuple[float, dict]] = (), study_file: dict | None = None,
          settings: list[dict] | None = None) -> str:
    """The line after trial ``finished`` of a study of one configuration per value (the
    first is no regularization), plus ``extra`` trials (value, user attrs)."""
    import io

    import optuna
    from rich.console import Console

    from sweep.spec import parse_spec
    from sweep.workers.progress import StudyProgress

    metrics = {"maximize": "val_accuracy", "minimize": "val_data_loss"}
    objective = [{"metric": metrics[d], "direction": d} for d in directions]
    spec = parse_spec({**(study_file or tiny_study()), "objective": objective})
    study = optuna.create_study(directions=directions)
    for k, value in enumerate(values):
        placement = {} if k == 0 else {"dense": {"kernel": {"l2": k / 1000}}}
        attrs = {"placement": placement, **({"settings": settings[k]} if settings else {})}
        study.add_trial(optuna.trial.create_trial(values=value, user_attrs=attrs))
    for value, attrs in extra:
        study.add_trial(optuna.trial.create_trial(values=[value], user_attrs=attrs))
    failed = optuna.trial.create_trial(state=optuna.trial.TrialState.FAIL)
    study.add_trial(failed)
    out = io.StringIO()
    progress = StudyProgress(study_name="s", budget=9, done=0, epochs=1, metric="m",
                             spec=spec, console=Console(file=out, width=200), enabled=False)
    trials = study.get_trials(deepcopy=False)
    progress.trial_finished(study, trials[finished], trials)
    return out.getvalue().strip()


def test_the_line_names_the_best_configuration_of_the_trials_read_once() -> None:
    # The count and the best come from the trials the worker read once after the trial.
    line = "[4/9] trial 1 COMPLETE m=0.3000"
    assert _line(["maximize"], [[0.5], [0.3], [0.7]]) == f"{line} (best #2 0.7000, 1 seed)"
    assert _line(["minimize"], [[0.5], [0.3], [0.7]]) == f"{line} (best #1 0.3000, 1 seed)"
    # Several objectives have no single best.
    assert _line(["maximize", "minimize"], [[0.5, 1.0], [0.3, 2.0]]) == \
        "[3/9] trial 1 COMPLETE m=0.3000"


def test_with_a_searched_dropout_the_best_is_named_by_its_regularizer_family() -> None:
    study_file = tiny_study()
    study_file["model"]["layers"][1]["Dropout"]["rate"] = {"low": 0.1, "high": 0.5,
                                                           "allow_zero": True}
    settings = [{"dropout/rate": 0.0}, {"dropout/rate": 0.3}, {"dropout/rate": 0.0}]
    line = "[4/9] trial 1 COMPLETE m=0.3000"
    assert _line(["maximize"], [[0.5], [0.3], [0.7]], study_file=study_file,
                 settings=settings) == f"{line} (best #2 (l2 (dense)) 0.7000, 1 seed)"
    assert _line(["minimize"], [[0.5], [0.3], [0.7]], study_file=study_file,
                 settings=settings) == f"{line} (best #1 (l2 (dense) + dropout) 0.3000, 1 seed)"
    assert _line(["minimize"], [[0.2], [0.3], [0.7]], study_file=study_file,
                 settings=settings) == f"{line} (best #0 (none (baseline)) 0.2000, 1 seed)"


def test_a_re_run_says_whose_seed_it_trained_its_own_draw_and_the_new_mean() -> None:
    # #1 drew 0.9 on its first seed; trial 3 is its second seed, drew 0.7, and its Optuna
    # value is the mean over both (0.8). #2's single 0.85 leads: no noise to shrink by
    # without racing, so the mean decides.
    rerun = {"placement": {"dense": {"kernel": {"l2": 0.001}}}, "seed_of": 1,
             "seed_index": 1, "seed_value": 0.7, "seeds": 2}
    assert _line(["maximize"], [[0.5], [0.9], [0.85]], finished=3, extra=[(0.8, rerun)]) == (
        "[5/9] trial 3 (#1 seed 2) COMPLETE m=0.7000, #1 now 0.8000 ± 0.1414 over 2 seeds "
        "(best #2 0.8500, 1 seed)")
