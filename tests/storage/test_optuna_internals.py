"""sweep.storage.optuna_internals: every part of Optuna regsweep reaches outside Optuna's
public API, checked against the installed Optuna. A failure here names the Optuna
version and the part that moved: fix it in that one module."""

from __future__ import annotations

import inspect
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import optuna
from optuna.trial import TrialState, create_trial

from sweep.storage import optuna_internals as internals

VERSION = f"Optuna {optuna.__version__}"
SWEEP = Path(__file__).resolve().parents[2] / "sweep"


def _moved(what: str) -> str:
    return (f"{VERSION} no longer has {what} as sweep/storage/optuna_internals.py expects: "
            "adapt that module (and only it)")


def _rdb_study(tmp_path: Path) -> optuna.Study:
    storage = optuna.storages.RDBStorage(f"sqlite:///{tmp_path / 'o.db'}",
                                         heartbeat_interval=60)
    return optuna.create_study(storage=storage, study_name="internals")


def test_storage_ids_and_the_cached_trial(tmp_path: Path) -> None:
    study = _rdb_study(tmp_path)
    trial = study.ask()
    storage = internals.storage(study)
    assert isinstance(storage, optuna.storages.BaseStorage), _moved("Study._storage")
    assert isinstance(internals.backend(storage), optuna.storages.RDBStorage), \
        _moved("_CachedStorage._backend")
    assert internals.study_id(study) == storage.get_study_id_from_name("internals"), \
        _moved("Study._study_id")
    assert storage.get_trial(internals.trial_id(trial)).number == trial.number, \
        _moved("Trial._trial_id")
    frozen = internals.cached_frozen_trial(trial)
    assert isinstance(frozen, optuna.trial.FrozenTrial), _moved("Trial._cached_frozen_trial")
    trial.set_user_attr("k", 1)
    assert frozen.user_attrs == {"k": 1}, _moved("Trial._cached_frozen_trial's user_attrs")
    done = study.tell(trial, 0.5)
    assert internals.trial_id(done) == internals.trial_id(trial), _moved("FrozenTrial._trial_id")
    assert [t.number for t in internals.study_trials(
        study, deepcopy=False, states=None, use_cache=False)] == [0], \
        _moved(f"Study.{internals.STUDY_TRIALS_METHOD}(deepcopy, states, use_cache)")
    assert internals.heartbeat_enabled(storage) is True, _moved("is_heartbeat_enabled")
    assert internals.heartbeat_enabled(optuna.storages.InMemoryStorage()) is False


def test_the_rdb_storage_parts_budgeted_storage_overrides(tmp_path: Path) -> None:
    for name, parameters in internals.RDB_STORAGE_METHODS.items():
        method = getattr(optuna.storages.RDBStorage, name, None)
        assert method is not None, _moved(f"RDBStorage.{name}")
        assert tuple(inspect.signature(method).parameters) == parameters, \
            _moved(f"RDBStorage.{name}{parameters}")
    module = internals.rdb_storage_module()
    manager = getattr(module, internals.VERSION_MANAGER, None)
    assert manager is not None, _moved(f"optuna.storages._rdb.storage.{internals.VERSION_MANAGER}")
    for name in internals.VERSION_MANAGER_METHODS:
        assert hasattr(manager, name), _moved(f"{internals.VERSION_MANAGER}.{name}")
    models = internals.rdb_models()
    for name in internals.RDB_MODELS:
        assert hasattr(models, name), _moved(f"optuna.storages._rdb.models.{name}")
    study = _rdb_study(tmp_path)
    backend = internals.backend(internals.storage(study))
    with internals.scoped_session(backend.scoped_session) as session:
        count = session.query(models.TrialModel).count()
    assert count == 0, _moved("_create_scoped_session")


def test_a_read_only_opening_and_a_batched_write_still_work(tmp_path: Path) -> None:
    """The two uses that replace Optuna's own machinery (alembic skipped on a read-only
    opening; user attributes in one statement) against this Optuna's schema."""
    from sweep.storage.budget import open_budgeted_storage, set_user_attrs

    url = f"sqlite:///{tmp_path / 'b.db'}"
    study = optuna.create_study(storage=open_budgeted_storage(url, {}), study_name="b")
    trial = study.ask()
    set_user_attrs(trial, {"a": 1, "b": [2]})
    study.tell(trial, 1.0)
    reader = optuna.load_study(study_name="b",
                               storage=open_budgeted_storage(url, {}, read_only=True))
    assert reader.trials[0].user_attrs == {"a": 1, "b": [2]}


def test_the_pareto_front_the_grpc_server_and_the_plot_helpers() -> None:
    minimize = [optuna.study.StudyDirection.MINIMIZE] * 2
    trials = [create_trial(values=values, state=TrialState.COMPLETE)
              for values in ([1.0, 2.0], [2.0, 1.0], [2.0, 2.0])]
    assert [t.values for t in internals.pareto_front(trials, minimize)] == [
        [1.0, 2.0], [2.0, 1.0]], _moved("_get_pareto_front_trials_by_trials")
    module = internals.parallel_coordinate()
    for name in internals.PARALLEL_HELPERS:
        assert callable(getattr(module, name, None)), \
            _moved(f"optuna.visualization._parallel_coordinate.{name}")
    scale = internals.plotly_color_scale()
    assert isinstance(scale, list | tuple) and scale, _moved("visualization._utils.COLOR_SCALE")
    with ThreadPoolExecutor(max_workers=1) as executor:
        server = internals.grpc_server(optuna.storages.InMemoryStorage(), "127.0.0.1", 0,
                                       executor)
    assert hasattr(server, "add_generic_rpc_handlers"), _moved("_grpc.server.make_server")


def test_no_other_module_reaches_into_optuna() -> None:
    """Only the adapter touches a private part of Optuna (a class of ours that answers
    ``_get_trials`` in Optuna's place calls its own)."""
    import re

    private = re.compile(r"(from|import) optuna[\w.]*\._|\b(_storage|_study_id|_trial_id|"
                         r"_cached_frozen_trial)\b|(?<!self)\._get_trials\(")
    found = [f"{path.relative_to(SWEEP)}:{number}: {line.strip()}"
             for path in sorted(SWEEP.rglob("*.py")) if path.name != "optuna_internals.py"
             for number, line in enumerate(path.read_text().splitlines(), start=1)
             if private.search(line) and not line.lstrip().startswith("#")]
    assert found == []
