"""Study limits besides n_trials, read from stored trials: max_failures, wall_time and an
exhausted search space."""

from __future__ import annotations

import datetime as dt

import optuna
from conftest import tiny_study

from sweep.placement.configurations import placement_key
from sweep.search.limits import deadline, exhausted, halt_reason, own_failures
from sweep.spec import parse_spec

FAIL, COMPLETE = optuna.trial.TrialState.FAIL, optuna.trial.TrialState.COMPLETE


def _trial(number: int, state, reason: str | None = None, started: dt.datetime | None = None):
    trial = optuna.create_trial(
        state=state, value=0.5 if state == COMPLETE else None,
        user_attrs={"fail_reason": reason} if reason is not None else {})
    trial.number = number
    trial.datetime_start = started or dt.datetime(2026, 1, 1, 12, 0, 0)
    return trial


def test_only_a_trials_own_failures_count() -> None:
    trials = [_trial(0, FAIL, "ValueError: bad"), _trial(1, FAIL, "interrupted"),
              _trial(2, FAIL),  # a lost worker: no reason recorded
              _trial(3, FAIL, "timeout: ran longer than budget.trial_timeout (3 s)"),
              _trial(4, COMPLETE)]
    assert [t.number for t in own_failures(trials)] == [0, 3]


def test_max_failures_names_the_cap_the_count_and_the_last_reason() -> None:
    spec = parse_spec(tiny_study(budget={"n_trials": 9, "max_failures": 2}))
    assert halt_reason([_trial(0, FAIL, "ValueError: bad")], spec) is None
    halted = halt_reason([_trial(0, FAIL, "ValueError: bad"),
                          _trial(1, FAIL, "non-finite loss (nan) at epoch 2")], spec)
    assert halted is not None and halted.failed
    assert str(halted).startswith("study stopped: 2 trials failed, budget.max_failures is 2")
    assert "trial #1): non-finite loss (nan) at epoch 2" in str(halted)


def test_wall_time_counts_from_the_first_trial() -> None:
    spec = parse_spec(tiny_study(budget={"n_trials": 9, "wall_time": "1h30m"}))
    first = dt.datetime(2026, 1, 1, 12, 0, 0)
    trials = [_trial(1, COMPLETE, started=first + dt.timedelta(minutes=5)),
              _trial(0, COMPLETE, started=first)]
    assert deadline(trials, spec) == dt.datetime(2026, 1, 1, 13, 30, 0)
    halted = halt_reason(trials, spec)  # 2026-01-01 is long past
    assert halted is not None and not halted.failed
    assert "budget.wall_time (5400 s" in str(halted)
    fresh = [_trial(0, COMPLETE, started=dt.datetime.now())]
    assert halt_reason(fresh, spec) is None
    assert deadline([], spec) is None


def _config(number: int, placement: dict, duplicate_of: int | None = None):
    attrs: dict = {"placement": placement}
    if duplicate_of is not None:
        attrs["duplicate_of"] = duplicate_of
    trial = optuna.create_trial(state=COMPLETE, value=0.5, user_attrs=attrs)
    trial.number = number
    trial.datetime_start = dt.datetime.now()
    return trial


ALL = {"dense": {"kernel": {"l2": 0.001}}}


def test_a_finite_space_is_exhausted_when_every_configuration_is_trained() -> None:
    spec = parse_spec(tiny_study(budget={"n_trials": 20}))
    keys = [placement_key({}), placement_key(ALL)]
    trials = [_config(0, {}), _config(1, {}, duplicate_of=0)]
    assert halt_reason(trials, spec, keys) is None
    halted = halt_reason([*trials, _config(2, ALL)], spec, keys)
    assert halted is not None and not halted.failed
    assert str(halted) == "study stopped: space exhausted: 2 distinct configurations, all trained"
    assert exhausted([*trials, _config(2, ALL)], spec) is None  # no list: nothing known


def test_max_duplicates_in_a_row_end_a_study_whose_sampler_finds_nothing_new() -> None:
    spec = parse_spec(tiny_study(budget={"n_trials": 20, "max_duplicates": 3}))
    trials = [_config(0, {}), _config(1, {}, 0), _config(2, {}, 0), _config(3, ALL),
              _config(4, {}, 0), _config(5, ALL, 3)]
    assert halt_reason(trials, spec) is None  # two in a row: not yet
    halted = halt_reason([*trials, _config(6, {}, 0)], spec)
    assert halted is not None and not halted.failed
    assert str(halted) == ("study stopped: space exhausted: the last 3 trials sampled "
                           "configurations already trained (budget.max_duplicates); 2 distinct "
                           "configurations trained")
