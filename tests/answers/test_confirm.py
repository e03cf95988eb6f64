"""sweep.answers.confirm: the paired and Welch tests against scipy, and a real confirmation
over seeds whose runs are in MLflow and whose result is stored in the study."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import optuna
import pytest
from click.testing import CliRunner
from conftest import tiny_study, write_study
from mlflow.tracking import MlflowClient
from scipy import stats

from sweep.answers.confirm import (
    Confirmation,
    ConfirmedConfig,
    paired,
    stored_confirmation,
    welch,
)
from sweep.cli import cli


def test_welch_matches_scipy() -> None:
    a, b = (0.91, 0.93, 0.92, 0.95, 0.94), (0.90, 0.88, 0.91, 0.89, 0.90)
    result = welch("test_accuracy", a, b, maximize=True)
    reference = stats.ttest_ind(a, b, equal_var=False)
    assert result.p_value == pytest.approx(reference.pvalue)
    assert result.difference == pytest.approx(sum(a) / 5 - sum(b) / 5)
    interval = reference.confidence_interval(0.95)
    assert (result.ci_low, result.ci_high) == (pytest.approx(interval.low),
                                               pytest.approx(interval.high))
    assert result.significant and result.better
    # The same gain on a loss (minimize) is a loss of quality, never "significant".
    assert not welch("test_data_loss", a, b, maximize=False).significant


def test_paired_matches_scipy_and_sees_a_gain_welch_misses() -> None:
    # Seed noise (±0.04) dwarfs the gain (+0.005 on every seed): only pairing sees it.
    b = (0.90, 0.86, 0.94, 0.88, 0.92)
    a = (0.906, 0.864, 0.945, 0.886, 0.924)
    result = paired("test_accuracy", a, b, maximize=True)
    reference = stats.ttest_rel(a, b)
    assert result.p_value == pytest.approx(reference.pvalue)
    interval = reference.confidence_interval(0.95)
    assert (result.ci_low, result.ci_high) == (pytest.approx(interval.low),
                                               pytest.approx(interval.high))
    assert result.significant and result.test == "paired"
    assert not welch("test_accuracy", a, b, maximize=True).significant
    base = ConfirmedConfig("no regularization", 0, "none", {}, (1, 2, 3, 4, 5),
                           {"test_accuracy": b})
    other = ConfirmedConfig("trial 1", 1, None, {"d": {}}, (1, 2, 3, 4, 5),
                            {"test_accuracy": a})
    assert Confirmation("test_accuracy", "maximize", (base, other)).compare(other).test == \
        "paired"


def test_noise_larger_than_the_gain_is_not_significant() -> None:
    a, b = (0.80, 0.95, 0.85, 0.99, 0.70), (0.82, 0.90, 0.84, 0.93, 0.78)
    assert not welch("test_accuracy", a, b, maximize=True).significant


def test_confirmation_round_trips_through_json() -> None:
    config = ConfirmedConfig("trial 3", 3, None, {"d": {"kernel": {"l2": 1e-4}}}, (1, 2),
                             {"test_accuracy": (0.5, 0.7)}, ("r1", "r2"))
    base = ConfirmedConfig("no regularization", 0, "none", {}, (1, 2),
                           {"test_accuracy": (0.4, 0.5)})
    original = Confirmation("test_accuracy", "maximize", (base, config))
    again = Confirmation.from_json(original.to_json())
    assert again == original
    assert again.baseline is again.configs[0]
    assert again.configs[1].mean("test_accuracy") == pytest.approx(0.6)
    assert again.configs[1].std("test_accuracy") == pytest.approx(0.1414213, rel=1e-5)


def test_run_confirm_retrains_the_best_and_the_baseline_over_seeds(
        workdir: Path, storage_url: str, tracking_uri: str) -> None:
    study_file = write_study(workdir / "c.yaml", tiny_study(
        name="conf", budget={"n_trials": 3}, report={"confirm_top": 1},
        seeds={"confirm": 3}))
    result = CliRunner().invoke(cli, [
        "run", str(study_file), "--storage", storage_url, "--tracking-uri", tracking_uri,
        "--no-progress", "--confirm", "2"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert "confirmed over 3 seeds" in result.output

    study = optuna.load_study(study_name="conf", storage=storage_url)
    confirmation = stored_confirmation(study)
    assert confirmation is not None and confirmation.metric == "test_accuracy"
    base, *others = confirmation.configs
    assert base.baseline == "none" and base.placement == {}
    assert 1 <= len(others) <= 2
    complete = sorted(study.trials, key=lambda t: t.value, reverse=True)
    # Picked on validation: the first confirmed config is the best trial by val_accuracy
    # (unless that one trained no penalty, which the baseline already covers).
    best_regularized = next(t for t in complete if t.user_attrs["placement"])
    assert others[0].trial_number == best_regularized.number
    for config in confirmation.configs:
        assert len(config.seeds) == 3 and len(set(config.seeds)) == 3
        assert len(config.values("test_accuracy")) == 3
        assert config.std("test_accuracy") is not None
        assert not set(config.seeds) & {t.user_attrs["seed"] for t in study.trials}

    client = MlflowClient(tracking_uri)
    runs = client.search_runs(
        [client.get_experiment_by_name("conf").experiment_id],
        filter_string="tags.`sweep.role` = 'confirm'")
    assert len(runs) == 3 * len(confirmation.configs)
    assert {r.info.status for r in runs} == {"FINISHED"}
    # Under one run of their own, nested in the study's run: the trials stay on top.
    (holder,) = client.search_runs(
        [client.get_experiment_by_name("conf").experiment_id],
        filter_string="tags.`sweep.role` = 'confirmation'")
    assert holder.info.run_name == "confirmation"
    (study_run,) = client.search_runs(
        [client.get_experiment_by_name("conf").experiment_id],
        filter_string="tags.`sweep.role` = 'study'")
    assert holder.data.tags["mlflow.parentRunId"] == study_run.info.run_id
    assert {r.data.tags["mlflow.parentRunId"] for r in runs} == {holder.info.run_id}
    assert all(r.info.run_name.startswith("confirm ") and r.info.run_name.endswith(
        (" seed 1", " seed 2", " seed 3")) for r in runs)
    by_id = {r.info.run_id: r for r in runs}
    for config in confirmation.configs:
        for run_id, value in zip(config.run_ids, config.values("test_accuracy"), strict=True):
            assert by_id[run_id].data.metrics["final/test_accuracy"] == pytest.approx(value)

    def confirmed_again() -> int:
        """`sweep run --confirm 2` once more: the confirmation runs MLflow then holds."""
        again = CliRunner().invoke(cli, [
            "run", str(study_file), "--storage", storage_url, "--tracking-uri", tracking_uri,
            "--no-progress", "--confirm", "2"], catch_exceptions=False)
        assert again.exit_code == 0
        return len(client.search_runs(
            [client.get_experiment_by_name("conf").experiment_id],
            filter_string="tags.`sweep.role` = 'confirm'"))

    # Asking again re-trains nothing: the stored confirmation already covers it.
    assert confirmed_again() == len(runs)
    # A confirmation stored with seeds another version derived keeps them: nothing is
    # trained again, and the seeds stay what they were.
    older = Confirmation(confirmation.metric, confirmation.direction, tuple(
        replace(config, seeds=(11, 12, 13)) for config in confirmation.configs))
    study.set_user_attr("confirmation", older.to_json())
    assert confirmed_again() == len(runs)
    kept = stored_confirmation(optuna.load_study(study_name="conf", storage=storage_url))
    assert [config.seeds for config in kept.configs] == [(11, 12, 13)] * len(kept.configs)
