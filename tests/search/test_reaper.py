"""sweep.search.reaper on a real SQLite study and MLflow store: a trial whose heartbeat went
stale, and one that never sent any, are failed, retried with the same parameters, their
MLflow runs closed. The heartbeats are aged in
the database itself, as a dead worker's would be, instead of waiting out a grace period."""

from __future__ import annotations

from pathlib import Path

import optuna
from conftest import tiny_study
from mlflow.tracking import MlflowClient
from optuna.distributions import CategoricalDistribution
from optuna.trial import TrialState
from sqlalchemy import text

from sweep.search.reaper import reap
from sweep.spec import parse_spec
from sweep.storage.connect import open_storage
from sweep.study.create import create_or_resume
from sweep.workers.loop import enable_heartbeats

CHOICE = {"placement": CategoricalDistribution(("none", "first", "all"))}


def _age(study: optuna.Study, sql: str) -> None:
    storage = getattr(study._storage, "_backend", study._storage)
    with storage.engine.begin() as connection:
        connection.execute(text(sql))


def test_stale_and_silent_trials_are_failed_retried_and_their_runs_closed(
        tmp_path: Path, tracking_uri: str) -> None:
    spec = parse_spec(tiny_study(name="reaped", budget={"n_trials": 4}, workers={
        "heartbeat_interval": 1, "grace_period": 3, "max_retry": 1}))
    storage = open_storage(f"sqlite:///{tmp_path / 's.db'}")
    study, _ = create_or_resume(spec, storage)
    enable_heartbeats(study._storage, spec, tracking_uri)
    client = MlflowClient(tracking_uri)
    run = client.create_run(client.create_experiment(f"reaped-{tmp_path.name}")).info.run_id

    stale = study.ask(CHOICE)  # its worker beat once, then died
    study._storage.set_trial_user_attr(stale._trial_id, "mlflow_run_id", run)
    study._storage.set_trial_user_attr(stale._trial_id, "worker", "node7:70")
    study._storage.record_heartbeat(stale._trial_id)
    silent = study.ask(CHOICE)  # its worker lost the database before the first beat
    alive = study.ask(CHOICE)
    study._storage.record_heartbeat(alive._trial_id)
    _age(study, "UPDATE trial_heartbeats SET heartbeat = datetime('now', '-60 seconds') "
                f"WHERE trial_id = {stale._trial_id}")
    _age(study, "UPDATE trials SET datetime_start = datetime('now', 'localtime', "
                f"'-60 seconds') WHERE trial_id = {silent._trial_id}")

    assert reap(study) == [stale.number, silent.number]
    trials = study.get_trials()
    assert [trials[n].state for n in (stale.number, silent.number, alive.number)] == [
        TrialState.FAIL, TrialState.FAIL, TrialState.RUNNING]
    assert trials[stale.number].user_attrs["fail_reason"] == \
        "lost: its worker stopped sending heartbeats (none for 3 s)"
    assert trials[silent.number].user_attrs["fail_reason"] == \
        "lost: its worker sent no heartbeat in the 3 s after the trial started"
    retries = {t.system_attrs["failed_trial"]: t for t in trials
               if "failed_trial" in t.system_attrs}
    assert sorted(retries) == [stale.number, silent.number]
    for number, retry in retries.items():
        assert retry.state == TrialState.WAITING and retry.params == trials[number].params
        assert "fail_reason" not in retry.user_attrs  # the dead trial's, not the retry's
        assert retry.user_attrs.get("worker") == trials[number].user_attrs.get("worker")
    closed = client.get_run(run)
    assert closed.info.status == "FAILED"
    assert closed.data.tags["sweep.fail_reason"] == "worker node7:70 stopped sending heartbeats"
    assert reap(study) == []  # nothing left to reap; the live trial is untouched
