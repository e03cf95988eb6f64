"""A trained model as something to serve: the study's architecture with the trained
weights and none of the training machinery (no penalties, no optimizer, no custom
metric), so that ``mlflow.keras.load_model`` (or pyfunc) loads it anywhere Keras runs,
with an input/output signature taken from real samples."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sweep.spec import StudySpec
from sweep.training.runtime import import_keras


def inference_model(spec: StudySpec, trained: Any, input_shape: tuple[int, ...],
                    n_classes: int, settings: Mapping[str, Any] | None = None) -> Any:
    """A fresh, uncompiled copy of the study's model holding ``trained``'s weights. The
    trained model is a cached compiled model whose penalties read their coefficients from
    variables (sweep.training.cache): a regularizer serving never needs, and one a loader
    would have to know. ``settings``: the configuration's searched values (its layers'
    sizes and rates: sweep.placement.searched)."""
    from sweep.placement.searched import resolve
    from sweep.training.model import build_base_model

    import_keras()
    train, model = resolve(spec, settings or {})
    served = build_base_model(model, input_shape, n_classes,
                              mixed_precision=train.mixed_precision)
    source = trained.variables
    if len(source) != len(served.variables):
        raise RuntimeError("the trained model and the study's model have different variables")
    for target, value in zip(served.variables, source, strict=True):
        target.assign(value)
    return served


def signature(model: Any, samples: Any) -> Any:
    """MLflow's input/output signature, inferred from ``samples`` and the model's
    predictions on them."""
    from mlflow.models import infer_signature

    return infer_signature(samples, model.predict(samples, verbose=0))
