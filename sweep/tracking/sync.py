"""`sweep sync`: replay the spooled runs into MLflow, each operation exactly once."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sweep.keys import (
    RUN_KEY_TAG,
    WORKER_TAG,
)
from sweep.tracking.client import apply, mlflow_client
from sweep.tracking.tracker import StudyTracker


def sync(tracking_uri: str | None = None) -> list[Any]:
    """Replay every spooled run into MLflow (``tracking_uri`` overrides the store each
    run was meant for). Returns what was replayed."""
    from sweep.tracking.spool import pending, replay

    def resolve(first: Mapping[str, Any]) -> tuple[Any, str]:
        uri = unmasked(tracking_uri, first["tracking_uri"])
        if first["op"] == "run":
            return mlflow_client(uri), first["run_id"]
        tracker = StudyTracker(uri, experiment=first["experiment"],
                               study_name=first["study_name"], study_uid=first["study_uid"],
                               worker=first["tags"].get(WORKER_TAG, ""))
        if first["op"] == "study_run":  # the study's own run: found, or made, by its uid
            return tracker.client, tracker.parent_run_id()
        key = first["tags"][RUN_KEY_TAG]
        found = tracker.client.search_runs(
            [tracker.experiment_id()], filter_string=f"tags.`{RUN_KEY_TAG}` = '{key}'",
            max_results=1)
        return tracker.client, found[0].info.run_id if found else tracker.create_run(first)

    return [replay(path, resolve_run=resolve, apply=apply) for path in pending()]


def unmasked(given: str | None, spooled: str) -> str:
    """The URI to replay a spooled run into: ``given`` (``sync --tracking-uri`` or
    ``$MLFLOW_TRACKING_URI``) if set, else the spooled one, whose password was not kept."""
    from sweep.errors import SpecError
    from sweep.redact import mask_url

    if given:
        return given
    if "***" in spooled:
        raise SpecError("--tracking-uri", "the spooled runs were meant for a store whose "
                        "password is not kept on disk; pass its URI (or set "
                        "MLFLOW_TRACKING_URI)", mask_url(spooled))
    return spooled


