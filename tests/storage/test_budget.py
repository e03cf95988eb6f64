"""The study-wide budget is exact: workers racing for it never start more trials."""

from __future__ import annotations

import json
import multiprocessing
import time
from pathlib import Path

import optuna
import pytest
from conftest import tiny_study
from sqlalchemy import text

from sweep.errors import BudgetExhausted
from sweep.spec import parse_spec
from sweep.storage.budget import finished_in_budget, used_budget
from sweep.storage.connect import open_storage
from sweep.study.create import finished_count


def _create(url: str, name: str, n_trials: int) -> None:
    spec = parse_spec(tiny_study(name=name, budget={"n_trials": n_trials}))
    study = optuna.create_study(study_name=name, storage=open_storage(url))
    study.set_user_attr("spec", spec.canonical())


def _race(url: str, name: str, barrier, results) -> None:
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    study = optuna.load_study(study_name=name, storage=open_storage(url))
    barrier.wait(timeout=120)  # every worker asks for its first trial at the same moment
    ran = 0

    def objective(trial: optuna.Trial) -> float:
        nonlocal ran
        ran += 1
        time.sleep(0.02)
        return trial.suggest_float("x", 0, 1)

    try:
        study.optimize(objective)
    except BudgetExhausted:
        results.put(ran)
        return
    results.put(-1)  # optimize() returned without the budget being spent: wrong


def _run_race(url: str, name: str, workers: int, n_trials: int) -> list[int]:
    _create(url, name, n_trials)
    context = multiprocessing.get_context("spawn")
    barrier = context.Barrier(workers)
    results = context.Queue()
    processes = [context.Process(target=_race, args=(url, name, barrier, results))
                 for _ in range(workers)]
    try:
        for process in processes:
            process.start()
        for process in processes:
            process.join(timeout=120)
            assert process.exitcode == 0
        return [results.get(timeout=5) for _ in processes]
    finally:  # a failed race leaves no process behind
        for process in processes:
            if process.is_alive():
                process.kill()


def test_four_workers_racing_on_postgres_never_exceed_the_budget(
        postgres_server_url: str) -> None:
    for attempt in range(4):  # the race is repeated: one lucky run proves nothing
        name = f"race-{attempt}"
        ran = _run_race(postgres_server_url, name, workers=4, n_trials=7)
        assert -1 not in ran
        assert sum(ran) == 7
        study = optuna.load_study(study_name=name, storage=postgres_server_url)
        assert len(study.trials) == 7
        assert all(t.state == optuna.trial.TrialState.COMPLETE for t in study.trials)


def test_two_workers_racing_on_sqlite_never_exceed_the_budget(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'race.db'}"
    ran = _run_race(url, "race", workers=2, n_trials=5)
    assert sum(ran) == 5
    assert len(optuna.load_study(study_name="race", storage=url).trials) == 5


def test_retries_and_interrupted_trials_give_their_budget_back(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'b.db'}"
    _create(url, "b", 2)
    study = optuna.load_study(study_name="b", storage=open_storage(url))
    lost = study.ask()
    study.tell(lost, state=optuna.trial.TrialState.FAIL)
    stopped = study.ask()
    study._storage.set_trial_user_attr(stopped._trial_id, "fail_reason", "interrupted")
    study.tell(stopped, state=optuna.trial.TrialState.FAIL)
    # One FAIL uses budget, the interrupted one does not.
    backend = study._storage._backend
    assert used_budget(study.get_trials()) == 1 == backend.used_budget(study._study_id)
    # A retry of the lost trial is allowed even with the budget full...
    study.ask()
    with pytest.raises(BudgetExhausted):
        study.ask()
    frozen = study.get_trials()[0]
    retry = optuna.trial.create_trial(
        state=optuna.trial.TrialState.WAITING, params={}, distributions={},
        system_attrs={"failed_trial": frozen.number, "retry_history": [frozen.number]})
    study.add_trial(retry)
    trials = study.get_trials()
    # ...and once retried, the lost trial no longer counts: its retry does.
    assert used_budget(trials) == 2 == backend.used_budget(study._study_id)
    assert len(trials) == 4
    # Finished in the budget: neither the FAILs given back, nor the running trial, nor
    # the waiting retry; the database's count is the trials' own.
    assert finished_in_budget(trials) == 0 == backend.finished_in_budget(study._study_id)
    study.tell(trials[2].number, 0.5)
    assert finished_in_budget(study.get_trials()) == 1 == \
        backend.finished_in_budget(study._study_id) == finished_count(study)


def test_a_failed_heartbeat_is_logged_and_the_next_one_recorded(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    url = f"sqlite:///{tmp_path / 'beats.db'}"
    _create(url, "beats", 3)
    storage = open_storage(url)
    trial_id = optuna.load_study(study_name="beats", storage=storage).ask()._trial_id
    storage.configure_heartbeat(1, 4)
    with storage.engine.begin() as connection:  # the database loses its heartbeat table
        connection.execute(text("ALTER TABLE trial_heartbeats RENAME TO gone"))
    with caplog.at_level("WARNING", logger="sweep"):
        storage.record_heartbeat(trial_id)  # raised, it would end Optuna's heartbeat thread
    assert [r.getMessage() for r in caplog.records if r.name == "sweep"] == [
        f"heartbeat of trial id {trial_id} not recorded (StorageInternalError); next one in 1 s"]
    with storage.engine.begin() as connection:
        connection.execute(text("ALTER TABLE gone RENAME TO trial_heartbeats"))
    storage.record_heartbeat(trial_id)
    with storage.engine.connect() as connection:
        beats = connection.execute(text("SELECT count(*) FROM trial_heartbeats "
                                        "WHERE trial_id = :id"), {"id": trial_id}).scalar()
    assert beats == 1


def _sweep(*args: str):
    from click.testing import CliRunner

    from sweep.cli import cli

    return CliRunner().invoke(cli, list(args), catch_exceptions=False)


def test_a_small_space_ends_when_every_configuration_is_trained(
        workdir: Path, storage_url: str, tracking_uri: str) -> None:
    from conftest import write_study
    from mlflow.tracking import MlflowClient

    # 2 placements x 2 coefficients, of which "all" x 0 is "none": 2 models, budget 10.
    search = {"targets": ["kernel"], "placement": {"choices": ["none", "all"]},
              "l2": {"choices": [0.0, 0.001]}, "baselines": ["none"]}
    path = write_study(workdir / "small.yaml", tiny_study(
        name="small", search=search, sampler="random", budget={"n_trials": 10}))
    result = _sweep("run", str(path), "--storage", storage_url, "--tracking-uri",
                    tracking_uri, "--no-progress")
    assert result.exit_code == 0, result.output
    assert "study stopped: space exhausted: 2 distinct configurations, all trained" \
        in result.output
    study = optuna.load_study(study_name="small", storage=storage_url)
    trained = [t for t in study.trials if "duplicate_of" not in t.user_attrs]
    assert sorted(str(t.user_attrs["placement"]) for t in trained) == [
        "{'dense': {'kernel': {'l2': 0.001}}, 'dense_1': {'kernel': {'l2': 0.001}}}", "{}"]
    repeats = [t for t in study.trials if "duplicate_of" in t.user_attrs]
    assert all(t.state == optuna.trial.TrialState.COMPLETE for t in study.trials)
    assert used_budget(study.trials) == 2
    status = json.loads(_sweep("status", "small", "--storage", storage_url,
                               "--format", "json").output)
    assert status["finished"] == 2 and status["duplicates"] == len(repeats)
    assert status["stopped"] == ("study stopped: space exhausted: 2 distinct "
                                 "configurations, all trained")
    client = MlflowClient(tracking_uri)
    experiment = client.get_experiment_by_name("small")
    (parent,) = client.search_runs([experiment.experiment_id],
                                   filter_string="tags.`sweep.role` = 'study'")
    assert parent.info.status == "FINISHED"


def test_duplicates_are_recorded_but_use_no_budget(
        workdir: Path, storage_url: str, tracking_uri: str) -> None:
    from conftest import write_study

    # allow_zero on the only penalty: l2_on false trains placement none again.
    search = {"targets": ["kernel"], "placement": {"choices": ["none", "all"]},
              "l2": {"low": 1e-4, "high": 1e-2, "log": True, "allow_zero": True},
              "baselines": ["none"]}
    path = write_study(workdir / "dup.yaml", tiny_study(
        name="dup", search=search, sampler="random", budget={"n_trials": 4}))
    result = _sweep("run", str(path), "--storage", storage_url, "--tracking-uri",
                    tracking_uri, "--no-progress")
    assert result.exit_code == 0, result.output
    study = optuna.load_study(study_name="dup", storage=storage_url)
    repeats = [t for t in study.trials if "duplicate_of" in t.user_attrs]
    assert repeats, "this seed samples no duplicate: the test proves nothing"
    # The sampler is told each duplicate's value: it is a COMPLETE trial with the figures.
    for trial in repeats:
        first = study.trials[trial.user_attrs["duplicate_of"]]
        assert trial.value == first.value and trial.user_attrs["placement"] == {}
    assert len(study.trials) - len(repeats) == 4 == used_budget(study.trials)


def test_validate_says_when_the_space_is_smaller_than_the_budget(workdir: Path) -> None:
    from conftest import write_study

    search = {"targets": ["kernel"], "placement": {"choices": ["none", "all"]},
              "l2": {"choices": [0.0, 0.001, 0.01]}}
    path = write_study(workdir / "v.yaml", tiny_study(name="v", search=search,
                                                      budget={"n_trials": 10}))
    result = _sweep("validate", str(path))
    assert result.exit_code == 0, result.output
    assert ("note: the search space holds 3 distinct configurations, fewer than "
            "budget.n_trials (10): the study ends when all are trained") in result.output


@pytest.mark.parametrize("database", ["sqlite", "postgresql"])
def test_a_trials_attributes_are_written_in_one_transaction(
        database: str, storage_url: str, request: pytest.FixtureRequest) -> None:
    import sqlalchemy

    from sweep.storage.budget import set_user_attrs

    url = storage_url if database == "sqlite" else request.getfixturevalue(
        "postgres_server_url")
    storage = open_storage(url)
    study = optuna.create_study(storage=storage, study_name="attrs")
    trial = study.ask()
    trial.set_user_attr("seed", 1)  # there already: replaced
    commits: list[int] = []
    statements: list[str] = []
    sqlalchemy.event.listen(storage.engine, "commit", lambda connection: commits.append(1))
    sqlalchemy.event.listen(storage.engine, "before_cursor_execute",
                            lambda *args: statements.append(args[2].split()[0]))
    set_user_attrs(trial, {"seed": 7, "placement": {"dense": {"kernel": {"l2": 0.01}}},
                           "worker": "host:1"})
    assert len(commits) == 1
    # The trial's state read once, the three attributes written by one statement.
    assert statements == ["SELECT", "INSERT"]
    assert trial.user_attrs == {"seed": 7, "placement": {"dense": {"kernel": {"l2": 0.01}}},
                                "worker": "host:1"}
    stored = optuna.load_study(study_name="attrs", storage=url).trials[0]
    assert stored.user_attrs == trial.user_attrs
    study.tell(trial, 1.0)
    with pytest.raises(RuntimeError):  # a finished trial takes no more, as with Optuna's
        set_user_attrs(trial, {"late": 1})


def test_attributes_on_another_storage_are_written_one_by_one() -> None:
    from sweep.storage.budget import set_user_attrs

    study = optuna.create_study()  # in memory, as a `sweep proxy` client is not ours
    trial = study.ask()
    set_user_attrs(trial, {"a": 1, "b": [2, 3]})
    assert study.trials[0].user_attrs == {"a": 1, "b": [2, 3]}
    assert trial.user_attrs == {"a": 1, "b": [2, 3]}
