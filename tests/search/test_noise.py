"""sweep.search.noise: a study measures its own seed noise (the no-regularization baseline
over several seeds) and stops once its best gains no more than that over `patience`
trials; `sweep status` says how close it is."""

from __future__ import annotations

import json
from pathlib import Path

import optuna
import pytest
from click.testing import CliRunner
from conftest import tiny_study, write_study

from sweep.cli import cli
from sweep.errors import SpecError
from sweep.search.limits import halt_reason
from sweep.search.noise import noise_state, seed_noise
from sweep.spec import parse_spec

COMPLETE = optuna.trial.TrialState.COMPLETE


def _trials(values: list[float], baselines: int = 3) -> list[optuna.trial.FrozenTrial]:
    """The first ``baselines`` values are the no-regularization baseline over its seeds."""
    made = []
    for number, value in enumerate(values):
        attrs: dict = {"placement": {}}
        if number < baselines:
            attrs["baseline"] = "none"
            if number:
                attrs["seed_replicate"] = number
        trial = optuna.trial.create_trial(value=value, user_attrs=attrs)
        trial.number = number
        made.append(trial)
    return made


def _spec(**budget: object):
    return parse_spec(tiny_study(search=dict(tiny_study()["search"], baselines=["none"]),
                                 budget={"n_trials": 20, "stop_within_noise": True,
                                         "patience": 3, **budget}))


def test_the_noise_is_the_baselines_sd_over_its_seeds() -> None:
    noise, seeds = seed_noise(_trials([0.80, 0.82, 0.81]))
    assert seeds == 3 and noise == pytest.approx(0.01)
    assert seed_noise(_trials([0.80], baselines=1)) == (None, 1)


def test_the_study_stops_once_patience_trials_gain_no_more_than_the_noise() -> None:
    spec = _spec()
    trials = _trials([0.80, 0.82, 0.81, 0.85, 0.86, 0.855, 0.862])
    state = noise_state(trials, spec)
    assert state is not None and not state.stop
    assert state.gain == pytest.approx(0.012)  # 0.862 over the 0.85 before the window
    assert halt_reason(trials, spec) is None
    assert state.describe("val_accuracy") == (
        "seed noise of val_accuracy: sd 0.01 over 3 seeds of the no-regularization baseline; "
        "the best gained +0.012 over the last 3 of 3 trials (budget.patience)")
    trials = _trials([0.80, 0.82, 0.81, 0.85, 0.86, 0.855, 0.862, 0.861])
    state = noise_state(trials, spec)
    assert state is not None and state.stop and state.gain == pytest.approx(0.002)
    halted = halt_reason(trials, spec)
    assert halted is not None and not halted.failed
    assert str(halted) == (
        "study stopped: the best val_accuracy gained +0.002 over the last 3 trials, within "
        "the seed noise (sd 0.01 over 3 seeds of the no-regularization baseline; "
        "budget.stop_within_noise)")


def test_the_window_waits_for_the_search_and_a_measured_noise() -> None:
    spec = _spec()
    # Two search trials after the baselines: fewer than patience, no verdict yet.
    state = noise_state(_trials([0.80, 0.82, 0.81, 0.80, 0.80]), spec)
    assert state is not None and (state.window, state.stop) == (2, False)
    assert state.describe("val_accuracy").endswith(
        "the best gained +0 over the last 2 of 3 trials (budget.patience): stops after 1 "
        "more trials without a gain above 0.01")
    # One baseline seed done: nothing measured, nothing stopped, however flat the search.
    state = noise_state(_trials([0.80, 0.80, 0.80, 0.80, 0.80], baselines=1), spec)
    assert state is not None and state.noise is None and not state.stop
    assert noise_state(_trials([0.8]), parse_spec(tiny_study())) is None  # not asked for


def test_the_spec_refuses_what_cannot_measure_or_reach_a_stop() -> None:
    with pytest.raises(SpecError) as caught:
        parse_spec(tiny_study(budget={"n_trials": 20, "stop_within_noise": True}))
    assert caught.value.field == "budget.stop_within_noise"  # tiny has no baseline
    with pytest.raises(SpecError) as caught:
        _spec(n_trials=5)  # 1 baseline + 2 extra seeds + patience 3 = 6
    assert caught.value.field == "budget.n_trials" and "at least 6 trials" in str(caught.value)


def test_a_study_stops_within_noise_and_status_says_why(
        workdir: Path, storage_url: str, tracking_uri: str) -> None:
    search = dict(tiny_study()["search"], baselines=["none"])
    path = write_study(workdir / "n.yaml", tiny_study(
        name="noisy", search=search, sampler="random",
        budget={"n_trials": 20, "stop_within_noise": True, "patience": 2},
        seeds={"noise": 2}))
    result = CliRunner().invoke(cli, ["run", str(path), "--storage", storage_url,
                                      "--tracking-uri", tracking_uri, "--no-progress"],
                                catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert "study stopped: the best val_accuracy gained" in result.output
    study = optuna.load_study(study_name="noisy", storage=storage_url)
    first, replicate = study.trials[:2]
    # The baseline twice, each trained with its own seed: the second is not a duplicate.
    assert (first.user_attrs["baseline"], replicate.user_attrs["baseline"]) == ("none", "none")
    assert replicate.user_attrs["seed_replicate"] == 1
    assert "duplicate_of" not in replicate.user_attrs and replicate.user_attrs["epochs_run"] == 2
    # The replicate trains on the baseline's extra seed 1, the one a racing re-run of any
    # configuration gets (sweep.seeds.extra_seed(0, 1)).
    assert (first.user_attrs["seed"], replicate.user_attrs["seed"]) == (821328062, 759045492)
    trained = [t for t in study.trials if "duplicate_of" not in t.user_attrs]
    assert len(trained) < 20
    status = json.loads(CliRunner().invoke(cli, ["status", "noisy", "--storage", storage_url,
                                                 "--format", "json"]).output)
    noise = status["noise"]
    assert noise["seeds"] == 2 and noise["stop"] is True and noise["patience"] == 2
    assert noise["noise"] == pytest.approx(abs(first.value - replicate.value) / 2 ** 0.5)
    assert noise["gain"] <= noise["noise"]
    assert status["stopped"].startswith("study stopped: the best val_accuracy gained")
    table = CliRunner().invoke(cli, ["status", "noisy", "--storage", storage_url]).output
    assert "seed noise of val_accuracy: sd " in table
