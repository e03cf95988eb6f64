"""Read-only views of studies: status, best trials, export rows, the list of studies.
Nothing here imports TensorFlow or MLflow: these answer in well under a second."""

from __future__ import annotations

import datetime as _dt
import json
import logging
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import asdict
from typing import TYPE_CHECKING, Any

from sweep.keys import (
    BASELINE,
    DUPLICATE_OF,
    ENVIRONMENT,
    EPOCHS_RUN,
    FAIL_REASON,
    FINAL,
    GPU,
    GPU_PEAK_MB,
    GPU_SECONDS,
    MLFLOW_RUN_ID,
    PLACEMENT,
    PRUNED_AT_EPOCH,
    SEED,
    SEED_OF,
    SEED_VALUE,
    SEEDS,
    SETTINGS,
    SPEC,
    SPOOL_PREFIX,
    WARM_START_OF,
    WORKER,
    synced_run_key,
)
from sweep.placement.searched import searched_values
from sweep.placement.space import BASELINE_NONE, describe_placement
from sweep.results.ranking import figure_of, ranked_configurations, ranked_trials
from sweep.search.grouping import group_label
from sweep.search.limits import deadline, study_halt
from sweep.search.noise import noise_state
from sweep.search.reaper import heartbeat_ages
from sweep.spec import StudySpec
from sweep.storage import optuna_internals as internals

if TYPE_CHECKING:
    import optuna
    from optuna.trial import FrozenTrial

log = logging.getLogger("sweep")

STATES = ("COMPLETE", "PRUNED", "FAIL", "RUNNING", "WAITING")


def _state(trial: Any) -> str:
    return trial.state.name


def logged_run_id(trial: Any, links: Mapping[str, Any] | None = None) -> str | None:
    """The MLflow run id a trial logged to. A run spooled during a tracking outage is
    recorded as ``spool:<key>`` until ``sweep sync`` writes its real id into the study's
    user attrs (``links``); until then there is no run to point at."""
    run_id = trial.user_attrs.get(MLFLOW_RUN_ID)
    if isinstance(run_id, str) and run_id.startswith(SPOOL_PREFIX):
        run_id = (links or {}).get(synced_run_key(trial.number))
    return run_id or None


def generalization_gap(final: Mapping[str, Any], name: str | None = None) -> float | None:
    """How much better the model does on its training data than on validation data, from
    a trial's ``final/*`` figures: train − validation for an accuracy, validation − train
    for a loss. ``name``: the metric (``accuracy``, ``data_loss``, ...); without it,
    accuracy where recorded, else the data loss."""
    for metric in [name] if name else ["accuracy", "data_loss"]:
        train, val = final.get(f"{FINAL}train_{metric}"), final.get(f"{FINAL}val_{metric}")
        if train is not None and val is not None:
            return train - val if metric.endswith("accuracy") else val - train
    return None


def link_runs(storage_url: str, replayed: Sequence[Any]) -> int:
    """Record the real run ids of replayed spooled runs on their studies (a finished Optuna
    trial is read-only, so on the study: see ``logged_run_id``). Returns how many."""
    import optuna

    from sweep.errors import FatalError
    from sweep.storage.connect import open_storage, quiet_optuna

    fresh = [r for r in replayed if r.study_name is not None and r.trial_number is not None]
    if not fresh:
        return 0
    quiet_optuna()
    try:
        storage = open_storage(storage_url)
    except FatalError as error:
        log.warning("trials not linked to their runs: %s", error)
        return 0
    linked = 0
    for item in fresh:
        try:
            study = optuna.load_study(study_name=item.study_name, storage=storage)
        except KeyError:
            continue
        study.set_user_attr(synced_run_key(item.trial_number), item.run_id)
        linked += 1
    return linked


def trial_row(trial: Any, links: dict[str, Any] | None = None,
              metrics: Sequence[str] = ()) -> dict[str, Any]:
    """One trial as a flat record: what ``sweep export`` writes and ``sweep best`` shows.
    ``links``: the study's user attrs, where ``sweep sync`` records the MLflow run ids of
    runs that were spooled during a tracking outage. ``metrics``: the objectives' names,
    for a value column per objective in a multi-objective study."""
    attrs = trial.user_attrs
    run_id = logged_run_id(trial, links) or attrs.get(MLFLOW_RUN_ID)
    duration = trial.duration.total_seconds() if trial.duration is not None else None
    values = trial.values or []
    row: dict[str, Any] = {
        "number": trial.number,
        "state": _state(trial),
        "value": values[0] if values else None,
        BASELINE: attrs.get(BASELINE),
        "placement": describe_placement(attrs.get(PLACEMENT) or {}),
        "resolved_placement": json.dumps(attrs.get(PLACEMENT) or {}, sort_keys=True),
        SETTINGS: json.dumps(attrs.get(SETTINGS) or {}, sort_keys=True),
        SEED: attrs.get(SEED),
        EPOCHS_RUN: attrs.get(EPOCHS_RUN),
        PRUNED_AT_EPOCH: attrs.get(PRUNED_AT_EPOCH),
        "duration_s": round(duration, 3) if duration is not None else None,
        MLFLOW_RUN_ID: run_id,
        WORKER: attrs.get(WORKER),
        DUPLICATE_OF: attrs.get(DUPLICATE_OF),
        WARM_START_OF: attrs.get(WARM_START_OF),
        # Seed racing: a re-run's configuration (its first trial), its own draw, and how
        # many seeds its value (the mean) is over.
        SEED_OF: attrs.get(SEED_OF),
        SEED_VALUE: attrs.get(SEED_VALUE),
        SEEDS: attrs.get(SEEDS),
        FAIL_REASON: attrs.get(FAIL_REASON),
        "device": (attrs.get(ENVIRONMENT) or {}).get("device_name"),
        GPU_SECONDS: attrs.get(GPU_SECONDS),
        GPU_PEAK_MB: attrs.get(GPU_PEAK_MB),
    }
    if len(metrics) > 1:
        row.update({f"value:{metric}": values[i] if len(values) > i else None
                    for i, metric in enumerate(metrics)})
    row.update({f"param:{k}": v for k, v in trial.params.items()})
    row.update({k: v for k, v in attrs.items() if k.startswith(FINAL)})
    return row


def baseline_trial(study: optuna.Study, kind: str = BASELINE_NONE, *,
                   spec: StudySpec | None = None) -> Any:
    """The completed trial that names the baseline of this kind (no regularization by
    default): the first queued baseline trial to finish (its figure is its
    configuration's mean over seeds: ``ranked_trials``' ``seeds``), or failing that the
    first completed trial that trained the same without being a duplicate: no penalty,
    and (``spec`` given) none of the regularizers the study searches besides.

    When the study searches what no regularization depends on too (a learning rate, a
    batch size, a layer's size), no regularization is its best configuration without
    any regularizer in the ranking: against the queued baseline alone (the middle
    learning rate), a regularizer would get the credit for a better learning rate."""
    import optuna

    from sweep.placement.searched import regularizer_families

    searched = searched_values(spec) if spec is not None else []
    if kind == BASELINE_NONE and spec is not None and not spec.is_multi_objective and any(
            item.family is None for item in searched):
        for configuration in ranked_configurations(study, spec):
            if configuration.complete and not regularizer_families(
                    configuration.placement, configuration.settings, searched):
                return configuration.named
    complete = study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))
    queued = [t for t in complete if t.user_attrs.get(BASELINE) == kind]
    if queued:
        return min(queued, key=lambda t: t.number)
    if kind == BASELINE_NONE:
        return next((t for t in complete if t.user_attrs.get(PLACEMENT) == {}
                     and not regularizer_families({}, t.user_attrs.get(SETTINGS) or {},
                                                  searched)
                     and DUPLICATE_OF not in t.user_attrs), None)
    return None


def pareto_front(study: optuna.Study, spec: StudySpec) -> list[Any]:
    """The non-dominated completed trials of a multi-objective study, by primary value."""
    reverse = spec.primary.resolved_direction == "maximize"
    return sorted(study.best_trials, key=lambda t: (t.values[0], -t.number), reverse=reverse)


def best_rows(study: optuna.Study, spec: StudySpec, top: int) -> list[dict[str, Any]]:
    """The best ``top`` trials (the whole Pareto front when there are several objectives),
    each with its difference to the no-regularization baseline."""
    metrics = [item.metric for item in spec.objective]
    ordered, seeds = ranked_trials(study, spec)
    trials = pareto_front(study, spec) if spec.is_multi_objective else ordered[:top]
    baseline = baseline_trial(study, spec=spec)
    links = study.user_attrs
    base_value = None if baseline is None else figure_of(baseline, seeds)
    searched = searched_values(spec)
    estimate: dict[int, float] = {}
    if spec.racing is not None:
        from sweep.search.racing import estimates

        estimate = estimates(list(seeds.values()))
    rows = []
    for trial in trials:
        row = trial_row(trial, links, metrics)
        # The configuration's mean over its seeds, its sd, how many seeds, and (seed
        # racing) that mean shrunk by the seed noise: what the study ranks by.
        found = seeds.get(trial.number)
        row["value"] = figure_of(trial, seeds)
        row["seeds"] = found.n if found else 1
        row["sd"] = found.sd if found else None
        row["trials"] = len(found.members) if found else 1
        if found and found.key in estimate:
            row["estimate"] = estimate[found.key]
        row["vs_baseline"] = None if base_value is None else row["value"] - base_value
        row["baseline_trial"] = None if baseline is None else baseline.number
        # The comparison's row it belongs to: its placement, or its regularizer family.
        row["group"] = group_label(trial, spec, searched)
        rows.append(row)
    return rows


def _throughput(trials: list[FrozenTrial], remaining: int, *, live: bool = True
                ) -> tuple[float | None, float | None]:
    """Finished trials per hour (over the last hour, or since the study started if that
    is more recent) and the seconds left at that rate. Not ``live`` (no trial running):
    up to the last finish, so a finished study's rate does not fall as the clock runs."""
    done = [t.datetime_complete for t in trials if t.datetime_complete is not None]
    starts = [t.datetime_start for t in trials if t.datetime_start is not None]
    if not done or not starts:
        return None, None
    now = _dt.datetime.now() if live else max(done)
    window_start = max(min(starts), now - _dt.timedelta(hours=1))
    recent = sum(1 for d in done if d >= window_start)
    hours = (now - window_start).total_seconds() / 3600
    if recent == 0 or hours <= 0:
        return 0.0, None
    rate = recent / hours
    return rate, remaining / rate * 3600


def status(study: optuna.Study, spec: StudySpec) -> dict[str, Any]:
    from sweep.storage.budget import duplicates, finished_in_budget, given_back, used_budget

    trials = study.get_trials(deepcopy=False)
    counts = Counter(_state(t) for t in trials)
    repeats = duplicates(trials)
    ordered, seeds = ranked_trials(study, spec)
    best = ordered[:1]
    # A retried or re-queued trial's place went to its successor: count the work once.
    requeued = given_back(trials)
    finished = finished_in_budget(trials)
    remaining = max(0, spec.budget.n_trials - used_budget(trials))
    ages = (heartbeat_ages(study) or {}) if counts.get("RUNNING") else {}
    workers = [
        {"trial": t.number, "worker": t.user_attrs.get(WORKER),
         "host": (t.user_attrs.get(WORKER) or "?:?").rsplit(":", 1)[0],
         "pid": (t.user_attrs.get(WORKER) or "?:?").rsplit(":", 1)[1],
         "gpu": t.user_attrs.get(GPU),
         "seconds_since_heartbeat": round(ages[internals.trial_id(t)], 1)
         if internals.trial_id(t) in ages
         else None}
        for t in trials if _state(t) == "RUNNING"
    ]
    rate, eta = _throughput(trials, remaining + counts.get("RUNNING", 0),
                            live=bool(counts.get("RUNNING")))
    if not workers:  # the rate was that of workers that have stopped: nothing to count down
        eta = None
    end = deadline(trials, spec)
    seconds_left = None if end is None else \
        max(0.0, (end - _dt.datetime.now()).total_seconds())
    if seconds_left is not None and eta is not None:
        eta = min(eta, seconds_left)  # no trial starts after the wall time
    halted = study_halt(study, spec, trials)
    noise = noise_state(trials, spec)
    racing = _racing_state(trials, spec)
    return {
        "study": study.study_name,
        "metric": spec.primary.metric,
        "direction": spec.primary.resolved_direction,
        "budget": spec.budget.n_trials,
        "finished": finished,
        "states": {state: counts.get(state, 0) for state in STATES},
        # The best configuration's mean over its seeds, named by its first trial.
        "best_value": figure_of(best[0], seeds) if best else None,
        "best_trial": best[0].number if best else None,
        "best_seeds": seeds[best[0].number].n if best else None,
        "best_sd": seeds[best[0].number].sd if best else None,
        "configurations": len(seeds),
        "best_placement": describe_placement(best[0].user_attrs.get(PLACEMENT) or {})
        if best else None,
        "best_group": group_label(best[0], spec) if best else None,
        "remaining": remaining,
        "requeued": len(requeued),
        "duplicates": repeats,
        "workers": workers,
        "trials_per_hour": round(rate, 2) if rate is not None else None,
        "eta_seconds": round(eta) if eta is not None else None,
        "seconds_left": None if seconds_left is None else round(seconds_left),
        "stopped": None if halted is None else str(halted),
        # budget.stop_within_noise: the measured noise and how close the study is to stopping.
        "noise": None if noise is None else {**asdict(noise),
                                             "summary": noise.describe(spec.primary.metric)},
        "racing": racing,
    }


def _racing_state(trials: list[FrozenTrial], spec: StudySpec) -> dict[str, Any] | None:
    """Seed racing's progress: re-runs queued and finished, and the seeds behind the best
    (None without racing)."""
    if spec.racing is None:
        return None
    from sweep.search.racing import ranked

    reruns = [t for t in trials if SEED_OF in t.user_attrs]
    done = sum(_state(t) == "COMPLETE" for t in reruns)
    order = ranked(trials, spec)
    leader = order[0] if order else None
    summary = (f"seed racing: {len(reruns)} re-runs of leading configurations on further "
               f"seeds ({done} finished)")
    if leader is not None and leader.n > 1:
        summary += (f"; the best is the mean over {leader.n} seeds "
                    f"(sd {leader.sd:.4g})")
    return {"reruns": len(reruns), "finished": done,
            "best_seeds": None if leader is None else leader.n,
            "best_sd": None if leader is None else leader.sd, "summary": summary}


def export_rows(study: optuna.Study, spec: StudySpec | None = None) -> list[dict[str, Any]]:
    metrics = [item.metric for item in spec.objective] if spec is not None else []
    # study.user_attrs is a database read: once per export, not once per row (10,000 rows
    # took 15 s of round trips).
    links = study.user_attrs
    trials = study.get_trials(deepcopy=False)
    rows = [trial_row(t, links, metrics) for t in trials]
    # Trials and configurations apart: each row says which configuration it trained
    # (named by its first trial) and on which of its seeds.
    from sweep.search.grouping import configurations, seed_index

    named: dict[int, str] = {}
    for configuration in configurations(trials):
        for member in configuration.members:
            named[member.number] = configuration.name
    for trial, row in zip(trials, rows, strict=True):
        source = trial.user_attrs.get(DUPLICATE_OF)
        row["configuration"] = named.get(trial.number, named.get(source))
        row["seed_index"] = seed_index(trial)
    return rows


def list_studies(storage: Any) -> list[dict[str, Any]]:
    import optuna

    from sweep.storage.budget import finished_in_budget, given_back

    rows = []
    for name in optuna.get_all_study_names(storage):
        study = optuna.load_study(study_name=name, storage=storage)
        trials = study.get_trials(deepcopy=False)
        counts = Counter(_state(t) for t in trials)
        stored = study.user_attrs.get(SPEC) or {}
        budget = stored.get("budget", {}).get("n_trials")
        spec = _stored_spec(stored)
        if spec is not None:  # the best configuration, as `sweep best` names it
            from sweep.search.racing import ranked

            order = ranked(trials, spec)
            best = order[0].mean if order else None
        else:  # a study file this version cannot read: the best single value
            complete = [t for t in trials if _state(t) == "COMPLETE" and t.values]
            maximize = study.directions[0].name == "MAXIMIZE"
            best = (max if maximize else min)((t.values[0] for t in complete), default=None)
        requeued = len(given_back(trials))
        rows.append({
            "study": name, "trials": len(trials), "budget": budget,
            "finished": finished_in_budget(trials), "requeued": requeued,
            "complete": counts.get("COMPLETE", 0), "pruned": counts.get("PRUNED", 0),
            "fail": counts.get("FAIL", 0), "running": counts.get("RUNNING", 0),
            "direction": study.directions[0].name.lower(), "best_value": best,
        })
    return rows


def _stored_spec(stored: dict[str, Any]) -> StudySpec | None:
    """The stored spec, or None for one this version cannot read."""
    from sweep.spec import parse_spec

    try:
        return parse_spec(stored)
    except Exception:
        return None
