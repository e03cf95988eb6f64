"""The study run's description says what won and whether confirmation supports it."""

from __future__ import annotations

import optuna
from conftest import tiny_study

from sweep.answers.confirm import Confirmation, ConfirmedConfig
from sweep.answers.note import description, settings_params, verdict
from sweep.spec import parse_spec

SEEDS = (11, 12, 13, 14)


def _trial(number: int, value: float):
    trial = optuna.create_trial(value=value)
    trial.number = number
    return trial


def _config(label: str, number: int, baseline: str | None, accuracy: tuple[float, ...]):
    return ConfirmedConfig(label=label, trial_number=number, baseline=baseline,
                           placement={}, seeds=SEEDS, figures={"test_accuracy": accuracy})


def _confirmation(accuracy: tuple[float, ...]) -> Confirmation:
    return Confirmation(metric="test_accuracy", direction="maximize", configs=(
        _config("no regularization", 0, "none", (0.70, 0.71, 0.69, 0.70)),
        _config("trial 5", 5, None, accuracy)))


def test_the_verdict_says_whether_the_gain_exceeds_seed_noise() -> None:
    real = verdict(_confirmation((0.80, 0.81, 0.79, 0.80)), 5)
    assert real is not None and real.startswith(
        "exceeds seed noise: yes (test_accuracy +0.1000, p=")
    assert real.endswith(", 4 seeds)")
    noise = verdict(_confirmation((0.71, 0.69, 0.70, 0.70)), 5)
    assert noise is not None and noise.startswith("exceeds seed noise: no (test_accuracy")
    assert verdict(_confirmation((0.8, 0.8, 0.8, 0.8)), 7) is None  # 7 was not confirmed
    assert verdict(None, 5) is None


def _configuration(trial, draws: tuple[float, ...]):
    from sweep.search.grouping import Configuration

    return Configuration(trial.number, {}, [trial], [trial], list(draws))


def test_description_opens_with_the_answer_and_names_configurations() -> None:
    spec = parse_spec(tiny_study(name="noted", budget={"n_trials": 12}))
    best, base = _trial(5, 0.8125), _trial(0, 0.75)
    seeds = {5: _configuration(best, (0.8125, 0.8, 0.825)), 0: _configuration(base, (0.75,))}
    note = description(spec, trials=12, budget=12, best=best,
                       best_link="#/experiments/3/runs/abc", baseline=base,
                       confirmation=_confirmation((0.71, 0.69, 0.70, 0.70)),
                       report_path="report/report.html", seeds=seeds,
                       answer="No configuration beats no regularization.")
    lines = note.splitlines()
    assert lines[0] == "**No configuration beats no regularization.**"
    assert lines[2] == ("- Best on validation: [configuration #5](#/experiments/3/runs/abc), "
                        "`val_accuracy` = 0.8125 ± 0.0125 over 3 seeds.")
    assert lines[3] == ("- Against no regularization (#0, 0.7500, 1 seed): +0.0625 on "
                        "validation.")
    assert lines[4].startswith("- Confirmation over seeds on the test split: exceeds seed "
                               "noise: no")
    assert lines[5] == ("- Objective: maximize `val_accuracy` on the validation split (25% "
                        "of the data); the test split (25%) only evaluates.")
    assert lines[6] == "- Trials: 12 of a budget of 12, 2 configurations (sampler `tpe`)."
    assert lines[-1] == "- The full report: artifacts, `report/report.html`."


def test_settings_are_the_study_defining_keys_only() -> None:
    params = settings_params(parse_spec(tiny_study()))
    assert params == {
        "study/objective": "val_accuracy (maximize)", "study/sampler": "tpe",
        "study/pruner": "none", "study/placements": "none, first, all",
        "study/targets": "kernel", "study/coefficients": "shared", "study/data": "synthetic",
        "study/epochs": "2", "study/seed": "0"}
