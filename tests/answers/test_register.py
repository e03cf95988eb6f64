"""sweep.answers.register: `report.register` puts the best configuration into the MLflow
Model Registry only when the confirmation says it beats seed noise, and the registered
model loads and predicts; read back through MLflow's registry and Optuna."""

from __future__ import annotations

import json
from pathlib import Path

import mlflow
import numpy as np
import optuna
import pytest
from click.testing import CliRunner
from conftest import tiny_study, write_study
from mlflow.tracking import MlflowClient

import sweep
from sweep.answers.confirm import Confirmation, ConfirmedConfig
from sweep.answers.register import Registration, decide, median_seed
from sweep.cli import cli
from sweep.spec import parse_spec

FIRST = {"dense": {"kernel": {"l2": 0.001}}}
SEEDS = (11, 12, 13, 14, 15)


def _invoke(*args: str):
    return CliRunner().invoke(cli, list(args), catch_exceptions=False)


def _config(label: str, number: int, placement: dict, accuracies: tuple[float, ...],
            baseline: str | None = None) -> ConfirmedConfig:
    return ConfirmedConfig(label, number, baseline, placement, SEEDS,
                           {"test_accuracy": accuracies})


BASE = _config("no regularization", 0, {}, (0.70, 0.72, 0.71, 0.69, 0.70), "none")
# The same seeds, +0.05 on each (± 0.005): a paired test cannot call that noise.
REAL = _config("trial 1", 1, FIRST, (0.75, 0.775, 0.76, 0.74, 0.755))
NOISE = _config("trial 1", 1, FIRST, (0.71, 0.70, 0.73, 0.69, 0.70))


def _study(tmp_path: Path, best_placement: dict) -> tuple[optuna.Study, object]:
    spec = parse_spec(tiny_study(name="reg", report={"register": "winner"}))
    study = optuna.create_study(storage=f"sqlite:///{tmp_path / 'r.db'}", direction="maximize")
    for value, placement in ((0.70, {}), (0.80, best_placement)):
        study.add_trial(optuna.trial.create_trial(value=value,
                                                  user_attrs={"placement": placement}))
    return study, spec


def test_median_seed_is_a_typical_draw_not_the_luckiest() -> None:
    # Sorted: 0.74 (seed 14), 0.75 (11), 0.755 (15), 0.76 (13), 0.775 (12).
    assert median_seed(REAL, "test_accuracy") == 15
    short = ConfirmedConfig("x", 1, None, FIRST, SEEDS, {"test_accuracy": (0.7, 0.8)})
    assert median_seed(short, "test_accuracy") == 11  # a failed seed: cannot be paired


def test_only_a_gain_beyond_seed_noise_is_registered(tmp_path: Path) -> None:
    study, spec = _study(tmp_path, FIRST)
    config, comparison, reason = decide(study, spec, Confirmation(
        "test_accuracy", "maximize", (BASE, REAL)))
    assert config is REAL and comparison is not None and comparison.significant
    assert reason.startswith("beats seed noise (test_accuracy +0.0520 vs no regularization")
    config, comparison, reason = decide(study, spec, Confirmation(
        "test_accuracy", "maximize", (BASE, NOISE)))
    assert comparison is not None and not comparison.significant
    assert reason.startswith("the gain is within seed noise (test_accuracy +0.0020")
    assert decide(study, spec, None)[2] == \
        "not confirmed over seeds (report.confirm_top is 0 or --no-confirm)"
    (tmp_path / "b").mkdir()
    unregularized, _ = _study(tmp_path / "b", {})
    assert decide(unregularized, spec, Confirmation("test_accuracy", "maximize", (BASE,)))[2] \
        == "the best configuration on validation is no regularization"


def _reported(workdir: Path, storage_url: str, tracking_uri: str, name: str, model: str,
              confirmed: ConfirmedConfig) -> optuna.trial.FrozenTrial:
    """A one-trial study run for real, given ``confirmed``'s per-seed test figures as its
    stored confirmation, then `sweep report --no-confirm`; returns the trained trial. The
    verdict is the confirmation's own test (tests/answers/test_confirm.py), stored as `sweep
    report` stores it."""
    search = {"targets": ["kernel"], "placement": {"choices": ["first"]},
              "l2": {"choices": [0.001]}, "baselines": []}
    path = write_study(workdir / f"{name}.yaml", tiny_study(
        name=name, search=search, budget={"n_trials": 1},
        report={"confirm_top": 1, "register": model}, seeds={"confirm": 5}))
    assert _invoke("run", str(path), "--storage", storage_url, "--tracking-uri",
                   tracking_uri, "--no-progress").exit_code == 0
    study = optuna.load_study(study_name=name, storage=storage_url)
    trained = next(t for t in study.trials if t.user_attrs["placement"])
    config = ConfirmedConfig("trial 1", trained.number, None, trained.user_attrs["placement"],
                             SEEDS, {"test_accuracy": confirmed.values("test_accuracy")})
    study.set_user_attr("confirmation", Confirmation(
        "test_accuracy", "maximize", (BASE, config)).to_json())
    result = _invoke("report", name, "--storage", storage_url, "--tracking-uri",
                     tracking_uri, "--no-confirm", "-o", str(workdir / "rep"), "--no-progress")
    assert result.exit_code == 0, result.output
    return trained


def test_report_registers_a_real_gain_and_the_model_loads_and_predicts(
        workdir: Path, storage_url: str, tracking_uri: str,
        monkeypatch: pytest.MonkeyPatch) -> None:
    trained = _reported(workdir, storage_url, tracking_uri, "reg", "reg-winner", REAL)

    client = MlflowClient(tracking_uri)
    (version,) = client.search_model_versions("name='reg-winner'")
    assert str(version.version) == "1"
    assert version.tags["sweep.seed"] == "15" and version.tags["sweep.trial"] == \
        str(trained.number)
    assert version.tags["sweep.delta"] == "0.052" and version.tags["sweep.seeds"] == "5"
    assert json.loads(version.tags["sweep.coefficients"]) == trained.user_attrs["placement"]
    assert float(version.tags["sweep.p_value"]) < 0.05
    run = client.get_run(version.run_id)
    assert run.data.tags["sweep.role"] == "confirm"
    registration = Registration.from_json(
        optuna.load_study(study_name="reg", storage=storage_url).user_attrs["registration"])
    assert (registration.registered, registration.version) == (True, "1")
    loaded = sweep.load("reg", storage=storage_url, tracking_uri=tracking_uri)
    assert loaded.registration == registration  # the Python API reads the same
    (parent,) = client.search_runs([run.info.experiment_id],
                                   filter_string="tags.`sweep.role` = 'study'")
    assert parent.data.tags["sweep.registered_model"] == "reg-winner version 1"
    assert parent.data.tags["sweep.registered_model_link"] == "#/models/reg-winner/versions/1"
    assert "Model registry: registered as version 1 of model 'reg-winner'" in \
        (workdir / "rep" / "report.md").read_text()

    monkeypatch.setenv("MLFLOW_TRACKING_URI", tracking_uri)
    samples = np.random.default_rng(0).normal(size=(4, 6)).astype("float32")
    model = mlflow.keras.load_model("models:/reg-winner/1")
    predicted = model.predict(samples, verbose=0)
    assert predicted.shape == (4, 3) and np.allclose(predicted.sum(axis=1), 1.0, atol=1e-5)
    served = mlflow.pyfunc.load_model("models:/reg-winner/1")
    assert served.metadata.signature.inputs.to_dict()[0]["tensor-spec"]["shape"] == (-1, 6)
    assert np.allclose(np.asarray(served.predict(samples)), predicted, atol=1e-6)

    # The same confirmation registers once: a second report adds no version.
    assert _invoke("report", "reg", "--storage", storage_url, "--tracking-uri",
                   tracking_uri, "--no-confirm", "-o", str(workdir / "rep2"),
                   "--no-progress").exit_code == 0
    assert len(client.search_model_versions("name='reg-winner'")) == 1


def test_a_gain_within_noise_registers_nothing_and_says_why(
        workdir: Path, storage_url: str, tracking_uri: str) -> None:
    _reported(workdir, storage_url, tracking_uri, "reg-noise", "noisy-winner", NOISE)
    client = MlflowClient(tracking_uri)
    assert client.search_model_versions("name='noisy-winner'") == []
    why = "not registered in model 'noisy-winner': the gain is within seed noise"
    assert why in (workdir / "rep" / "report.md").read_text()
    experiment = client.get_experiment_by_name("reg-noise")
    (parent,) = client.search_runs([experiment.experiment_id],
                                   filter_string="tags.`sweep.role` = 'study'")
    assert parent.data.tags["sweep.registered_model"].startswith(
        "not registered: the gain is within seed noise")
    assert why in parent.data.tags["mlflow.note.content"]


def test_a_failed_registration_says_so_instead_of_an_earlier_verdict(
        workdir: Path, storage_url: str, tracking_uri: str,
        monkeypatch: pytest.MonkeyPatch) -> None:
    trained = _reported(workdir, storage_url, tracking_uri, "reg-down", "down-winner", NOISE)
    assert "within seed noise" in (workdir / "rep" / "report.md").read_text()
    study = optuna.load_study(study_name="reg-down", storage=storage_url)
    config = ConfirmedConfig("trial 1", trained.number, None, trained.user_attrs["placement"],
                             SEEDS, {"test_accuracy": REAL.values("test_accuracy")})
    study.set_user_attr("confirmation", Confirmation(
        "test_accuracy", "maximize", (BASE, config)).to_json())
    monkeypatch.setenv("MLFLOW_REGISTRY_URI", "http://127.0.0.1:1")  # nothing listens
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    result = _invoke("report", "reg-down", "--storage", storage_url, "--tracking-uri",
                     tracking_uri, "--no-confirm", "-o", str(workdir / "rep"), "--no-progress")
    assert result.exit_code == 1
    assert "registering model 'down-winner' failed" in result.output
    report = (workdir / "rep" / "report.md").read_text()
    assert "not registered in model 'down-winner': registration failed: " in report
    assert "within seed noise" not in report.split("Model registry:")[1].splitlines()[0]
    stored = Registration.from_json(optuna.load_study(
        study_name="reg-down", storage=storage_url).user_attrs["registration"])
    assert (stored.registered, stored.reason.split(":")[0]) == (False, "registration failed")
    client = MlflowClient(tracking_uri)
    experiment = client.get_experiment_by_name("reg-down")
    (parent,) = client.search_runs([experiment.experiment_id],
                                   filter_string="tags.`sweep.role` = 'study'")
    assert parent.data.tags["sweep.registered_model"].startswith(
        "not registered: registration failed: ")
    assert "registration failed: " in parent.data.tags["mlflow.note.content"]
