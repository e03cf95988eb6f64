"""sweep/storage/connect.py: the trial indexes a large study needs, on SQLite and PostgreSQL,
and a database role that may not create them."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterator

import optuna
import pytest
import sqlalchemy
from sqlalchemy.engine import make_url

from sweep.storage.connect import open_storage

EXPECTED = {
    "ix_regsweep_trials_study_number": ["study_id", "number"],
    "ix_regsweep_trials_study_state": ["study_id", "state"],
    "ix_regsweep_user_attrs_duplicate": ["trial_id"],
}


def _our_indexes(url: str) -> dict[str, list[str]]:
    engine = sqlalchemy.create_engine(url)
    try:
        return {index["name"]: list(index["column_names"])
                for table in ("trials", "trial_user_attributes")
                for index in sqlalchemy.inspect(engine).get_indexes(table)
                if index["name"].startswith("ix_regsweep_")}
    finally:
        engine.dispose()


@pytest.fixture
def database(postgres_base_url: str) -> Iterator[str]:
    """A database of its own, and its admin URL."""
    base = make_url(postgres_base_url)
    admin = sqlalchemy.create_engine(base, isolation_level="AUTOCOMMIT")
    name = f"sweep_ix_{uuid.uuid4().hex[:10]}"
    with admin.connect() as connection:
        connection.execute(sqlalchemy.text(f'CREATE DATABASE "{name}"'))
    try:
        yield base.set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as connection:
            connection.execute(sqlalchemy.text(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE datname = :n AND pid <> pg_backend_pid()"), {"n": name})
            connection.execute(sqlalchemy.text(f'DROP DATABASE IF EXISTS "{name}"'))
        admin.dispose()


def test_opening_a_sqlite_storage_to_write_creates_the_indexes(storage_url: str) -> None:
    open_storage(storage_url)
    assert _our_indexes(storage_url) == EXPECTED


def test_opening_twice_keeps_one_of_each(database: str) -> None:
    open_storage(database)
    open_storage(database)
    assert _our_indexes(database) == EXPECTED


def test_the_budgets_duplicate_count_uses_the_partial_index(database: str) -> None:
    storage = open_storage(database)
    study = optuna.create_study(storage=storage, study_name="plan")
    study.optimize(lambda trial: trial.suggest_float("x", 0, 1), n_trials=3)
    engine = sqlalchemy.create_engine(database)
    try:
        with engine.connect() as connection:
            connection.execute(sqlalchemy.text("SET enable_seqscan = off"))
            plan = "\n".join(connection.execute(sqlalchemy.text(
                "EXPLAIN SELECT count(trial_user_attributes.trial_id) FROM "
                "trial_user_attributes JOIN trials ON trials.trial_id = "
                "trial_user_attributes.trial_id WHERE trials.study_id = 1 AND "
                "trial_user_attributes.key = 'duplicate_of'")).scalars())
    finally:
        engine.dispose()
    assert "ix_regsweep_user_attrs_duplicate" in plan


def test_a_role_that_cannot_create_indexes_gets_a_warning_and_a_working_study(
        database: str, caplog: pytest.LogCaptureFixture) -> None:
    open_storage(database)  # the owner creates the tables (and the indexes)
    admin = sqlalchemy.create_engine(database, isolation_level="AUTOCOMMIT")
    role = f"sweep_worker_{uuid.uuid4().hex[:8]}"
    try:
        with admin.connect() as connection:
            connection.execute(sqlalchemy.text("DROP INDEX ix_regsweep_trials_study_state"))
            connection.execute(sqlalchemy.text(f'CREATE ROLE "{role}" LOGIN'))
            connection.execute(sqlalchemy.text(
                f'GRANT ALL ON ALL TABLES IN SCHEMA public TO "{role}"'))
            connection.execute(sqlalchemy.text(
                f'GRANT ALL ON ALL SEQUENCES IN SCHEMA public TO "{role}"'))
        worker_url = make_url(database).set(username=role, password=None) \
            .render_as_string(hide_password=False)
        with caplog.at_level(logging.WARNING, logger="sweep.storage.connect"):
            storage = open_storage(worker_url)
        warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
        assert len(warnings) == 1
        assert warnings[0].startswith("could not create index ix_regsweep_trials_study_state "
                                      "on trials")
        assert "owner" in warnings[0]
        study = optuna.create_study(storage=storage, study_name="without-index")
        study.optimize(lambda trial: trial.suggest_float("x", 0, 1), n_trials=2)
        assert [t.state for t in study.trials] == [optuna.trial.TrialState.COMPLETE] * 2
        assert _our_indexes(database) == {
            "ix_regsweep_trials_study_number": ["study_id", "number"],
            "ix_regsweep_user_attrs_duplicate": ["trial_id"]}
    finally:
        with admin.connect() as connection:
            connection.execute(sqlalchemy.text(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE usename = :r"), {"r": role})
            connection.execute(sqlalchemy.text(f'DROP OWNED BY "{role}"'))
            connection.execute(sqlalchemy.text(f'DROP ROLE "{role}"'))
        admin.dispose()
