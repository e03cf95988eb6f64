"""Where a study is in the MLflow UI: the saved view of its experiment's runs (its
configurations in the ranking's order, in the model-training view), a run's page, and
the ids behind them."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from sweep.keys import (
    CONFIGURATION_TAG,
    FINAL,
    LOG10_COEFFICIENT_PREFIX,
    ROLE_TAG,
    ROLE_TRIAL,
    SEEDS_PREFIX,
    STUDY_UID_TAG,
    VIEW_STATE_PARAM,
)
from sweep.tracking.client import mlflow_client

if TYPE_CHECKING:
    from sweep.spec import StudySpec


def runs_view_query() -> str:
    """The query of an experiment's plain runs table: MLflow 3 opens an experiment in its
    GenAI view (an empty traces dashboard for a sweep) unless ``workflowType`` says
    otherwise."""
    return "workflowType=machine_learning"


def sorted_runs_query(spec: StudySpec) -> str:
    """The query of the link regsweep prints for a study: its saved runs view
    (:func:`runs_view_state`) when it has one figure to rank by, else the plain table."""
    if view_state_key(spec) is None:
        return runs_view_query()
    from urllib.parse import urlencode

    return urlencode({"workflowType": "machine_learning",
                      VIEW_STATE_PARAM: view_state_key(spec)})


def view_state_key(spec: StudySpec) -> str | None:
    """The key of the study's saved runs view (None when it ranks no single validation
    figure: several objectives, or a metric the trials do not log as ``final/*``). One
    per study, since several studies may share an experiment."""
    import re

    primary = spec.primary
    if not primary.metric.startswith("val_") or spec.is_multi_objective:
        return None
    return "regsweep-" + re.sub(r"[^A-Za-z0-9_.-]", "_", spec.name)[:200]


def runs_view_state(spec: StudySpec) -> str | None:
    """The saved view of the study's runs table, as MLflow 3.17's UI reads it from the
    experiment tag ``mlflow.sharedViewState.<key>`` (plain JSON: its search facets and its
    table state). One group per configuration (the runs tagged with its name: the trial
    that names it and its re-runs on further seeds), the groups in the ranking's order
    (the sort key, ``seeds/order``, is logged on the run that names each configuration
    only, so each group sits where that run does), and the columns that say what a
    configuration is and how good: its mean, sd and seed count over seeds (a group row
    shows the average of its runs', that is the configuration's), the searched values,
    each run's own draw, and the resolved placement."""
    import json

    from sweep.placement.searched import searched_values

    key = view_state_key(spec)
    if key is None:
        return None
    primary = spec.primary

    def column(kind: str, name: str) -> str:
        return f"{kind}.`{name}`"

    # Shared coefficients are params of their own; per-layer ones are in `resolved`.
    searched = spec.search.kinds if spec.search.coefficients == "shared" else ()
    columns = [
        column("metrics", f"{SEEDS_PREFIX}mean"), column("metrics", f"{SEEDS_PREFIX}n"),
        column("metrics", f"{SEEDS_PREFIX}sd"), column("params", "placement"),
        *(column("params", p) for p in searched),
        # What else the study searches (train/learning_rate, dropout/rate, ...).
        *(column("params", item.name) for item in searched_values(spec)),
        column("metrics", FINAL + primary.metric), column("params", "resolved"),
    ]
    state = {
        "searchFilter": f"tags.`{ROLE_TAG}` = '{ROLE_TRIAL}'",
        "orderByKey": column("metrics", f"{SEEDS_PREFIX}order"),
        "orderByAsc": primary.resolved_direction == "minimize",
        "startTime": "ALL", "lifecycleFilter": "Active", "modelVersionFilter": "All Runs",
        "datasetsFilter": [],
        # Shown in this order, the configuration's figures first: the table shows as
        # many columns as the window has room for.
        "selectedColumns": columns, "columnOrder": columns,
        "groupBy": {"aggregateFunction": "average",
                    "groupByKeys": [{"mode": "tag", "groupByData": CONFIGURATION_TAG}]},
        "runsHiddenMode": "SHOW_ALL",
        **_charts(spec, searched),
    }
    return json.dumps(state)


# The chart view's sections, by the first part of the metric names regsweep logs
# (MLflow makes one section per prefix); MLflow's own two last.
_SECTIONS = ("final", "weights_l2", "weights_l1", "sparsity", "penalty", "weights", "gpu",
             "seeds", "coefficients", "Model metrics", "System metrics")


def _charts(spec: StudySpec, searched: Any) -> dict[str, Any]:
    """The chart view of the saved view: first, one section that compares configurations
    on the objective (its mean over seeds per configuration; against each shared
    coefficient on a log axis; the objective per epoch); every other section MLflow makes
    for the metrics logged starts collapsed."""
    metric = spec.primary.metric
    mean = f"{SEEDS_PREFIX}mean"
    section = "regsweep-configurations"
    base = {"metricSectionId": section, "isGenerated": False, "deleted": False}
    charts = [
        {**base, "type": "BAR", "uuid": "regsweep-mean", "runsCountToCompare": 100,
         "metricKey": mean, "displayName": f"{metric}: mean over seeds, per configuration"},
        *({**base, "type": "SCATTER", "uuid": f"regsweep-{kind}", "runsCountToCompare": 100,
           "xaxis": {"key": f"{LOG10_COEFFICIENT_PREFIX}{kind}", "type": "METRIC"},
           "yaxis": {"key": mean, "type": "METRIC"},
           "displayName": f"{metric} (mean over seeds) against log10 {kind}"}
          for kind in searched),
        {**base, "type": "LINE", "uuid": "regsweep-curve", "runsCountToCompare": 100,
         "metricKey": metric, "selectedMetricKeys": [metric], "lineSmoothness": 0,
         "xAxisScaleType": "linear", "scaleType": "linear", "xAxisKey": "step",
         "selectedXAxisMetricKey": "", "yAxisKey": "metric", "yAxisExpressions": [],
         "range": {}, "displayName": f"{metric} per epoch"},
    ]
    sections = [{"uuid": section, "name": "Configurations (regsweep)", "display": True,
                 "isReordered": True, "deleted": False, "isGenerated": False},
                *({"uuid": f"regsweep-section-{name}", "name": name, "display": False,
                   "isReordered": True, "deleted": False, "isGenerated": True}
                  for name in _SECTIONS)]
    return {"compareRunCharts": charts, "compareRunSections": sections,
            "isAccordionReordered": True, "hideEmptyCharts": True,
            "useGroupedValuesInCharts": True}


def runs_view_url(base_url: str, experiment_id: str, query: str | None = None) -> str:
    """The experiment's runs table (``query``: :func:`runs_view_query`'s)."""
    query = query or runs_view_query()
    # MLflow reads a saved view's key on its /runs route only.
    route = "runs" if VIEW_STATE_PARAM in query else ""
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


