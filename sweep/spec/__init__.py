"""The study file: YAML (safe loading only) → validated, frozen, keyword-only objects.

Structural checks (types, unknown keys, ranges) live here; checks that need the model's
layers or the data on disk live in ``sweep.study.check``, so that this package stays pure
(no TensorFlow, Optuna or MLflow: tests/test_boundaries.py). ``base``: the values keys
accept; ``inputs``: data, model, train, search; ``settings``: objective, report, pruner,
budget, seeds, workers, tracking; ``study``: the whole file; ``load``: YAML to a StudySpec.
"""

from __future__ import annotations

from sweep.spec.base import (
    BASELINES,
    CLASSIFICATION_LOSSES,
    DERIVED_OBJECTIVES,
    GAP_PREFIX,
    MULTI_OBJECTIVE_SAMPLERS,
    OPERATIONAL_KEYS,
    OPTIMIZERS,
    PRUNERS,
    RACING_FROM,
    REGRESSION_LOSSES,
    SAMPLERS,
    SOURCES,
    TARGETS,
    TOP_LEVEL_KEYS,
    FieldError,
)
from sweep.spec.inputs import (
    Coefficient,
    CoefficientChoices,
    CoefficientRange,
    DataSpec,
    DigitsData,
    ImageFolderData,
    ModelSpec,
    NpzData,
    PlacementSpec,
    SearchSpec,
    SyntheticData,
    TrainSpec,
)
from sweep.spec.load import MAX_SPEC_NODES, load_spec, parse_spec
from sweep.spec.settings import (
    BudgetSpec,
    ObjectiveSpec,
    PrunerSpec,
    RacingSpec,
    ReportSpec,
    SeedsSpec,
    TrackingSpec,
    WorkersSpec,
    parse_duration,
)
from sweep.spec.study import StudySpec

__all__ = [
    "BASELINES", "CLASSIFICATION_LOSSES", "DERIVED_OBJECTIVES", "GAP_PREFIX",
    "MAX_SPEC_NODES", "MULTI_OBJECTIVE_SAMPLERS", "OPERATIONAL_KEYS", "OPTIMIZERS",
    "PRUNERS", "RACING_FROM", "REGRESSION_LOSSES", "SAMPLERS", "SOURCES", "TARGETS",
    "TOP_LEVEL_KEYS",
    "BudgetSpec", "Coefficient", "CoefficientChoices", "CoefficientRange", "DataSpec",
    "DigitsData", "FieldError", "ImageFolderData", "ModelSpec", "NpzData", "ObjectiveSpec",
    "PlacementSpec", "PrunerSpec", "RacingSpec", "ReportSpec", "SearchSpec", "SeedsSpec",
    "StudySpec", "SyntheticData",
    "TrackingSpec", "TrainSpec", "WorkersSpec", "load_spec", "parse_duration", "parse_spec",
]
