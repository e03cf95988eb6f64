"""The MLflow Model Registry: a model logged into a run and registered as a new version
of a named model, tagged with what makes it the answer."""

from __future__ import annotations

import contextlib
from collections.abc import Mapping
from importlib import metadata
from typing import Any

from sweep.tracking.client import mlflow_client

ARTIFACT = "model"  # the model's folder inside its run


def _tracking(uri: str) -> contextlib.AbstractContextManager[None]:
    """MLflow's fluent API (the only way to log a flavored model into a given run) reads a
    process-wide URI: set for the call, then put back (a notebook keeps its own)."""
    from mlflow.tracking._tracking_service import utils

    return utils._use_tracking_uri(uri)


def _requirements() -> list[str]:
    """Pinned to what trained it; given, so MLflow does not load the model in a
    subprocess to guess them."""
    found = []
    for name in ("tensorflow", "keras"):
        with contextlib.suppress(metadata.PackageNotFoundError):
            found.append(f"{name}=={metadata.version(name)}")
    return found


def register_keras_model(tracking_uri: str, run_id: str, model: Any, signature: Any, name: str,
                         tags: Mapping[str, str], description: str) -> str:
    """Log ``model`` (Keras flavor, with ``signature``) into run ``run_id`` and register it
    as a new version of ``name``; returns the version."""
    import mlflow

    client = mlflow_client(tracking_uri)
    with _tracking(tracking_uri), mlflow.start_run(run_id=run_id):
        info = mlflow.keras.log_model(model, name=ARTIFACT, signature=signature,
                                      registered_model_name=name,
                                      pip_requirements=_requirements())
    version = str(info.registered_model_version)
    for key, value in tags.items():
        client.set_model_version_tag(name, version, key, value)
    client.update_model_version(name, version, description=description)
    return version
