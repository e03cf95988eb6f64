"""`sweep proxy`: workers reach a PostgreSQL study through Optuna's gRPC storage proxy,
and the exact budget holds across it."""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import optuna
import pytest
from conftest import free_port, tiny_study, wait_for, write_study

from sweep.storage.budget import used_budget

pytestmark = pytest.mark.timeout(600)


def _wait_for_port(port: int, process: subprocess.Popen, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert process.poll() is None, process.communicate()[1]
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.3)
    raise AssertionError("proxy did not start")


def test_workers_through_the_proxy_share_an_exact_budget(
        workdir: Path, postgres_server_url: str, mlflow_server) -> None:
    port = free_port()
    proxy = subprocess.Popen(
        [sys.executable, "-m", "sweep", "proxy", "--storage", postgres_server_url,
         "--host", "127.0.0.1", "--port", str(port)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        _wait_for_port(port, proxy)
        url = f"grpc://127.0.0.1:{port}"
        study = tiny_study(name="via-proxy", budget={"n_trials": 4})
        study["train"]["epochs"] = 150  # trials long enough to be seen RUNNING
        path = write_study(workdir / "p.yaml", study)
        created = subprocess.run(
            [sys.executable, "-m", "sweep", "create", str(path), "--storage", url,
             "--tracking-uri", mlflow_server.url], capture_output=True, text=True)
        assert created.returncode == 0, created.stderr
        workers = [subprocess.Popen(
            [sys.executable, "-m", "sweep", "worker", "via-proxy", "--storage", url,
             "--tracking-uri", mlflow_server.url, "--no-progress"],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(2)]

        def running():
            trials = optuna.load_study(study_name="via-proxy", storage=postgres_server_url)
            return any(t.state == optuna.trial.TrialState.RUNNING for t in trials.trials)

        wait_for(running)
        live = subprocess.run(
            [sys.executable, "-m", "sweep", "status", "via-proxy", "--storage", url],
            capture_output=True, text=True)
        assert live.returncode == 0, live.stderr  # status while trials run, via the proxy
        assert "running: trial #" in live.stdout
        for worker in workers:
            _, err = worker.communicate(timeout=400)
            assert worker.returncode == 0, err
            assert "Traceback" not in err
        status = subprocess.run(
            [sys.executable, "-m", "sweep", "status", "via-proxy", "--storage", url,
             "--format", "json"],
            capture_output=True, text=True)
        assert status.returncode == 0, status.stderr
        assert '"finished": 4' in status.stdout
    finally:
        proxy.send_signal(signal.SIGTERM)
        _, err = proxy.communicate(timeout=60)
    assert "Traceback" not in err
    # Read back directly from PostgreSQL: the proxy wrote the real study.
    trials = optuna.load_study(study_name="via-proxy", storage=postgres_server_url).trials
    trained = [t for t in trials if "duplicate_of" not in t.user_attrs]
    assert len(trained) == 4 and used_budget(trials) == 4
    assert {t.state for t in trials} == {optuna.trial.TrialState.COMPLETE}


def test_a_proxy_that_does_not_answer_is_a_storage_fault_to_wait_out() -> None:
    """A worker retries with back-off on a storage fault; behind `sweep proxy` the fault
    arrives as a gRPC error (64 workers on one busy proxy lost 10 workers to it)."""
    import grpc

    from sweep.workers.loop import _is_storage_error

    client = optuna.storages.GrpcStorageProxy(host="127.0.0.1", port=free_port())
    with pytest.raises(grpc.RpcError) as caught:
        client.get_all_studies()
    assert caught.value.code() == grpc.StatusCode.UNAVAILABLE
    assert _is_storage_error(caught.value)
    # Wrapped as Optuna's _run_trial may wrap it, too.
    try:
        try:
            raise caught.value
        except grpc.RpcError as error:
            raise UnboundLocalError("state") from error
    except UnboundLocalError as masked:
        assert _is_storage_error(masked)
    assert not _is_storage_error(ValueError("a bug, not a fault"))


def test_many_workers_at_once_through_one_proxy_lose_nothing(
        postgres_server_url: str) -> None:
    """24 clients asking one `sweep proxy` for trials at the same moment: each gets its
    trials or the budget's end, never a server error (32 workers on a proxy lost 4 to
    "QueuePool limit of size 2 overflow 2 reached": threads queued inside the database lock
    held every pooled connection the lock's holder needed)."""
    import threading

    from sweep.storage.budget import is_budget_exhausted

    name = "proxy-crowd"
    study = optuna.create_study(study_name=name, storage=postgres_server_url)
    study.set_user_attr("spec", {"budget": {"n_trials": 60}})
    port = free_port()
    proxy = subprocess.Popen(
        [sys.executable, "-m", "sweep", "proxy", "--storage", postgres_server_url,
         "--port", str(port)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    errors: list[str] = []
    created: list[int] = []
    start = threading.Barrier(24)

    def client() -> None:
        storage = optuna.storages.GrpcStorageProxy(host="127.0.0.1", port=port)
        study_id = storage.get_study_id_from_name(name)
        start.wait()
        try:
            while True:
                trial_id = storage.create_new_trial(study_id)
                storage.set_trial_user_attr(trial_id, "seed", trial_id)
                storage.set_trial_state_values(
                    trial_id, optuna.trial.TrialState.COMPLETE, [0.5])
                created.append(trial_id)
        except Exception as error:  # the budget's end, or the defect
            if not is_budget_exhausted(error):
                errors.append(f"{type(error).__name__}: {error}")

    try:
        _wait_for_port(port, proxy)
        threads = [threading.Thread(target=client) for _ in range(24)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=300)
    finally:
        proxy.send_signal(signal.SIGTERM)
        _, err = proxy.communicate(timeout=60)
    assert errors == []
    assert "Traceback" not in err
    trials = optuna.load_study(study_name=name, storage=postgres_server_url).trials
    assert len(created) == 60 and len(trials) == 60
    assert {t.state for t in trials} == {optuna.trial.TrialState.COMPLETE}


def _attributes_through(port: int, name: str, postgres_server_url: str) -> tuple[Any, ...]:
    """Set a trial's attributes in one call through the proxy on ``port``; what the
    client learnt about the proxy, and the trial read back from PostgreSQL."""
    from optuna.exceptions import UpdateFinishedTrialError

    from sweep.storage.proxy import ProxyStorage

    client = ProxyStorage(host="127.0.0.1", port=port)
    client.wait_server_ready(timeout=60)
    study_id = client.get_study_id_from_name(name)
    trial_id = client.create_new_trial(study_id)
    client.set_trial_user_attrs(trial_id, {"seed": 3, "placement": {"dense": ["kernel"]},
                                           "fail_reason": None})
    client.set_trial_state_values(trial_id, optuna.trial.TrialState.COMPLETE, [0.5])
    with pytest.raises(UpdateFinishedTrialError):
        client.set_trial_user_attrs(trial_id, {"seed": 4})
    with pytest.raises(KeyError):
        client.set_trial_user_attrs(10**9, {"seed": 4})
    (trial,) = optuna.load_study(study_name=name, storage=postgres_server_url).trials
    return client._batched, trial.user_attrs


def test_a_trials_attributes_cross_sweep_proxy_in_one_request(
        postgres_server_url: str) -> None:
    name = "proxy-batch"
    optuna.create_study(study_name=name, storage=postgres_server_url)
    port = free_port()
    proxy = subprocess.Popen(
        [sys.executable, "-m", "sweep", "proxy", "--storage", postgres_server_url,
         "--port", str(port)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        _wait_for_port(port, proxy)
        batched, attrs = _attributes_through(port, name, postgres_server_url)
    finally:
        proxy.send_signal(signal.SIGTERM)
        _, err = proxy.communicate(timeout=60)
    assert "Traceback" not in err
    assert batched is True  # sweep proxy answered the batched call
    assert attrs == {"seed": 3, "placement": {"dense": ["kernel"]}, "fail_reason": None}


def test_optunas_own_proxy_gets_one_request_per_attribute(postgres_server_url: str) -> None:
    name = "proxy-plain"
    optuna.create_study(study_name=name, storage=postgres_server_url)
    port = free_port()
    code = ("import sys, optuna; optuna.storages.run_grpc_proxy_server("
            "optuna.storages.get_storage(sys.argv[1]), host='127.0.0.1', "
            "port=int(sys.argv[2]))")
    proxy = subprocess.Popen([sys.executable, "-c", code, postgres_server_url, str(port)],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        _wait_for_port(port, proxy)
        batched, attrs = _attributes_through(port, name, postgres_server_url)
    finally:
        proxy.kill()
        proxy.communicate(timeout=60)
    assert batched is False  # the call is unknown there: one request per attribute
    assert attrs == {"seed": 3, "placement": {"dense": ["kernel"]}, "fail_reason": None}
