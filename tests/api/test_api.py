"""sweep.api: `sweep.run` and `sweep.load` from Python, as a notebook uses them; the
answers read back through Optuna's and MLflow's own APIs."""

from __future__ import annotations

from pathlib import Path

import optuna
import pytest
from conftest import tiny_study, write_study
from mlflow.tracking import MlflowClient

import sweep
from sweep.errors import SpecError

BASELINES = {"baselines": ["none"]}


def test_run_then_load_answer_in_a_few_lines(workdir: Path, storage_url: str,
                                             tracking_uri: str) -> None:
    path = write_study(workdir / "s.yaml", tiny_study(
        name="api", search=dict(tiny_study()["search"], **BASELINES),
        budget={"n_trials": 2}))
    study = sweep.run(path, storage=storage_url, tracking_uri=tracking_uri, n_trials=3,
                      show_progress=False)
    assert isinstance(study, sweep.Study) and study.name == "api"

    stored = optuna.load_study(study_name="api", storage=storage_url)
    # n_trials overrode the file's budget of 2 (a duplicate, the same model as an earlier
    # trial, uses no budget).
    assert len([t for t in stored.trials if "duplicate_of" not in t.user_attrs]) == 3
    best = study.best
    assert isinstance(best, sweep.Best)
    assert (best.trial, best.value) == (stored.best_trial.number, stored.best_value)
    assert best.metric == "val_accuracy"
    assert best.resolved_placement == stored.best_trial.user_attrs["placement"]
    assert best.baseline_trial == 0  # the no-regularization baseline runs first
    assert best.vs_baseline == pytest.approx(stored.best_value - stored.trials[0].value)
    if best.trial == 0:
        assert (best.placement, best.coefficients) == ("none (baseline)", {})
    else:
        assert set(best.coefficients) <= {"l1", "l2"} and best.coefficients
    run = MlflowClient(tracking_uri).get_run(best.mlflow_run_id)
    assert run.data.tags["sweep.role"] == "trial"
    assert run.data.tags["optuna.trial_number"] == str(best.trial)

    trials = study.trials
    assert list(trials["number"]) == [t.number for t in stored.trials]
    assert set(trials["state"]) == {"COMPLETE"}
    assert list(trials["mlflow_run_id"]) == [t.user_attrs["mlflow_run_id"]
                                            for t in stored.trials]
    status = study.status()
    assert (status["finished"], status["budget"], status["best_trial"]) == (3, 3, best.trial)

    again = sweep.load("api", storage=storage_url, tracking_uri=tracking_uri)
    assert again.best == best
    # Configurations, not trials: a duplicate trained nothing and is not one.
    assert [b.trial for b in again.top(3)] == [
        t.number for t in sorted(stored.trials, key=lambda t: (-t.value, t.number))
        if "duplicate_of" not in t.user_attrs][:3]

    folder = again.report(output=workdir / "out")
    assert folder == workdir / "out" and (folder / "report.html").is_file()
    parent = MlflowClient(tracking_uri).search_runs(
        [run.info.experiment_id], filter_string="tags.`sweep.role` = 'study'")[0]
    logged = {a.path for a in MlflowClient(tracking_uri).list_artifacts(
        parent.info.run_id, "report")}
    assert "report/report.html" in logged


def test_the_stores_come_from_the_environment_as_for_the_cli(
        workdir: Path, storage_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SWEEP_STORAGE", storage_url)
    with pytest.raises(SpecError) as raised:
        sweep.load("nothing-here")
    assert raised.value.field == "storage"  # the environment's: no such file, not created
    assert storage_url in str(raised.value)
    assert not list(workdir.rglob("*.db"))


@pytest.mark.parametrize(("kwargs", "field", "value"), [
    ({"storage": "nosuch://db"}, "storage", "nosuch://db"),
    ({"tracking_uri": "nosuch://x"}, "tracking_uri", "nosuch://x"),
    ({"n_trials": 0}, "n_trials", "0"),
])
def test_bad_arguments_are_refused_before_anything_is_written(
        workdir: Path, kwargs: dict, field: str, value: str) -> None:
    path = write_study(workdir / "s.yaml", tiny_study(name="refused"))
    before = sorted(workdir.rglob("*"))
    with pytest.raises(SpecError) as raised:
        sweep.run(path, **kwargs)
    assert raised.value.field == field
    assert value in str(raised.value)
    assert sorted(workdir.rglob("*")) == before
