"""Every MLflow call regsweep makes lives here.

Layout (README, "The MLflow UI"): one experiment per study; one parent run per study (tag
``sweep.role=study``), found again when the study is resumed; one nested child run per
trial named by what it tried (``#5 before_flatten l2=4.7e-4``); per-epoch metrics with
step = epoch; run status follows the trial (COMPLETE→FINISHED, PRUNED→KILLED,
FAIL→FAILED).

MLflow is imported lazily (it costs seconds) and only by processes that train.
"""

from __future__ import annotations

import logging
import os
import queue
import threading
import time
import uuid
from collections.abc import Iterable, Mapping
from typing import Any

from sweep.errors import describe_failure
from sweep.keys import (
    CONFIRMATION_OF_TAG,
    EXPERIMENT_KIND_TAG,
    FAIL_REASON_TAG,
    FINAL,
    MODEL_DEVELOPMENT,
    NOTE_TAG,
    PARENT_RUN_TAG,
    PLACEMENT,
    RESUMED_FROM_RUN_TAG,
    ROLE_CONFIRM,
    ROLE_CONFIRMATION,
    ROLE_STUDY,
    ROLE_TAG,
    ROLE_TRIAL,
    RUN_KEY_TAG,
    RUNS_VIEW_TAG,
    SEED,
    SPOOL_PREFIX,
    STUDY_NAME_TAG,
    STUDY_UID_TAG,
    TRIAL_NUMBER_TAG,
    WORKER_TAG,
)
from sweep.placement.space import Placement, describe_placement
from sweep.tracking.spool import Spool

log = logging.getLogger("sweep")

# "INTERRUPTED" is a FAIL trial that was stopped (SIGINT/SIGTERM), not broken: KILLED.
STATUS_BY_STATE = {"COMPLETE": "FINISHED", "PRUNED": "KILLED", "FAIL": "FAILED",
                   "INTERRUPTED": "KILLED"}
_BATCH_LIMIT = 1000  # MLflow's cap on metrics per log_batch call
_PARAM_LIMIT = 6000  # MLflow's cap on a param value's length
FLUSH_SECONDS = 5.0  # epoch metrics reach MLflow at least this often (and at the end)


def _client(tracking_uri: str):
    # MLflow retries an unreachable server for minutes by default; a trial should notice
    # within seconds and spool instead.
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "2")
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR", "1")
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", "20")
    # MLflow prints "View run … at URL" lines, credentials of the URL included.
    os.environ.setdefault("MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT", "true")
    from mlflow.tracking import MlflowClient

    # MLflow's INFO lines (database migrations, ...) drown the progress output.
    logging.getLogger("mlflow").setLevel(logging.WARNING)

    return MlflowClient(tracking_uri=tracking_uri)


def _now_ms() -> int:
    return int(time.time() * 1000)


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
        "orderByKey": f"metrics.`final/{metric}`",
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


def run_url(base_url: str, experiment_id: str, run_id: str) -> str:
    return f"{base_url.rstrip('/')}/{run_path(experiment_id, run_id)}"


def find_study_run(tracking_uri: str, experiment_id: str, study_uid: str) -> str | None:
    """The id of the study's own run, or None when there is none yet (or the store is
    down): looked up, never created."""
    try:
        runs = _client(tracking_uri).search_runs(
            [experiment_id], filter_string=f"tags.`{STUDY_UID_TAG}` = '{study_uid}'",
            max_results=1, order_by=["attributes.start_time ASC"])
    except Exception:  # a hint is not worth an error
        return None
    return runs[0].info.run_id if runs else None


def find_experiment_id(tracking_uri: str, name: str) -> str | None:
    """The experiment's id, or None if the store has none by that name (or is down)."""
    try:
        found = _client(tracking_uri).get_experiment_by_name(name)
    except Exception:  # a hint is not worth an error
        return None
    return None if found is None else found.experiment_id


def short_number(value: float) -> str:
    """``4.7e-4`` rather than ``0.00047`` or ``4.7e-04``: short enough for a run name."""
    if value == 0:
        return "0"
    mantissa, exponent = f"{value:.1e}".split("e")
    return f"{mantissa.removesuffix('.0')}e{int(exponent)}"


def coefficient_label(placement: Placement) -> str:
    """The coefficients of a placement in a few characters: ``l1=1e-5 l2=4.7e-4``, or
    ``l2=per-layer`` when the layers differ."""
    values: dict[str, set[float]] = {}
    for targets in placement.values():
        for kinds in targets.values():
            for kind, value in kinds.items():
                values.setdefault(kind, set()).add(float(value))
    return " ".join(f"{kind}={short_number(next(iter(found)))}" if len(found) == 1
                    else f"{kind}=per-layer" for kind, found in sorted(values.items()))


def trial_run_name(number: int, label: str, placement: Placement,
                   baseline: str | None = None) -> str:
    """What the MLflow UI lists: ``#5 before_flatten l2=4.7e-4``,
    ``#0 baseline: no regularization``, ``#1 baseline: uniform_l2 l2=3.2e-4``."""
    coefficients = coefficient_label(placement)
    if baseline:
        what = "no regularization" if not placement else f"{baseline} {coefficients}"
        return f"#{number} baseline: {what}"
    return f"#{number} {label} {coefficients}".strip()[:120]


def duplicate_run_name(number: int, original: int) -> str:
    return f"#{number} = #{original} (duplicate)"


def placement_params(placement: Placement) -> dict[str, str]:
    """The resolved placement as MLflow params: which layer got which penalty."""
    params = {"resolved": describe_placement(placement)}
    for layer, targets in placement.items():
        for target, kinds in targets.items():
            for kind, value in kinds.items():
                params[f"resolved/{layer}/{target}/{kind}"] = repr(float(value))
    return params


class StudyTracker:
    """The MLflow side of one study, as seen by one worker."""

    def __init__(self, tracking_uri: str, *, experiment: str, study_name: str, study_uid: str,
                 worker: str):
        self.tracking_uri = tracking_uri
        self.experiment_name = experiment
        self.study_name = study_name
        self.study_uid = study_uid
        self.worker = worker
        self.client = _client(tracking_uri)
        self._experiment_id: str | None = None
        self._parent_id: str | None = None
        self._confirmation_id: str | None = None

    def experiment_id(self) -> str:
        if self._experiment_id is None:
            found = self.client.get_experiment_by_name(self.experiment_name)
            if found is None:
                try:
                    self._experiment_id = self.client.create_experiment(
                        self.experiment_name, tags={EXPERIMENT_KIND_TAG: MODEL_DEVELOPMENT})
                except Exception:  # another worker created it first: use theirs
                    found = self.client.get_experiment_by_name(self.experiment_name)
                    if found is None:
                        raise
                    self._experiment_id = found.experiment_id
            else:
                if found.lifecycle_stage == "deleted":
                    self.client.restore_experiment(found.experiment_id)
                self._experiment_id = found.experiment_id
        return self._experiment_id

    def parent_run_id(self, spec: Mapping[str, Any] | None = None) -> str:
        """The study's parent run: found by the study's uid, created on first use."""
        if self._parent_id is not None:
            return self._parent_id
        runs = self.client.search_runs(
            [self.experiment_id()],
            filter_string=f"tags.`{STUDY_UID_TAG}` = '{self.study_uid}'",
            max_results=1, order_by=["attributes.start_time ASC"],
        )
        if runs:
            self._parent_id = runs[0].info.run_id
            return self._parent_id
        run = self.client.create_run(
            self.experiment_id(), run_name=self.study_name,
            tags={ROLE_TAG: ROLE_STUDY, STUDY_NAME_TAG: self.study_name,
                  STUDY_UID_TAG: self.study_uid},
        )
        self._parent_id = run.info.run_id
        if spec is not None:
            self.client.log_dict(self._parent_id, dict(spec), "study_spec.json")
        return self._parent_id

    def confirmation_run_id(self) -> str:
        """The run that holds the confirmation runs, nested in the study's run, so that
        they never bury the trials: found by the study's uid, created on first use."""
        if self._confirmation_id is not None:
            return self._confirmation_id
        runs = self.client.search_runs(
            [self.experiment_id()],
            filter_string=f"tags.`{CONFIRMATION_OF_TAG}` = '{self.study_uid}'",
            max_results=1, order_by=["attributes.start_time ASC"])
        if runs:
            self._confirmation_id = runs[0].info.run_id
            return self._confirmation_id
        run = self.client.create_run(
            self.experiment_id(), run_name="confirmation",
            tags={ROLE_TAG: ROLE_CONFIRMATION, CONFIRMATION_OF_TAG: self.study_uid,
                  STUDY_NAME_TAG: self.study_name,
                  PARENT_RUN_TAG: self.parent_run_id(),
                  NOTE_TAG: "Re-trainings of the best configurations and of "
                  "the no-regularization baseline over fresh seeds (`sweep report`), each "
                  "tested once: one child run per configuration and seed."})
        self.client.set_terminated(run.info.run_id, "FINISHED")
        self._confirmation_id = run.info.run_id
        return self._confirmation_id

    def describe_study(self, params: Mapping[str, str], tags: Mapping[str, str],
                       metrics: Mapping[str, float] | None = None) -> None:
        """Settings (params: write-once, so only those not logged yet), description tags
        and result metrics on the study's run."""
        from mlflow.entities import Metric, Param, RunTag

        run_id = self.parent_run_id()
        logged = self.client.get_run(run_id).data.params
        stamp = _now_ms()
        self.client.log_batch(
            run_id, params=[Param(k, v[:_PARAM_LIMIT]) for k, v in params.items()
                            if k not in logged],
            tags=[RunTag(k, v) for k, v in tags.items()],
            metrics=[Metric(k, float(v), stamp, 0) for k, v in (metrics or {}).items()])

    def describe_experiment(self, note: str, runs_view: str) -> None:
        """The experiment's description (shown above its runs table) and the query of
        its runs view. Several studies may share an experiment: the last to publish
        describes it, and its note names its study."""
        experiment_id = self.experiment_id()
        tags = self.client.get_experiment(experiment_id).tags
        for key, value in ((NOTE_TAG, note), (RUNS_VIEW_TAG, runs_view)):
            if tags.get(key) != value:
                self.client.set_experiment_tag(experiment_id, key, value)
        if EXPERIMENT_KIND_TAG not in tags:  # an experiment made before: a user's kind stays
            self.client.set_experiment_tag(experiment_id, EXPERIMENT_KIND_TAG,
                                           MODEL_DEVELOPMENT)

    def set_parent_status(self, status: str) -> None:
        """The study run's status; while MLflow is unreachable the change is spooled, so
        that `sweep sync` closes the study run too (not only its trials' runs)."""
        try:
            if status == "RUNNING":
                self.client.update_run(self.parent_run_id(), status="RUNNING")
            else:
                self.client.set_terminated(self.parent_run_id(), status)
        except Exception as error:
            if status == "RUNNING":
                raise  # a study that runs again re-opens it itself
            spool = Spool.for_run(None, {
                "op": "study_run", "tracking_uri": self.tracking_uri,
                "experiment": self.experiment_name, "study_name": self.study_name,
                "study_uid": self.study_uid, "tags": {WORKER_TAG: self.worker}})
            spool.append({"op": "terminate", "status": status})
            log.warning("MLflow unreachable (%s); the study run's status %s is spooled to %s",
                        describe_failure(error, 200), status, spool.path)

    def start_trial(self, number: int, params: Mapping[str, Any], placement: Placement,
                    seed: int, tags: Mapping[str, str] | None = None, *,
                    name: str | None = None, label: str | None = None) -> TrialRun:
        """Open the trial's child run, named by what it tries (``name``, default
        ``trial-<number>``). If MLflow cannot be reached, the run is spooled to a local file
        instead (``sweep sync`` replays it) and training goes on. ``label``: the named
        placement, logged as the ``placement`` param when the search has none of its own
        (baselines, a single choice, masks)."""
        values = {**{k: str(v) for k, v in params.items()}, **placement_params(placement),
                  SEED: str(seed)}
        if label is not None:
            values.setdefault(PLACEMENT, label)
        return self.start_run(name or f"trial-{number}", values,
                              {TRIAL_NUMBER_TAG: str(number), ROLE_TAG: ROLE_TRIAL,
                               **(tags or {})})

    def start_run(self, run_name: str, params: Mapping[str, str],
                  tags: Mapping[str, str], *, under: str = "study") -> TrialRun:
        """Open a child run of the study's parent run (a trial), or of its confirmation
        run (``under="confirmation"``)."""
        create = {"op": "create_run", "tracking_uri": self.tracking_uri, "under": under,
                  "experiment": self.experiment_name, "study_name": self.study_name,
                  "study_uid": self.study_uid, "run_name": run_name,
                  # A key chosen here, before MLflow is asked: if the store creates the run but
                  # the answer is lost, `sweep sync` finds that run instead of making another.
                  "tags": {STUDY_NAME_TAG: self.study_name, **tags,
                           WORKER_TAG: self.worker, RUN_KEY_TAG: uuid.uuid4().hex}}
        values = dict(params)
        run = TrialRun(self)
        run.submit(create, wait=True)
        run.submit({"op": "log", "params": values})
        return run

    def create_run(self, op: Mapping[str, Any]) -> str:
        parent = self.confirmation_run_id() if op.get("under") == "confirmation" else \
            self.parent_run_id()
        run = self.client.create_run(
            self.experiment_id(), run_name=op["run_name"],
            tags={**op["tags"], PARENT_RUN_TAG: parent})
        return run.info.run_id

    # ------------------------------------------------------------ the report (sweep report)
    def log_best(self, metrics: Mapping[str, float], params: Mapping[str, str]) -> list[str]:
        """The best trial's values (``best/*``) on the parent run, so that the runs table
        sorts studies by them. MLflow params are write-once: a ``best/*`` param an earlier
        report logged with another value keeps it, and the current value goes to the tag
        of the same name instead. Returns those params' names."""
        from mlflow.entities import Metric, Param, RunTag

        run_id = self.parent_run_id()
        run = self.client.get_run(run_id)
        logged, tagged = run.data.params, run.data.tags
        values = {k: str(v)[:_PARAM_LIMIT] for k, v in params.items()}
        stale = sorted(k for k, v in values.items() if k in logged and logged[k] != v)
        stamp = _now_ms()
        self.client.log_batch(
            run_id,
            metrics=[Metric(k, float(v), stamp, 0) for k, v in metrics.items()],
            params=[Param(k, v) for k, v in values.items() if k not in logged],
            # A tag set by an earlier report is kept current too, even once equal again.
            tags=[RunTag(k, v) for k, v in values.items() if k in stale or k in tagged])
        return stale

    def log_report_files(self, paths: Iterable[os.PathLike[str] | str],
                         artifact_path: str) -> str:
        """These files as artifacts of the parent run, under ``artifact_path`` (only
        these: the report's folder may hold other things). Returns the run's id."""
        run_id = self.parent_run_id()
        for path in paths:
            self.client.log_artifact(run_id, str(path), artifact_path)
        return run_id

    def weight_norm_curves(self, run_id: str, statistic: str = "l2"
                           ) -> dict[str, list[tuple[int, float]]]:
        """Per-epoch ``weights_<statistic>/<layer>`` (``sparsity/<layer>``) of a trial's
        run: layer → (epoch, value) points, in epoch order."""
        prefix = "sparsity/" if statistic == "sparsity" else f"weights_{statistic}/"
        keys = sorted(key for key in self.client.get_run(run_id).data.metrics
                      if key.startswith(prefix) and key.count("/") == 1)
        return {key.split("/")[1]: sorted((m.step, m.value) for m in
                                          self.client.get_metric_history(run_id, key))
                for key in keys}


def apply(client: Any, run_id: str, op: Mapping[str, Any]) -> None:
    """Carry out one logged operation on an existing run (live, or replayed by sync)."""
    from mlflow.entities import Metric, Param, RunTag

    if op["op"] == "log":
        metrics = [Metric(k, float(v), ts, step) for k, v, ts, step in op.get("metrics", [])]
        params = [Param(k, v) for k, v in op.get("params", {}).items()]
        tags = [RunTag(k, str(v)) for k, v in op.get("tags", {}).items()]
        for start in range(0, max(len(metrics), 1), _BATCH_LIMIT):
            client.log_batch(run_id, metrics=metrics[start:start + _BATCH_LIMIT],
                             params=params if start == 0 else [],
                             tags=tags if start == 0 else [])
    elif op["op"] == "terminate":
        client.set_terminated(run_id, op["status"])
    else:
        raise ValueError(f"unknown operation {op['op']!r}")


class TrialRun:
    """The child run of one trial.

    Every MLflow call is an *operation* handed to a background thread, so training never
    waits for the tracking store (one batch per epoch). When the store cannot be reached,
    this and all later operations of the run go to the spool file instead, in order;
    ``sweep sync`` replays them once the store is back. Nothing the trial measured is
    lost either way."""

    def __init__(self, tracker: StudyTracker):
        self.tracker = tracker
        self.run_id: str | None = None
        self.spool: Spool | None = None
        self._queue: queue.Queue = queue.Queue()
        self._thread: threading.Thread | None = None
        self._pending: list[list[Any]] = []  # epoch metrics not yet handed to the thread
        self._flushed_at = time.monotonic()

    @property
    def reference(self) -> str:
        """What the Optuna trial records as ``mlflow_run_id``."""
        return self.run_id if self.run_id is not None else f"{SPOOL_PREFIX}{self.spool.key}"

    def submit(self, op: dict[str, Any], *, wait: bool = False) -> None:
        if wait:
            self._perform(op)
            return
        if self._thread is None:
            self._thread = threading.Thread(target=self._drain, daemon=True,
                                            name="sweep-tracking")
            self._thread.start()
        self._queue.put(op)

    def _drain(self) -> None:
        while True:
            op = self._queue.get()
            if op is None:
                return
            self._perform(op)

    def _perform(self, op: dict[str, Any]) -> None:
        if self.spool is None:
            try:
                if op["op"] == "create_run":
                    self.run_id = self.tracker.create_run(op)
                else:
                    apply(self.tracker.client, self.run_id, op)
                return
            except Exception as error:  # store unreachable: from now on, spool
                self.spool = Spool.for_run(self.run_id, op if op["op"] == "create_run"
                                           else None, self.tracker.tracking_uri)
                log.warning("MLflow unreachable (%s); spooling run to %s",
                            describe_failure(error, 200), self.spool.path)
                if op["op"] == "create_run":
                    return
        self.spool.append(op)

    def log_epoch(self, step: int, metrics: Mapping[str, float]) -> None:
        """Buffer one epoch's metrics; they go out as one batch every ``FLUSH_SECONDS``
        and when the run finishes: MLflow's cost is per call, not per metric, in large
        part (bench/logging_cost.py measures the write's CPU per epoch); the MLflow UI's
        curves then lag by a few seconds at most."""
        stamp = _now_ms()
        self._pending += [[k, float(v), stamp, step] for k, v in metrics.items()]
        if time.monotonic() - self._flushed_at >= FLUSH_SECONDS:
            self.flush()

    def copy_history(self, run_id: str, *, up_to_step: int) -> None:
        """Per-epoch metrics of ``run_id`` up to ``up_to_step``, logged on this run too: a
        resumed trial's run then shows the epochs its predecessors trained."""
        if run_id.startswith(SPOOL_PREFIX):
            return  # that run has not reached MLflow yet; `sweep sync` replays it there
        client = self.tracker.client
        try:
            keys = [k for k in client.get_run(run_id).data.metrics if not k.startswith(FINAL)]
            history = [[m.key, m.value, m.timestamp, m.step] for key in keys
                       for m in client.get_metric_history(run_id, key)
                       if 1 <= m.step <= up_to_step]
        except Exception as error:  # the history is a convenience; training goes on
            log.warning("could not copy the metric history of run %s: %s", run_id,
                        describe_failure(error, 200))
            return
        if history:
            self.submit({"op": "log", "metrics": history,
                         "tags": {RESUMED_FROM_RUN_TAG: run_id}})

    def flush(self) -> None:
        if self._pending:
            self.submit({"op": "log", "metrics": self._pending})
            self._pending = []
        self._flushed_at = time.monotonic()

    def finish(self, state: str, final: Mapping[str, float] | None = None,
               reason: str | None = None, tags: Mapping[str, str] | None = None) -> None:
        """Log the final figures, close the run with the trial's state, wait until done."""
        self.flush()
        tags = {**(tags or {}), **({FAIL_REASON_TAG: reason[:5000]} if reason else {})}
        if final or tags:
            stamp = _now_ms()
            self.submit({"op": "log", "tags": tags,
                         "metrics": [[k, float(v), stamp, 0] for k, v in (final or {}).items()]})
        self.submit({"op": "terminate", "status": STATUS_BY_STATE[state]})
        self.close()

    def close(self) -> None:
        if self._thread is not None:
            self._queue.put(None)
            self._thread.join()
            self._thread = None


def sync(tracking_uri: str | None = None) -> list[Any]:
    """Replay every spooled run into MLflow (``tracking_uri`` overrides the store each
    run was meant for). Returns what was replayed."""
    from sweep.tracking.spool import pending, replay

    def resolve(first: Mapping[str, Any]) -> tuple[Any, str]:
        uri = unmasked(tracking_uri, first["tracking_uri"])
        if first["op"] == "run":
            return _client(uri), first["run_id"]
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


def mark_run_lost(tracking_uri: str, run_id: str, worker: str | None) -> None:
    """Close the run of a trial whose worker died (no heartbeat): FAILED, with the reason."""
    if run_id.startswith(SPOOL_PREFIX):
        return
    client = _client(tracking_uri)
    try:
        client.set_tag(run_id, FAIL_REASON_TAG,
                       f"worker {worker or '?'} stopped sending heartbeats")
        client.set_terminated(run_id, "FAILED")
    except Exception as error:  # the study's bookkeeping must not depend on MLflow
        log.warning("could not close MLflow run %s: %s", run_id, describe_failure(error, 200))
