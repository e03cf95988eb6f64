"""`sweep ui`: a lean MLflow UI on a real server, and links that open each study's runs."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

from conftest import answers, free_port
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
                          stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        base = f"http://127.0.0.1:{port}"
        # The link comes once the server answers: it opens the UI, not an error page.
        first = ui.stdout.readline()
        assert answers(base)
        for _ in range(3):  # requests MLflow would log a line for each
            assert answers(base)
        tree = _process_tree(ui.pid)
        # regsweep waiting on MLflow's server (MLflow's default: 16 processes).
        assert len(tree) <= 4, tree
    finally:
        os.killpg(ui.pid, signal.SIGTERM)
        rest, err = ui.communicate(timeout=30)
    assert ui.returncode == 0, err
    out = first + rest
    assert out.splitlines() == [
        f"  a-study: {base}/#/experiments/{study}?workflowType=machine_learning"]
    # MLflow's start-up notes and access log stay out; what is left is ours.
    assert err.splitlines() == [
        f"MLflow UI for {store} on {base} (Ctrl-C stops it)", "MLflow UI stopped."], err


def test_ui_refuses_a_port_something_else_answers_on(workdir: Path) -> None:
    """Else the printed links would open that other server."""
    from http.server import HTTPServer, SimpleHTTPRequestHandler
    from threading import Thread

    other = HTTPServer(("127.0.0.1", 0), SimpleHTTPRequestHandler)
    Thread(target=other.serve_forever, daemon=True).start()
    try:
        done = subprocess.run([sys.executable, "-m", "sweep", "ui", "--tracking-uri",
                               f"sqlite:///{workdir / 'ui.db'}", "--port",
                               str(other.server_address[1])],
                              capture_output=True, text=True, timeout=60)
    finally:
        other.shutdown()
    assert done.returncode == 1
    assert done.stderr.strip() == (f"error: something already answers on "
                                   f"http://127.0.0.1:{other.server_address[1]}: pass "
                                   "another --port")
