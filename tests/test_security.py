"""Who may reach a study, and what it may make a worker do: the proxy listens on loopback
unless told otherwise (and then warns), a spec rewritten in the database is refused, and
passwords never reach an output or a file."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import optuna
from click.testing import CliRunner
from conftest import free_port, tiny_study, wait_for, write_study

from sweep.cli import cli
from sweep.redact import mask_url


def _listening(port: int) -> set[str]:
    """The local addresses listening on ``port``: "127.0.0.1", "any" (0.0.0.0 or ::), ..."""
    found = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            address, port_hex = fields[1].rsplit(":", 1)
            if int(port_hex, 16) != port or fields[3] != "0A":  # 0A: LISTEN
                continue
            if set(address) == {"0"}:
                found.add("any")
                continue
            v4 = address[-8:] if len(address) == 8 or address.startswith(
                "0000000000000000FFFF0000") else None  # IPv4, or IPv4-mapped IPv6
            found.add(socket.inet_ntoa(bytes.fromhex(v4)[::-1]) if v4 else address)
    return found


def test_proxy_listens_on_loopback_unless_told_and_then_warns(tmp_path: Path) -> None:
    storage = f"sqlite:///{tmp_path / 'p.db'}"
    port = free_port()
    proxy = subprocess.Popen([sys.executable, "-m", "sweep", "proxy", "--storage", storage,
                              "--port", str(port)], stderr=subprocess.PIPE, text=True,
                             start_new_session=True)
    try:
        wait_for(lambda: _listening(port) or proxy.poll() is not None, timeout=60)
        assert _listening(port) == {"127.0.0.1"}  # nothing else
    finally:
        os.killpg(proxy.pid, signal.SIGTERM)
        _, err = proxy.communicate(timeout=30)
    assert "no authentication" not in err

    port = free_port()
    proxy = subprocess.Popen([sys.executable, "-m", "sweep", "proxy", "--storage", storage,
                              "--host", "0.0.0.0", "--port", str(port)],
                             stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        wait_for(lambda: _listening(port) or proxy.poll() is not None, timeout=60)
        assert _listening(port) == {"any"}
        # ... and it is reachable from another address of this machine.
        socket.create_connection((socket.gethostbyname(socket.gethostname()), port),
                                 timeout=5).close()
    finally:
        os.killpg(proxy.pid, signal.SIGTERM)
        _, err = proxy.communicate(timeout=30)
    assert "warning: the proxy on 0.0.0.0 has no authentication and no TLS" in err


def test_a_spec_rewritten_in_the_database_is_refused(workdir: Path, storage_url: str,
                                                     tracking_uri: str) -> None:
    path = write_study(workdir / "s.yaml", tiny_study(name="tampered"))
    created = CliRunner().invoke(cli, ["create", str(path), "--storage", storage_url,
                                       "--tracking-uri", tracking_uri])
    assert created.exit_code == 0, created.output
    study = optuna.load_study(study_name="tampered", storage=storage_url)
    spec = dict(study.user_attrs["spec"])
    spec["model"] = {"builder": "mybuilder:build"}  # what an attacker would plant
    study.set_user_attr("spec", spec)
    (workdir / "mybuilder.py").write_text(
        f"import pathlib\npathlib.Path({str(workdir / 'pwned')!r}).write_text('x')\n"
        "def build(input_shape, n_classes):\n    raise SystemExit\n")
    done = subprocess.run([sys.executable, "-m", "sweep", "worker", "tampered", "--storage",
                           storage_url, "--tracking-uri", tracking_uri, "--no-progress"],
                          capture_output=True, text=True, cwd=workdir, timeout=120)
    assert done.returncode == 2, done.stderr
    assert "changed outside `sweep create`" in done.stderr
    assert "Traceback" not in done.stderr
    assert not (workdir / "pwned").exists()
    assert optuna.load_study(study_name="tampered", storage=storage_url).trials == []


def test_mask_url_hides_passwords_in_userinfo_and_query() -> None:
    assert mask_url("postgresql://u:s3cr3t@db:5432/x") == "postgresql://u:***@db:5432/x"
    assert mask_url("postgresql://db/x?user=u&password=s3cr3t&sslmode=require") == \
        "postgresql://db/x?user=u&password=***&sslmode=require"
    assert mask_url("http://u:s3cr3t@mlflow:5000") == "http://u:***@mlflow:5000"
    assert mask_url("sqlite:///sweep.db") == "sqlite:///sweep.db"


SECRET = "s3cr3tPW"  # trust auth here: any password is accepted, so it travels everywhere


def _with_password(url: str, form: str) -> str:
    scheme, rest = url.split("://", 1)
    if form == "userinfo":
        user, host = rest.split("@", 1) if "@" in rest else ("u", rest)
        return f"{scheme}://{user}:{SECRET}@{host}"
    return f"{url}{'&' if '?' in url else '?'}password={SECRET}"


def test_no_password_in_any_output_file_or_store(workdir: Path, postgres_server_url: str,
                                                 mlflow_server) -> None:
    # Both forms at once: the storage's password as a query parameter (the harder one to
    # mask), the tracking server's in the URL's userinfo.
    form = "query"
    storage = _with_password(postgres_server_url, form)
    # MLflow takes the password of an http URI as basic auth (the test server ignores it).
    tracking = _with_password(mlflow_server.url, "userinfo")
    name = f"secrets-{form}"
    path = write_study(workdir / "s.yaml", tiny_study(
        name=name, budget={"n_trials": 2}, report={"confirm_top": 0}))
    common = ["--storage", storage, "--tracking-uri", tracking]
    outputs = []
    for command in (["create", str(path), *common],
                    ["run", str(path), *common, "--no-progress"],
                    ["worker", name, *common, "--no-progress"],
                    ["status", name, "--storage", storage, "--tracking-uri", tracking],
                    ["best", name, "--storage", storage],
                    ["export", name, "--storage", storage, "--format", "json",
                     "-o", str(workdir / "export.json")],
                    ["report", name, *common, "--output", str(workdir / "report")],
                    ["list", "--storage", storage],
                    ["sync", *common],
                    ["run", str(workdir / "missing.yaml"), *common],  # errors, too
                    ["status", "no-such-study", "--storage", storage]):
        done = subprocess.run([sys.executable, "-m", "sweep", *command], capture_output=True,
                              text=True, cwd=workdir, timeout=600)
        outputs.append((command[0], done.returncode, done.stdout + done.stderr))
    codes = [code for _, code, _ in outputs]
    assert codes == [0, 0, 0, 0, 0, 0, 0, 0, 0, 2, 2], outputs
    for command, _, text in outputs:
        assert SECRET not in text, (command, text)
    # Nothing written here holds it: export, report, checkpoints, spool, ...
    for file in workdir.rglob("*"):
        if file.is_file():
            assert SECRET.encode() not in file.read_bytes(), file
    # ... nor the MLflow store (params, tags, descriptions, artifacts) ...
    for file in mlflow_server.folder.rglob("*"):
        if file.is_file() and file.name != "server.log":
            assert SECRET.encode() not in file.read_bytes(), file
    # ... nor the study in the database.
    study = optuna.load_study(study_name=name, storage=postgres_server_url)
    stored = repr(study.user_attrs) + repr([t.user_attrs for t in study.trials])
    assert SECRET not in stored


def test_several_runs_started_together_on_a_fresh_folder(tmp_path: Path) -> None:
    """The embedded defaults (./sweep.db, ./mlflow.db) created by three `sweep run` at
    once: one creates, the others wait and join; the budget holds and the stores work."""
    from mlflow.tracking import MlflowClient

    for attempt in range(1):  # (2 cores: three start-ups of TensorFlow take a minute)
        folder = tmp_path / f"fresh-{attempt}"
        folder.mkdir()
        study = tiny_study(name="together", budget={"n_trials": 3})
        study["train"]["epochs"] = 1
        write_study(folder / "s.yaml", study)
        env = {k: v for k, v in os.environ.items()
               if k not in ("SWEEP_STORAGE", "MLFLOW_TRACKING_URI")}
        runs = [subprocess.Popen([sys.executable, "-m", "sweep", "run", "s.yaml",
                                  "--no-progress"], cwd=folder, env=env, text=True,
                                 stdout=subprocess.PIPE, stderr=subprocess.PIPE)
                for _ in range(3)]
        results = [(run.wait(timeout=600), *run.communicate()) for run in runs]
        assert [code for code, _, _ in results] == [0, 0, 0], results
        for _, _, err in results:
            assert "differs from the spec stored" not in err and "Traceback" not in err
        trials = optuna.load_study(study_name="together",
                                   storage=f"sqlite:///{folder / 'sweep.db'}").trials
        assert len([t for t in trials if "duplicate_of" not in t.user_attrs]) == 3
        client = MlflowClient(f"sqlite:///{folder / 'mlflow.db'}")
        experiment = client.get_experiment_by_name("together")
        runs_logged = client.search_runs([experiment.experiment_id],
                                         filter_string="tags.`sweep.role` = 'trial'")
        assert len(runs_logged) == len(trials)
