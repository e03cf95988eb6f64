"""Issue 4's answers, end to end on tiny studies: baselines first, multi-objective Pareto
fronts, pruning with Keras, export columns. Read back through Optuna and MLflow."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import optuna
import pytest
from click.testing import CliRunner
from conftest import tiny_study, write_study
from mlflow.tracking import MlflowClient

from sweep.cli import cli
from sweep.errors import SpecError
from sweep.spec import parse_spec
from sweep.study.check import check_study

BASELINES = ["none", "uniform_l2"]


def _invoke(*args: str):
    return CliRunner().invoke(cli, list(args), catch_exceptions=False)


def _run(path: Path, storage: str, tracking: str, *extra: str):
    return _invoke("run", str(path), "--storage", storage, "--tracking-uri", tracking,
                   "--no-progress", *extra)


def _with_baselines(**search):
    return dict(tiny_study()["search"], baselines=BASELINES, **search)


# ---------------------------------------------------------------------- baselines
def test_baselines_are_trained_first_and_best_reports_the_difference(
        workdir: Path, storage_url: str, tracking_uri: str) -> None:
    path = write_study(workdir / "b.yaml", tiny_study(
        name="base", search=_with_baselines(), budget={"n_trials": 4}))
    assert _run(path, storage_url, tracking_uri).exit_code == 0
    study = optuna.load_study(study_name="base", storage=storage_url)
    first, second = study.trials[:2]
    assert first.user_attrs["baseline"] == "none"
    assert first.user_attrs["placement"] == {}
    assert first.params == {}
    assert second.user_attrs["baseline"] == "uniform_l2"
    # L2 on every kernel, at the log-midpoint of the searched range [1e-5, 1e-2].
    values = {slot: targets["kernel"]["l2"] for slot, targets in
              second.user_attrs["placement"].items()}
    assert len(values) == 2
    assert list(values.values()) == [pytest.approx(10 ** -3.5)] * 2
    # The baselines count in the budget; a duplicate (the same model again) does not.
    assert len([t for t in study.trials if "duplicate_of" not in t.user_attrs]) == 4

    result = _invoke("best", "base", "--storage", storage_url, "--top", "4", "--format", "json")
    rows = json.loads(result.output)
    baseline_value = first.value
    for row in rows:
        assert row["baseline_trial"] == 0
        assert row["vs_baseline"] == pytest.approx(row["value"] - baseline_value)

    run = MlflowClient(tracking_uri).get_run(first.user_attrs["mlflow_run_id"])
    assert run.data.tags["sweep.baseline"] == "none"


def test_baselines_can_be_switched_off_and_uniform_l2_needs_an_l2_search() -> None:
    spec = parse_spec(tiny_study(search=_with_baselines(l2=None)))
    assert [name for name, _ in check_study(spec).baselines()] == ["none"]
    spec = parse_spec(tiny_study())
    assert check_study(spec).baselines() == []


# ---------------------------------------------------------------------- multi-objective
def test_multi_objective_study_returns_a_non_dominated_pareto_front(
        workdir: Path, storage_url: str, tracking_uri: str) -> None:
    path = write_study(workdir / "m.yaml", tiny_study(
        name="pareto", sampler="nsga2", budget={"n_trials": 6},
        objective=[{"metric": "val_accuracy"}, {"metric": "penalty/total"}]))
    result = _run(path, storage_url, tracking_uri)
    assert result.exit_code == 0, result.output
    study = optuna.load_study(study_name="pareto", storage=storage_url)
    assert [d.name for d in study.directions] == ["MAXIMIZE", "MINIMIZE"]
    for trial in study.trials:
        assert trial.values == [pytest.approx(trial.user_attrs["final/val_accuracy"]),
                                pytest.approx(trial.user_attrs["final/penalty_total"])]

    rows = json.loads(_invoke("best", "pareto", "--storage", storage_url, "--format",
                              "json").output)
    front = [(r["value:val_accuracy"], r["value:penalty/total"]) for r in rows]
    assert {r["number"] for r in rows} == {t.number for t in study.best_trials}
    everyone = [tuple(t.values) for t in study.trials]
    for acc, penalty in front:  # nobody is at least as good on both and better on one
        assert not any(a >= acc and p <= penalty and (a > acc or p < penalty)
                       for a, p in everyone)


def test_generalization_gap_objective_is_train_minus_validation(
        workdir: Path, storage_url: str, tracking_uri: str) -> None:
    path = write_study(workdir / "g.yaml", tiny_study(
        name="gap", sampler="tpe", budget={"n_trials": 2},
        objective=[{"metric": "val_accuracy"}, {"metric": "gap/accuracy"}]))
    assert _run(path, storage_url, tracking_uri).exit_code == 0
    for trial in optuna.load_study(study_name="gap", storage=storage_url).trials:
        attrs = trial.user_attrs
        assert trial.values[1] == pytest.approx(
            attrs["final/train_accuracy"] - attrs["final/val_accuracy"])


@pytest.mark.parametrize(("changes", "field", "words"), [
    ({"objective": [{"metric": "penalty/total"}, {"metric": "val_accuracy"}]},
     "objective", "first objective"),
    ({"objective": [{"metric": "val_accuracy"}, {"metric": "penalty/total"}],
      "pruner": "median"}, "pruner", "several objectives"),
    ({"objective": [{"metric": "val_accuracy"}, {"metric": "penalty/total"}],
      "sampler": "cmaes"}, "sampler", "optimizes one objective"),
    ({"objective": [{"metric": "val_accuracy"}, {"metric": "val_accuracy"}]},
     "objective", "twice"),
    ({"objective": [{"metric": "val_accuracy"}, {"metric": "weights/l1"}]},
     "objective[1].metric", "val_"),
    ({"objective": {"metric": "val_accuracy", "direction": "minimize"}},
     "objective", "contradicts"),
])
def test_bad_objectives_are_spec_errors(changes: dict, field: str, words: str) -> None:
    with pytest.raises(SpecError) as caught:
        parse_spec(tiny_study(**changes))
    assert caught.value.field == field  # the key itself, not a substring of the message
    assert words in str(caught.value)


def test_gap_of_a_metric_keras_does_not_log_is_rejected_at_validation() -> None:
    spec = parse_spec(tiny_study(objective=[{"metric": "val_accuracy"},
                                            {"metric": "gap/auc"}]))
    with pytest.raises(SpecError, match=r"objective\[1\]\.metric"):
        check_study(spec)


# ---------------------------------------------------------------------- pruning
def test_pruner_monitoring_a_metric_keras_does_not_produce_is_rejected(
        workdir: Path) -> None:
    study = tiny_study(pruner={"name": "median", "monitor": "val_auc"})
    path = write_study(workdir / "p.yaml", study)
    result = _invoke("validate", str(path))
    assert result.exit_code == 2
    assert "pruner.monitor" in result.output and "val_auc" in result.output
    with pytest.raises(SpecError, match="other direction"):
        parse_spec(tiny_study(pruner={"name": "median", "monitor": "val_data_loss"}))


def test_hyperband_prunes_trials_and_marks_their_runs_killed(
        workdir: Path, storage_url: str, tracking_uri: str) -> None:
    # Random configurations, some with crippling penalties (l1 up to 1): hyperband's
    # brackets stop the hopeless ones after their first rungs.
    search = dict(tiny_study()["search"], placement={"choices": ["all"]},
                  l1={"low": 1.0e-4, "high": 1.0, "log": True}, l2=None)
    train = dict(tiny_study()["train"], epochs=9)
    path = write_study(workdir / "h.yaml", tiny_study(
        name="hb", search=search, train=train, sampler="random", budget={"n_trials": 14},
        pruner={"name": "hyperband", "warmup_epochs": 1}))
    assert _run(path, storage_url, tracking_uri).exit_code == 0
    study = optuna.load_study(study_name="hb", storage=storage_url)
    pruned = [t for t in study.trials if t.state == optuna.trial.TrialState.PRUNED]
    assert pruned, [t.state for t in study.trials]
    client = MlflowClient(tracking_uri)
    for trial in pruned:
        epoch = trial.user_attrs["pruned_at_epoch"]
        assert 1 <= epoch < 9 and trial.user_attrs["epochs_run"] == epoch
        run = client.get_run(trial.user_attrs["mlflow_run_id"])
        assert run.info.status == "KILLED"
        assert run.data.tags["sweep.pruned_at_epoch"] == str(epoch)


# ---------------------------------------------------------------------- export
def test_export_has_every_column_a_trial_needs(workdir: Path, storage_url: str,
                                               tracking_uri: str) -> None:
    path = write_study(workdir / "x.yaml", tiny_study(name="exp", budget={"n_trials": 2}))
    assert _run(path, storage_url, tracking_uri).exit_code == 0
    result = _invoke("export", "exp", "--storage", storage_url, "--format", "csv")
    rows = list(csv.DictReader(io.StringIO(result.output)))
    study = optuna.load_study(study_name="exp", storage=storage_url)
    for row, trial in zip(rows, study.trials, strict=True):
        for column in ("state", "duration_s", "mlflow_run_id", "resolved_placement",
                       "final/train_accuracy", "final/val_accuracy", "final/test_accuracy",
                       "final/penalty_total", "final/weights_l2_total"):
            assert row[column] != "", column
        assert row["state"] == "COMPLETE"
        assert float(row["duration_s"]) == pytest.approx(trial.duration.total_seconds(),
                                                         abs=1e-3)
        assert json.loads(row["resolved_placement"]) == trial.user_attrs["placement"]
        assert float(row["final/penalty_total"]) == pytest.approx(
            trial.user_attrs["final/penalty_total"])
        assert {k for k in row if k.startswith("param:")} >= {f"param:{p}" for p in trial.params}
