"""sweep.results.queries: the read-only views behind `status`, `best`, `export` and `list`, on a
study of hand-made trials (no training), read back through Optuna's storage."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import optuna
import pytest
from conftest import tiny_study
from hand_made import CHOICE, FIRST, timed_study
from optuna.trial import TrialState, create_trial

from sweep.results.queries import best_rows, export_rows, list_studies, logged_run_id, status
from sweep.spec import parse_spec
from sweep.storage.connect import open_storage
from sweep.study.create import create_or_resume


def test_status_counts_each_trial_once(made: tuple[Any, Any, Any]) -> None:
    study, spec, _ = made
    shown = status(study, spec)
    assert shown["states"] == {"COMPLETE": 3, "PRUNED": 0, "FAIL": 2, "RUNNING": 1,
                               "WAITING": 1}
    # The lost and the interrupted trial gave their places to #5 and #6.
    assert (shown["finished"], shown["requeued"], shown["remaining"]) == (3, 2, 1)
    assert (shown["best_trial"], shown["best_value"]) == (1, 0.75)
    assert shown["best_placement"] == "dense: kernel l2=0.001"
    (worker,) = shown["workers"]
    assert (worker["trial"], worker["host"], worker["pid"], worker["gpu"]) == (
        5, "node2", "22", "1")
    assert shown["stopped"] is None


def test_status_counts_down_while_a_worker_works(tmp_path: Path) -> None:
    study, spec = timed_study(tmp_path, running=True)
    shown = status(study, spec)
    # 4 trials in the 30 minutes since the first started: 8 an hour; 5 left in the budget
    # and the running one: 6 trials, 45 minutes.
    assert shown["trials_per_hour"] == 8.0
    assert abs(shown["eta_seconds"] - 2700) <= 1


def test_status_counts_nothing_down_when_no_trial_runs(tmp_path: Path) -> None:
    study, spec = timed_study(tmp_path, running=False)
    shown = status(study, spec)
    # The rate the study had: 4 trials between the first start (30 minutes ago) and the
    # last finish (10 minutes ago), 12 an hour, not one that falls as the clock runs on.
    assert shown["trials_per_hour"] == 12.0
    assert shown["eta_seconds"] is None  # nobody works on it now
    assert shown["remaining"] == 6


def test_best_rows_link_synced_runs_and_compare_with_the_baseline(
        made: tuple[Any, Any, Any]) -> None:
    study, spec, _ = made
    rows = best_rows(study, spec, top=2)
    assert [(r["number"], r["value"]) for r in rows] == [(1, 0.75), (2, 0.72)]
    assert [round(r["vs_baseline"], 6) for r in rows] == [0.05, 0.02]
    assert rows[0]["mlflow_run_id"] == "r1-synced"  # spooled, then synced
    assert rows[0]["param:placement"] == "first" and rows[0]["baseline_trial"] == 0
    assert rows[0]["final/val_accuracy"] == 0.75
    # Before `sweep sync` a spooled run has no MLflow id to point at.
    assert logged_run_id(study.trials[1]) is None
    assert logged_run_id(study.trials[2]) == "r2"


def test_export_and_list(made: tuple[Any, Any, Any]) -> None:
    study, spec, storage = made
    rows = export_rows(study, spec)
    assert [r["state"] for r in rows] == ["COMPLETE"] * 3 + ["FAIL"] * 2 + [
        "RUNNING", "WAITING"]
    assert [r["fail_reason"] for r in rows[3:5]] == ["heartbeat lost", "interrupted"]
    assert rows[0]["baseline"] == "none" and rows[0]["placement"] == "none"
    (listed,) = list_studies(storage)
    assert listed == {
        "study": "made", "trials": 7, "budget": 6, "finished": 3, "requeued": 2,
        "complete": 3, "pruned": 0, "fail": 2, "running": 1, "direction": "maximize",
        "best_value": 0.75}
    assert optuna.load_study(study_name="made", storage=storage).user_attrs[
        "mlflow_run_id/1"] == "r1-synced"


def test_the_ranking_is_computed_once_while_the_trials_stay_the_same(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from sweep.results.ranking import ranked_trials
    from sweep.search import racing

    spec = parse_spec(tiny_study(name="ranked", budget={"n_trials": 30}))
    assert spec.racing is not None  # ranked through seed racing, the costly ranking
    study, _ = create_or_resume(spec, open_storage(f"sqlite:///{tmp_path / 's.db'}"))
    for value, state in ((0.70, TrialState.COMPLETE), (0.75, TrialState.COMPLETE),
                         (None, TrialState.RUNNING)):
        study.add_trial(create_trial(state=state, value=value, params={"placement": "first"},
                                     distributions=CHOICE, user_attrs={"placement": FIRST}))
    calls = []
    original = racing.ranked
    monkeypatch.setattr(racing, "ranked", lambda *a, **k: calls.append(1) or original(*a, **k))

    first = ranked_trials(study, spec)
    again = ranked_trials(study, spec)  # the running trial is read afresh, but unchanged
    assert len(calls) == 1
    assert [t.number for t in again[0]] == [t.number for t in first[0]] == [1, 0]

    study.add_trial(create_trial(state=TrialState.COMPLETE, value=0.80,
                                 params={"placement": "all"}, distributions=CHOICE,
                                 user_attrs={"placement": {"dense": {"kernel": {"l1": 0.01}}}}))
    assert [t.number for t in ranked_trials(study, spec)[0]] == [3, 1, 0]
    assert len(calls) == 2


def test_no_regularization_is_its_best_configuration_when_the_learning_rate_is_searched(
        ) -> None:
    """With the learning rate searched, the no-regularization reference is the best
    configuration without a regularizer (its learning rate searched too), not the queued
    baseline at the middle learning rate; without it, the queued baseline."""
    from sweep.results.queries import baseline_trial

    study_file = tiny_study(search={"targets": ["kernel"], "l2": 1e-3,
                                    "placement": {"choices": ["none", "all"]}})
    study_file["model"]["layers"][1]["Dropout"]["rate"] = {"low": 0.1, "high": 0.5,
                                                           "allow_zero": True}
    study_file["train"]["learning_rate"] = {"low": 1e-3, "high": 1e-1, "log": True}
    spec = parse_spec(study_file)
    study = optuna.create_study(direction="maximize")
    l2_all = {"dense": {"kernel": {"l2": 1e-3}}, "dense_1": {"kernel": {"l2": 1e-3}}}
    for value, placement, settings, extra in [
            (0.70, {}, {"train/learning_rate": 0.01, "dropout/rate": 0.0},
             {"baseline": "none"}),                                       # 0: queued
            (0.90, l2_all, {"train/learning_rate": 0.003, "dropout/rate": 0.0}, {}),  # 1
            (0.85, {}, {"train/learning_rate": 0.003, "dropout/rate": 0.3}, {}),   # 2
            (0.80, {}, {"train/learning_rate": 0.003, "dropout/rate": 0.0}, {}),   # 3
            (0.75, {}, {"train/learning_rate": 0.05, "dropout/rate": 0.0}, {})]:   # 4
        study.add_trial(create_trial(value=value, user_attrs={
            "placement": placement, "settings": settings, **extra}))
    assert baseline_trial(study, spec=spec).number == 3  # dropout on is not "none"
    assert baseline_trial(study).number == 0  # without the spec: the queued one
    (best,) = best_rows(study, spec, 1)
    assert (best["number"], best["baseline_trial"]) == (1, 3)
    assert best["vs_baseline"] == pytest.approx(0.10)

    # Only dropout searched (nothing no regularization depends on): the queued baseline.
    study_file["train"]["learning_rate"] = 0.01
    assert baseline_trial(study, spec=parse_spec(study_file)).number == 0
