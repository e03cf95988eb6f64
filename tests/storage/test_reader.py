"""sweep/storage/reader.py: trials read without the ORM are exactly Optuna's own, for every
kind of trial and every filter Optuna's storage layers ask for, on SQLite and PostgreSQL."""

from __future__ import annotations

import math
import uuid

import optuna
import pytest
from optuna.distributions import (
    CategoricalDistribution,
    FloatDistribution,
    IntDistribution,
)
from optuna.storages import RDBStorage
from optuna.trial import TrialState, create_trial

from sweep.storage.connect import open_storage
from sweep.storage.reader import read_trials

STATES = (TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL, TrialState.RUNNING,
          TrialState.WAITING)


def _fill(storage: RDBStorage, name: str) -> int:
    study = optuna.create_study(storage=storage, study_name=name,
                                directions=["maximize", "minimize"])
    distributions = {
        "lr": FloatDistribution(1e-5, 1.0, log=True),
        "units": IntDistribution(1, 64, step=1),
        "placement": CategoricalDistribution(["none", "first", {"a": 1}.__class__.__name__]),
        "switch": CategoricalDistribution([True, False]),
    }
    for i in range(25):
        state = STATES[i % len(STATES)]
        finished = state in (TrialState.COMPLETE,)
        params = {"lr": 10 ** -(i % 5), "units": i + 1,
                  "placement": ["none", "first", "dict"][i % 3], "switch": bool(i % 2)}
        if i % 4 == 3:
            params.pop("units")  # a conditional parameter
        study.add_trial(create_trial(
            state=state, params=params,
            distributions={k: v for k, v in distributions.items() if k in params},
            values=[float(i), math.inf if i == 5 else -float(i)] if finished else None,
            user_attrs={"placement": {"dense": {"kernel": {"l2": 0.001 * i}}},
                        "worker": f"host:{i}", "note": None, "list": [1, 2.5, "x"]},
            system_attrs={"fixed_params": {"lr": 0.1}} if i % 6 == 0 else {},
            intermediate_values={step: (math.nan if step == 1 and i == 2 else step * 0.5)
                                 for step in range(i % 4)} if state != TrialState.WAITING
            else {}))
    return study._study_id


@pytest.fixture(params=["sqlite", "postgresql"])
def storage(request: pytest.FixtureRequest, tmp_path) -> RDBStorage:
    if request.param == "sqlite":
        return RDBStorage(f"sqlite:///{tmp_path / 'reader.db'}")
    url = request.getfixturevalue("postgres_server_url")
    return RDBStorage(url)


def _same(ours: list[optuna.trial.FrozenTrial], theirs: list[optuna.trial.FrozenTrial]) -> None:
    assert [t._trial_id for t in ours] == [t._trial_id for t in theirs]
    for a, b in zip(ours, theirs, strict=True):
        # NaN != NaN: compare intermediate values by their representation.
        assert repr(a.intermediate_values) == repr(b.intermediate_values)
        a_dict = {k: v for k, v in vars(a).items() if k != "intermediate_values"}
        b_dict = {k: v for k, v in vars(b).items() if k != "intermediate_values"}
        assert a_dict == b_dict


@pytest.mark.parametrize("few", [0, 500], ids=["by-subquery", "by-ids"])
def test_every_trial_reads_back_as_optunas_own(storage: RDBStorage, few: int,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    # Up to FEW trials are read by their ids, more through the study's subquery: both
    # ways must give Optuna's own trials.
    monkeypatch.setattr("sweep.storage.reader.FEW", few)
    study_id = _fill(storage, f"reader-{uuid.uuid4().hex[:8]}")
    everything = storage._get_trials(study_id, None, set(), -1)
    assert len(everything) == 25
    ids = [t._trial_id for t in everything]
    cases = [
        (None, set(), -1),
        ((TrialState.COMPLETE, TrialState.PRUNED), set(), -1),
        ((TrialState.RUNNING,), set(), -1),
        (None, set(), ids[10]),  # what the cache layer asks: only the newer trials
        (None, {ids[2], ids[4], ids[20]}, ids[15]),  # ... plus the unfinished it knows
        ((TrialState.COMPLETE,), {ids[3]}, ids[12]),
    ]
    for states, included, greater in cases:
        _same(read_trials(storage.engine, study_id, states, included, greater),
              storage._get_trials(study_id, states, included, greater))


def test_a_missing_study_is_a_key_error_like_optunas(storage: RDBStorage) -> None:
    _fill(storage, f"reader-{uuid.uuid4().hex[:8]}")
    with pytest.raises(KeyError):
        read_trials(storage.engine, 987654, None, set(), -1)
    with pytest.raises(KeyError):
        storage._get_trials(987654, None, set(), -1)


def test_the_sweeps_storage_reads_through_it(tmp_path) -> None:
    url = f"sqlite:///{tmp_path / 'sweep.db'}"
    sweep_storage = open_storage(url)
    study_id = _fill(sweep_storage, "through")
    plain = RDBStorage(url)
    _same(optuna.load_study(study_name="through", storage=sweep_storage).trials,
          plain.get_all_trials(study_id))


def test_a_trial_created_while_reading_is_left_for_the_next_read(
        postgres_server_url: str) -> None:
    """Workers add trials while another reads: on PostgreSQL a trial whose rows appear
    between the read's first query and the others is not half-read (a KeyError killed
    workers). SQLite's read lock keeps the writer out until the read is done."""
    import sqlalchemy

    storage = RDBStorage(postgres_server_url)
    name = f"reader-{uuid.uuid4().hex[:8]}"
    study_id = _fill(storage, name)
    before = storage._get_trials(study_id, None, set(), -1)
    writer = RDBStorage(storage.url)
    added: list[int] = []

    def add_one(connection, cursor, statement, parameters, context, executemany) -> None:
        if "FROM trials" in statement and "trial_params" not in statement and not added:
            added.append(1)
            study = optuna.load_study(study_name=name, storage=writer)
            study.add_trial(create_trial(
                params={"lr": 0.5}, distributions={"lr": FloatDistribution(1e-5, 1.0, log=True)},
                values=[1.0, 2.0], user_attrs={"late": True}))

    sqlalchemy.event.listen(storage.engine, "after_cursor_execute", add_one)
    try:
        during = read_trials(storage.engine, study_id, None, set(), -1)
    finally:
        sqlalchemy.event.remove(storage.engine, "after_cursor_execute", add_one)
    assert added == [1]
    _same(during, before)
    assert len(storage._get_trials(study_id, None, set(), -1)) == len(before) + 1


def test_a_read_that_finds_nothing_new_asks_no_more(tmp_path) -> None:
    """Optuna's cache reads again on every get_trials: with no trial new or unfinished,
    that is the study's row and the trials' heads, two statements, not seven."""
    import sqlalchemy

    storage = RDBStorage(f"sqlite:///{tmp_path / 'quiet.db'}")
    study_id = _fill(storage, "quiet")
    every = read_trials(storage.engine, study_id, None, set(), -1)
    last = max(t._trial_id for t in every)
    statements: list[str] = []

    def count(connection, cursor, statement, parameters, context, executemany) -> None:
        statements.append(statement)

    sqlalchemy.event.listen(storage.engine, "after_cursor_execute", count)
    try:
        assert read_trials(storage.engine, study_id, None, set(), last) == []
        assert len(statements) == 2
        # One unfinished trial named: its rows are read, as before.
        running = next(t._trial_id for t in every if t.state == TrialState.RUNNING)
        (again,) = read_trials(storage.engine, study_id, None, {running}, last)
        assert again._trial_id == running and len(statements) == 2 + 7
    finally:
        sqlalchemy.event.remove(storage.engine, "after_cursor_execute", count)
