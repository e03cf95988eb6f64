"""sweep.search.pruners: a trial is pruned only against completed trials of its own
placement structure, after the warm-up, on a real Optuna study."""

from __future__ import annotations

import optuna

from sweep.search.pruners import PlacementMedianPruner

NONE: dict = {}
L2_ALL = {"dense": {"kernel": {"l2": 0.01}}, "dense_1": {"kernel": {"l2": 0.01}}}
L2_ALL_WEAK = {"dense": {"kernel": {"l2": 0.0001}}, "dense_1": {"kernel": {"l2": 0.0001}}}


def _done(study: optuna.Study, placement: dict, curve: list[float]) -> None:
    study.add_trial(optuna.trial.create_trial(
        value=curve[-1], user_attrs={"placement": placement},
        intermediate_values=dict(enumerate(curve, start=1))))


def _asks(study: optuna.Study, placement: dict, curve: list[float]) -> list[bool]:
    """Whether the pruner stops a running trial with this curve, epoch by epoch."""
    trial = study.ask()
    trial.set_user_attr("placement", placement)
    said = []
    for epoch, value in enumerate(curve, start=1):
        trial.report(value, epoch)
        said.append(trial.should_prune())
    return said


def test_a_slow_regularized_trial_is_judged_against_its_own_kind() -> None:
    study = optuna.create_study(direction="maximize",
                                pruner=PlacementMedianPruner(n_startup_trials=2,
                                                             n_warmup_steps=2))
    for _ in range(3):  # unregularized trials learn fast
        _done(study, NONE, [0.8, 0.9, 0.92])
    _done(study, L2_ALL, [0.5, 0.7, 0.95])
    # A regularized trial that trails every unregularized one is not compared with them:
    # one completed trial of its structure is fewer than n_startup_trials.
    assert _asks(study, L2_ALL_WEAK, [0.4, 0.6, 0.9]) == [False, False, False]
    _done(study, L2_ALL, [0.55, 0.75, 0.96])
    # Two of its kind now: below their median after the warm-up (epoch 2 on), pruned.
    assert _asks(study, L2_ALL_WEAK, [0.4, 0.6, 0.9]) == [False, True, True]
    # An unregularized trial above its own kind's median goes on.
    assert _asks(study, NONE, [0.85, 0.91, 0.93]) == [False, False, False]
    # Before the warm-up nothing is pruned, however bad.
    assert _asks(study, NONE, [0.1, 0.1, 0.1]) == [False, True, True]


def test_minimize_and_a_trial_without_a_placement() -> None:
    study = optuna.create_study(direction="minimize",
                                pruner=PlacementMedianPruner(n_startup_trials=1,
                                                             n_warmup_steps=1))
    _done(study, NONE, [1.0, 0.5])
    assert _asks(study, NONE, [0.9, 0.6]) == [False, True]
    trial = study.ask()  # no placement recorded (not a regsweep trial): never pruned
    trial.report(9.0, 1)
    assert not trial.should_prune()


def test_a_dropout_trial_is_judged_against_dropout_trials_at_any_learning_rate() -> None:
    from conftest import tiny_study

    from sweep.placement.searched import searched_values
    from sweep.spec import parse_spec

    study_file = tiny_study()
    study_file["model"]["layers"][1]["Dropout"]["rate"] = {"low": 0.1, "high": 0.5,
                                                           "allow_zero": True}
    study_file["train"]["learning_rate"] = {"low": 1e-3, "high": 1e-1, "log": True}
    searched = searched_values(parse_spec(study_file))
    study = optuna.create_study(direction="maximize", pruner=PlacementMedianPruner(
        n_startup_trials=2, n_warmup_steps=1, searched=searched))

    def attrs(rate: float, learning_rate: float) -> dict:
        return {"placement": NONE, "settings": {"dropout/rate": rate,
                                                "train/learning_rate": learning_rate}}

    for learning_rate in (0.01, 0.02):  # without dropout: fast
        study.add_trial(optuna.trial.create_trial(
            value=0.9, user_attrs=attrs(0.0, learning_rate),
            intermediate_values={1: 0.8, 2: 0.9}))

    def asks(rate: float, learning_rate: float, curve: list[float]) -> list[bool]:
        trial = study.ask()
        for name, value in attrs(rate, learning_rate).items():
            trial.set_user_attr(name, value)
        said = []
        for epoch, value in enumerate(curve, start=1):
            trial.report(value, epoch)
            said.append(trial.should_prune())
        return said

    # A slow dropout trial has no dropout trials to be compared with yet.
    assert asks(0.3, 0.01, [0.5, 0.6]) == [False, False]
    for rate, learning_rate in ((0.2, 0.05), (0.4, 0.003)):
        study.add_trial(optuna.trial.create_trial(
            value=0.9, user_attrs=attrs(rate, learning_rate),
            intermediate_values={1: 0.55, 2: 0.7}))
    # Two dropout trials (other rates, other learning rates): judged against them.
    assert asks(0.3, 0.01, [0.5, 0.6]) == [True, True]
    # Without dropout, against its own kind still.
    assert asks(0.0, 0.05, [0.7, 0.85]) == [True, True]
    assert asks(0.0, 0.05, [0.85, 0.95]) == [False, False]
