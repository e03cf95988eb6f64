"""`sweep ui`: a lean MLflow UI on a real server, and links that open each study's runs."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

from conftest import answers, free_port, wait_for
from mlflow.tracking import MlflowClient


def _process_tree(root: int) -> list[int]:
    parents: dict[int, int] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        parents[int(stat.parent.name)] = int(fields[1])
    tree, frontier = [root], [root]
    while frontier:
        frontier = [pid for pid, parent in parents.items() if parent in frontier]
        tree += frontier
    return tree


def test_ui_prints_the_runs_view_of_each_study_and_starts_lean(workdir: Path) -> None:
    store = f"sqlite:///{workdir / 'ui.db'}"
    client = MlflowClient(store)
    study = client.create_experiment("a-study")
    client.create_run(study, tags={"sweep.role": "study"})
    client.create_experiment("not-a-study")  # no study run: not listed
    port = free_port()
    ui = subprocess.Popen([sys.executable, "-m", "sweep", "ui", "--tracking-uri", store,
                           "--port", str(port)], stdout=subprocess.PIPE,
                          stderr=subprocess.DEVNULL, text=True, start_new_session=True)
    try:
        base = f"http://127.0.0.1:{port}"
        wait_for(lambda: answers(base) or ui.poll() is not None, timeout=90)
        assert ui.poll() is None
        tree = _process_tree(ui.pid)
        assert len(tree) <= 3, tree  # MLflow's default: 16 processes
    finally:
        os.killpg(ui.pid, signal.SIGTERM)
        out, _ = ui.communicate(timeout=30)
    # Our lines come first; MLflow's server writes its own after them.
    assert out.splitlines()[0] == \
        f"  a-study: {base}/#/experiments/{study}?workflowType=machine_learning"
    assert "not-a-study" not in out
