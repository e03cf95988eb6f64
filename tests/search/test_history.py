"""sweep/search/history.py: TPE shown a capped history, the best and the most recent trials."""

from __future__ import annotations

import optuna
import pytest
from optuna.distributions import FloatDistribution
from optuna.trial import TrialState, create_trial

from sweep.search.history import RecentHistory, seed_means, shown

DISTRIBUTIONS = {"x": FloatDistribution(0.0, 1.0), "y": FloatDistribution(0.0, 1.0)}


def _trial(i: int, value: float | None, state: TrialState = TrialState.COMPLETE,
           values: list[float] | None = None) -> optuna.trial.FrozenTrial:
    trial = create_trial(params={"x": (i * 37 % 100) / 100, "y": (i * 61 % 100) / 100},
                         distributions=DISTRIBUTIONS, state=state,
                         value=value if state == TrialState.COMPLETE and values is None
                         else None, values=values)
    trial.number = i
    return trial


def test_under_the_limit_every_trial_is_shown() -> None:
    trials = [_trial(i, float(i)) for i in range(10)]
    assert shown(trials, [optuna.study.StudyDirection.MINIMIZE], limit=10, keep_best=3) == \
        trials


def test_over_the_limit_the_best_the_most_recent_and_the_running_are_shown() -> None:
    # Values: trial i scores (i * 7) % 30; the minimum ones are 0 (#0), 1 (#13), 2 (#26).
    trials = [_trial(i, float((i * 7) % 30)) for i in range(30)]
    trials[5] = _trial(5, None, TrialState.PRUNED)
    trials.append(_trial(30, None, TrialState.RUNNING))
    trials.append(_trial(31, None, TrialState.RUNNING))
    seen = shown(trials, [optuna.study.StudyDirection.MINIMIZE], limit=10, keep_best=3)
    assert [t.number for t in seen] == [0, 13, 22, 23, 24, 25, 26, 27, 28, 29, 30, 31]
    maximized = shown(trials, [optuna.study.StudyDirection.MAXIMIZE], limit=10, keep_best=3)
    # Values 29 (#17), 28 (#4), 27 (#21): the best of a maximized study.
    assert [t.number for t in maximized] == \
        [4, 17, 21, 23, 24, 25, 26, 27, 28, 29, 30, 31]


def test_several_objectives_keep_the_pareto_front() -> None:
    directions = [optuna.study.StudyDirection.MINIMIZE] * 2
    # Trial i scores (i, 20 - i); #2's (2, 1) dominates every later trial, so the front
    # is #0 (0, 20), #1 (1, 19), #2: kept, with the 5 most recent of the others.
    trials = [_trial(i, None, values=[float(i), float(20 - i)]) for i in range(20)]
    trials[2] = _trial(2, None, values=[2.0, 1.0])
    seen = shown(trials, directions, limit=8, keep_best=4)
    assert [t.number for t in seen] == [0, 1, 2, 15, 16, 17, 18, 19]


def _study(trials: list[optuna.trial.FrozenTrial], sampler: optuna.samplers.BaseSampler
           ) -> optuna.Study:
    study = optuna.create_study(sampler=sampler, direction="minimize")
    study.add_trials(trials)
    return study


@pytest.mark.parametrize("limit", [40, 1000])
def test_tpe_behind_the_cap_draws_what_tpe_draws_on_the_shown_trials(limit: int) -> None:
    trials = [_trial(i, ((i * 37 % 100) / 100 - 0.3) ** 2 + (i % 7) / 50) for i in range(120)]

    def tpe() -> optuna.samplers.TPESampler:
        return optuna.samplers.TPESampler(seed=3, multivariate=True, group=True,
                                          constant_liar=True)

    directions = [optuna.study.StudyDirection.MINIMIZE]
    for step in range(3):  # the history grows; what is shown moves with it
        capped = _study(trials, RecentHistory(tpe(), limit=limit, keep_best=10))
        reference = _study(shown(trials, directions, limit, 10), tpe())
        assert len(reference.trials) == (40 if limit == 40 else 120 + step)
        drawn = capped.ask(DISTRIBUTIONS).params
        assert drawn == reference.ask(DISTRIBUTIONS).params
        if limit == 40:  # and the cap matters: TPE on every trial draws elsewhere
            assert drawn != _study(trials, tpe()).ask(DISTRIBUTIONS).params
        trials.append(_trial(120 + step, 0.5))


def test_the_memo_follows_the_finished_trials() -> None:
    directions = [optuna.study.StudyDirection.MINIMIZE]
    trials = [_trial(i, float((i * 7) % 30)) for i in range(30)]
    memo: dict = {}
    assert shown(trials, directions, 10, 3, memo) == shown(trials, directions, 10, 3)
    trials.append(_trial(30, None, TrialState.RUNNING))  # running: the same choice
    assert shown(trials, directions, 10, 3, memo) == shown(trials, directions, 10, 3)
    trials[30] = _trial(30, -1.0)  # it finished, and best of all: a new choice
    again = shown(trials, directions, 10, 3, memo)
    assert again == shown(trials, directions, 10, 3)
    assert [t.number for t in again] == [0, 13, 23, 24, 25, 26, 27, 28, 29, 30]


def _raced(trial: optuna.trial.FrozenTrial, origin: int, mean: float,
           seeds: int) -> optuna.trial.FrozenTrial:
    """A seed racing re-run of ``origin``'s configuration whose value is its mean."""
    rerun = create_trial(params=trial.params, distributions=DISTRIBUTIONS, value=mean,
                         user_attrs={"seed_of": origin, "seed_value": 0.0, "seeds": seeds})
    return rerun


def test_tpe_is_shown_each_raced_configuration_once_by_its_mean() -> None:
    """The sampler sees the estimate: with re-runs in the study, TPE draws what it draws
    on the study where each raced configuration is one trial valued at its mean; and that
    is not what it draws when it also sees the lucky single draws."""
    trials = [_trial(i, ((i * 37 % 100) / 100 - 0.3) ** 2 + (i % 7) / 50) for i in range(30)]
    # The five best single draws were lucky: over three seeds each is worse (minimize).
    lucky = sorted(trials, key=lambda t: t.value)[:5]
    for number, trial in enumerate(lucky, start=30):
        rerun = _raced(trial, trial.number, trial.value + 0.5, 3)
        rerun.number = number
        trials.append(rerun)

    def tpe() -> optuna.samplers.TPESampler:
        return optuna.samplers.TPESampler(seed=3, multivariate=True, group=True,
                                          constant_liar=True)

    viewed = _study(trials, RecentHistory(tpe()))
    hidden = {t.number for t in lucky}
    reference = _study([t for t in trials if t.number not in hidden], tpe())
    drawn = viewed.ask(DISTRIBUTIONS).params
    assert drawn == reference.ask(DISTRIBUTIONS).params
    assert drawn != _study(trials, tpe()).ask(DISTRIBUTIONS).params


def test_seed_means_keeps_the_rerun_over_the_most_seeds() -> None:
    def made(number: int, state: TrialState = TrialState.COMPLETE, **attrs: object):
        trial = create_trial(state=state, value=0.5 if state == TrialState.COMPLETE
                             else None, user_attrs=attrs)
        trial.number = number
        return trial

    trials = [made(1), made(2), made(3, seed_of=1, seeds=2), made(4, seed_of=1, seeds=3),
              made(5, TrialState.RUNNING, seed_of=1)]
    assert [t.number for t in seed_means(trials)] == [2, 4]
    plain = [made(1), made(2)]
    assert seed_means(plain) == plain


@pytest.mark.parametrize("direction", ["minimize", "maximize"])
def test_a_worker_folding_the_study_in_is_shown_what_the_passes_over_it_show(
        direction: str) -> None:
    """The fold (each finished trial looked at once) against seed_means and shown over
    every trial, after each of 300 changes to a study: trials asked, told COMPLETE (values
    from a few, so ties), PRUNED or FAIL, queued and started, seed re-runs completing in
    and out of order; for every state filter a sampler asks with. The cap is 12."""
    import random

    from optuna.trial import FrozenTrial

    draw = random.Random(5)
    study = optuna.create_study(direction=direction,
                                sampler=optuna.samplers.RandomSampler(seed=0))
    capped = RecentHistory(optuna.samplers.RandomSampler(seed=0), limit=12, keep_best=4)
    running: list[optuna.trial.Trial] = []
    selectors = [None, (TrialState.COMPLETE,), (TrialState.COMPLETE, TrialState.PRUNED),
                 (TrialState.COMPLETE, TrialState.PRUNED, TrialState.RUNNING),
                 (TrialState.RUNNING, TrialState.WAITING)]
    rerun_seeds: dict[int, int] = {}
    shown_on_the_fast_path = 0
    for _ in range(300):
        trials = study.get_trials(deepcopy=False)
        complete = [t for t in trials if t.state == TrialState.COMPLETE
                    and "seed_of" not in t.user_attrs]
        move = draw.random()
        if move < 0.35 or not running:
            trial = study.ask()
            trial.suggest_float("x", 0.0, 1.0)
            running.append(trial)
        elif move < 0.65:
            trial = running.pop(draw.randrange(len(running)))
            state = draw.choice([TrialState.COMPLETE] * 4 + [TrialState.PRUNED,
                                                             TrialState.FAIL])
            value = draw.choice([0.1, 0.2, 0.3, 0.4]) if state == TrialState.COMPLETE \
                else None
            study.tell(trial, value, state=state)
        elif move < 0.8 and complete:  # a re-run of a configuration, on more seeds
            origin = draw.choice(complete).number
            seeds = rerun_seeds[origin] = rerun_seeds.get(origin, 1) + draw.choice([1, 2])
            state = draw.choice([TrialState.COMPLETE] * 3 + [TrialState.FAIL])
            study.add_trial(create_trial(
                state=state, value=draw.choice([0.15, 0.25, 0.35]) if state ==
                TrialState.COMPLETE else None,
                user_attrs={"seed_of": origin, "seeds": seeds}))
        elif move < 0.9:
            study.enqueue_trial({"x": draw.random()})
        else:  # a running re-run, or a queued trial taken
            trial = study.ask()
            if complete and draw.random() < 0.5:
                trial.set_user_attr("seed_of", draw.choice(complete).number)
            running.append(trial)
        for states in selectors:
            raw = study._get_trials(deepcopy=False, states=states)
            expected = shown(seed_means(raw), study.directions, 12, 4)
            got = capped._view(study)._get_trials(deepcopy=False, states=states)
            assert [t.number for t in got] == [t.number for t in expected], states
            assert all(isinstance(t, FrozenTrial) for t in got)
        fold = next(iter(capped._folds.values()))[study._study_id]
        shown_on_the_fast_path += fold.shown(study.get_trials(deepcopy=False), None, 12,
                                             4) is not None
    assert len(study.trials) > 150
    assert shown_on_the_fast_path > 200  # the cap applied, and the fold answered
