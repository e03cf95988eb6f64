"""Many workers, one PostgreSQL study, a real MLflow server: exact budget, crashes,
dropped database connections, GPU assignment. Real servers, real worker processes."""

from __future__ import annotations

import os
import queue
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import optuna
import pytest
from conftest import tiny_study, wait_for, write_blocking_builder, write_study
from mlflow.tracking import MlflowClient
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from sweep.locations import normalize_storage_url
from sweep.storage.budget import used_budget
from sweep.storage.connect import APPLICATION_NAME

pytestmark = pytest.mark.timeout(600)


def _sweep(*args: str, **kwargs) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "sweep", *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, **kwargs)


def _stderr_lines(worker: subprocess.Popen) -> tuple[queue.Queue[str], threading.Thread]:
    """The worker's stderr, line by line as it comes, read by a thread."""
    lines: queue.Queue[str] = queue.Queue()
    reader = threading.Thread(target=lambda: [lines.put(line) for line in worker.stderr],
                              daemon=True)
    reader.start()
    return lines, reader


def _create(path: Path, storage: str, tracking: str) -> None:
    done = subprocess.run([sys.executable, "-m", "sweep", "create", str(path), "--storage",
                           storage, "--tracking-uri", tracking], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr


def _children(tracking: str, experiment: str):
    client = MlflowClient(tracking)
    exp = client.get_experiment_by_name(experiment)
    runs = client.search_runs([exp.experiment_id])
    return [r for r in runs if r.data.tags.get("sweep.role") != "study"]


def test_four_workers_started_together_finish_exactly_the_budget(
        workdir: Path, postgres_server_url: str, mlflow_server) -> None:
    study = tiny_study(name="pg-budget", budget={"n_trials": 6})
    study["train"]["epochs"] = 1
    path = write_study(workdir / "s.yaml", study)
    _create(path, postgres_server_url, mlflow_server.url)
    workers = [_sweep("worker", "pg-budget", "--storage", postgres_server_url,
                      "--tracking-uri", mlflow_server.url, "--no-progress") for _ in range(4)]
    outputs = [w.communicate(timeout=400) for w in workers]
    for worker, (_, err) in zip(workers, outputs, strict=True):
        assert worker.returncode == 0, err
        assert "Traceback" not in err
    result = optuna.load_study(study_name="pg-budget", storage=postgres_server_url)
    # Six trained; a trial that sampled a trained configuration again uses no budget.
    assert len([t for t in result.trials if "duplicate_of" not in t.user_attrs]) == 6
    assert used_budget(result.trials) == 6
    assert {t.state for t in result.trials} == {optuna.trial.TrialState.COMPLETE}
    assert not (workdir / "sweep-spool").exists()  # every run reached the server
    runs = _children(mlflow_server.url, "pg-budget")
    assert sorted(int(r.data.tags["optuna.trial_number"]) for r in runs) == \
        [t.number for t in result.trials]
    # That workers draw different random start-up trials: tests/study/test_create.py.


def test_killed_worker_trial_is_failed_retried_and_its_run_closed(
        workdir: Path, postgres_server_url: str, mlflow_server,
        monkeypatch: pytest.MonkeyPatch) -> None:
    # The victim's first training step blocks (a marker file lets the survivor's pass):
    # its trial is surely running when it is killed, however slow the machine.
    write_blocking_builder(workdir)
    study = tiny_study(name="pg-kill", budget={"n_trials": 1},
                       workers={"heartbeat_interval": 1, "grace_period": 3, "max_retry": 1},
                       model={"builder": "blocking_models:build"})
    path = write_study(workdir / "k.yaml", study)
    _create(path, postgres_server_url, mlflow_server.url)
    monkeypatch.setenv("BLOCK_MARKER_DIR", str(workdir))  # for the workers
    victim = _sweep("worker", "pg-kill", "--storage", postgres_server_url, "--tracking-uri",
                    mlflow_server.url, "--no-progress")
    wait_for(lambda: (workdir / "blocked-once").exists())

    def running():
        trials = optuna.load_study(study_name="pg-kill", storage=postgres_server_url).trials
        return [t for t in trials if t.state == optuna.trial.TrialState.RUNNING
                and "mlflow_run_id" in t.user_attrs]

    (lost,) = wait_for(running)
    victim.send_signal(signal.SIGKILL)
    victim.communicate(timeout=30)
    time.sleep(4)  # past the grace period

    reaped = subprocess.run(
        [sys.executable, "-m", "sweep", "reap", "pg-kill", "--storage", postgres_server_url,
         "--tracking-uri", mlflow_server.url], capture_output=True, text=True)
    assert reaped.returncode == 0, reaped.stderr
    assert f"({lost.number})" in reaped.stdout
    trials = optuna.load_study(study_name="pg-kill", storage=postgres_server_url).trials
    assert trials[lost.number].state == optuna.trial.TrialState.FAIL
    (retry,) = [t for t in trials if t.system_attrs.get("failed_trial") == lost.number]
    assert retry.state == optuna.trial.TrialState.WAITING
    assert retry.params == lost.params
    run = MlflowClient(mlflow_server.url).get_run(lost.user_attrs["mlflow_run_id"])
    assert run.info.status == "FAILED"
    assert "heartbeat" in run.data.tags["sweep.fail_reason"]

    survivor = subprocess.run(
        [sys.executable, "-m", "sweep", "worker", "pg-kill", "--storage", postgres_server_url,
         "--tracking-uri", mlflow_server.url, "--no-progress"], capture_output=True, text=True,
        timeout=300)
    assert survivor.returncode == 0, survivor.stderr
    final = optuna.load_study(study_name="pg-kill", storage=postgres_server_url).trials
    assert final[retry.number].state == optuna.trial.TrialState.COMPLETE
    assert final[retry.number].params == lost.params
    assert len(final) == 2 and used_budget(final) == 1


def test_a_lost_database_is_retried_and_costs_only_the_trial_in_flight(
        workdir: Path, postgres_server_url: str, mlflow_server) -> None:
    study = tiny_study(name="pg-drop", budget={"n_trials": 4},
                       workers={"heartbeat_interval": 1, "grace_period": 4})
    study["train"]["epochs"] = 8
    path = write_study(workdir / "d.yaml", study)
    _create(path, postgres_server_url, mlflow_server.url)
    worker = _sweep("worker", "pg-drop", "--storage", postgres_server_url, "--tracking-uri",
                    mlflow_server.url, "--no-progress")
    lines, reader = _stderr_lines(worker)
    study_db = make_url(normalize_storage_url(postgres_server_url))
    database = study_db.database
    # From another database: PostgreSQL cannot close the one it is connected to.
    admin = create_engine(study_db.set(database="postgres"), isolation_level="AUTOCOMMIT")

    def trials():
        return optuna.load_study(study_name="pg-drop", storage=postgres_server_url).trials

    seen: list[str] = []
    try:
        wait_for(lambda: any(t.state.is_finished() for t in trials()))
        with admin.connect() as connection:
            # The database refuses new connections and the worker's open ones are cut (its
            # own, by application_name, not this test's): its next query fails, and keeps
            # failing until the database is back.
            connection.execute(text(f'ALTER DATABASE "{database}" ALLOW_CONNECTIONS false'))
            try:
                killed = connection.execute(text(
                    "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                    "WHERE datname = :database AND application_name = :name"),
                    {"database": database, "name": f"{APPLICATION_NAME} {worker.pid}"}).scalar()
                assert killed >= 1
                while not any("storage error, retrying" in line for line in seen):
                    seen.append(lines.get(timeout=120))
            finally:
                connection.execute(text(f'ALTER DATABASE "{database}" ALLOW_CONNECTIONS true'))
        worker.wait(timeout=400)
    finally:
        admin.dispose()
        if worker.poll() is None:
            worker.kill()
    reader.join(timeout=10)
    seen += list(lines.queue)
    err = "".join(seen)
    assert worker.returncode == 0, err
    assert "Traceback" not in err
    # The worker retried, then went on: the budget holds, every trial finished, and at
    # most the one trial in flight was lost (failed and trained again).
    final = trials()
    assert used_budget(final) == 4
    complete = [t for t in final if t.state == optuna.trial.TrialState.COMPLETE
                and "duplicate_of" not in t.user_attrs]  # a duplicate trains nothing
    failed = [t for t in final if t.state == optuna.trial.TrialState.FAIL]
    assert len(complete) == 4 and len(failed) <= 1
    assert all(t.state.is_finished() for t in final)


def test_gpu_workers_each_see_their_own_device(workdir: Path, postgres_server_url: str,
                                               mlflow_server) -> None:
    study = tiny_study(name="pg-gpus", budget={"n_trials": 4})
    study["train"]["epochs"] = 4  # long enough that both workers get trials
    path = write_study(workdir / "g.yaml", study)
    done = subprocess.run(
        [sys.executable, "-m", "sweep", "run", str(path), "--storage", postgres_server_url,
         "--tracking-uri", mlflow_server.url, "--gpus", "0,1", "--no-progress"],
        capture_output=True, text=True, timeout=400, env={**os.environ, "CUDA_VISIBLE_DEVICES": ""})
    assert done.returncode == 0, done.stderr
    final = optuna.load_study(study_name="pg-gpus", storage=postgres_server_url).trials
    assert used_budget(final) == 4  # (a duplicate, if the sampler drew one, is free)
    by_worker = {t.user_attrs["worker"]: t.user_attrs["gpu"] for t in final}
    # Two workers, one device each, not the same one.
    assert sorted(by_worker.values()) == ["0", "1"], by_worker
    # A worker process never changes device.
    for trial in final:
        assert trial.user_attrs["gpu"] == by_worker[trial.user_attrs["worker"]]


def test_tracking_outage_spools_runs_and_sync_replays_them_once(
        workdir: Path, postgres_server_url: str, mlflow_server) -> None:
    server = mlflow_server  # stopped mid-study and started again on the same port and store
    # A space without repeats: a duplicate trial reuses an earlier run and trains nothing.
    search = {k: v for k, v in tiny_study()["search"].items() if k != "l1"}
    search.update(placement={"choices": ["all"]})
    study = tiny_study(name="pg-outage", budget={"n_trials": 3}, search=search)
    study["data"]["n_samples"] = 600
    # Long enough that the first trial is still training once the server has stopped.
    study["train"]["epochs"] = 60
    path = write_study(workdir / "o.yaml", study)
    try:
        _create(path, postgres_server_url, server.url)
        worker = _sweep("worker", "pg-outage", "--storage", postgres_server_url,
                        "--tracking-uri", server.url, "--no-progress", cwd=workdir)

        def running_with_run():
            trials = optuna.load_study(study_name="pg-outage",
                                       storage=postgres_server_url).trials
            return [t for t in trials if "mlflow_run_id" in t.user_attrs]

        wait_for(running_with_run)
        server.stop()  # mid-trial: the rest of this run and the later runs are spooled
        _, err = worker.communicate(timeout=400)
        assert worker.returncode == 0, err
        trials = optuna.load_study(study_name="pg-outage", storage=postgres_server_url).trials
        assert len([t for t in trials if "duplicate_of" not in t.user_attrs]) == 3
        assert {t.state for t in trials} == {optuna.trial.TrialState.COMPLETE}
        spooled = list((workdir / "sweep-spool").glob("*.jsonl"))
        assert len(spooled) == len(trials) + 1  # the trial runs and the study run's FINISHED
        # Only their owner reads them, and they hold no password.
        assert (workdir / "sweep-spool").stat().st_mode & 0o777 == 0o700
        assert {path.stat().st_mode & 0o777 for path in spooled} == {0o600}

        server.start()
        # Without the storage that holds the study the run ids could not be linked: refused.
        refused = subprocess.run([sys.executable, "-m", "sweep", "sync"], capture_output=True,
                                 text=True, cwd=workdir, timeout=300)
        assert refused.returncode == 2, refused.stderr
        assert "--storage" in refused.stderr and "pg-outage" in refused.stderr
        assert not (workdir / "sweep.db").exists()
        assert len(list((workdir / "sweep-spool").glob("*.jsonl"))) == len(trials) + 1
        synced = subprocess.run(
            [sys.executable, "-m", "sweep", "sync", "--storage", postgres_server_url],
            capture_output=True, text=True, cwd=workdir, timeout=300)
        assert synced.returncode == 0, synced.stderr
        assert f"synced {len(trials) + 1} runs" in synced.stdout
        again = subprocess.run([sys.executable, "-m", "sweep", "sync"], capture_output=True,
                               text=True, cwd=workdir, timeout=300)
        assert "nothing to sync" in again.stdout

        client = MlflowClient(server.url)
        (parent,) = client.search_runs(
            [client.get_experiment_by_name("pg-outage").experiment_id],
            filter_string="tags.`sweep.role` = 'study'")
        assert parent.info.status == "FINISHED"  # its status change was spooled too
        children = _children(server.url, "pg-outage")
        runs = {int(r.data.tags["optuna.trial_number"]): r for r in children}
        assert sorted(int(r.data.tags["optuna.trial_number"]) for r in children) == \
            [t.number for t in trials]
        exported = subprocess.run(
            [sys.executable, "-m", "sweep", "export", "pg-outage", "--storage",
             postgres_server_url, "--format", "json"], capture_output=True, text=True)
        import json

        links = {row["number"]: row["mlflow_run_id"] for row in json.loads(exported.stdout)}
        for number, run in runs.items():
            assert run.info.status == "FINISHED"
            assert links[number] == run.info.run_id
            history = client.get_metric_history(run.info.run_id, "val_accuracy")
            # Every epoch exactly once: nothing lost, nothing replayed twice.
            assert sorted(m.step for m in history) == list(range(1, 61)), (
                number, run.info.run_id, sorted(run.data.tags), len(runs))
            assert run.data.metrics["final/test_accuracy"] == pytest.approx(
                trials[number].user_attrs["final/test_accuracy"])
    finally:
        if server.process is None:
            server.start()


def test_a_worker_starting_when_the_database_has_no_free_connection_waits_for_one(
        workdir: Path, postgres_server_url: str, mlflow_server) -> None:
    """64 workers on a database of max_connections 100 lost 49 at start ("sorry, too many
    clients already"): a worker that finds no free connection waits one out. A role whose
    connection limit is 0 is that database for this worker (superusers are exempt, so the
    worker connects as its own role), until the limit is lifted."""
    import uuid

    path = write_study(workdir / "c.yaml", tiny_study(name="pg-full", budget={"n_trials": 1}))
    _create(path, postgres_server_url, mlflow_server.url)
    study_db = make_url(normalize_storage_url(postgres_server_url))
    role = f"sweep_limited_{uuid.uuid4().hex[:8]}"
    owner = create_engine(study_db, isolation_level="AUTOCOMMIT")
    with owner.connect() as connection:
        connection.execute(text(f'CREATE ROLE "{role}" LOGIN CONNECTION LIMIT 0'))
        for grant in ("ALL ON SCHEMA public", "ALL ON ALL TABLES IN SCHEMA public",
                      "ALL ON ALL SEQUENCES IN SCHEMA public"):
            connection.execute(text(f'GRANT {grant} TO "{role}"'))
    limited = study_db.set(username=role, password=None).render_as_string(hide_password=False)
    worker = _sweep("worker", "pg-full", "--storage", limited, "--tracking-uri",
                    mlflow_server.url, "--no-progress")
    lines, reader = _stderr_lines(worker)
    seen: list[str] = []
    try:
        while not any("no free connection; retrying" in line for line in seen):
            seen.append(lines.get(timeout=120))
        with owner.connect() as connection:
            connection.execute(text(f'ALTER ROLE "{role}" CONNECTION LIMIT -1'))
        worker.wait(timeout=400)
    finally:
        if worker.poll() is None:
            worker.kill()
            worker.wait()
        with owner.connect() as connection:  # roles outlive the test's database
            connection.execute(text(f'DROP OWNED BY "{role}"'))
            connection.execute(text(f'DROP ROLE "{role}"'))
        owner.dispose()
    reader.join(timeout=10)
    err = "".join(seen + list(lines.queue))
    assert worker.returncode == 0, err
    assert "too many connections for role" in err and "Traceback" not in err
    (trial,) = optuna.load_study(study_name="pg-full", storage=postgres_server_url).trials
    assert trial.state == optuna.trial.TrialState.COMPLETE
