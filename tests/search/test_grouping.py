"""sweep.search.grouping: a worker's grouping of trials into configurations, kept across
its trials, is the grouping from scratch at every step of a study's life (trials finishing
out of order, baselines, re-runs, duplicates, a retried and an interrupted FAIL)."""

from __future__ import annotations

import optuna
from optuna.distributions import FloatDistribution
from optuna.trial import TrialState, create_trial

from sweep.search.grouping import configurations, grouped

X = {"x": FloatDistribution(0.0, 1.0)}


def _attrs(config: int, **extra: object) -> dict:
    placement = {} if config == 0 else {"dense": {"kernel": {"l2": config / 1000}}}
    attrs: dict = {"placement": placement, **extra}
    if config == 0:
        attrs.setdefault("baseline", "none")
    return attrs


def _add(study: optuna.Study, config: int, state: TrialState = TrialState.COMPLETE,
         value: float = 0.5, system: dict | None = None, **extra: object) -> None:
    study.add_trial(create_trial(
        state=state, params={"x": config / 10}, distributions=X,
        value=value if state == TrialState.COMPLETE else None,
        user_attrs=_attrs(config, **extra), system_attrs=system or {}))


def _start(study: optuna.Study, config: int, **extra: object) -> optuna.Trial:
    """A trial that runs until told."""
    trial = study.ask(X)
    for key, value in _attrs(config, **extra).items():
        trial.set_user_attr(key, value)
    return trial


def _summary(found: list) -> list[tuple]:
    return [(c.key, [t.number for t in c.members], c.draws, c.scheduled,
             [t.number for t in c.complete]) for c in found]


def _check(study: optuna.Study) -> list[tuple]:
    trials = study.get_trials(deepcopy=False)
    kept = _summary(grouped(study, trials))
    assert kept == _summary(configurations(trials))
    return kept


def test_the_kept_grouping_is_the_grouping_from_scratch_at_every_step() -> None:
    study = optuna.create_study(direction="maximize")
    _add(study, 0, value=0.50)  # 0: the baseline
    _add(study, 1, value=0.60)  # 1
    _check(study)
    running = _start(study, 2)  # 2: runs while later trials finish
    _add(study, 3, value=0.70)  # 3
    _add(study, 1, value=0.64, seed_of=1, seed_index=1, seed_value=0.68)  # 4: re-run of 1
    _check(study)
    _add(study, 0, value=0.52, seed_replicate=1)  # 5: the baseline's replicate
    _add(study, 4, state=TrialState.FAIL, fail_reason="lost")  # 6: fails, retried at 9
    _add(study, 5, state=TrialState.FAIL, fail_reason="interrupted")  # 7: queued again
    _check(study)
    study.tell(running, 0.40)  # 2 finishes: the finished prefix now reaches past it
    _add(study, 3, value=0.70, duplicate_of=3)  # 8: a duplicate trained nothing
    _check(study)
    _add(study, 4, value=0.30, system={"failed_trial": 6, "retry_history": [6]})  # 9
    _add(study, 5, value=0.20)  # 10: the interrupted trial's successor
    rerun = _start(study, 3, seed_of=3, seed_index=1)  # 11: a re-run of 3, running
    _check(study)
    study.tell(rerun, 0.66)
    kept = _check(study)
    assert kept == [
        (0, [0, 5], [0.50, 0.52], 2, [0, 5]),
        (1, [1, 4], [0.60, 0.68], 2, [1, 4]),
        (2, [2], [0.40], 1, [2]),
        (3, [3, 11], [0.70, 0.66], 2, [3, 11]),
        (9, [9], [0.30], 1, [9]),
        (10, [10], [0.20], 1, [10]),
    ]


def test_studies_of_one_storage_keep_groupings_of_their_own() -> None:
    storage = optuna.storages.InMemoryStorage()
    first = optuna.create_study(storage=storage, direction="maximize")
    second = optuna.create_study(storage=storage, direction="maximize")
    _add(first, 1, value=0.6)
    _add(second, 2, value=0.7)
    _add(second, 3, value=0.8)
    assert _check(first) == [(0, [0], [0.6], 1, [0])]
    assert _check(second) == [(0, [0], [0.7], 1, [0]), (1, [1], [0.8], 1, [1])]
