"""regsweep: find where L1/L2 penalties belong in a Keras network, and how strong.

The public API is re-exported here lazily (PEP 562): ``import sweep`` stays instant, and
TensorFlow, Optuna or MLflow load only when a name that needs them is first used — the
CLI imports this package on every command.
"""

from __future__ import annotations

import importlib
from typing import Any

# The public API, and nothing else: what README's "From Python" section documents. Every
# other module is internal and may change between releases.
_EXPORTS: dict[str, str | tuple[str, str]] = {
    # run a study, join it as a worker, read its answer (sweep.api)
    "run": "sweep.api", "create": "sweep.api", "load": "sweep.api", "join": "sweep.api",
    "plan_workers": "sweep.api", "validate": "sweep.api", "Study": "sweep.api",
    "Best": "sweep.api",
    # errors
    "SweepError": "sweep.errors", "SpecError": "sweep.errors", "StudyHalted": "sweep.errors",
    "TrialFailed": "sweep.errors", "FatalError": "sweep.errors",
    "BudgetExhausted": "sweep.errors",
    # the study file
    "StudySpec": "sweep.spec", "load_spec": "sweep.spec", "parse_spec": "sweep.spec",
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
