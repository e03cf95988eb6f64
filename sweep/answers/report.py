"""``sweep report``: the seed article's comparison table, generated, and its pictures.

One row per placement: the completed trials grouped by where their penalties went (the
named placement, the baseline kind, or the set of regularized slots), each group shown
by its best trial *on the validation objective*: train, validation and test figures with
the data loss apart from the penalty, the generalization gap, the weight norm and
sparsity, the coefficients, the difference to the no-regularization baseline, and, when
the study holds a confirmation over seeds (``sweep.answers.confirm``), whether the gain exceeds
seed-to-seed noise.

This module assembles the report: its rows (``sweep.answers.rows``), tables
(``sweep.answers.tables``), pictures (``sweep.answers.plots``, drawn in a second process,
``sweep.answers.painter``) and renderings (``sweep.answers.render``),
written to a folder and logged on the study's MLflow run.
Nothing here imports TensorFlow, and MLflow is reached only through
:class:`sweep.tracking.tracker.StudyTracker`.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Callable, Mapping
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sweep.answers import plots
from sweep.answers.confirm import Confirmation, stored_confirmation
from sweep.answers.figure import Figure
from sweep.answers.painter import Job, Painter, Scene, paint, paint_history
from sweep.answers.register import stored_registration
from sweep.answers.render import to_html, to_markdown
from sweep.answers.rows import confirmation_rows, placement_groups, placement_rows
from sweep.answers.tables import (
    ARTIFACT_PATH,
    HTML_FILE,
    JSON_FILE,
    MARKDOWN_FILE,
    Report,
    confirmation_table,
    environment_rows,
    environment_table,
    placement_table,
    summary_lines,
)
from sweep.keys import BEST, DUPLICATE_OF, PLACEMENT, SEEDS_PREFIX, STUDY_UID
from sweep.placement.space import describe_placement
from sweep.results.queries import baseline_trial, logged_run_id
from sweep.results.ranking import ranked_trials, sorted_complete
from sweep.search.grouping import group_label
from sweep.spec import StudySpec

if TYPE_CHECKING:
    import optuna


# ------------------------------------------------------------------ the best, for MLflow
def best_for_tracking(study: optuna.Study, spec: StudySpec
                      ) -> tuple[dict[str, float], dict[str, str]]:
    """Metrics and params for the parent run, so that MLflow's runs table sorts studies by
    them: the best trial by the primary (validation) objective."""
    ordered, seeds = ranked_trials(study, spec)
    best = ordered[0]
    found = seeds[best.number]
    # The best configuration's mean over its seeds (the primary objective's figure; the
    # others, of a multi-objective study, as its first trial recorded them).
    metrics = {f"{BEST}{item.metric}": float(found.mean if i == 0 else best.values[i])
               for i, item in enumerate(spec.objective)}
    metrics[f"{BEST}trial_number"] = float(best.number)
    metrics[f"{BEST}{SEEDS_PREFIX}n"] = float(found.n)
    if found.sd is not None:
        metrics[f"{BEST}{SEEDS_PREFIX}sd"] = float(found.sd)
    params = {f"{BEST}{name}": str(value) for name, value in best.params.items()}
    # The group (named placement, baseline, slots) and what it applied, in words.
    params[f"{BEST}placement"] = group_label(best, spec)
    params[f"{BEST}resolved"] = describe_placement(best.user_attrs.get(PLACEMENT) or {})
    return metrics, params


# ------------------------------------------------------------------ weight curves
def _run_id(study: optuna.Study, trial: Any, by_number: Mapping[int, Any]) -> str | None:
    """The MLflow run that holds the trial's per-epoch curves: a trial that reused an
    earlier one's figures never trained, so the curves are the earlier trial's."""
    source = by_number.get(trial.user_attrs.get(DUPLICATE_OF), trial)
    return logged_run_id(source, study.user_attrs)


def curve_runs(study: optuna.Study, spec: StudySpec) -> tuple[list[tuple[str, str]], list[str]]:
    """(label, run id) of the best trial and of the no-regularization baseline, and the
    reasons for any that is missing."""
    by_number = {t.number: t for t in study.get_trials(deepcopy=False)}
    ranked = sorted_complete(study, spec)
    if not ranked:
        return [], ["no completed trial"]
    best, base = ranked[0], baseline_trial(study, spec=spec)
    wanted = [(f"best: configuration #{best.number} ({group_label(best, spec)})", best)]
    missing = []
    if base is None:
        missing.append("no completed no-regularization baseline to compare with")
    elif _run_id(study, base, by_number) == _run_id(study, best, by_number):
        wanted = [(f"best = no regularization: #{best.number}", best)]
    else:
        wanted.append((f"no regularization: #{base.number}", base))
    runs = []
    for label, trial in wanted:
        run_id = _run_id(study, trial, by_number)
        if run_id is None:
            missing.append(f"trial {trial.number} has no MLflow run (spooled? run `sweep sync`)")
        else:
            runs.append((label, run_id))
    return runs, missing


def weight_curves(study: optuna.Study, spec: StudySpec, tracker: Any | None
                  ) -> tuple[dict[str, dict[str, plots.Curve]], str | None]:
    if tracker is None:
        return {}, "no MLflow store"
    runs, missing = curve_runs(study, spec)
    curves: dict[str, dict[str, plots.Curve]] = {}
    for label, run_id in runs:
        try:
            found = tracker.weight_norm_curves(run_id, "l2")
        except Exception as error:  # run deleted, another store, server down
            missing.append(f"MLflow run {run_id} not readable ({type(error).__name__})")
            continue
        if found:
            curves[label] = found
        else:
            missing.append(f"MLflow run {run_id} has no per-epoch weight norms")
    return curves, "; ".join(missing) or None


# ------------------------------------------------------------------ the whole report
class Drawing:
    """The report's pictures, queued for the :class:`Painter`: those of the trials as soon
    as they are read, the placements and weight curves once the weight curves are read
    from MLflow (:meth:`finish`); collected in the report's order by :meth:`figures`."""

    def __init__(self, study: optuna.Study, spec: StudySpec, out: Path, painter: Painter) -> None:
        from sweep.answers.drawn import drawn

        out.mkdir(parents=True, exist_ok=True)
        self.spec, self.out, self.painter = spec, out, painter
        everything, sample, note = drawn(study, spec)
        name, directions = study.study_name, tuple(study.directions)
        self.sampled = painter.submit(paint, Scene(name, directions, sample.held, note,
                                                   spec, out))
        self.history = painter.submit(paint_history, Scene(name, directions,
                                                           everything.held, None, spec, out))
        self.rest: list[Job] = []

    def finish(self, study: optuna.Study, spec: StudySpec, tracker: Any | None) -> None:
        """Read what the placements and weight-curves pictures need of the study and of
        MLflow, and hand them to the painter."""
        groups = [(label, [c.mean for c in found])  # one point per configuration
                  for label, found in placement_groups(study, spec).items()]
        curves, missing = weight_curves(study, spec, tracker)
        self.rest = [self.painter.submit(plots.objective_by_placement, groups, spec, self.out),
                     self.painter.submit(plots.weight_curves, curves, self.out, missing)]

    def figures(self) -> list[Figure]:
        """Every picture, in the report's order. This process has nothing else to do by
        now: it draws what the painter has not begun, from the back of its queue, while
        the painter works from the front."""
        for job in reversed([self.sampled, self.history, *self.rest]):
            if job.steal():
                job.result()
        history, *pareto = self.history.result()
        box, weights = (job.result() for job in self.rest)
        return [history, box, *self.sampled.result(), *pareto, weights]


def build(study: optuna.Study, spec: StudySpec, out: Path, *, tracker: Any | None = None,
          confirmation: Confirmation | None = None, drawing: Drawing | None = None) -> Report:
    """Compute the tables, draw the pictures into ``out`` (``drawing``: already started;
    default: on a painter of its own) and write report.md, report.html and report.json
    there."""
    out.mkdir(parents=True, exist_ok=True)
    with contextlib.ExitStack() as stack:
        if drawing is None:
            drawing = Drawing(study, spec, out, stack.enter_context(Painter()))
        drawing.finish(study, spec, tracker)
        if confirmation is None:
            confirmation = stored_confirmation(study)
        rows = placement_rows(study, spec, confirmation)
        tables = [placement_table(rows, spec)]
        data: dict[str, Any] = {"study": study.study_name, "placements": rows}
        if confirmation is not None:
            confirmed = confirmation_rows(confirmation, spec.primary.metric)
            tables.append(confirmation_table(confirmed, confirmation, spec.primary.metric))
            data["confirmation"] = confirmed
        environments = environment_rows(study)
        if environments:
            tables.append(environment_table(environments))
        data["environments"] = environments
        registration = stored_registration(study)
        if registration is not None:
            data["registration"] = asdict(registration)
        summary = tuple(summary_lines(study, spec, confirmation))
        figures = drawing.figures()
    for figure in figures:  # an earlier report's picture must not pass for this one's
        if figure.skipped:
            (out / f"{figure.name}.png").unlink(missing_ok=True)
    # The charts are in report.html; the record says what was drawn and why not.
    data["figures"] = [{k: v for k, v in asdict(figure).items() if k != "chart"}
                       for figure in figures]
    report = Report(study.study_name, summary, tuple(tables), tuple(figures), data)
    (out / MARKDOWN_FILE).write_text(to_markdown(report))
    (out / HTML_FILE).write_text(to_html(report, out))
    (out / JSON_FILE).write_text(json.dumps(data, indent=2, default=str) + "\n")
    return report


def publish(report: Report, study: optuna.Study, spec: StudySpec, out: Path, tracker: Any
            ) -> list[str]:
    """Log the best trial's values and the report folder on the study's parent run.
    Returns the ``best/*`` params MLflow kept from an earlier report (see log_best)."""
    from sweep.answers import note as study_note
    from sweep.answers.runs_view import publish_ranking

    metrics, params = best_for_tracking(study, spec)
    tracker.parent_run_id(spec.canonical())  # a run created now gets the spec, as workers do
    stale = tracker.log_best(metrics, params)
    tracker.log_report_files([out / name for name in report.files], ARTIFACT_PATH)
    study_note.publish(study, spec, tracker, report_path=f"{ARTIFACT_PATH}/report.html")
    publish_ranking(study, spec, tracker)  # the runs view in the ranking's final order
    return stale




def make_report(study: optuna.Study, spec: StudySpec, tracking_uri: str, out: Path, *,
                confirm: bool | None = None, show_progress: bool = True,
                show: Callable[[Report], None] | None = None,
                painter: Painter | None = None) -> tuple[Report, list[str]]:
    """The whole of `sweep report`: confirm over seeds first when asked (default:
    ``report.confirm_top > 0``; the only step that loads TensorFlow), write the report
    into ``out``, ``show`` it, and log it on the study's MLflow run. Returns the report and
    the ``best/*`` params MLflow kept from an earlier report. ``painter``: one started
    earlier by the caller (default: one of its own, started first)."""
    import optuna

    from sweep.answers.confirm import confirm_stoppable
    from sweep.errors import FatalError, describe_failure
    from sweep.redact import mask_url
    from sweep.tracking.tracker import StudyTracker

    with contextlib.ExitStack() as stack:
        if painter is None:  # started first: it imports while the study is read
            painter = stack.enter_context(Painter())
        complete = study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))
        if not complete:
            raise FatalError(f"study '{spec.name}' has no completed trial, so there is nothing "
                             f"to compare yet (`sweep status {spec.name}` shows its trials)")
        if confirm is None:
            confirm = spec.report.confirm_top > 0
        confirmation = confirm_stoppable(study, spec, tracking_uri=tracking_uri,
                                         show_progress=show_progress) if confirm else None
        drawing = Drawing(study, spec, out, painter)  # drawn while MLflow loads here
        tracker = StudyTracker(tracking_uri, experiment=spec.experiment_name,
                               study_name=spec.name, study_uid=study.user_attrs[STUDY_UID],
                               worker="sweep-report")
        failed_registration = None
        if spec.report.register:
            from sweep.answers.register import register_winner

            try:
                register_winner(study, spec, confirmation or stored_confirmation(study), tracker)
            except Exception as error:  # the report is still worth writing; said at the end
                failed_registration = describe_failure(error, 300)
        built = build(study, spec, out, tracker=tracker, confirmation=confirmation,
                      drawing=drawing)
    if show is not None:
        show(built)
    try:
        stale = publish(built, study, spec, out, tracker)
    except Exception as error:  # the files are written; say where they did not go
        # MLflow's message quotes the URL it failed on, password and all.
        raise FatalError(f"report written to {out}/ but not logged to MLflow at "
                         f"{mask_url(tracking_uri)}: {describe_failure(error, 300)}") from None
    if failed_registration is not None:
        raise FatalError(f"report written to {out}/, but registering model "
                         f"'{spec.report.register}' failed: {failed_registration}")
    return built, stale
