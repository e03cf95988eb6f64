"""Read-only views of studies: status, best trials, export rows, the list of studies.

Nothing here imports TensorFlow or MLflow: these answer in well under a second.
"""

from __future__ import annotations

import datetime as _dt
import json
from collections import Counter
from typing import Any

from sweep.space import describe_placement
from sweep.spec import StudySpec

STATES = ("COMPLETE", "PRUNED", "FAIL", "RUNNING", "WAITING")


def _state(trial: Any) -> str:
    return trial.state.name


def trial_row(trial: Any, links: dict[str, Any] | None = None) -> dict[str, Any]:
    """One trial as a flat record: what ``sweep export`` writes and ``sweep best`` shows.
    ``links``: the study's user attrs, where ``sweep sync`` records the MLflow run ids of
    runs that were spooled during a tracking outage."""
    attrs = trial.user_attrs
    run_id = attrs.get("mlflow_run_id")
    if isinstance(run_id, str) and run_id.startswith("spool:"):
        run_id = (links or {}).get(f"mlflow_run_id/{trial.number}", run_id)
    duration = trial.duration.total_seconds() if trial.duration is not None else None
    row: dict[str, Any] = {
        "number": trial.number,
        "state": _state(trial),
        "value": trial.value if trial.values is not None and len(trial.values) == 1 else None,
        "placement": describe_placement(attrs.get("placement") or {}),
        "resolved_placement": json.dumps(attrs.get("placement") or {}, sort_keys=True),
        "seed": attrs.get("seed"),
        "epochs_run": attrs.get("epochs_run"),
        "duration_s": round(duration, 3) if duration is not None else None,
        "mlflow_run_id": run_id,
        "worker": attrs.get("worker"),
        "fail_reason": attrs.get("fail_reason"),
    }
    row.update({f"param:{k}": v for k, v in trial.params.items()})
    row.update({k: v for k, v in attrs.items() if k.startswith("final/")})
    return row


def sorted_complete(study: Any, spec: StudySpec) -> list[Any]:
    import optuna

    trials = study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))
    reverse = spec.objective.resolved_direction == "maximize"
    return sorted(trials, key=lambda t: (t.value, -t.number), reverse=reverse)


def best_rows(study: Any, spec: StudySpec, top: int) -> list[dict[str, Any]]:
    return [trial_row(t, study.user_attrs) for t in sorted_complete(study, spec)[:top]]


def _heartbeat_ages(study: Any) -> dict[int, float]:
    """Seconds since each running trial's last heartbeat, by trial id, measured on the
    database's own clock (workers' clocks may disagree)."""
    storage = getattr(study._storage, "_backend", study._storage)
    engine = getattr(storage, "engine", None)
    if engine is None:
        return {}
    from optuna.storages._rdb.models import TrialHeartbeatModel
    from sqlalchemy import func, select

    query = select(TrialHeartbeatModel.trial_id, TrialHeartbeatModel.heartbeat,
                   func.current_timestamp())
    try:
        with engine.connect() as connection:
            rows = connection.execute(query).all()
    except Exception:  # an older schema or another backend: no liveness to show
        return {}
    ages = {}
    for trial_id, beat, now in rows:
        if isinstance(now, str):  # SQLite returns CURRENT_TIMESTAMP as text
            now = _dt.datetime.fromisoformat(now)
        ages[trial_id] = max(0.0, (now - beat).total_seconds())
    return ages


def _throughput(trials: list[Any], remaining: int) -> tuple[float | None, float | None]:
    """Finished trials per hour (over the last hour, or since the study started if that
    is more recent) and the seconds left at that rate."""
    now = _dt.datetime.now()
    done = [t.datetime_complete for t in trials if t.datetime_complete is not None]
    starts = [t.datetime_start for t in trials if t.datetime_start is not None]
    if not done or not starts:
        return None, None
    window_start = max(min(starts), now - _dt.timedelta(hours=1))
    recent = sum(1 for d in done if d >= window_start)
    hours = (now - window_start).total_seconds() / 3600
    if recent == 0 or hours <= 0:
        return 0.0, None
    rate = recent / hours
    return rate, remaining / rate * 3600


def status(study: Any, spec: StudySpec) -> dict[str, Any]:
    from sweep.budget import used_budget

    trials = study.get_trials(deepcopy=False)
    counts = Counter(_state(t) for t in trials)
    best = sorted_complete(study, spec)[:1]
    finished = sum(counts[s] for s in ("COMPLETE", "PRUNED", "FAIL"))
    remaining = max(0, spec.budget.n_trials - used_budget(trials))
    ages = _heartbeat_ages(study) if counts.get("RUNNING") else {}
    workers = [
        {"trial": t.number, "worker": t.user_attrs.get("worker"),
         "host": (t.user_attrs.get("worker") or "?:?").rsplit(":", 1)[0],
         "pid": (t.user_attrs.get("worker") or "?:?").rsplit(":", 1)[1],
         "gpu": t.user_attrs.get("gpu"),
         "seconds_since_heartbeat": round(ages[t._trial_id], 1) if t._trial_id in ages
         else None}
        for t in trials if _state(t) == "RUNNING"
    ]
    rate, eta = _throughput(trials, remaining + counts.get("RUNNING", 0))
    return {
        "study": study.study_name,
        "metric": spec.objective.metric,
        "direction": spec.objective.resolved_direction,
        "budget": spec.budget.n_trials,
        "finished": finished,
        "states": {state: counts.get(state, 0) for state in STATES},
        "best_value": best[0].value if best else None,
        "best_trial": best[0].number if best else None,
        "best_placement": describe_placement(best[0].user_attrs.get("placement") or {})
        if best else None,
        "remaining": remaining,
        "workers": workers,
        "trials_per_hour": round(rate, 2) if rate is not None else None,
        "eta_seconds": round(eta) if eta is not None else None,
    }


def export_rows(study: Any) -> list[dict[str, Any]]:
    return [trial_row(t, study.user_attrs) for t in study.get_trials(deepcopy=False)]


def list_studies(storage: Any) -> list[dict[str, Any]]:
    import optuna

    rows = []
    for name in optuna.get_all_study_names(storage):
        study = optuna.load_study(study_name=name, storage=storage)
        trials = study.get_trials(deepcopy=False)
        counts = Counter(_state(t) for t in trials)
        complete = [t for t in trials if _state(t) == "COMPLETE" and t.values
                    and len(t.values) == 1]
        maximize = study.directions[0].name == "MAXIMIZE"
        best = (max if maximize else min)((t.value for t in complete), default=None)
        budget = (study.user_attrs.get("spec") or {}).get("budget", {}).get("n_trials")
        rows.append({
            "study": name, "trials": len(trials), "budget": budget,
            "complete": counts.get("COMPLETE", 0), "pruned": counts.get("PRUNED", 0),
            "fail": counts.get("FAIL", 0), "running": counts.get("RUNNING", 0),
            "direction": study.directions[0].name.lower(), "best_value": best,
        })
    return rows
