"""`sweep.study.create` and the worker's identity: each worker draws its own random start-up
trials, and a one-worker study replays the study seed."""

from __future__ import annotations

import optuna
import pytest
from conftest import tiny_study
from optuna.distributions import FloatDistribution

from sweep.spec import parse_spec
from sweep.study.create import make_sampler
from sweep.study.identity import worker_index

SPACE = {"x": FloatDistribution(0.0, 1.0)}


def _first_draw(sampler_name: str, index: int, trials_so_far: int = 0) -> float:
    spec = parse_spec(tiny_study(sampler=sampler_name))
    study = optuna.create_study(
        sampler=make_sampler(spec, worker_index=index, trials_so_far=trials_so_far))
    return study.ask(SPACE).params["x"]


@pytest.mark.parametrize("sampler_name", ["tpe", "random"])
def test_each_worker_draws_its_own_startup_trials(sampler_name: str) -> None:
    draws = [_first_draw(sampler_name, index) for index in (0, 1, 2)]
    assert len(set(draws)) == 3
    # The same worker index and history draw the same: a study is reproducible.
    assert _first_draw(sampler_name, 0) == draws[0]
    # A renewed worker (trials already in the study) does not replay its first draws.
    assert _first_draw(sampler_name, 0, trials_so_far=5) != draws[0]


def test_worker_index_comes_from_the_launcher_or_the_host(
        monkeypatch: pytest.MonkeyPatch) -> None:
    for variable in ("SWEEP_WORKER_INDEX", "JOB_COMPLETION_INDEX", "SLURM_ARRAY_TASK_ID"):
        monkeypatch.delenv(variable, raising=False)
    monkeypatch.setenv("SLURM_ARRAY_TASK_ID", "5")
    assert worker_index() == 5
    monkeypatch.setenv("SWEEP_WORKER_INDEX", "3")  # the launcher's own index wins
    assert worker_index() == 3
    monkeypatch.setenv("SWEEP_WORKER_INDEX", "")
    monkeypatch.delenv("SLURM_ARRAY_TASK_ID")
    started_by_hand = worker_index()
    assert started_by_hand >= 1  # never 0, the index of a fresh one-worker study
    monkeypatch.setattr("sweep.study.identity.worker_name", lambda: "another-host:4242")
    assert worker_index() != started_by_hand
