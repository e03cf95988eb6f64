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
import threading
import uuid
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from sweep.errors import describe_failure
from sweep.keys import (
    CONFIRMATION_OF_TAG,
    EXPERIMENT_KIND_TAG,
    MODEL_DEVELOPMENT,
    NOTE_TAG,
    PARENT_RUN_TAG,
    PLACEMENT,
    ROLE_CONFIRMATION,
    ROLE_STUDY,
    ROLE_TAG,
    ROLE_TRIAL,
    RUN_KEY_TAG,
    RUNS_VIEW_TAG,
    SEED,
    STUDY_NAME_TAG,
    STUDY_UID_TAG,
    TRIAL_NUMBER_TAG,
    VIEW_STATE_TAG_PREFIX,
    WORKER_TAG,
)
from sweep.placement.space import Placement
from sweep.tracking.client import PARAM_LIMIT, mlflow_client, now_ms
from sweep.tracking.names import coefficient_metrics, placement_params
from sweep.tracking.spool import Spool
from sweep.tracking.trial_run import TrialRun

log = logging.getLogger("sweep")
CLOSING_LIMIT = 4  # finished runs whose last MLflow calls may still be under way


def artifact_location(tracking_uri: str, experiment: str) -> str | None:
    """Where a new experiment keeps its artifacts: next to a SQLite tracking database
    (``mlartifacts/<experiment>``), not in MLflow's default ``./mlruns`` of whatever
    folder the first worker ran in; elsewhere the store's own default (None)."""
    import re
    from pathlib import Path

    if not tracking_uri.startswith("sqlite:///"):
        return None
    database = Path(tracking_uri.removeprefix("sqlite:///").split("?")[0])
    if not database.is_absolute():
        database = Path.cwd() / database
    folder = re.sub(r"[^A-Za-z0-9._-]", "_", experiment)
    return (database.parent / "mlartifacts" / folder).as_uri()


class StudyTracker:
    """The MLflow side of one study, as seen by one worker."""

    def __init__(self, tracking_uri: str, *, experiment: str, study_name: str, study_uid: str,
                 worker: str):
        self.tracking_uri = tracking_uri
        self.experiment_name = experiment
        self.study_name = study_name
        self.study_uid = study_uid
        self.worker = worker
        self.client = mlflow_client(tracking_uri)
        self._experiment_id: str | None = None
        self._parent_id: str | None = None
        self._confirmation_id: str | None = None
        self._closing: list[threading.Thread] = []  # runs' threads with calls left
        self._later: Any = None  # a one-thread executor for calls nothing waits for

    # ------------------------------------------------------- calls nobody waits for
    def closing(self, thread: threading.Thread) -> None:
        """A finished run's thread with MLflow calls left: the worker goes on meanwhile,
        waiting only when more than ``CLOSING_LIMIT`` such runs are behind (a slow
        store then slows the worker instead of piling up its runs)."""
        self._closing = [t for t in self._closing if t.is_alive()]
        self._closing.append(thread)
        while len(self._closing) > CLOSING_LIMIT:
            self._closing.pop(0).join()

    def later(self, work: Callable[[], None], what: str) -> None:
        """``work`` (MLflow calls whose result nothing waits for) on the tracker's own
        thread, in order; a failure is a warning (``could not <what>``)."""
        from concurrent.futures import ThreadPoolExecutor

        def guarded() -> None:
            try:
                work()
            except Exception as error:
                log.warning("could not %s: %s", what, describe_failure(error, 200))

        if self._later is None:
            self._later = ThreadPoolExecutor(1, thread_name_prefix="sweep-tracking-later")
        self._later.submit(guarded)

    def settle(self, timeout: float | None = None) -> None:
        """Wait until every call handed to a thread is done: before the process ends,
        and before anything reads what they write (``timeout``: at most that long, for
        a process that must leave whatever the store does)."""
        import time

        deadline = None if timeout is None else time.monotonic() + timeout
        for thread in self._closing:
            thread.join(None if deadline is None else max(0.0, deadline - time.monotonic()))
        self._closing = [t for t in self._closing if t.is_alive()]
        if self._later is not None:
            if deadline is None:
                self._later.shutdown(wait=True)
            else:  # its queue is dropped; a call under way finishes or dies with the process
                self._later.shutdown(wait=False, cancel_futures=True)
            self._later = None

    def experiment_id(self) -> str:
        if self._experiment_id is None:
            found = self.client.get_experiment_by_name(self.experiment_name)
            if found is None:
                try:
                    self._experiment_id = self.client.create_experiment(
                        self.experiment_name, tags={EXPERIMENT_KIND_TAG: MODEL_DEVELOPMENT},
                        artifact_location=artifact_location(self.tracking_uri,
                                                            self.experiment_name))
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
        stamp = now_ms()
        self.client.log_batch(
            run_id, params=[Param(k, v[:PARAM_LIMIT]) for k, v in params.items()
                            if k not in logged],
            tags=[RunTag(k, v) for k, v in tags.items()],
            metrics=[Metric(k, float(v), stamp, 0) for k, v in (metrics or {}).items()])

    def describe_experiment(self, note: str, runs_view: str,
                            view_state: tuple[str, str] | None = None) -> None:
        """The experiment's description (shown above its runs table), the query of its
        runs view and (``view_state``: key, state) the study's saved view of its runs
        table. Several studies may share an experiment: the last to publish describes it,
        and its note names its study; each keeps its own view."""
        experiment_id = self.experiment_id()
        tags = self.client.get_experiment(experiment_id).tags
        views = [(VIEW_STATE_TAG_PREFIX + view_state[0], view_state[1])] if view_state else []
        for key, value in ((NOTE_TAG, note), (RUNS_VIEW_TAG, runs_view), *views):
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
                               **(tags or {})}, metrics=coefficient_metrics(placement))

    def start_run(self, run_name: str, params: Mapping[str, str],
                  tags: Mapping[str, str], *, under: str = "study",
                  metrics: Mapping[str, float] | None = None) -> TrialRun:
        """Open a child run of the study's parent run (a trial), or of its confirmation
        run (``under="confirmation"``), with ``params`` and ``metrics`` (step 0)."""
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
        stamp = now_ms()
        run.submit({"op": "log", "params": values,
                    "metrics": [[k, v, stamp, 0] for k, v in (metrics or {}).items()]})
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
        values = {k: str(v)[:PARAM_LIMIT] for k, v in params.items()}
        stale = sorted(k for k, v in values.items() if k in logged and logged[k] != v)
        stamp = now_ms()
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


