"""sweep.tracking.system: MLflow's own system metrics on a trial's run, on by default on a
GPU worker and as MLflow's switch says elsewhere; read back through MLflow's client from
a real tracking store. (The GPU's own figures come from NVML inside MLflow's monitor:
what regsweep decides is whether the monitor runs, which is tested here.)"""

from __future__ import annotations

import threading
import time

import pytest
from mlflow.tracking import MlflowClient

from sweep.tracking.system import system_metrics_wanted
from sweep.tracking.tracker import StudyTracker


def test_on_by_default_on_a_gpu_and_as_mlflows_switch_says_elsewhere() -> None:
    assert system_metrics_wanted({}, "GPU") is True
    assert system_metrics_wanted({}, "CPU") is False
    switch = "MLFLOW_ENABLE_SYSTEM_METRICS_LOGGING"
    assert system_metrics_wanted({switch: "true"}, "CPU") is True
    assert system_metrics_wanted({switch: "1"}, "CPU") is True
    assert system_metrics_wanted({switch: "false"}, "GPU") is False
    assert system_metrics_wanted({switch: "FALSE"}, "GPU") is False


def _monitors() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == "SystemMetricsMonitor"]


def _run(tracking_uri: str, name: str):
    tracker = StudyTracker(tracking_uri, experiment=f"system-{name}", study_name=name,
                           study_uid=name, worker="w")
    return tracker.start_run(name, {}, {})


def test_a_runs_system_metrics_are_sampled_until_it_finishes(
        tracking_uri: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MLFLOW_ENABLE_SYSTEM_METRICS_LOGGING", "true")
    monkeypatch.setenv("MLFLOW_SYSTEM_METRICS_SAMPLING_INTERVAL", "0.05")
    run = _run(tracking_uri, "sampled")
    run.watch_system("CPU")
    assert len(_monitors()) == 1
    deadline = time.monotonic() + 30
    while run._monitor._logging_step < 2:  # two samples taken and handed to its logger
        assert time.monotonic() < deadline, "no system metric sampled in 30 s"
        time.sleep(0.02)
    run.finish("COMPLETE", {"final/val_loss": 0.5})
    assert _monitors() == []  # the monitor stops with the run
    client = MlflowClient(tracking_uri)
    history = client.get_metric_history(run.run_id, "system/cpu_utilization_percentage")
    assert len(history) >= 2
    assert [m.step for m in history][:2] == [0, 1]
    assert "system/system_memory_usage_megabytes" in client.get_run(run.run_id).data.metrics
    assert client.get_run(run.run_id).info.status == "FINISHED"


def test_a_cpu_worker_records_none_unless_asked(
        tracking_uri: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MLFLOW_ENABLE_SYSTEM_METRICS_LOGGING", raising=False)
    run = _run(tracking_uri, "quiet")
    run.watch_system("CPU")
    assert _monitors() == []
    run.finish("COMPLETE", {"final/val_loss": 0.5})
    metrics = MlflowClient(tracking_uri).get_run(run.run_id).data.metrics
    assert sorted(metrics) == ["final/val_loss"]
