"""Studies of hand-made trials (no training) that the read-only views are tested on:
sweep.results.queries' own tests and the CLI's `status`, `best` and `export`."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import optuna
import pytest
from conftest import tiny_study
from optuna.distributions import CategoricalDistribution
from optuna.trial import TrialState, create_trial

from sweep.spec import parse_spec
from sweep.storage.connect import open_storage
from sweep.study.create import create_or_resume

CHOICE = {"placement": CategoricalDistribution(("none", "first", "all"))}
FIRST = {"dense": {"kernel": {"l2": 0.001}}}


@pytest.fixture
def made(tmp_path: Path) -> tuple[Any, Any, Any]:
    """Budget 6: baseline 0.70, #1 0.75 (spooled run, synced), #2 0.72, #3 lost worker
    (FAIL, retried as #5), #4 interrupted (FAIL, queued again as #6), #5 RUNNING,
    #6 WAITING."""
    spec = parse_spec(tiny_study(name="made", budget={"n_trials": 6}))
    storage = open_storage(f"sqlite:///{tmp_path / 's.db'}")
    study, _ = create_or_resume(spec, storage)

    def add(state: TrialState, value: float | None = None, params: dict | None = None,
            system: dict | None = None, **attrs: Any) -> None:
        study.add_trial(create_trial(
            state=state, value=value, params=params or {},
            distributions={k: CHOICE[k] for k in params or {}},
            user_attrs=attrs, system_attrs=system or {}))

    add(TrialState.COMPLETE, 0.70, baseline="none", placement={}, mlflow_run_id="r0",
        **{"final/val_accuracy": 0.70})
    add(TrialState.COMPLETE, 0.75, {"placement": "first"}, placement=FIRST,
        mlflow_run_id="spool:k1", worker="node1:11", **{"final/val_accuracy": 0.75})
    add(TrialState.COMPLETE, 0.72, {"placement": "first"}, placement=FIRST,
        mlflow_run_id="r2")
    add(TrialState.FAIL, None, {"placement": "all"}, fail_reason="heartbeat lost")
    add(TrialState.FAIL, None, {"placement": "all"}, fail_reason="interrupted")
    add(TrialState.RUNNING, None, {"placement": "all"}, {"retry_history": [3]},
        worker="node2:22", gpu="1")
    add(TrialState.WAITING, None, {"placement": "all"})
    study.set_user_attr("mlflow_run_id/1", "r1-synced")
    return study, spec, storage


def timed_study(tmp_path: Path, running: bool) -> tuple[Any, Any]:
    """Budget 10: four trials completed over the last 30 minutes (one every 5 minutes, 5
    minutes each), and one RUNNING since 5 minutes ago when ``running``."""
    import datetime as dt

    spec = parse_spec(tiny_study(name="timed", budget={"n_trials": 10}))
    study, _ = create_or_resume(spec, open_storage(f"sqlite:///{tmp_path / 's.db'}"))
    now = dt.datetime.now()
    for i in range(4):
        start = now - dt.timedelta(minutes=30 - 5 * i)
        study.add_trial(optuna.trial.FrozenTrial(
            number=i, trial_id=i, state=TrialState.COMPLETE, value=0.7 + i / 100,
            datetime_start=start, datetime_complete=start + dt.timedelta(minutes=5),
            params={"placement": "first"}, distributions=CHOICE,
            user_attrs={"placement": FIRST}, system_attrs={}, intermediate_values={}))
    if running:
        study.add_trial(optuna.trial.FrozenTrial(
            number=4, trial_id=4, state=TrialState.RUNNING, value=None,
            datetime_start=now - dt.timedelta(minutes=5), datetime_complete=None,
            params={"placement": "first"}, distributions=CHOICE,
            user_attrs={"placement": FIRST, "worker": "node1:7"}, system_attrs={},
            intermediate_values={}))
    return study, spec
