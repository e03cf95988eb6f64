"""What the study's MLflow run says about the study: its settings (params, written once
with the run) and a Markdown description (``{NOTE_TAG}``), renewed when the
study ends and after each ``sweep report``: the objective, the best trial with a link,
its effect against no regularization, and whether confirmation over seeds supports it.

No MLflow here: the tracker logs what these functions compute (``sweep.tracking.tracker``).
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from sweep.keys import (
    CONFIRM,
    CONFIRMATION_TAG,
    GPU_SECONDS,
    GPU_SECONDS_TOTAL,
    MLFLOW_PLACE,
    NOTE_TAG,
    STUDY_PARAM,
    STUDY_UID,
)
from sweep.spec import StudySpec
from sweep.study.identity import worker_name
from sweep.tracking.links import (
    run_path,
    runs_view_state,
    sorted_runs_query,
    view_state_key,
)
from sweep.tracking.tracker import StudyTracker

if TYPE_CHECKING:
    import optuna

log = logging.getLogger("sweep")



def settings_params(spec: StudySpec) -> dict[str, str]:
    """The study's settings that define it (none of the operational ones, which a resumed
    study may change: MLflow params are write-once)."""
    search = spec.search
    placement = search.placement
    placements = "mask" + (f" ({placement.mask})" if isinstance(placement.mask, str) else "") \
        if placement.mask else ", ".join(placement.choices or ())
    return {
        f"{STUDY_PARAM}objective": ", ".join(f"{o.metric} ({o.resolved_direction})"
                                     for o in spec.objective),
        f"{STUDY_PARAM}sampler": spec.sampler,
        f"{STUDY_PARAM}pruner": spec.pruner.name,
        f"{STUDY_PARAM}placements": placements,
        f"{STUDY_PARAM}targets": ", ".join(search.targets),
        f"{STUDY_PARAM}coefficients": search.coefficients,
        f"{STUDY_PARAM}data": spec.data.source,
        f"{STUDY_PARAM}epochs": str(spec.train.epochs),
        f"{STUDY_PARAM}seed": str(spec.seed),
    }


def verdict(confirmation: Any, trial_number: int | None) -> str | None:
    """Whether confirmation over seeds supports ``trial_number``'s configuration:
    ``"exceeds seed noise: yes (+0.012, p=0.003, 5 seeds)"``, or None if not confirmed."""
    if confirmation is None or trial_number is None:
        return None
    config = next((c for c in confirmation.configs if c.trial_number == trial_number), None)
    if config is None:
        return None
    comparison = confirmation.compare(config)
    if comparison is None:
        return "not comparable (no confirmed baseline, or too few seeds finished)"
    answer = "yes" if comparison.significant else "no"
    return (f"exceeds seed noise: {answer} ({confirmation.metric} "
            f"{comparison.difference:+.4f}, p={comparison.p_value:.2g}, "
            f"{len(config.seeds)} seeds)")


def confirmation_metrics(confirmation: Any) -> dict[str, float]:
    """Each confirmed configuration's result as metrics of the study run, so that the
    runs table shows them: ``confirm/<trial_N|baseline>/<metric>_mean`` and ``_std``, and
    against the baseline ``delta``, ``p_value`` and ``exceeds_noise`` (1 or 0)."""
    if confirmation is None:
        return {}
    metric = confirmation.metric
    found: dict[str, float] = {}
    for config in confirmation.configs:
        slug = "baseline" if config.baseline == "none" else f"trial_{config.trial_number}"
        mean, std = config.mean(metric), config.std(metric)
        if mean is not None:
            found[f"{CONFIRM}{slug}/{metric}_mean"] = float(mean)
        if std is not None:
            found[f"{CONFIRM}{slug}/{metric}_std"] = float(std)
        comparison = confirmation.compare(config)
        if comparison is not None:
            found[f"{CONFIRM}{slug}/delta"] = float(comparison.difference)
            found[f"{CONFIRM}{slug}/p_value"] = float(comparison.p_value)
            found[f"{CONFIRM}{slug}/exceeds_noise"] = 1.0 if comparison.significant else 0.0
    return found


def description(spec: StudySpec, *, trials: int, budget: int, best: Any | None,
                best_link: str | None, baseline: Any | None, confirmation: Any | None,
                report_path: str | None, registration: Any | None = None,
                seeds: dict[int, Any] | None = None, answer: str | None = None) -> str:
    """The study run's description, in Markdown, opening with ``answer`` (the study's
    one-sentence verdict, sweep.answers.headline) so that MLflow shows it without "Show
    more". ``seeds``: each configuration by the trial that names it
    (sweep.results.ranking.ranked_trials)."""
    seeds = seeds or {}
    primary = spec.primary
    data = spec.data
    lines = [f"**{answer}**" if answer else f"**regsweep study `{spec.name}`**", ""]
    if best is not None:
        name = f"configuration #{best.number}"
        linked = f"[{name}]({best_link})" if best_link else name
        mine = seeds.get(best.number)
        figure = mine.figure() if mine is not None else f"{best.values[0]:.4f}"
        lines.append(f"- Best on validation: {linked}, `{primary.metric}` = {figure}.")
        theirs = None if baseline is None else seeds.get(baseline.number)
        if baseline is not None and baseline.number != best.number and mine and theirs:
            lines.append(f"- Against no regularization (#{baseline.number}, "
                         f"{theirs.figure()}): {mine.mean - theirs.mean:+.4f} on validation.")
        found = verdict(confirmation, best.number)
        if found:
            lines.append(f"- Confirmation over seeds on the test split: {found}.")
    else:
        lines.append("- No trial has completed yet.")
    lines += [f"- Objective: {primary.resolved_direction} `{primary.metric}` on the "
              f"validation split ({data.validation_split:.0%} of the data); the test split "
              f"({data.test_split:.0%}) only evaluates.",
              f"- Trials: {trials} of a budget of {budget}, {len(seeds)} configurations "
              f"(sampler `{spec.sampler}`)."]
    if registration is not None and registration.model == spec.report.register:
        lines.append(f"- Model registry: {registration.line()}.")
    if report_path:
        lines.append(f"- The full report: artifacts, `{report_path}`.")
    return "\n".join(lines)


def publish(study: optuna.Study, spec: StudySpec, tracker: Any, *, confirmation: Any = None,
            report_path: str | None = None) -> None:
    """Write the settings and the current description on the study's run (``tracker``:
    a ``sweep.tracking.tracker.StudyTracker``)."""
    from sweep.answers.confirm import stored_confirmation
    from sweep.answers.headline import study_headline
    from sweep.answers.register import stored_registration
    from sweep.results.queries import baseline_trial, logged_run_id
    from sweep.results.ranking import ranked_trials
    from sweep.storage.budget import used_budget

    trials = study.get_trials(deepcopy=False)
    ranked, seeds = ranked_trials(study, spec)
    ranked = [] if spec.is_multi_objective else ranked
    best = ranked[0] if ranked else None
    run_id = None if best is None else logged_run_id(best, study.user_attrs)
    link = None
    if run_id is not None:
        # A link inside the MLflow UI, whatever address it is served at.
        link = run_path(tracker.experiment_id(), run_id)
    confirmation = confirmation if confirmation is not None else stored_confirmation(study)
    note = description(spec, trials=used_budget(trials), budget=spec.budget.n_trials,
                       best=best, best_link=link, baseline=baseline_trial(study, spec=spec),
                       confirmation=confirmation, report_path=report_path,
                       registration=stored_registration(study),
                       seeds=seeds, answer=study_headline(study, spec, confirmation))
    found = verdict(confirmation, None if best is None else best.number)
    gpu = [t.user_attrs[GPU_SECONDS] for t in trials if GPU_SECONDS in t.user_attrs]
    tracker.describe_study(settings_params(spec), {
        NOTE_TAG: note, CONFIRMATION_TAG: found or "not confirmed over seeds yet"},
        metrics={**confirmation_metrics(confirmation),
                 **({GPU_SECONDS_TOTAL: sum(gpu)} if gpu else {})})
    # Also above the experiment's runs table, the first thing the printed link shows.
    key, state = view_state_key(spec), runs_view_state(spec)
    tracker.describe_experiment(note, sorted_runs_query(spec),
                                (key, state) if key and state else None)
    remember_place(study, tracker)


def remember_place(study: optuna.Study, tracker: Any) -> None:
    """Record on the Optuna study where its MLflow runs are (see ``keys.MLFLOW_PLACE``)."""
    from sweep.redact import mask_url

    place = {"tracking": mask_url(tracker.tracking_uri),
             "experiment_id": tracker.experiment_id(), "study_run_id": tracker.parent_run_id()}
    if study.user_attrs.get(MLFLOW_PLACE) != place:
        study.set_user_attr(MLFLOW_PLACE, place)


def make_tracker(study: optuna.Study, spec: StudySpec, tracking_uri: str) -> StudyTracker:
    """The tracker of this process's runs, with the study's run opened and described."""
    tracker = StudyTracker(
        tracking_uri, experiment=spec.experiment_name, study_name=spec.name,
        study_uid=study.user_attrs[STUDY_UID], worker=worker_name(),
    )
    try:
        tracker.parent_run_id(spec.canonical())
    except Exception as error:  # MLflow down: trials spool their runs; sync links them
        log.warning("MLflow unreachable at start-up (%s); trial runs will be spooled",
                    type(error).__name__)
        return tracker
    describe_study(study, spec, tracker)
    return tracker


def describe_study(study: optuna.Study, spec: StudySpec, tracker: StudyTracker) -> None:
    """``publish``, never worth stopping a worker for."""
    try:
        publish(study, spec, tracker)
    except Exception as error:
        log.warning("could not describe the study's MLflow run: %s", type(error).__name__)
