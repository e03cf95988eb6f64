"""sweep.spec.searched and sweep.placement.searched: a range or a list of choices where the
study file has a number or a name (train, a layer's arguments, a builder's), named as an
Optuna parameter, suggested, resolved into what a trial trains, and refused where it
cannot stand; and the values reaching Keras (sweep.training.trainer)."""

from __future__ import annotations

import optuna
import pytest
from conftest import tiny_study

from sweep.errors import SpecError
from sweep.placement.searched import (
    family_label,
    regularizer_families,
    resolve,
    searched_values,
    suggest_settings,
    typical_settings,
)
from sweep.spec import parse_spec


def _study(**train: object) -> dict:
    study = tiny_study()
    study["train"].update(train)
    study["model"]["layers"][0]["Dense"]["units"] = {"choices": [8, 16]}
    study["model"]["layers"][1]["Dropout"]["rate"] = {"low": 0.0, "high": 0.5}
    return study


SEARCHED = dict(learning_rate={"low": 1.0e-4, "high": 1.0e-2, "log": True},
                batch_size={"choices": [16, 32]}, optimizer={"choices": ["adam", "adamw"]},
                weight_decay={"choices": [0.0, 1.0e-4]})


def test_each_searched_value_is_a_named_parameter_with_its_family() -> None:
    found = searched_values(parse_spec(_study(**SEARCHED)))
    assert [(s.name, s.field, s.family, s.structural) for s in found] == [
        ("train/batch_size", "train.batch_size", None, False),
        ("train/optimizer", "train.optimizer", None, False),
        ("train/learning_rate", "train.learning_rate", None, False),
        ("train/weight_decay", "train.weight_decay", "weight_decay", False),
        ("dense/units", "model.layers[0].Dense.units", None, True),
        ("dropout/rate", "model.layers[1].Dropout.rate", "dropout", True),
    ]


def test_a_trial_suggests_them_and_resolves_to_concrete_sections() -> None:
    spec = parse_spec(_study(**SEARCHED))
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=3))
    trial = study.ask()
    settings = suggest_settings(trial, searched_values(spec))
    assert set(settings) == set(trial.params)  # Optuna holds each under the same name
    assert isinstance(settings["dense/units"], int) and settings["train/batch_size"] in (16, 32)
    assert 1e-4 <= settings["train/learning_rate"] <= 1e-2
    train, model = resolve(spec, settings)
    assert (train.learning_rate, train.batch_size, train.optimizer, train.weight_decay) == (
        settings["train/learning_rate"], settings["train/batch_size"],
        settings["train/optimizer"], settings["train/weight_decay"])
    assert model.layers[0]["Dense"] == {"units": settings["dense/units"], "activation": "relu"}
    assert model.layers[1]["Dropout"] == {"rate": settings["dropout/rate"]}


def test_baselines_take_typical_values_and_no_regularization_none_of_the_regularizers() -> None:
    found = searched_values(parse_spec(_study(**SEARCHED)))
    assert typical_settings(found) == {
        "train/batch_size": 32, "train/optimizer": "adamw", "train/learning_rate": 1e-3,
        "train/weight_decay": 1e-4, "dense/units": 16, "dropout/rate": 0.25}
    assert typical_settings(found, regularized=False) == {
        "train/batch_size": 32, "train/optimizer": "adamw", "train/learning_rate": 1e-3,
        "train/weight_decay": 0, "dense/units": 16, "dropout/rate": 0}
    assert regularizer_families({}, typical_settings(found, regularized=False), found) == []
    assert regularizer_families({"dense": {"kernel": {"l2": 1e-3}}},
                                typical_settings(found), found) == ["l2", "dropout",
                                                                    "weight_decay"]


def test_allow_zero_switches_a_regularizer_off_with_a_parameter_of_its_own() -> None:
    study = tiny_study()
    study["model"]["layers"][1]["Dropout"]["rate"] = {"low": 0.1, "high": 0.5,
                                                      "allow_zero": True}
    study["train"]["weight_decay"] = {"low": 1e-5, "high": 1e-2, "log": True,
                                      "allow_zero": True}
    found = searched_values(parse_spec(study))
    off = optuna.trial.FixedTrial({"train/weight_decay_on": False, "dropout/rate_on": False})
    assert suggest_settings(off, found) == {"train/weight_decay": 0.0, "dropout/rate": 0.0}
    on = optuna.trial.FixedTrial({"train/weight_decay_on": True, "train/weight_decay": 1e-3,
                                  "dropout/rate_on": True, "dropout/rate": 0.3})
    assert suggest_settings(on, found) == {"train/weight_decay": 1e-3, "dropout/rate": 0.3}
    # Switched off, it is no regularizer: the configuration's family says so.
    assert regularizer_families({}, {"train/weight_decay": 0.0, "dropout/rate": 0.3},
                                found) == ["dropout"]


def test_a_configurations_family_names_its_penalties_placement_and_other_regularizers(
        ) -> None:
    found = searched_values(parse_spec(_study(**SEARCHED)))
    l2_all = {"dense": {"kernel": {"l2": 1e-3}}, "dense_1": {"kernel": {"l2": 1e-3}}}
    assert family_label("all", l2_all, {"dropout/rate": 0.0, "train/weight_decay": 0.0},
                        found) == "l2 (all)"
    assert family_label("all", l2_all, {"dropout/rate": 0.2, "train/weight_decay": 0.0},
                        found) == "l2 (all) + dropout"
    assert family_label("none", {}, {"dropout/rate": 0.2, "train/weight_decay": 1e-4},
                        found) == "dropout + weight decay"
    assert family_label("none", {}, {"dropout/rate": 0, "train/weight_decay": 0},
                        found) == "none"


def test_a_builders_arguments_are_searched_as_builder_parameters() -> None:
    study = tiny_study()
    study["model"] = {"builder": "mymodels:mlp",
                      "arguments": {"width": {"choices": [8, 32]}, "depth": 2}}
    (item,) = searched_values(parse_spec(study))
    assert (item.name, item.field, item.structural) == ("builder/width",
                                                        "model.arguments.width", True)
    _, model = resolve(parse_spec(study), {"builder/width": 32})
    assert model.arguments == {"width": 32, "depth": 2}


@pytest.mark.parametrize(("change", "field", "message"), [
    ({"train": {"epochs": {"low": 1, "high": 9}}}, "train.epochs", "cannot be searched"),
    ({"seed": {"choices": [0, 1]}}, "seed", "cannot be searched"),
    ({"name": {"choices": ["a", "b"]}}, "name", "cannot be searched"),
    ({"data": {"source": "synthetic", "n_samples": {"choices": [100, 200]}}},
     "data.n_samples", "cannot be searched"),
    ({"train": {"learning_rate": {"low": 0.0, "high": 0.1, "log": True}}},
     "train.learning_rate", "low must be > 0 when log is true"),
    ({"train": {"batch_size": {"low": 8.5, "high": 64}}}, "train.batch_size",
     "needs whole numbers"),
    ({"train": {"optimizer": {"choices": ["adam", "lion"]}}}, "train.optimizer",
     "must be among"),
    ({"train": {"learning_rate": {"choices": [0.01, "fast"]}}}, "train.learning_rate",
     "all be numbers, or all names"),
    ({"train": {"optimizer": {"low": 1, "high": 2}}}, "train.optimizer",
     "search it with choices"),
    ({"model": {"layers": [{"Dense": {"units": {"low": 16, "high": 8}}},
                           {"Dense": {"units": 3}}]}},
     "model.layers[0].Dense.units", "low must be below high"),
    ({"model": {"layers": [{"Dense": {"units": 8, "name": {"choices": ["a", "b"]}}},
                           {"Dense": {"units": 3}}]}},
     "model.layers[0].Dense.name", "cannot be searched"),
    ({"model": {"layers": [{"Dense": {"units": 3}}], "arguments": {"width": 3}}},
     "model.arguments", "with model.builder"),
    ({"train": {"learning_rate": {"low": 1e-4, "high": 1e-2, "allow_zero": True}}},
     "train.learning_rate", "allow_zero switches a regularizer off"),
    ({"model": {"layers": [{"Dense": {"units": {"low": 4, "high": 8, "allow_zero": True}}},
                           {"Dense": {"units": 3}}]}},
     "model.layers[0].Dense.units", "allow_zero switches a regularizer off"),
    ({"train": {"weight_decay": {"low": 1e-4, "high": 1e-2, "allow_zero": "yes"}}},
     "train.weight_decay.allow_zero", "must be true or false"),
])
def test_bad_searches_name_the_field(change: dict, field: str, message: str) -> None:
    study = tiny_study()
    for section, value in change.items():
        if isinstance(value, dict) and isinstance(study.get(section), dict):
            study[section] = {**study[section], **value}
        else:
            study[section] = value
    with pytest.raises(SpecError) as caught:
        parse_spec(study)
    assert caught.value.field == field
    assert message in str(caught.value)


def test_a_study_stored_before_these_keys_keeps_its_fingerprint() -> None:
    # Literal: the fingerprint of the tiny study as versions without train.weight_decay
    # and model.arguments computed it.
    assert parse_spec(tiny_study()).fingerprint() == "168743781c86216d"


def test_a_study_searches_them_and_records_each_trials_settings(
        workdir, storage_url: str, tracking_uri: str) -> None:
    from click.testing import CliRunner
    from conftest import write_study
    from mlflow.tracking import MlflowClient

    from sweep.cli import cli

    study = _study(learning_rate={"choices": [0.003, 0.01]})
    study.update(name="searched", budget={"n_trials": 4})
    study["search"]["baselines"] = ["none"]
    path = write_study(workdir / "s.yaml", study)
    result = CliRunner().invoke(cli, ["run", str(path), "--storage", storage_url,
                                      "--tracking-uri", tracking_uri, "--no-progress"],
                                catch_exceptions=False)
    assert result.exit_code == 0, result.output
    trials = optuna.load_study(study_name="searched", storage=storage_url).trials
    baseline, *sampled = trials
    # No regularization: no dropout either; the learning rate and width at their middle.
    assert baseline.user_attrs["settings"] == {"train/learning_rate": 0.01, "dense/units": 16,
                                               "dropout/rate": 0}
    client = MlflowClient(tracking_uri)
    for trial in sampled:
        assert set(trial.params) >= {"train/learning_rate", "dense/units", "dropout/rate"}
        settings = trial.user_attrs["settings"]
        assert settings == {k: trial.params[k] for k in settings}
        logged = client.get_run(trial.user_attrs["mlflow_run_id"]).data.params
        assert logged["train/learning_rate"] == str(trial.params["train/learning_rate"])
        assert logged["dropout/rate"] == str(trial.params["dropout/rate"])
    # The study's saved MLflow view shows them as columns, after the coefficients.
    import json

    experiment = client.get_experiment_by_name("searched")
    view = json.loads(experiment.tags["mlflow.sharedViewState.regsweep-searched"])
    assert view["selectedColumns"][4:9] == [
        "params.`l1`", "params.`l2`", "params.`train/learning_rate`", "params.`dense/units`",
        "params.`dropout/rate`"]
