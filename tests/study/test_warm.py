"""sweep.study.warm: a new study starts from the best configurations of an older one,
re-trained, and refuses (exit 2, nothing written) a configuration its space cannot hold."""

from __future__ import annotations

from pathlib import Path

import optuna
import pytest
from click.testing import CliRunner
from conftest import tiny_study, write_study
from mlflow.tracking import MlflowClient

import sweep
from sweep.cli import cli
from sweep.errors import SpecError
from sweep.placement.slots import describe_declared
from sweep.placement.space import SearchSpace
from sweep.spec import SearchSpec
from sweep.study.warm import _Misfit, fit

MLP = describe_declared([{"Dense": {"units": 4}}, {"Dense": {"units": 3}}])
SEARCH = {"targets": ["kernel"], "placement": {"choices": ["none", "first", "all"]},
          "l2": {"low": 1e-5, "high": 1e-2, "log": True}}


def _invoke(*args: str):
    return CliRunner().invoke(cli, list(args), catch_exceptions=False)


def _misfit(params: dict, **search: object) -> str:
    space = SearchSpace(SearchSpec.model_validate({**SEARCH, **search}), MLP)
    with pytest.raises(_Misfit) as caught:
        fit(params, space)
    return f"{caught.value.name} {caught.value.message}"


def test_a_configuration_must_be_exactly_one_of_the_new_space() -> None:
    space = SearchSpace(SearchSpec.model_validate(SEARCH), MLP)
    fit({"placement": "all", "l2": 1e-3}, space)  # fits: nothing raised
    fit({"placement": "none"}, space)
    assert _misfit({"placement": "all", "l2": 0.5}) == \
        "l2 = 0.5 is outside the new range [1e-05, 0.01]"
    assert _misfit({"placement": "first+penultimate", "l2": 1e-3}) == \
        "placement = 'first+penultimate' is not one of the new choices ['none', 'first', 'all']"
    assert _misfit({"placement": "all", "l2": 1e-3, "l1": 1e-4}) == \
        "l1 is not a parameter of the new search space"
    assert _misfit({"placement": "all"}) == \
        "l2 the new search space asks for it; the old trial has none"


def test_the_values_searched_besides_the_penalties_must_fit_too() -> None:
    from sweep.placement.searched import searched_values
    from sweep.spec import parse_spec

    study = tiny_study(search=SEARCH)
    study["train"]["learning_rate"] = {"low": 1e-3, "high": 1e-1, "log": True}
    study["model"]["layers"][0]["Dense"]["units"] = {"low": 4, "high": 16}
    study["model"]["layers"][1]["Dropout"]["rate"] = {"low": 0.1, "high": 0.5,
                                                      "allow_zero": True}
    spec = parse_spec(study)
    space = SearchSpace(spec.search, MLP, searched_values(spec))
    old = {"placement": "all", "l2": 1e-3, "train/learning_rate": 0.01, "dense/units": 8,
           "dropout/rate_on": True, "dropout/rate": 0.2}
    fit(old, space)  # fits: nothing raised
    fit({**{k: v for k, v in old.items() if k != "dropout/rate"}, "dropout/rate_on": False},
        space)  # dropout switched off: no rate to fit
    for params, said in [
        ({**old, "train/learning_rate": 0.5},
         "train/learning_rate = 0.5 is outside the new range [0.001, 0.1]"),
        ({**old, "dense/units": 8.5}, "dense/units = 8.5 is not a whole number"),
        ({k: v for k, v in old.items() if k != "train/learning_rate"},
         "train/learning_rate the new search space asks for it; the old trial has none"),
        ({**old, "train/batch_size": 32},
         "train/batch_size is not a parameter of the new search space")]:
        with pytest.raises(_Misfit) as caught:
            fit(params, space)
        assert f"{caught.value.name} {caught.value.message}" == said


def test_create_queues_the_best_configurations_and_workers_retrain_them(
        workdir: Path, storage_url: str, tracking_uri: str) -> None:
    old = write_study(workdir / "old.yaml", tiny_study(name="small", search=SEARCH,
                                                       budget={"n_trials": 4}))
    assert _invoke("run", str(old), "--storage", storage_url, "--tracking-uri",
                   tracking_uri, "--no-progress").exit_code == 0
    small = optuna.load_study(study_name="small", storage=storage_url)
    ranked = sorted((t for t in small.trials if "duplicate_of" not in t.user_attrs
                     and "baseline" not in t.user_attrs),
                    key=lambda t: (-t.value, t.number))
    # The bigger model keeps the layer names the configurations refer to.
    bigger = tiny_study(name="bigger", search=SEARCH, budget={"n_trials": 5})
    bigger["model"]["layers"][0]["Dense"]["units"] = 16
    new = write_study(workdir / "new.yaml", bigger)
    result = _invoke("create", str(new), "--storage", storage_url, "--tracking-uri",
                     tracking_uri, "--warm-start", "small", "--warm-start-top", "2")
    assert result.exit_code == 0, result.output
    origins = [f"small#{t.number}" for t in ranked[:2]]
    assert f"warm start: queued 2 configurations of {', '.join(origins)}" in result.output
    # Queued after the two baselines (none, uniform_l2), ahead of anything sampled.
    queued = optuna.load_study(study_name="bigger", storage=storage_url).trials
    assert [t.state for t in queued] == [optuna.trial.TrialState.WAITING] * 4
    assert [t.user_attrs.get("warm_start_of") for t in queued] == [None, None, *origins]

    worked = _invoke("worker", "bigger", "--storage", storage_url, "--tracking-uri",
                     tracking_uri, "--no-progress")
    assert worked.exit_code == 0, worked.output
    trials = optuna.load_study(study_name="bigger", storage=storage_url).trials
    for trial, source in zip(trials[2:4], ranked[:2], strict=True):
        assert trial.params == source.params
        assert trial.user_attrs["warm_start_of"] == f"small#{source.number}"
        assert trial.state == optuna.trial.TrialState.COMPLETE
        assert trial.user_attrs["epochs_run"] == 2  # trained again, not copied
        run = MlflowClient(tracking_uri).get_run(trial.user_attrs["mlflow_run_id"])
        assert run.data.tags["sweep.warm_start_of"] == f"small#{source.number}"


def test_a_configuration_outside_the_new_space_is_refused_and_nothing_written(
        workdir: Path, storage_url: str, tracking_uri: str) -> None:
    regularized = dict(SEARCH, placement={"choices": ["first", "all"]}, baselines=[])
    old = write_study(workdir / "old.yaml", tiny_study(name="wide", search=regularized,
                                                       budget={"n_trials": 2}))
    assert _invoke("run", str(old), "--storage", storage_url, "--tracking-uri",
                   tracking_uri, "--no-progress").exit_code == 0
    narrow = dict(regularized, l2={"low": 0.5, "high": 0.9})
    new = write_study(workdir / "new.yaml", tiny_study(name="narrow", search=narrow))
    other = f"sqlite:///{workdir / 'other.db'}"
    result = _invoke("create", str(new), "--storage", other, "--tracking-uri",
                     tracking_uri, "--warm-start", "wide", "--warm-start-storage", storage_url)
    assert result.exit_code == 2
    assert "--warm-start" in result.output and "does not fit the new search space" \
        in result.output and "parameter l2 = " in result.output
    assert not (workdir / "other.db").exists()
    # The Python API refuses the same way, with the same field.
    with pytest.raises(SpecError) as caught:
        sweep.create(new, storage=other, tracking_uri=tracking_uri, warm_start="wide",
                     warm_start_storage=storage_url)
    assert caught.value.field == "--warm-start"
    assert not (workdir / "other.db").exists()
    # A study that exists already took its warm start (or none) when it was created.
    again = _invoke("run", str(old), "--storage", storage_url, "--tracking-uri",
                    tracking_uri, "--warm-start", "wide", "--no-progress")
    assert again.exit_code == 2 and "a study cannot warm-start from itself" in again.output
    missing = _invoke("create", str(new), "--storage", other, "--warm-start", "nope",
                      "--warm-start-storage", storage_url)
    assert missing.exit_code == 2 and "nope" in missing.output
    # Queued trials use the budget: 2 baselines + the 2 configurations of "wide" > 3.
    fits = write_study(workdir / "fits.yaml", tiny_study(name="fits", search=SEARCH,
                                                         budget={"n_trials": 3}))
    full = _invoke("create", str(fits), "--storage", other, "--warm-start", "wide",
                   "--warm-start-storage", storage_url, "--warm-start-top", "3")
    assert full.exit_code == 2 and "--warm-start-top" in full.output, full.output
    assert not (workdir / "other.db").exists()


_WITHOUT_TENSORFLOW = """
import sys
from sweep.cli import cli
try:
    cli.main(sys.argv[1:], prog_name="sweep")
except SystemExit as done:
    print("exit", done.code, "tensorflow" in sys.modules)
"""


def test_warm_start_flags_are_named_in_their_one_line_errors(
        workdir: Path, storage_url: str, tracking_uri: str) -> None:
    import subprocess
    import sys

    old = write_study(workdir / "old.yaml", tiny_study(name="wide", budget={"n_trials": 1}))
    assert _invoke("create", str(old), "--storage", storage_url,
                   "--tracking-uri", tracking_uri).exit_code == 0
    new = write_study(workdir / "new.yaml", tiny_study(name="new"))
    cases = [
        (["--warm-start", "nosuch", "--warm-start-storage", storage_url],
         f"error: --warm-start: no such study in {storage_url} (got 'nosuch')"),
        (["--warm-start", "wide", "--warm-start-storage", "mysql://u@h/db"],
         "error: --warm-start-storage: no driver for mysql is installed"),
        (["--warm-start", "wide", "--warm-start-storage", storage_url,
          "--warm-start-top", "0"], "error: --warm-start-top: must be at least 1 (got 0)"),
    ]
    for flags, message in cases:
        done = subprocess.run(
            [sys.executable, "-c", _WITHOUT_TENSORFLOW, "run", str(new), "--storage",
             f"sqlite:///{workdir / 'new.db'}", "--tracking-uri", tracking_uri, *flags],
            capture_output=True, text=True, cwd=workdir)
        # Refused before the study file's model is built: TensorFlow was never loaded.
        assert done.stdout.strip() == "exit 2 False", done.stderr
        assert done.stderr.startswith(message), done.stderr
        assert len(done.stderr.strip().splitlines()) == 1, done.stderr
    assert not (workdir / "new.db").exists()
