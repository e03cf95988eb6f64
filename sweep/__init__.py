"""regsweep: find where L1/L2 penalties belong in a Keras network, and how strong.

The public API is re-exported here lazily (PEP 562): ``import sweep`` stays instant, and
TensorFlow, Optuna or MLflow load only when a name that needs them is first used — the
CLI imports this package on every command.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS: dict[str, str | tuple[str, str]] = {
    # run a study, read its answer (sweep.api)
    "run": "sweep.api", "create": "sweep.api", "load": "sweep.api", "Study": "sweep.api",
    "Best": "sweep.api",
    # errors
    "SweepError": "sweep.errors", "SpecError": "sweep.errors", "StudyHalted": "sweep.errors",
    "TrialFailed": "sweep.errors", "FatalError": "sweep.errors",
    # the study file
    "StudySpec": "sweep.spec", "load_spec": "sweep.spec", "parse_spec": "sweep.spec",
    "check_study": "sweep.study.check",
    # models, slots and placements
    "LayerInfo": "sweep.placement.slots", "describe_model": "sweep.placement.slots",
    "select": "sweep.placement.selectors", "SearchSpace": "sweep.placement.space",
    "build_base_model": "sweep.training.model", "regularize": "sweep.training.model",
    "weight_metrics": "sweep.training.weights", "ModelCache": "sweep.training.cache",
    # data
    "load_data": "sweep.training.data", "Splits": "sweep.training.data",
    # studies and workers
    "open_storage": "sweep.study.storage", "BudgetExhausted": "sweep.errors",
    "create_or_resume": "sweep.study.create", "run_worker": "sweep.workers.loop",
    "StudyTracker": "sweep.tracking.tracker", "Trainer": "sweep.training.trainer",
    # answers: baselines, Pareto fronts, confirmation over seeds, the report
    "best_rows": "sweep.study.results", "baseline_trial": "sweep.study.results",
    "pareto_front": "sweep.study.results", "export_rows": "sweep.study.results",
    "Confirmation": "sweep.answers.confirm", "ensure_confirmation": "sweep.answers.confirm",
    "stored_confirmation": "sweep.answers.confirm", "placement_rows": "sweep.answers.rows",
    "build_report": ("sweep.answers.report", "build"),
    # stopping cleanly on SIGINT/SIGTERM
    "stop_on_signals": "sweep.interrupt",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    target = _EXPORTS.get(name)
    if target is None:
        raise AttributeError(f"module 'sweep' has no attribute {name!r}")
    module, attribute = target if isinstance(target, tuple) else (target, name)
    value = getattr(importlib.import_module(module), attribute)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
