"""Where a study is in the MLflow UI: the runs view of its experiment (sorted, in the
model-training view), a run's page, and the ids behind them."""

from __future__ import annotations

from typing import Any

from sweep.keys import (
    FINAL,
    ROLE_CONFIRM,
    ROLE_TAG,
    STUDY_UID_TAG,
)
from sweep.tracking.client import mlflow_client


def runs_view_query(metric: str | None = None, direction: str = "maximize") -> str:
    """The query of an experiment's runs table: MLflow 3 opens an experiment in its GenAI
    view (an empty traces dashboard for a sweep) unless ``workflowType`` says otherwise.
    With ``metric`` (a validation metric that every trial logs as ``final/<metric>``),
    the table lists the runs flat, best first: sorted by creation time MLflow folds the
    trials inside the collapsed study run, so a first look sees one row. Confirmation
    re-trainings log the same metric and are left out by the filter (shown in the search
    box, so a user sees why). MLflow applies these parameters only on its ``/runs`` route
    and only when every one of them is given."""
    if metric is None:
        return "workflowType=machine_learning"
    from urllib.parse import urlencode

    return urlencode({
        "workflowType": "machine_learning",
        "searchFilter": f"tags.`{ROLE_TAG}` != '{ROLE_CONFIRM}'",
        "orderByKey": f"metrics.`{FINAL}{metric}`",
        "orderByAsc": "true" if direction == "minimize" else "false",
        "startTime": "ALL", "lifecycleFilter": "Active", "modelVersionFilter": "All Runs",
        "datasetsFilter": "W10=",  # base64 of [], no dataset filter
    })


def sorted_runs_query(spec: Any) -> str:
    """:func:`runs_view_query` for a study: sorted by its primary objective when that is a
    validation metric (logged by every trial as ``final/<metric>``)."""
    primary = spec.primary
    if not primary.metric.startswith("val_") or spec.is_multi_objective:
        return runs_view_query()
    return runs_view_query(primary.metric, primary.resolved_direction)


def runs_view_url(base_url: str, experiment_id: str, query: str | None = None) -> str:
    """The experiment's runs table (``query``: :func:`runs_view_query`'s)."""
    query = query or runs_view_query()
    route = "runs" if "orderByKey" in query else ""
    return f"{base_url.rstrip('/')}/#/experiments/{experiment_id}{'/' + route if route else ''}" \
        f"?{query}"


def run_path(experiment_id: str, run_id: str) -> str:
    """A run's page inside the MLflow UI, in its model-training view (see above)."""
    return f"#/experiments/{experiment_id}/runs/{run_id}?{runs_view_query()}"


def model_version_path(name: str, version: str) -> str:
    """A registered model version's page inside the MLflow UI."""
    from urllib.parse import quote

    return f"#/models/{quote(name, safe='')}/versions/{version}"


def run_url(base_url: str, experiment_id: str, run_id: str) -> str:
    return f"{base_url.rstrip('/')}/{run_path(experiment_id, run_id)}"


def find_study_run(tracking_uri: str, experiment_id: str, study_uid: str) -> str | None:
    """The id of the study's own run, or None when there is none yet (or the store is
    down): looked up, never created."""
    try:
        runs = mlflow_client(tracking_uri).search_runs(
            [experiment_id], filter_string=f"tags.`{STUDY_UID_TAG}` = '{study_uid}'",
            max_results=1, order_by=["attributes.start_time ASC"])
    except Exception:  # a hint is not worth an error
        return None
    return runs[0].info.run_id if runs else None


def find_experiment_id(tracking_uri: str, name: str) -> str | None:
    """The experiment's id, or None if the store has none by that name (or is down)."""
    try:
        found = mlflow_client(tracking_uri).get_experiment_by_name(name)
    except Exception:  # a hint is not worth an error
        return None
    return None if found is None else found.experiment_id


