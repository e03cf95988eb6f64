"""Local workers: slots per GPU, the environment each worker process gets, memory that
stays flat over many trials in one worker."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import optuna
from conftest import tiny_study, write_study

from sweep.workers.launcher import plan_slots, worker_env


def test_one_slot_per_gpu_times_trials_per_gpu() -> None:
    slots = plan_slots(workers=1, gpus=["0", "3"], trials_per_gpu=2)
    assert [s.gpu for s in slots] == ["0", "0", "3", "3"]
    assert [s.index for s in slots] == [0, 1, 2, 3]
    assert [s.gpu for s in plan_slots(workers=3, gpus=[], trials_per_gpu=1)] == [None] * 3


def test_each_worker_sees_only_its_device_and_has_its_own_seed_index() -> None:
    first, second = plan_slots(workers=1, gpus=["2", "5"], trials_per_gpu=1)
    env = worker_env(first, "postgresql://db/x", "http://mlflow:5000")
    assert env["CUDA_VISIBLE_DEVICES"] == "2"
    assert env["SWEEP_STORAGE"] == "postgresql://db/x"
    assert env["MLFLOW_TRACKING_URI"] == "http://mlflow:5000"
    assert worker_env(second, "s", "t")["CUDA_VISIBLE_DEVICES"] == "5"
    assert env["SWEEP_WORKER_INDEX"] != worker_env(second, "s", "t")["SWEEP_WORKER_INDEX"]


def test_worker_memory_stays_flat_over_thirty_trials(workdir: Path, storage_url: str,
                                                     tracking_uri: str) -> None:
    search = {k: v for k, v in tiny_study()["search"].items() if k != "l1"}
    search.update(placement={"choices": ["all"]}, coefficients="per_layer")
    study = tiny_study(name="rss", search=search, sampler="random", budget={"n_trials": 30})
    study["train"]["epochs"] = 1
    path = write_study(workdir / "rss.yaml", study)
    done = subprocess.run([sys.executable, "-m", "sweep", "run", str(path), "--storage",
                           storage_url, "--tracking-uri", tracking_uri, "--no-progress"],
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    trials = optuna.load_study(study_name="rss", storage=storage_url).trials
    assert len(trials) == 30 and all("duplicate_of" not in t.user_attrs for t in trials)
    rss = [t.user_attrs["worker_rss_mb"] for t in trials]
    assert rss[29] - rss[4] <= 50, rss
