"""Every part of Optuna that regsweep reaches and that is not Optuna's public API, in one
module. An Optuna release may move or rename any of them without notice;
tests/storage/test_optuna_internals.py checks each one against the installed Optuna and names
its version when one has moved, so that an upgrade fails there, in one place, and not in
a worker on a cluster.

What regsweep needs them for, in short: the storage under Optuna's cache layer (our
``BudgetedStorage`` counts the budget and locks per study in the database), trial and
study ids (the storage's own keys), the RDB schema (reading trials without the ORM,
counting the budget in SQL, batching user attributes), the heartbeat switch (waiting for
other workers), the gRPC proxy's server (one more handler on it), the Pareto front of
finished trials (the sampler's history) and the parallel-coordinate figure's helpers
(the same figure as plain data).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import optuna

__all__ = [
    "RDB_STORAGE_METHODS",
    "backend",
    "cached_frozen_trial",
    "grpc_server",
    "heartbeat_enabled",
    "parallel_coordinate",
    "pareto_front",
    "plotly_color_scale",
    "rdb_models",
    "rdb_storage_module",
    "scoped_session",
    "storage",
    "study_id",
    "trial_id",
]

# Methods of optuna.storages.RDBStorage that sweep.storage.budget.BudgetedStorage overrides
# or calls, beyond the public BaseStorage API, with their parameters.
RDB_STORAGE_METHODS = {
    "_create_new_trial": ("self", "study_id", "template_trial"),
    "_get_trials": ("self", "study_id", "states", "included_trial_ids",
                    "trial_id_greater_than"),
    "_set_trial_attr_without_commit": ("self", "session", "model_cls", "trial_id", "key",
                                       "value"),
    "check_trial_is_updatable": ("self", "trial_id", "trial_state"),
}
# What sweep.storage.budget's read-only opening replaces and calls of the RDB storage
# module's schema version manager (it skips loading alembic).
VERSION_MANAGER = "_VersionManager"
VERSION_MANAGER_METHODS = ("_init_version_info_model", "_init_alembic")
# The optuna.Study method samplers read trials through, which sweep.search.history's view
# of a study answers in its place.
STUDY_TRIALS_METHOD = "_get_trials"
# The RDB models regsweep queries.
RDB_MODELS = ("StudyModel", "TrialModel", "TrialParamModel", "TrialValueModel",
              "TrialUserAttributeModel", "TrialSystemAttributeModel",
              "TrialIntermediateValueModel", "TrialHeartbeatModel")
# The helpers of Optuna's parallel-coordinate plot that sweep.answers.parallel calls.
PARALLEL_HELPERS = ("_get_parallel_coordinate_info", "_get_color_range",
                    "_normalize_dimension", "_get_line_colors", "_format_dimension_value",
                    "_get_axis_annotations")


def storage(study: optuna.Study) -> Any:
    """The storage a study (or a live trial's study) reads and writes through."""
    return study._storage


def backend(storage: Any) -> Any:
    """The storage under Optuna's cache layer (``_CachedStorage`` wraps an RDB storage);
    the storage itself when it has none (a gRPC proxy client, in-memory)."""
    return getattr(storage, "_backend", storage)


def study_id(study: optuna.Study) -> int:
    """The study's key in its storage."""
    return study._study_id


def trial_id(trial: Any) -> int:
    """A trial's key in its storage (a live ``optuna.Trial`` or a ``FrozenTrial``)."""
    return trial._trial_id


def study_trials(study: optuna.Study, *, deepcopy: bool, states: Any, use_cache: bool) -> list[Any]:
    """What samplers read a study's trials through (``Study._get_trials``)."""
    return getattr(study, STUDY_TRIALS_METHOD)(deepcopy=deepcopy, states=states,
                                               use_cache=use_cache)


def cached_frozen_trial(trial: Any) -> Any:
    """The ``FrozenTrial`` a live trial keeps in step with what it writes (its user
    attributes: ``set_user_attr`` updates both)."""
    return trial._cached_frozen_trial


def heartbeat_enabled(storage: Any) -> bool:
    """Whether trials of this storage send heartbeats (an RDB storage with a heartbeat
    interval; never a gRPC proxy client)."""
    from optuna.storages._heartbeat import is_heartbeat_enabled

    return bool(is_heartbeat_enabled(storage))


def rdb_models() -> Any:
    """The SQLAlchemy models of Optuna's RDB schema (``TrialModel``, ...)."""
    from optuna.storages._rdb import models

    return models


def rdb_storage_module() -> Any:
    """The module that defines ``RDBStorage`` (its schema version manager loads alembic)."""
    from optuna.storages._rdb import storage as rdb

    return rdb


def scoped_session(session_maker: Any, ignore_integrity_error: bool = False) -> Any:
    """Optuna's session context: commit at the end, roll back and translate the
    database's errors on failure."""
    from optuna.storages._rdb.storage import _create_scoped_session

    return _create_scoped_session(session_maker, ignore_integrity_error)


def grpc_server(storage: Any, host: str, port: int, executor: Any) -> Any:
    """The gRPC server ``optuna.storages.run_grpc_proxy_server`` builds, not yet started."""
    from optuna.storages._grpc.server import make_server

    return make_server(storage, host, port, executor)


def pareto_front(trials: Any, directions: Any) -> list[Any]:
    """The non-dominated trials of ``trials`` (finished, with values)."""
    from optuna.study._multi_objective import _get_pareto_front_trials_by_trials

    return list(_get_pareto_front_trials_by_trials(trials, directions))


def parallel_coordinate() -> Any:
    """Optuna's parallel-coordinate module: its info and figure helpers
    (``_get_parallel_coordinate_info``, ``_get_color_range``, ...)."""
    from optuna.visualization import _parallel_coordinate

    return _parallel_coordinate


def plotly_color_scale() -> Any:
    """The colour scale of Optuna's plotly figures."""
    from optuna.visualization._utils import COLOR_SCALE

    return COLOR_SCALE
