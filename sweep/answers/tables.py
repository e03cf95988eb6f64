"""The comparison as tables of text (:class:`Table`), and the :class:`Report` that holds
them: number formats, headers and the notes under each table."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from sweep.answers.confirm import Confirmation
from sweep.answers.figure import Figure
from sweep.answers.register import stored_registration
from sweep.answers.rows import FIGURES, WEIGHT_FIGURES, unique
from sweep.keys import ENVIRONMENT, FINAL, GPU_SECONDS, PLACEMENT, SETTINGS
from sweep.placement.searched import describe_settings, searched_values, searches_regularizers
from sweep.placement.space import BASELINE_NONE, describe_placement
from sweep.results.queries import baseline_trial, pareto_front
from sweep.results.ranking import ranked_trials
from sweep.search.grouping import baseline_group, group_label
from sweep.spec import GAP_PREFIX, StudySpec

if TYPE_CHECKING:
    import optuna

ARTIFACT_PATH = "report"  # folder of the report on the study's parent MLflow run
MARKDOWN_FILE = "report.md"
HTML_FILE = "report.html"
JSON_FILE = "report.json"

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
    figures: tuple[Figure, ...] = ()
    # Machine-readable: the rows behind the tables (also written as report.json).
    data: dict[str, Any] = field(default_factory=dict)

    @property
    def files(self) -> list[str]:
        """The files of the report, relative to its folder."""
        drawn = [f.png for f in self.figures if f.png]
        return [MARKDOWN_FILE, HTML_FILE, JSON_FILE, *drawn]


# ------------------------------------------------------------------ grouping
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
        return f"{FINAL}{metric}"
    if metric in ("penalty/total", "weights/l2_total"):
        return FINAL + metric.replace("/", "_")
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
    gap = "gap (train − val acc)" if any(f"{FINAL}train_accuracy" in r for r in rows) else \
        "gap (val − train data loss)"
    columns.append(("gap", gap))
    columns += [(key, header) for key, header in WEIGHT_FIGURES if any(key in r for r in rows)]
    confirmed = any(row.get("confirmed") for row in rows)
    metric = next((row["confirmed_metric"] for row in rows if row.get("confirmed")), "")
    per_family = searches_regularizers(searched_values(spec))
    settings = any(row.get("settings") for row in rows)
    headers = ("regularizer" if per_family else "placement", "configs (trials)", "best",
               "seeds", f"Δ {primary} vs no-reg",
               *(header for _, header in columns), "coefficients",
               *(("also searched",) if settings else ()),
               *((f"confirmed {metric} (mean ± std)", "exceeds noise") if confirmed else ()))
    formats = {key: number_format(row.get(key) for row in rows) for key, _ in columns}
    delta = number_format((row["vs_no_reg"] for row in rows), signed=True,
                          like=[row["value"] for row in rows])
    body = []
    confirmed_format = number_format(row.get("confirmed_mean") for row in rows)
    for row in rows:
        cells = [row["placement"], f"{row['configurations']} ({row['trials']})",
                 _trial_cell(row), str(row["seeds"]), delta(row["vs_no_reg"])]
        cells += [formats[key](row.get(key)) for key, _ in columns]
        cells.append(fmt_coefficients(row["coefficients"]))
        if settings:
            cells.append(describe_settings(row.get("settings") or {}) or "–")
        if confirmed:
            cells += _confirmed_cells(row, confirmed_format)
        body.append(tuple(cells))
    per = "regularizer" if per_family else "placement"
    return Table(f"Comparison per {per} (best configuration of each by {primary})",
                 headers, tuple(body), tuple(_placement_notes(rows, spec, per_family)))


def _trial_cell(row: Mapping[str, Any]) -> str:
    return f"#{row['trial']}"


def _confirmed_cells(row: Mapping[str, Any], number: Callable[[Any], str]) -> list[str]:
    if not row.get("confirmed"):
        return ["–", "–"]
    return [fmt_mean_std(row["confirmed_mean"], row["confirmed_std"], row["confirmed_n"],
                         number),
            fmt_verdict(row["significant"], row["p_value"], row["confirmed_is_baseline"])]


def _placement_notes(rows: Sequence[Mapping[str, Any]], spec: StudySpec,
                     per_family: bool = False) -> list[str]:
    primary = spec.primary.metric
    notes = [
        f"Each row is the best configuration of its "
        f"{'regularizer family' if per_family else 'placement'} by {primary} on the "
        "validation split (the study's ranking), named by its first trial; its figures are "
        "means over its seeds; test figures are shown, never used to choose. "
        f"configs (trials): how many configurations of the "
        f"{'family' if per_family else 'placement'} were trained, "
        "and on how many trainings (seed re-runs included)."
        + (" A family is the penalties with their placement (l2 (all)) and each other "
           "regularizer the configuration uses (+ dropout, + weight decay); also searched: "
           "the values the row's configuration trains with." if per_family else ""),
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
        notes.append(f"Δ vs no-reg: mean {primary} minus the no-regularization "
                     f"baseline's (#{rows[0]['baseline_trial'] if rows else '?'}), "
                     "each over its own seeds.")
    tuned = [item.name for item in searched_values(spec) if item.family is None]
    none = next((row for row in rows if row["placement"] == baseline_group(BASELINE_NONE)),
                None)
    if tuned and none is not None:
        if none["configurations"] > 1:
            notes.append(f"No regularization is its best of {none['configurations']} "
                         f"configurations (#{none['trial']}): {', '.join(tuned)} searched "
                         "for it as for the others, so a Δ is the regularizer's, not a "
                         "better learning rate's.")
        else:
            notes.append(f"No regularization was trained at one value of {', '.join(tuned)} "
                         "only (the middle), which the regularized configurations had "
                         "searched: part of their Δ may be the better value's, not the "
                         "regularizer's. A `none` placement choice (and allow_zero on the "
                         "other regularizers) searches them for no regularization too.")
    if any(row.get("confirmed") for row in rows):
        notes.append("confirmed: the configuration re-trained over fresh seeds, evaluated once "
                     "on the test split; exceeds noise: better than no regularization by "
                     "a paired t-test over the shared seeds at p < 0.05.")
    return notes


def confirmation_table(rows: Sequence[Mapping[str, Any]], confirmation: Confirmation,
                       val_metric: str) -> Table:
    metric = confirmation.metric
    names = unique(["test_accuracy", "test_data_loss", metric, val_metric])
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


def summary_lines(study: optuna.Study, spec: StudySpec,
                  confirmation: Confirmation | None = None) -> list[str]:
    """The report's opening lines: the verdict in one sentence, then the counts, the best
    configuration and the baseline as the one ranking has them."""
    from collections import Counter

    from sweep.answers.headline import study_headline

    counts = Counter(t.state.name for t in study.get_trials(deepcopy=False))
    ranked, seeds = ranked_trials(study, spec)
    primary = spec.primary
    lines = [
        study_headline(study, spec, confirmation),
        f"{sum(counts.values())} trials, {len(seeds)} configurations: "
        f"{counts.get('COMPLETE', 0)} complete, "
        f"{counts.get('PRUNED', 0)} pruned, {counts.get('FAIL', 0)} failed, "
        f"{counts.get('RUNNING', 0) + counts.get('WAITING', 0)} running or waiting.",
        f"Chosen on {primary.metric} ({primary.resolved_direction}) over the validation "
        "split; the test split only evaluates.",
    ]
    if ranked:
        best = ranked[0]
        label = group_label(best, spec)
        resolved = describe_placement(best.user_attrs.get(PLACEMENT) or {})
        settings = describe_settings(best.user_attrs.get(SETTINGS) or {})
        per_family = searches_regularizers(searched_values(spec))
        # A family names its placement already; only per-layer coefficients add to it.
        shown = resolved == label or (per_family and resolved == "none")
        lines.append(f"Best configuration: #{best.number}, {primary.metric} = "
                     f"{seeds[best.number].figure()}, "
                     f"{'regularizer' if per_family else 'placement'} {label}"
                     + ("" if shown else f": {resolved}")
                     + (f", with {settings}" if settings else "") + ".")
    base = baseline_trial(study, spec=spec)
    found = None if base is None else seeds.get(base.number)
    lines.append("No completed no-regularization trial." if base is None else
                 f"No-regularization baseline: #{base.number}, {primary.metric} = "
                 + (found.figure() if found else f"{base.values[0]:.4f}") + ".")
    if spec.is_multi_objective and ranked:
        front = ", ".join(str(t.number) for t in pareto_front(study, spec))
        metrics = ", ".join(item.metric for item in spec.objective)
        lines.append(f"Pareto front of {metrics}: trials {front}.")
    registration = stored_registration(study)
    if registration is not None and registration.model == spec.report.register:
        lines.append(f"Model registry: {registration.line()}.")
    return lines




# Shown per environment, in this order; the host is listed apart (a cluster has many).
ENVIRONMENT_COLUMNS = ("device", "device_name", "regsweep", "tensorflow", "keras", "optuna",
                       "mlflow", "python", "cuda", "cudnn", "git_commit")


def environment_rows(study: optuna.Study) -> list[dict[str, Any]]:
    """The environments the study's trials trained on (a mixed cluster has several), each
    with its hosts, its number of trials and their GPU-seconds."""
    groups: dict[tuple[str, ...], dict[str, Any]] = {}
    for trial in study.get_trials(deepcopy=False):
        environment = trial.user_attrs.get(ENVIRONMENT)
        if not environment:
            continue
        key = tuple(str(environment.get(c, "")) for c in ENVIRONMENT_COLUMNS)
        group = groups.setdefault(key, {**dict(zip(ENVIRONMENT_COLUMNS, key, strict=True)),
                                        "hosts": [], "trials": 0, "gpu_seconds": None})
        group["trials"] += 1
        host = environment.get("host")
        if host and host not in group["hosts"]:
            group["hosts"].append(host)
        if trial.user_attrs.get(GPU_SECONDS) is not None:
            group["gpu_seconds"] = (group["gpu_seconds"] or 0.0) + trial.user_attrs[GPU_SECONDS]
    return list(groups.values())


def environment_table(rows: Sequence[Mapping[str, Any]]) -> Table:
    def hosts(names: Sequence[str]) -> str:
        return ", ".join(names[:3]) + (f" and {len(names) - 3} more" if len(names) > 3 else "")

    def cuda(row: Mapping[str, Any]) -> str:
        # TensorFlow's build versions, not a GPU's: on a CPU-only worker they describe
        # nothing that ran, so they are said as what they are.
        versions = f"{row['cuda']} / {row['cudnn']}"
        if row["cuda"] in ("none", ""):
            return "—"
        return versions if row["device"] == "GPU" else f"not used (built for {versions})"

    return Table(
        "Where the trials ran",
        ("trials", "device", "hosts", "TensorFlow", "Keras", "CUDA / cuDNN", "Optuna",
         "MLflow", "regsweep", "git commit", "GPU-seconds"),
        tuple((str(r["trials"]), f"{r['device']}: {r['device_name']}", hosts(r["hosts"]),
               r["tensorflow"], r["keras"], cuda(r), r["optuna"],
               r["mlflow"], r["regsweep"], r["git_commit"][:12] or "—",
               "—" if r["gpu_seconds"] is None else f"{r['gpu_seconds']:.0f}")
              for r in rows),
        ("Versions and devices as each trial recorded them (tags sweep.env.* on its MLflow "
         "run); several rows when workers differ.",))
