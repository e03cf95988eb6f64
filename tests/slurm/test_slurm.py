"""docker/slurm/sweep-array.sbatch on a real single-node SLURM (`make test-slurm` starts it
with docker/slurm/single-node.sh): the array finishes a PostgreSQL study with the budget
exact, a worker stopped mid-trial ends COMPLETED (exit 0) with its configuration queued
again, and a task SLURM requeues rejoins the study and finishes it."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import optuna
import pytest
from conftest import tiny_study, wait_for, write_slow_builder, write_study
from mlflow.tracking import MlflowClient

ROOT = Path(__file__).resolve().parents[2]
SBATCH = ROOT / "docker" / "slurm" / "sweep-array.sbatch"
# The script's CPU variant: options on the command line override its #SBATCH lines.
CPU = ["--gres=none", "--cpus-per-task=1", "--mem=2G"]
TF_NOISE = ("oneDNN", "cuda", "absl::InitializeLog", "TF_ENABLE_ONEDNN_OPTS")

pytestmark = pytest.mark.timeout(900)


@pytest.fixture(scope="module", autouse=True)
def cluster() -> None:
    done = subprocess.run(["sinfo", "-h", "-o", "%T"], capture_output=True, text=True)
    if done.returncode != 0 or done.stdout.strip() not in ("idle", "mixed", "allocated"):
        pytest.fail(f"no SLURM node is up ({done.stdout.strip() or done.stderr.strip()}): "
                    "run `make test-slurm`, which starts one")


def _create(folder: Path, study: dict[str, Any], storage: str, tracking: str) -> None:
    path = write_study(folder / "s.yaml", study)
    done = subprocess.run([sys.executable, "-m", "sweep", "create", str(path), "--storage",
                           storage, "--tracking-uri", tracking], capture_output=True, text=True,
                          cwd=folder)  # where the jobs run (--chdir): a builder module is found
    assert done.returncode == 0, done.stderr


def _submit(folder: Path, name: str, storage: str, tracking: str, *options: str) -> str:
    env = {**os.environ, "SWEEP_STORAGE": storage, "MLFLOW_TRACKING_URI": tracking,
           "STUDY_NAME": name, "SWEEP_VENV": str(Path(sys.executable).parents[1])}
    env.pop("TF_CPP_MIN_LOG_LEVEL", None)  # the script's own default must keep TF quiet
    done = subprocess.run(
        ["sbatch", "--parsable", *CPU, f"--chdir={folder}",
         f"--output={folder}/regsweep-%A_%a.out", *options, str(SBATCH)],
        env=env, capture_output=True, text=True, cwd=folder)
    assert done.returncode == 0, done.stderr
    return done.stdout.strip().split(";")[0]


def _job(task: str) -> dict[str, str]:
    """`scontrol show job` of an array task (JOBID_TASK), as key=value pairs."""
    done = subprocess.run(["scontrol", "-o", "show", "job", task], capture_output=True,
                          text=True)
    assert done.returncode == 0, done.stderr
    return dict(re.findall(r"(\w+)=(\S*)", done.stdout))


def _finished(task: str) -> dict[str, str] | None:
    job = _job(task)
    return job if job["JobState"] not in ("PENDING", "RUNNING", "CONFIGURING",
                                          "COMPLETING", "REQUEUED") else None


def _trials(storage: str, name: str) -> list[Any]:
    return optuna.load_study(study_name=name, storage=storage).trials


def _running_with_an_epoch(storage: str, name: str, tracking: str) -> Any:
    client = MlflowClient(tracking)
    for trial in _trials(storage, name):
        run_id = trial.user_attrs.get("mlflow_run_id")
        if trial.state == optuna.trial.TrialState.RUNNING and run_id and \
                client.get_metric_history(run_id, "val_accuracy"):
            return trial
    return None


def _outputs(folder: Path) -> str:
    return "".join(path.read_text() for path in sorted(folder.glob("regsweep-*.out")))


def test_the_array_finishes_the_study_with_the_budget_exact(
        tmp_path: Path, postgres_server_url: str, mlflow_server) -> None:
    study = tiny_study(name="slurm-array", budget={"n_trials": 4})
    _create(tmp_path, study, postgres_server_url, mlflow_server.url)
    job = _submit(tmp_path, "slurm-array", postgres_server_url, mlflow_server.url,
                  "--array=0-1")
    for task in ("0", "1"):
        ended = wait_for(lambda task=task: _finished(f"{job}_{task}"), timeout=600)
        assert (ended["JobState"], ended["ExitCode"]) == ("COMPLETED", "0:0"), _outputs(tmp_path)
    trials = _trials(postgres_server_url, "slurm-array")
    assert len(trials) == 4
    assert {t.state for t in trials} == {optuna.trial.TrialState.COMPLETE}
    assert {t.user_attrs["worker"].rsplit(":", 1)[0] for t in trials} == {os.uname().nodename}
    client = MlflowClient(mlflow_server.url)
    for trial in trials:
        assert client.get_run(trial.user_attrs["mlflow_run_id"]).info.status == "FINISHED"
    output = _outputs(tmp_path)
    assert not [noise for noise in TF_NOISE if noise in output], output
    # Progress lines count the study's trials, not each worker's.
    counts = [int(k) for k in re.findall(r"^\[(\d+)/4\]", output, re.MULTILINE)]
    assert len(counts) == 4 and max(counts) == 4, output
    assert "array task 0" in output and "array task 1" in output


def test_a_stopped_worker_ends_completed_and_the_next_one_resumes_its_trial(
        tmp_path: Path, postgres_server_url: str, mlflow_server) -> None:
    # About 10 s a trial (5 steps of 20 ms an epoch, 100 epochs) on any machine: long
    # enough to be stopped mid-trial (400 plain epochs ended before the signal came).
    write_slow_builder(tmp_path, 0.02)
    study = tiny_study(name="slurm-stop", budget={"n_trials": 2},
                       workers={"checkpoint_every": 1},  # not `auto`: trials of seconds
                       model={"builder": "slow_models:build"})
    study["train"]["epochs"] = 100
    _create(tmp_path, study, postgres_server_url, mlflow_server.url)
    job = _submit(tmp_path, "slurm-stop", postgres_server_url, mlflow_server.url,
                  "--array=0")
    stopped = wait_for(lambda: _running_with_an_epoch(postgres_server_url, "slurm-stop",
                                                      mlflow_server.url), timeout=300)
    # What README says stops a worker by hand; the time limit's --signal sends the same.
    done = subprocess.run(["scancel", "--signal=TERM", f"{job}_0"], capture_output=True,
                          text=True)
    assert done.returncode == 0, done.stderr
    ended = wait_for(lambda: _finished(f"{job}_0"), timeout=120)
    assert (ended["JobState"], ended["ExitCode"]) == ("COMPLETED", "0:0"), _outputs(tmp_path)
    trials = _trials(postgres_server_url, "slurm-stop")
    assert trials[stopped.number].state == optuna.trial.TrialState.FAIL
    assert trials[stopped.number].user_attrs["fail_reason"] == "interrupted"
    (queued,) = [t for t in trials if t.state == optuna.trial.TrialState.WAITING]
    assert queued.params == trials[stopped.number].params

    again = _submit(tmp_path, "slurm-stop", postgres_server_url, mlflow_server.url,
                    "--array=0")
    ended = wait_for(lambda: _finished(f"{again}_0"), timeout=600)
    assert (ended["JobState"], ended["ExitCode"]) == ("COMPLETED", "0:0"), _outputs(tmp_path)
    final = _trials(postgres_server_url, "slurm-stop")
    states = [t.state for t in final]
    assert optuna.trial.TrialState.RUNNING not in states
    assert optuna.trial.TrialState.WAITING not in states
    assert states.count(optuna.trial.TrialState.COMPLETE) == 2
    resumed = final[queued.number]
    assert resumed.state == optuna.trial.TrialState.COMPLETE
    assert resumed.user_attrs["resumed_from_epoch"] > 1  # from its checkpoint
    assert resumed.user_attrs["epochs_run"] == 100


def test_a_task_slurm_requeues_rejoins_the_study(
        tmp_path: Path, postgres_server_url: str, mlflow_server) -> None:
    write_slow_builder(tmp_path, 0.02)  # about 10 s a trial, whatever the machine
    study = tiny_study(name="slurm-requeue", budget={"n_trials": 2},
                       model={"builder": "slow_models:build"})
    study["train"]["epochs"] = 100
    _create(tmp_path, study, postgres_server_url, mlflow_server.url)
    job = _submit(tmp_path, "slurm-requeue", postgres_server_url, mlflow_server.url,
                  "--array=0")
    wait_for(lambda: _running_with_an_epoch(postgres_server_url, "slurm-requeue",
                                            mlflow_server.url), timeout=300)
    # What a partition that pre-empts by requeueing does: SIGTERM, then the task goes back
    # to the queue (the script asks for --requeue) and starts again.
    done = subprocess.run(["scontrol", "requeue", f"{job}_0"], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    wait_for(lambda: _job(f"{job}_0")["Restarts"] == "1", timeout=120)
    ended = wait_for(lambda: _finished(f"{job}_0"), timeout=600)
    assert (ended["JobState"], ended["ExitCode"]) == ("COMPLETED", "0:0"), _outputs(tmp_path)
    final = _trials(postgres_server_url, "slurm-requeue")
    states = [t.state for t in final]
    assert states.count(optuna.trial.TrialState.COMPLETE) == 2
    assert optuna.trial.TrialState.RUNNING not in states
    assert optuna.trial.TrialState.WAITING not in states
    interrupted = [t for t in final if t.user_attrs.get("fail_reason") == "interrupted"]
    assert len(interrupted) == 1
