"""regsweep: find where L1/L2 penalties belong in a Keras network, and how strong.

The public API is re-exported here lazily (PEP 562): ``import sweep`` stays instant, and
TensorFlow, Optuna or MLflow load only when a name that needs them is first used — the
CLI imports this package on every command.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS: dict[str, str | tuple[str, str]] = {
    # errors
    "SweepError": "sweep.errors", "SpecError": "sweep.errors",
    "TrialFailed": "sweep.errors", "FatalError": "sweep.errors",
    # the study file
    "StudySpec": "sweep.spec", "load_spec": "sweep.spec", "parse_spec": "sweep.spec",
    "check_study": "sweep.validate",
    # models, slots and placements
    "LayerInfo": "sweep.slots", "describe_model": "sweep.slots",
    "select": "sweep.selectors", "SearchSpace": "sweep.space",
    "build_base_model": "sweep.model", "regularize": "sweep.model",
    "weight_metrics": "sweep.weights", "ModelCache": "sweep.reuse",
    # data
    "load_data": "sweep.data", "Splits": "sweep.data",
    # studies and workers
    "open_storage": "sweep.storage", "BudgetExhausted": "sweep.budget",
    "create_or_resume": "sweep.study", "run_worker": "sweep.worker",
    "StudyTracker": "sweep.tracking", "Trainer": "sweep.trainer",
    # answers: baselines, Pareto fronts, confirmation over seeds, the report
    "best_rows": "sweep.results", "baseline_trial": "sweep.results",
    "pareto_front": "sweep.results", "export_rows": "sweep.results",
    "Confirmation": "sweep.confirm", "ensure_confirmation": "sweep.confirm",
    "stored_confirmation": "sweep.confirm", "placement_rows": "sweep.report",
    "build_report": ("sweep.report", "build"),
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
