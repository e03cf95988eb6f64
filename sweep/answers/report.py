"""``sweep report``: the seed article's comparison table, generated, and its pictures.

One row per placement: the completed trials grouped by where their penalties went (the
named placement, the baseline kind, or the set of regularized slots), each group shown
by its best trial *on the validation objective*: train, validation and test figures with
the data loss apart from the penalty, the generalization gap, the weight norm and
sparsity, the coefficients, the difference to the no-regularization baseline, and, when
the study holds a confirmation over seeds (``sweep.answers.confirm``), whether the gain exceeds
seed-to-seed noise.

The table builders are pure functions of the study; the renderers turn the same
:class:`Table` objects into a terminal table (rich), Markdown and HTML. Nothing here
imports TensorFlow, and MLflow is reached only through :class:`sweep.tracking.tracker.StudyTracker`.
"""

from __future__ import annotations

import base64
import html
import json
import math
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from sweep.answers import plots
from sweep.answers.confirm import Confirmation, ConfirmedConfig, stored_confirmation
from sweep.placement.space import BASELINE_NONE, describe_placement
from sweep.spec import GAP_PREFIX, StudySpec
from sweep.study.create import BASELINE_ATTR
from sweep.study.results import baseline_trial, logged_run_id, pareto_front, sorted_complete

ARTIFACT_PATH = "report"  # folder of the report on the study's parent MLflow run
MARKDOWN_FILE = "report.md"
HTML_FILE = "report.html"
JSON_FILE = "report.json"
# The final figures a row shows, in the seed article's order, with their headers.
FIGURES = (
    ("final/train_data_loss", "train data loss"),
    ("final/train_accuracy", "train acc"),
    ("final/val_data_loss", "val data loss"),
    ("final/val_accuracy", "val acc"),
    ("final/test_data_loss", "test data loss"),
    ("final/test_accuracy", "test acc"),
    ("final/penalty_total", "penalty"),
)
WEIGHT_FIGURES = (
    ("final/weights_l2_total", "‖w‖₂ total"),
    ("final/weights_sparsity", "sparsity"),
)
_COEFFICIENT = re.compile(r"^(l1|l2)(/.+)?$")  # shared `l1`, per-layer `l2/dense_1`


@dataclass(frozen=True)
class Table:
    title: str
    headers: tuple[str, ...]
    rows: tuple[tuple[str, ...], ...]
    notes: tuple[str, ...] = ()


@dataclass(frozen=True)
class Report:
    study_name: str
    summary: tuple[str, ...]
    tables: tuple[Table, ...]
    figures: tuple[plots.Figure, ...] = ()
    # Machine-readable: the rows behind the tables (also written as report.json).
    data: dict[str, Any] = field(default_factory=dict)

    @property
    def files(self) -> list[str]:
        """The files of the report, relative to its folder."""
        drawn = [f.png for f in self.figures if f.png]
        return [MARKDOWN_FILE, HTML_FILE, JSON_FILE, *drawn]


# ------------------------------------------------------------------ grouping
def group_label(trial: Any, spec: StudySpec) -> str:
    """Which placement a trial belongs to: its baseline kind, the named placement it
    drew, or (mask search) the set of slots it regularized."""
    baseline = trial.user_attrs.get(BASELINE_ATTR)
    if baseline:
        return f"{baseline} (baseline)"
    if trial.user_attrs.get("placement") == {}:
        # No penalty anywhere (placement `none`, both coefficients off): the same model
        # as the no-regularization baseline, so one row, not the same trial twice.
        return f"{BASELINE_NONE} (baseline)"
    if "placement" in trial.params:
        return str(trial.params["placement"])
    choices = spec.search.placement.choices
    if choices is not None and len(choices) == 1:  # a fixed placement is not a parameter
        return choices[0]
    placement = trial.user_attrs.get("placement") or {}
    return "+".join(placement) if placement else "none"


def placement_groups(study: Any, spec: StudySpec) -> dict[str, list[Any]]:
    """Completed trials by placement; groups and their trials best first on the primary
    (validation) objective, the order ``sweep best`` uses."""
    groups: dict[str, list[Any]] = {}
    for trial in sorted_complete(study, spec):
        groups.setdefault(group_label(trial, spec), []).append(trial)
    return groups


# ------------------------------------------------------------------ rows
def placement_rows(study: Any, spec: StudySpec,
                   confirmation: Confirmation | None = None) -> list[dict[str, Any]]:
    """One record per placement group: its best trial's own figures (the numbers are the
    trial's user attrs, unrounded). ``confirmation`` defaults to the one stored in the
    study."""
    if confirmation is None:
        confirmation = stored_confirmation(study)
    baseline = baseline_trial(study)
    rows = []
    for label, trials in placement_groups(study, spec).items():
        best = trials[0]
        row: dict[str, Any] = {
            "placement": label,
            "trials": len(trials),
            "trial": best.number,
            "baseline": best.user_attrs.get(BASELINE_ATTR),
            "value": best.values[0],
            "vs_no_reg": None if baseline is None else best.values[0] - baseline.values[0],
            "baseline_trial": None if baseline is None else baseline.number,
        }
        if spec.is_multi_objective:
            row.update({f"value:{item.metric}": best.values[i]
                        for i, item in enumerate(spec.objective)})
        row.update({key: best.user_attrs[key] for key, _ in FIGURES + WEIGHT_FIGURES
                    if key in best.user_attrs})
        row["gap"] = generalization_gap(best.user_attrs)
        row["coefficients"] = coefficients(best)
        row["resolved"] = describe_placement(best.user_attrs.get("placement") or {})
        row["duplicate_of"] = best.user_attrs.get("duplicate_of")
        row.update(_confirmed(confirmation, best))
        rows.append(row)
    return rows


def generalization_gap(attrs: Mapping[str, Any]) -> float | None:
    """train − validation accuracy (classification), else validation − train data loss:
    positive means the model fits its training data better than unseen data."""
    if "final/train_accuracy" in attrs and "final/val_accuracy" in attrs:
        return attrs["final/train_accuracy"] - attrs["final/val_accuracy"]
    if "final/train_data_loss" in attrs and "final/val_data_loss" in attrs:
        return attrs["final/val_data_loss"] - attrs["final/train_data_loss"]
    return None


def coefficients(trial: Any) -> dict[str, float]:
    """The searched coefficients (``l1``, ``l2/dense``, ...), or, for a trial that searched
    none (a baseline, fixed coefficients), the ones its resolved placement applied."""
    searched = {name: float(value) for name, value in trial.params.items()
                if _COEFFICIENT.match(name)}
    if searched:
        return dict(sorted(searched.items()))
    return placement_coefficients(trial.user_attrs.get("placement") or {})


def placement_coefficients(placement: Mapping[str, Any]) -> dict[str, float]:
    """``{kind: value}`` when every regularized layer has the same value of that kind,
    else ``{kind/layer: value}``."""
    per_kind: dict[str, dict[str, float]] = {}
    for layer, targets in placement.items():
        for kinds in targets.values():
            for kind, value in kinds.items():
                per_kind.setdefault(kind, {})[layer] = float(value)
    out: dict[str, float] = {}
    for kind in sorted(per_kind):
        values = per_kind[kind]
        if len(set(values.values())) == 1:
            out[kind] = next(iter(values.values()))
        else:
            out.update({f"{kind}/{layer}": value for layer, value in values.items()})
    return out


def _config_for(confirmation: Confirmation, trial: Any) -> ConfirmedConfig | None:
    """The confirmed configuration that re-trained this trial's model: the same trial,
    the same baseline kind, or (a duplicate, another group's name) the same placement."""
    placement = trial.user_attrs.get("placement") or {}
    kind = trial.user_attrs.get(BASELINE_ATTR)
    for matches in (lambda c: c.trial_number == trial.number,
                    lambda c: kind is not None and c.baseline == kind,
                    lambda c: c.placement == placement):
        found = next((c for c in confirmation.configs if matches(c)), None)
        if found is not None:
            return found
    return None


def _confirmed(confirmation: Confirmation | None, trial: Any) -> dict[str, Any]:
    if confirmation is None:
        return {"confirmed": None}
    config = _config_for(confirmation, trial)
    if config is None:
        return {"confirmed": None}
    metric = confirmation.metric
    comparison = confirmation.compare(config)
    return {
        "confirmed": config.label,
        "confirmed_metric": metric,
        "confirmed_n": len(config.values(metric)),
        "confirmed_mean": config.mean(metric),
        "confirmed_std": config.std(metric),
        "confirmed_is_baseline": config is confirmation.baseline,
        "difference": None if comparison is None else comparison.difference,
        "ci_low": None if comparison is None else comparison.ci_low,
        "ci_high": None if comparison is None else comparison.ci_high,
        "p_value": None if comparison is None else comparison.p_value,
        "significant": None if comparison is None else comparison.significant,
    }


def confirmation_rows(confirmation: Confirmation,
                      val_metric: str = "val_accuracy") -> list[dict[str, Any]]:
    """One record per re-trained configuration (the baseline first): mean and standard
    deviation over seeds of the test figures and ``val_metric``, and the difference to
    the no-regularization baseline on the confirmation's metric with its 95 % interval."""
    names = _unique(["test_accuracy", "test_data_loss", confirmation.metric, val_metric])
    rows = []
    for config in confirmation.configs:
        comparison = confirmation.compare(config)
        row: dict[str, Any] = {
            "label": config.label,
            "trial": config.trial_number,
            "baseline": config.baseline,
            "placement": describe_placement(config.placement),
            "seeds": len(config.seeds),
            "is_baseline": config is confirmation.baseline,
        }
        for name in names:
            if config.values(name):
                row[f"{name}_n"] = len(config.values(name))
                row[f"{name}_mean"] = config.mean(name)
                row[f"{name}_std"] = config.std(name)
        row.update({
            "metric": confirmation.metric,
            "difference": None if comparison is None else comparison.difference,
            "ci_low": None if comparison is None else comparison.ci_low,
            "ci_high": None if comparison is None else comparison.ci_high,
            "p_value": None if comparison is None else comparison.p_value,
            "significant": None if comparison is None else comparison.significant,
        })
        rows.append(row)
    return rows


def _unique(items: Iterable[str]) -> list[str]:
    out: list[str] = []
    for item in items:
        if item not in out:
            out.append(item)
    return out


# ------------------------------------------------------------------ formatting
def fmt(value: Any, *, signed: bool = False) -> str:
    """Numbers as the CLI shows them (4 significant digits); missing as '–'."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:+.4g}" if signed else f"{value:.4g}"
    return str(value)


def number_format(values: Iterable[Any], *, signed: bool = False,
                  like: Iterable[Any] | None = None) -> Callable[[Any], str]:
    """One format for a whole column: as many decimals as give its largest magnitude 4
    significant digits (``0.9666``, ``12.34``), scientific below 0.001, so that the
    digits of a column line up and compare. ``like``: the values whose precision to use
    (a difference takes the precision of the quantity it is a difference of)."""
    numbers = [abs(v) for v in (values if like is None else like)
               if isinstance(v, float | int) and not isinstance(v, bool) and math.isfinite(v)]
    largest = max(numbers, default=0.0)
    sign = "+" if signed else ""
    if 0 < largest < 1e-3:
        spec = f"{sign}.2e"
    else:
        decimals = 4 if largest == 0 else min(6, max(0, 3 - math.floor(math.log10(largest))))
        spec = f"{sign}.{decimals}f"

    def format_one(value: Any) -> str:
        if isinstance(value, float | int) and not isinstance(value, bool) \
                and math.isfinite(value):
            return format(value, spec)
        return fmt(value)
    return format_one


def fmt_coefficients(values: Mapping[str, float]) -> str:
    return ", ".join(f"{name}={value:.2e}" for name, value in values.items()) or "–"


def fmt_mean_std(mean: float | None, std: float | None, n: int | None = None,
                 number: Callable[[Any], str] = fmt) -> str:
    if mean is None:
        return "–"
    text = f"{number(mean)} ± {number(std)}" if std is not None else number(mean)
    return f"{text} (n={n})" if n is not None else text


def fmt_verdict(significant: bool | None, p_value: float | None, is_baseline: bool) -> str:
    if is_baseline:
        return "baseline"
    if significant is None:
        return "–"
    return f"{'yes' if significant else 'no'} (p={p_value:.2g})"


# ------------------------------------------------------------------ tables
def _objective_key(metric: str, classification: bool) -> str | None:
    """The row key that already shows an objective, if any."""
    if metric.startswith("val_"):
        return f"final/{metric}"
    if metric in ("penalty/total", "weights/l2_total"):
        return "final/" + metric.replace("/", "_")
    if metric.startswith(GAP_PREFIX):
        shown = "accuracy" if classification else "data_loss"
        return "gap" if metric == GAP_PREFIX + shown else None
    return None


def placement_table(rows: Sequence[Mapping[str, Any]], spec: StudySpec) -> Table:
    primary = spec.primary.metric
    classification = spec.train.is_classification
    columns: list[tuple[str, str]] = []  # (row key, header)
    for index, item in enumerate(spec.objective):
        key = _objective_key(item.metric, classification)
        if key is None or not any(key in row for row in rows):
            value_key = f"value:{item.metric}" if spec.is_multi_objective else "value"
            columns.append((value_key, item.metric if index else f"{item.metric} (objective)"))
    columns += [(key, header) for key, header in FIGURES if any(key in r for r in rows)]
    gap = "gap (train − val acc)" if any("final/train_accuracy" in r for r in rows) else \
        "gap (val − train data loss)"
    columns.append(("gap", gap))
    columns += [(key, header) for key, header in WEIGHT_FIGURES if any(key in r for r in rows)]
    confirmed = any(row.get("confirmed") for row in rows)
    metric = next((row["confirmed_metric"] for row in rows if row.get("confirmed")), "")
    headers = ("placement", "trials", "best trial", f"Δ {primary} vs no-reg",
               *(header for _, header in columns), "coefficients",
               *((f"confirmed {metric} (mean ± std)", "exceeds noise") if confirmed else ()))
    formats = {key: number_format(row.get(key) for row in rows) for key, _ in columns}
    delta = number_format((row["vs_no_reg"] for row in rows), signed=True,
                          like=[row["value"] for row in rows])
    body = []
    confirmed_format = number_format(row.get("confirmed_mean") for row in rows)
    for row in rows:
        cells = [row["placement"], str(row["trials"]), _trial_cell(row),
                 delta(row["vs_no_reg"])]
        cells += [formats[key](row.get(key)) for key, _ in columns]
        cells.append(fmt_coefficients(row["coefficients"]))
        if confirmed:
            cells += _confirmed_cells(row, confirmed_format)
        body.append(tuple(cells))
    return Table(f"Comparison per placement (best trial of each by {primary})",
                 headers, tuple(body), tuple(_placement_notes(rows, spec)))


def _trial_cell(row: Mapping[str, Any]) -> str:
    if row.get("duplicate_of") is not None:  # trained once, reused: say by whom
        return f"{row['trial']} (= {row['duplicate_of']})"
    return str(row["trial"])


def _confirmed_cells(row: Mapping[str, Any], number: Callable[[Any], str]) -> list[str]:
    if not row.get("confirmed"):
        return ["–", "–"]
    return [fmt_mean_std(row["confirmed_mean"], row["confirmed_std"], row["confirmed_n"],
                         number),
            fmt_verdict(row["significant"], row["p_value"], row["confirmed_is_baseline"])]


def _placement_notes(rows: Sequence[Mapping[str, Any]], spec: StudySpec) -> list[str]:
    primary = spec.primary.metric
    notes = [
        f"Each row is the best completed trial of its placement by {primary} on the "
        "validation split; test figures are shown, never used to choose.",
        "data loss: the loss without the penalty; penalty: the regularization terms Keras "
        "adds to the loss (Keras' own loss = data loss + penalty).",
        "gap: how much better the model does on its training data than on validation data "
        "(positive: overfitting).",
        "‖w‖₂ total: L2 norm of all kernels; sparsity: share of weights with |w| below "
        f"{spec.tracking.sparsity_threshold:g}.",
    ]
    if rows and rows[0]["baseline_trial"] is None:
        notes.append("No completed no-regularization trial: the Δ column is empty.")
    else:
        notes.append(f"Δ vs no-reg: {primary} minus that of the no-regularization trial "
                     f"#{rows[0]['baseline_trial'] if rows else '?'}.")
    reused = next((row for row in rows if row.get("duplicate_of") is not None), None)
    if reused is not None:
        notes.append(f"best trial '{_trial_cell(reused)}': trial {reused['trial']} drew the "
                     f"same model as trial {reused['duplicate_of']} and reused its figures "
                     "instead of training again.")
    if any(row.get("confirmed") for row in rows):
        notes.append("confirmed: the configuration re-trained over fresh seeds, evaluated once "
                     "on the test split; exceeds noise: better than no regularization by "
                     "a paired t-test over the shared seeds at p < 0.05.")
    return notes


def confirmation_table(rows: Sequence[Mapping[str, Any]], confirmation: Confirmation,
                       val_metric: str) -> Table:
    metric = confirmation.metric
    names = _unique(["test_accuracy", "test_data_loss", metric, val_metric])
    names = [n for n in names if any(f"{n}_mean" in row for row in rows)]
    headers = ("configuration", "trial", "seeds", *(f"{n} (mean ± std)" for n in names),
               f"Δ {metric} vs no-reg [95% CI]", "p", "exceeds noise")
    formats = {n: number_format(row.get(f"{n}_mean") for row in rows) for n in names}
    delta = number_format((), signed=True, like=[row.get(f"{metric}_mean") for row in rows])
    body = []
    for row in rows:
        cells = [row["label"], fmt(row["trial"]), str(row["seeds"])]
        cells += [fmt_mean_std(row.get(f"{n}_mean"), row.get(f"{n}_std"), number=formats[n])
                  for n in names]
        if row["difference"] is None:
            cells += ["–", "–"]
        else:
            cells += [f"{delta(row['difference'])} [{delta(row['ci_low'])}, "
                      f"{delta(row['ci_high'])}]", f"{row['p_value']:.2g}"]
        cells.append(fmt_verdict(row["significant"], row["p_value"], row["is_baseline"]))
        body.append(tuple(cells))
    seeds = max((row["seeds"] for row in rows), default=0)
    notes = (f"Each configuration re-trained over {seeds} seeds that no trial used; "
             f"Δ: mean {metric} minus the no-regularization baseline's; every configuration "
             "gets the same seeds, so p is a paired t-test of the per-seed differences.",)
    return Table(f"Confirmation over seeds ({metric})", headers, tuple(body), notes)


def summary_lines(study: Any, spec: StudySpec) -> list[str]:
    from collections import Counter

    counts = Counter(t.state.name for t in study.get_trials(deepcopy=False))
    ranked = sorted_complete(study, spec)
    primary = spec.primary
    lines = [
        f"{sum(counts.values())} trials: {counts.get('COMPLETE', 0)} complete, "
        f"{counts.get('PRUNED', 0)} pruned, {counts.get('FAIL', 0)} failed, "
        f"{counts.get('RUNNING', 0) + counts.get('WAITING', 0)} running or waiting.",
        f"Chosen on {primary.metric} ({primary.resolved_direction}) over the validation "
        "split; the test split only evaluates.",
    ]
    if ranked:
        best = ranked[0]
        label = group_label(best, spec)
        resolved = describe_placement(best.user_attrs.get("placement") or {})
        lines.append(f"Best trial: #{best.number}, {primary.metric} = {best.values[0]:.4g}, "
                     f"placement {label}" + ("" if resolved == label else f": {resolved}") + ".")
    base = baseline_trial(study)
    lines.append("No completed no-regularization trial." if base is None else
                 f"No-regularization baseline: trial #{base.number}, {primary.metric} = "
                 f"{base.values[0]:.4g}.")
    if spec.is_multi_objective and ranked:
        front = ", ".join(str(t.number) for t in pareto_front(study, spec))
        metrics = ", ".join(item.metric for item in spec.objective)
        lines.append(f"Pareto front of {metrics}: trials {front}.")
    return lines


# ------------------------------------------------------------------ the best, for MLflow
def best_for_tracking(study: Any, spec: StudySpec) -> tuple[dict[str, float], dict[str, str]]:
    """Metrics and params for the parent run, so that MLflow's runs table sorts studies by
    them: the best trial by the primary (validation) objective."""
    best = sorted_complete(study, spec)[0]
    metrics = {f"best/{item.metric}": float(best.values[i])
               for i, item in enumerate(spec.objective)}
    metrics["best/trial_number"] = float(best.number)
    params = {f"best/{name}": str(value) for name, value in best.params.items()}
    # The group (named placement, baseline, slots) and what it applied, in words.
    params["best/placement"] = group_label(best, spec)
    params["best/resolved"] = describe_placement(best.user_attrs.get("placement") or {})
    return metrics, params


# ------------------------------------------------------------------ weight curves
def _run_id(study: Any, trial: Any, by_number: Mapping[int, Any]) -> str | None:
    """The MLflow run that holds the trial's per-epoch curves: a trial that reused an
    earlier one's figures never trained, so the curves are the earlier trial's."""
    source = by_number.get(trial.user_attrs.get("duplicate_of"), trial)
    return logged_run_id(source, study.user_attrs)


def curve_runs(study: Any, spec: StudySpec) -> tuple[list[tuple[str, str]], list[str]]:
    """(label, run id) of the best trial and of the no-regularization baseline, and the
    reasons for any that is missing."""
    by_number = {t.number: t for t in study.get_trials(deepcopy=False)}
    ranked = sorted_complete(study, spec)
    if not ranked:
        return [], ["no completed trial"]
    best, base = ranked[0], baseline_trial(study)
    wanted = [(f"best: trial {best.number} ({group_label(best, spec)})", best)]
    missing = []
    if base is None:
        missing.append("no completed no-regularization baseline to compare with")
    elif _run_id(study, base, by_number) == _run_id(study, best, by_number):
        wanted = [(f"best = no regularization: trial {best.number}", best)]
    else:
        wanted.append((f"no regularization: trial {base.number}", base))
    runs = []
    for label, trial in wanted:
        run_id = _run_id(study, trial, by_number)
        if run_id is None:
            missing.append(f"trial {trial.number} has no MLflow run (spooled? run `sweep sync`)")
        else:
            runs.append((label, run_id))
    return runs, missing


def weight_curves(study: Any, spec: StudySpec, tracker: Any | None
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
def build(study: Any, spec: StudySpec, out: Path, *, tracker: Any | None = None,
          confirmation: Confirmation | None = None) -> Report:
    """Compute the tables, draw the pictures into ``out`` and write report.md,
    report.html and report.json there."""
    out.mkdir(parents=True, exist_ok=True)
    if confirmation is None:
        confirmation = stored_confirmation(study)
    rows = placement_rows(study, spec, confirmation)
    tables = [placement_table(rows, spec)]
    data: dict[str, Any] = {"study": study.study_name, "placements": rows}
    if confirmation is not None:
        confirmed = confirmation_rows(confirmation, spec.primary.metric)
        tables.append(confirmation_table(confirmed, confirmation, spec.primary.metric))
        data["confirmation"] = confirmed
    figures = draw(study, spec, out, tracker)
    for figure in figures:  # an earlier report's picture must not pass for this one's
        if figure.skipped:
            (out / f"{figure.name}.png").unlink(missing_ok=True)
    # The charts are in report.html; the record says what was drawn and why not.
    data["figures"] = [{k: v for k, v in asdict(figure).items() if k != "chart"}
                       for figure in figures]
    report = Report(study.study_name, tuple(summary_lines(study, spec)), tuple(tables),
                    tuple(figures), data)
    (out / MARKDOWN_FILE).write_text(to_markdown(report))
    (out / HTML_FILE).write_text(to_html(report, out))
    (out / JSON_FILE).write_text(json.dumps(data, indent=2, default=str) + "\n")
    return report


def draw(study: Any, spec: StudySpec, out: Path, tracker: Any | None) -> list[plots.Figure]:
    groups = [(label, [t.values[0] for t in trials])
              for label, trials in placement_groups(study, spec).items()]
    figures = [
        plots.optimization_history(study, spec, out),
        plots.objective_by_placement(groups, spec, out),
        plots.param_importances(study, spec, out),
        plots.parallel_coordinates(study, spec, out),
        plots.coefficient_slices(study, spec, out),
    ]
    if spec.is_multi_objective:
        figures.append(plots.pareto_front(study, spec, out))
    curves, missing = weight_curves(study, spec, tracker)
    figures.append(plots.weight_curves(curves, out, missing=missing))
    return figures


def publish(report: Report, study: Any, spec: StudySpec, out: Path, tracker: Any) -> list[str]:
    """Log the best trial's values and the report folder on the study's parent run.
    Returns the ``best/*`` params MLflow kept from an earlier report (see log_best)."""
    from sweep.answers import note as study_note

    metrics, params = best_for_tracking(study, spec)
    tracker.parent_run_id(spec.canonical())  # a run created now gets the spec, as workers do
    stale = tracker.log_best(metrics, params)
    tracker.log_report_files([out / name for name in report.files], ARTIFACT_PATH)
    study_note.publish(study, spec, tracker, report_path=f"{ARTIFACT_PATH}/report.html")
    return stale


# ------------------------------------------------------------------ renderers
def _md_cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def markdown_table(table: Table) -> str:
    lines = ["| " + " | ".join(_md_cell(h) for h in table.headers) + " |",
             # Labels left, numbers right, as in the terminal.
             "| --- |" + "".join(" ---: |" for _ in table.headers[1:])]
    lines += ["| " + " | ".join(_md_cell(c) for c in row) + " |" for row in table.rows]
    return "\n".join(lines)


def to_markdown(report: Report) -> str:
    parts = [f"# Study `{report.study_name}`: where the penalties belong", ""]
    parts += [f"- {line}" for line in report.summary] + [""]
    for table in report.tables:
        parts += [f"## {table.title}", "", markdown_table(table), ""]
        parts += [f"- {note}" for note in table.notes] + [""]
    parts += ["## Figures", ""]
    for figure in report.figures:
        parts += [f"### {figure.title}", ""]
        if figure.skipped:
            parts += [f"_Skipped: {figure.skipped}._", ""]
            continue
        parts += [f"![{figure.title}]({figure.png})", "",
                  f"[interactive version]({HTML_FILE}#{figure.name})", ""]
        if figure.note:
            parts += [f"_{figure.note}._", ""]
    return "\n".join(parts)


# The page fits a 1280-px window: headers and text cells wrap between words, figures
# keep to one line per number (no-break), the widest table scrolls inside itself rather
# than widening the page.
_CSS = """
body { font-family: system-ui, sans-serif; margin: 1.5em auto; max-width: 1240px;
       color: #222; padding: 0 1em; }
.table-wrap { overflow-x: auto; }
table { border-collapse: collapse; margin: 1em 0; font-size: 0.8em; }
th, td { border: 1px solid #ccc; padding: 0.2em 0.35em; text-align: right;
         vertical-align: top; }
th { background: #f0f0f0; font-weight: 600; }
td { font-variant-numeric: tabular-nums; }
td:first-child, th:first-child { text-align: left; }
tr:nth-child(even) td { background: #fafafa; }
.notes, .skipped, .note { color: #555; font-size: 0.9em; }
figure { margin: 1.5em 0; }
figure img { max-width: 100%; border: 1px solid #ddd; }
.nb { white-space: nowrap; }
.chart { width: 100%; min-height: 450px; border: 1px solid #ddd; }
"""


def _data_uri(path: Path) -> str:
    return "data:image/png;base64," + base64.b64encode(path.read_bytes()).decode()


def _html_cell(text: str) -> str:
    """A cell wraps only between the words of its text: a number with a sign and its
    interval, ``0.958 ± 0.008`` and ``yes (p=0.035)`` keep each token whole."""
    return " ".join(f"<span class='nb'>{html.escape(word)}</span>"
                    if any(ch.isdigit() for ch in word) else html.escape(word)
                    for word in text.split(" "))


def html_table(table: Table) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in table.headers)
    body = "".join("<tr>" + "".join(f"<td>{_html_cell(c)}</td>" for c in row) + "</tr>"
                   for row in table.rows)
    return (f"<div class='table-wrap'><table><thead><tr>{head}</tr></thead>"
            f"<tbody>{body}</tbody></table></div>")


def to_html(report: Report, folder: Path | None = None) -> str:
    """One self-contained page: no file, script or style from elsewhere, so it works
    offline and in MLflow's artifact preview (a ``blob:`` URL, where relative links do
    not resolve). plotly.js is embedded once for every chart; each chart's PNG (from
    ``folder``) stands in for it where scripts do not run."""
    esc = html.escape
    charts = [figure for figure in report.figures if figure.chart]
    parts = ["<!DOCTYPE html>", "<html><head><meta charset='utf-8'>",
             "<meta name='viewport' content='width=device-width, initial-scale=1'>",
             f"<title>{esc(report.study_name)}: report</title>",
             f"<style>{_CSS}</style>"]
    if charts:
        parts.append(f"<script type='text/javascript'>{plots.plotly_js()}</script>")
    parts += ["</head><body>",
              f"<h1>Study <code>{esc(report.study_name)}</code>: where the penalties belong</h1>",
              "<ul>" + "".join(f"<li>{esc(line)}</li>" for line in report.summary) + "</ul>"]
    for table in report.tables:
        parts += [f"<h2>{esc(table.title)}</h2>", html_table(table),
                  "<ul class='notes'>" + "".join(f"<li>{esc(n)}</li>" for n in table.notes)
                  + "</ul>"]
    parts.append("<h2>Figures</h2>")
    for figure in report.figures:
        parts.append(f"<h3 id='{esc(figure.name)}'>{esc(figure.title)}</h3>")
        if figure.skipped:
            parts.append(f"<p class='skipped'>Skipped: {esc(figure.skipped)}.</p>")
            continue
        png = folder / figure.png if folder is not None and figure.png else None
        source = _data_uri(png) if png is not None and png.exists() else figure.png
        picture = f"<img src='{esc(source or '')}' alt='{esc(figure.title)}'>"
        if figure.chart:
            parts.append(f"<figure><div class='chart'>{figure.chart}</div>"
                         f"<noscript>{picture}</noscript></figure>")
        else:
            parts.append(f"<figure>{picture}</figure>")
        if figure.note:
            parts.append(f"<p class='note'>{esc(figure.note)}.</p>")
    parts.append("</body></html>")
    return "\n".join(parts) + "\n"


def print_terminal(report: Report, console: Any = None) -> None:
    from rich.console import Console

    console = console or Console()
    console.print(f"[bold]study {report.study_name}[/bold]")
    for line in report.summary:
        console.print(f"  {line}", highlight=False)
    for table in report.tables:
        console.print(_fitting_table(table, console))
        for note in table.notes:
            console.print(f"  {note}", style="dim", highlight=False)
    drawn = [f.name for f in report.figures if not f.skipped]
    console.print(f"figures: {', '.join(drawn) or 'none'}", highlight=False)
    for figure in report.figures:
        if figure.skipped:
            console.print(f"  skipped {figure.name}: {figure.skipped}", style="dim",
                          highlight=False)


def _rich_table(table: Table, widths: Sequence[int]) -> Any:
    from rich import box
    from rich.table import Table as RichTable

    # Columns one space apart (the box's blank rule), no padding: the room goes to the figures.
    rich_table = RichTable(title=table.title, title_justify="left", box=box.SIMPLE_HEAD,
                           show_edge=False, padding=0)
    for index, (header, width) in enumerate(zip(table.headers, widths, strict=True)):
        rich_table.add_column(header, justify="left" if index == 0 else "right",
                              width=width, overflow="fold")
    for row in table.rows:
        rich_table.add_row(*row)
    return rich_table


def column_widths(table: Table, width: int, *, wrap: bool) -> list[int] | None:
    """Widths that print every cell of ``table`` within ``width`` columns, each column
    at least as wide as its longest word (so text wraps between words, never inside
    one), or None when no such widths exist. ``wrap=False``: every cell on one line."""
    from rich.cells import cell_len

    columns = list(zip(table.headers, *table.rows, strict=True))
    longest = [max(cell_len(cell) for cell in column) for column in columns]
    words = [max(cell_len(word) for cell in column for word in cell.split() or [""])
             for column in columns]
    widths = list(words if wrap else longest)
    spare = width - sum(widths) - (len(widths) - 1)  # one space between columns
    if spare < 0:
        return None
    # The spare room goes first to the columns it lets print on one line.
    for index in sorted(range(len(widths)), key=lambda i: longest[i] - widths[i]):
        extra = min(spare, longest[index] - widths[index])
        widths[index] += extra
        spare -= extra
    return widths


def transposed(table: Table) -> Table:
    """One column per row of ``table``: a narrow terminal fits a few placements side by
    side better than fifteen figures."""
    headers = ("", *(row[0] for row in table.rows))
    rows = tuple((header, *(row[index] for row in table.rows))
                 for index, header in enumerate(table.headers) if index)
    return Table(table.title, headers, rows, table.notes)


def stacked(table: Table) -> list[str]:
    """The table as one block per row (``header: value`` lines), for a terminal too
    narrow for any grid: lines wrap between words, never inside a figure."""
    lines = [table.title]
    for row in table.rows:
        lines.append(f"{table.headers[0]} {row[0]}")
        lines += [f"    {header}: {cell}" for header, cell in zip(table.headers[1:], row[1:],
                                                                   strict=True)]
    return lines


def _fitting_table(table: Table, console: Any) -> Any:
    """The table as it is if it fits on one line per row, else turned (placements as
    columns), else wrapped between words, else stacked: rich on its own folds a word
    wider than its column (``first+pe/nultimat/e``), so widths are chosen here."""
    from rich.console import Group
    from rich.text import Text

    layouts = [table, transposed(table)]
    for wrap in (False, True):
        for layout in layouts:
            widths = column_widths(layout, console.width, wrap=wrap)
            if widths is not None:
                return _rich_table(layout, widths)
    return Group(*(Text(line) for line in stacked(table)))
