"""sweep.training.environment and sweep.study.source: what ran where, recorded on every
trial (Optuna attribute and MLflow tags) and listed by the report. GPU paths are tested
through what TensorFlow tells the process (device list, memory statistics)."""

from __future__ import annotations

import json
import socket
import subprocess
from pathlib import Path

import keras
import mlflow
import optuna
import pytest
import tensorflow as tf
from click.testing import CliRunner
from conftest import tiny_study, write_study
from mlflow.tracking import MlflowClient

from sweep.cli import cli
from sweep.study.source import git_commit
from sweep.training.environment import GpuUsage, describe_devices, describe_environment


def _git(folder: Path, *args: str) -> str:
    return subprocess.run(["git", "-C", str(folder), "-c", "user.name=t",
                           "-c", "user.email=t@example.com", *args],
                          check=True, capture_output=True, text=True).stdout.strip()


def test_this_cpu_worker_describes_itself() -> None:
    found = describe_environment()
    assert found["tensorflow"] == tf.__version__
    assert found["keras"] == keras.__version__
    assert found["optuna"] == optuna.__version__
    assert found["mlflow"] == mlflow.__version__
    assert found["device"] == "CPU" and found["device_name"]
    assert found["host"] == socket.gethostname()
    # The TensorFlow build's CUDA and cuDNN versions (this wheel is a CUDA build).
    build = tf.sysconfig.get_build_info()
    assert (found["cuda"], found["cudnn"]) == (build["cuda_version"], build["cudnn_version"])


def test_gpus_are_named_and_counted_from_tensorflows_device_details() -> None:
    gpus = [tf.config.PhysicalDevice(f"/physical_device:GPU:{i}", "GPU") for i in range(3)]
    names = {gpus[0].name: "NVIDIA A100-SXM4-40GB", gpus[1].name: "NVIDIA A100-SXM4-40GB",
             gpus[2].name: "NVIDIA L4"}
    assert describe_devices(gpus, lambda gpu: {"device_name": names[gpu.name]}) == {
        "device": "GPU", "device_name": "2 x NVIDIA A100-SXM4-40GB, NVIDIA L4"}

    def no_details(gpu: tf.config.PhysicalDevice) -> dict:
        raise RuntimeError("details unavailable")

    assert describe_devices(gpus[:1], no_details)["device_name"] == "/physical_device:GPU:0"


def test_gpu_seconds_and_peak_memory_of_a_trial() -> None:
    now = [100.0]
    resets: list[str] = []
    peaks = {"GPU:0": 512 * 2**20, "GPU:1": 768 * 2**20}
    usage = GpuUsage(["GPU:0", "GPU:1"], lambda device: {"current": 0, "peak": peaks[device]},
                     resets.append, lambda: now[0])
    usage.start()
    now[0] = 110.0
    assert resets == ["GPU:0", "GPU:1"]  # the peak is this trial's, not the process's
    assert usage.figures() == {"gpu/seconds": 20.0, "gpu/peak_memory_mb": 768.0}
    assert GpuUsage([], lambda d: {}, resets.append, lambda: 0.0).figures() == {}
    # This machine has no GPU: nothing is measured, nothing is logged.
    cpu = GpuUsage.of_this_process()
    cpu.start()
    assert cpu.figures() == {}


def test_git_commit_of_the_study_files_repository(tmp_path: Path) -> None:
    assert git_commit(tmp_path / "study.yaml") is None  # not a repository
    _git(tmp_path, "init", "-q")
    (tmp_path / "study.yaml").write_text("name: x\n")
    _git(tmp_path, "add", "study.yaml")
    _git(tmp_path, "commit", "-qm", "study")
    sha = _git(tmp_path, "rev-parse", "HEAD")
    assert len(sha) == 40 and git_commit(tmp_path / "study.yaml") == sha
    (tmp_path / "study.yaml").write_text("name: y\n")
    assert git_commit(tmp_path / "study.yaml") == f"{sha}+dirty"


def test_every_trial_run_records_its_environment_and_the_report_lists_it(
        workdir: Path, storage_url: str, tracking_uri: str,
        monkeypatch: pytest.MonkeyPatch) -> None:
    # MLflow's system metrics, asked for on this CPU worker (on by default on a GPU one).
    monkeypatch.setenv("MLFLOW_ENABLE_SYSTEM_METRICS_LOGGING", "true")
    monkeypatch.setenv("MLFLOW_SYSTEM_METRICS_SAMPLING_INTERVAL", "0.05")
    _git(workdir, "init", "-q")
    path = write_study(workdir / "env.yaml", tiny_study(name="env", budget={"n_trials": 2}))
    _git(workdir, "add", "env.yaml")
    _git(workdir, "commit", "-qm", "study")
    sha = _git(workdir, "rev-parse", "HEAD")
    result = CliRunner().invoke(cli, ["run", str(path), "--storage", storage_url,
                                      "--tracking-uri", tracking_uri, "--no-progress"],
                                catch_exceptions=False)
    assert result.exit_code == 0, result.output
    study = optuna.load_study(study_name="env", storage=storage_url)
    assert study.user_attrs["git_commit"] == sha
    client = MlflowClient(tracking_uri)
    for trial in study.trials:
        environment = trial.user_attrs["environment"]
        assert environment["git_commit"] == sha and environment["device"] == "CPU"
        tags = client.get_run(trial.user_attrs["mlflow_run_id"]).data.tags
        assert tags["sweep.env.tensorflow"] == tf.__version__
        assert tags["sweep.env.keras"] == keras.__version__
        assert tags["sweep.env.git_commit"] == sha
        assert tags["sweep.env.host"] == socket.gethostname()
        assert "gpu/seconds" not in trial.user_attrs  # a CPU worker measures no GPU
        if "duplicate_of" in trial.user_attrs:  # trained nothing: nothing to sample
            continue
        history = client.get_metric_history(trial.user_attrs["mlflow_run_id"],
                                            "system/cpu_utilization_percentage")
        assert history and history[0].step == 0
    report = CliRunner().invoke(cli, ["report", "env", "--storage", storage_url,
                                      "--tracking-uri", tracking_uri, "--no-confirm",
                                      "-o", str(workdir / "rep")], catch_exceptions=False)
    assert report.exit_code == 0, report.output
    (row,) = json.loads((workdir / "rep" / "report.json").read_text())["environments"]
    assert row["trials"] == len(study.trials) and row["hosts"] == [socket.gethostname()]
    assert (row["tensorflow"], row["git_commit"]) == (tf.__version__, sha)
    assert row["gpu_seconds"] is None
    assert "## Where the trials ran" in (workdir / "rep" / "report.md").read_text()


def test_the_report_says_cuda_versions_are_the_build_s_on_a_cpu() -> None:
    """TensorFlow's CUDA/cuDNN versions are its build's: on a CPU-only worker the report
    says they were not used, beside a GPU worker's as they are."""
    from sweep.answers.tables import environment_table

    common = {"device_name": "x", "hosts": ["h"], "trials": 1, "tensorflow": "2.20",
              "keras": "3", "optuna": "4", "mlflow": "3", "regsweep": "0", "git_commit": "",
              "gpu_seconds": None}
    rows = [{**common, "device": "CPU", "cuda": "12.5.1", "cudnn": "9"},
            {**common, "device": "GPU", "cuda": "12.5.1", "cudnn": "9"},
            {**common, "device": "CPU", "cuda": "none", "cudnn": "none"}]
    table = environment_table(rows)
    column = table.headers.index("CUDA / cuDNN")
    assert [row[column] for row in table.rows] == [
        "not used (built for 12.5.1 / 9)", "12.5.1 / 9", "—"]
