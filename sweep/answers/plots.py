"""The pictures of ``sweep report``: each one as a PNG (matplotlib, Agg backend) for
report.md, and as an interactive plotly chart for report.html.

Every function returns a :class:`Figure` that either names its PNG and carries its chart
or says why it was skipped: an odd study (one trial, nothing completed, no baseline, no
MLflow run) loses a picture, never the report. Both forms of a picture are drawn by
``sweep.answers.figure``.

Nothing here imports TensorFlow or MLflow; the weight curves arrive as plain numbers.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sweep.answers.figure import Figure, pyplot, render, skip
from sweep.spec import StudySpec

if TYPE_CHECKING:
    import optuna
    from optuna.trial import FrozenTrial

# Importance and parallel coordinates need trials that share their parameters; with
# fewer than this many such trials the picture says nothing.
MIN_TRIALS_IMPORTANCE = 4
MIN_TRIALS_PARALLEL = 2

# One layer's curve: (epoch, value) points.
Curve = list[tuple[int, float]]


# ------------------------------------------------------------------ helpers
def _complete(study: optuna.Study) -> list[Any]:
    import optuna

    return list(study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,)))


def _primary(spec: StudySpec) -> tuple[Callable[[Any], float] | None, str]:
    """Optuna's single-objective plots need a target in a multi-objective study; in a
    single-objective one they draw more without (the best-value line of the history)."""
    if spec.is_multi_objective:
        return (lambda trial: trial.values[0]), spec.primary.metric
    return None, spec.primary.metric


def _searched(trials: Sequence[FrozenTrial]) -> list[Any]:
    """Trials the sampler proposed: baselines were queued with no parameters."""
    return [t for t in trials if t.params]


def shared_params(trials: Sequence[FrozenTrial], min_trials: int) -> tuple[list[str], int]:
    """The most parameters that at least ``min_trials`` trials all have, and how many
    trials have them. Parameters are conditional (``l1`` exists only when ``l1_on``, a
    per-layer coefficient only where its layer is chosen) and Optuna's importance and
    parallel-coordinate plots leave out every trial that lacks one of the parameters."""
    counts: dict[str, int] = {}
    for trial in trials:
        for name in trial.params:
            counts[name] = counts.get(name, 0) + 1
    ranked = sorted(counts, key=lambda n: (-counts[n], n))
    for size in range(len(ranked), 0, -1):
        chosen = ranked[:size]
        having = sum(all(p in t.params for p in chosen) for t in trials)
        if having >= min_trials:
            return chosen, having
    return [], 0


# ------------------------------------------------------------------ pictures
def optimization_history(study: optuna.Study, spec: StudySpec, out: Path) -> Figure:
    import optuna.visualization as vis
    import optuna.visualization.matplotlib as vis_mpl

    name, title = "optimization_history", f"Optimization history ({spec.primary.metric})"
    if not _complete(study):
        return skip(name, title, "no completed trial")
    target, label = _primary(spec)
    if spec.is_multi_objective:
        return render(
            name, title, out,
            lambda: vis.plot_optimization_history(study, target=target, target_name=label),
            lambda: vis_mpl.plot_optimization_history(study, target=target,
                                                      target_name=label))
    from sweep.answers import history_chart

    points = history_chart.points(_complete(study), spec)
    return render(name, title, out,
                  lambda: history_chart.plotly(points, label, title),
                  lambda: history_chart.matplotlib(points, label, title),
                  note="one point per configuration, at its first trial: its mean over its "
                       "seeds, the bar ± the sd of its draws where it has several; the line "
                       "is the best mean so far")


def param_importances(study: optuna.Study, spec: StudySpec, out: Path, *,
                      note: str | None = None) -> Figure:
    import optuna.visualization as vis
    import optuna.visualization.matplotlib as vis_mpl

    name, title = "param_importances", f"Parameter importances for {spec.primary.metric}"
    searched = _searched(_complete(study))
    params, having = shared_params(searched, MIN_TRIALS_IMPORTANCE)
    if len(params) < 2:
        return skip(name, title, f"needs {MIN_TRIALS_IMPORTANCE} completed trials that "
                     "have the same 2 or more searched parameters (parameters are "
                     f"conditional; {len(searched)} searched trials completed)")
    target, label = _primary(spec)
    evaluator = _fanova_once()
    return render(
        name, title, out,
        lambda: vis.plot_param_importances(study, evaluator=evaluator, params=params,
                                           target=target, target_name=label),
        lambda: vis_mpl.plot_param_importances(study, evaluator=evaluator, params=params,
                                               target=target, target_name=label),
        note=_notes(note, _left_out_note(having, len(searched), params)))


def _notes(*notes: str | None) -> str | None:
    return "; ".join(n for n in notes if n) or None


def _fanova_once() -> Any:
    """fANOVA (seeded, so the same study draws the same picture) run once for both forms
    of the picture: the plotly and the matplotlib plot each ask their evaluator."""
    import optuna.importance

    class ComputedOnce(optuna.importance.BaseImportanceEvaluator):
        def __init__(self) -> None:
            self._fanova = optuna.importance.FanovaImportanceEvaluator(seed=0)
            self._done: dict[tuple[str, ...], dict[str, float]] = {}

        def evaluate(self, study: optuna.Study, params: list[str] | None = None, *,
                     target: Callable[[Any], float] | None = None) -> dict[str, float]:
            key = tuple(params or ())
            if key not in self._done:
                self._done[key] = self._fanova.evaluate(study, params, target=target)
            return self._done[key]

    return ComputedOnce()


def _left_out_note(having: int, total: int, params: Sequence[str]) -> str | None:
    if having == total:
        return None
    return (f"{having} of {total} searched trials have all of {', '.join(params)}; "
            "the others are left out")


def draws_missing_values() -> bool:
    """Optuna 5 draws a trial that lacks a conditional parameter on a ``None`` tick of that
    axis (optuna#6763); Optuna 4 leaves such a trial out of the picture."""
    import optuna

    return int(optuna.__version__.split(".")[0]) >= 5


def parallel_coordinates(study: optuna.Study, spec: StudySpec, out: Path, *,
                         note: str | None = None) -> Figure:
    import optuna.visualization as vis
    import optuna.visualization.matplotlib as vis_mpl

    name, title = "parallel_coordinates", "Parallel coordinates of the searched parameters"
    searched = _searched(_complete(study))
    if draws_missing_values():
        params = sorted({p for t in searched for p in t.params})
        if len(searched) < MIN_TRIALS_PARALLEL:
            params = []
    else:
        params, having = shared_params(searched, MIN_TRIALS_PARALLEL)
        note = _notes(note, _left_out_note(having, len(searched), params))
    if len(params) < 2:
        return skip(name, title, f"needs {MIN_TRIALS_PARALLEL} completed trials that "
                     "have the same 2 or more searched parameters (the slice plot shows "
                     "each parameter on its own)")
    target, label = _primary(spec)
    from sweep.answers.parallel import chart

    return render(
        name, title, out,
        lambda: chart(study, params, target, label) or vis.plot_parallel_coordinate(
            study, params=params, target=target, target_name=label),
        lambda: _tidy_parallel(vis_mpl.plot_parallel_coordinate(
            study, params=params, target=target, target_name=label)),
        note=note)


def _tidy_parallel(axes: Any) -> Any:
    """Optuna's default size crowds the labels of neighbouring axes (``before_flatten``
    runs into the colour bar): a width per parameter, and slanted parameter names."""
    count = len(axes.get_xticks())
    axes.figure.set_size_inches(max(8.0, 2.0 * count + 2.0), 5.5)
    axes.tick_params(axis="x", labelrotation=30)
    for label in axes.get_xticklabels():
        label.set_horizontalalignment("right")
    return axes


def _tidy_slices(axes: Any) -> Any:
    """A width per panel, and slanted category names: placements side by side under one
    panel (``'none''before_flatten'...``) otherwise print over each other."""
    panels = list(axes.flat) if hasattr(axes, "flat") else [axes]
    panels[0].figure.set_size_inches(max(6.0, 3.4 * len(panels) + 1.5), 5.0)
    for panel in panels:
        if panel.get_xscale() != "log":
            panel.tick_params(axis="x", labelrotation=30)
            for label in panel.get_xticklabels():
                label.set_horizontalalignment("right")
    return axes


def coefficient_slices(study: optuna.Study, spec: StudySpec, out: Path, *,
                       note: str | None = None) -> Figure:
    """The objective against each searched parameter; unlike parallel coordinates, each
    panel uses every trial that has that parameter."""
    import optuna.visualization as vis
    import optuna.visualization.matplotlib as vis_mpl

    name, title = "slice", f"{spec.primary.metric} against each searched parameter"
    searched = _searched(_complete(study))
    params = sorted({p for t in searched for p in t.params})
    if not params:
        return skip(name, title, "no completed trial has a searched parameter")
    target, label = _primary(spec)
    return render(
        name, title, out,
        lambda: vis.plot_slice(study, params=params, target=target, target_name=label),
        lambda: _tidy_slices(vis_mpl.plot_slice(study, params=params, target=target,
                                                target_name=label)), note=note)


def objective_by_placement(groups: Sequence[tuple[str, Sequence[float]]], spec: StudySpec,
                           out: Path) -> Figure:
    """Box plot of the primary objective of every completed trial, per placement group
    (``groups``: label and values, in the report table's order)."""
    name, title = "objective_by_placement", f"{spec.primary.metric} per placement"
    if not groups:
        return skip(name, title, "no completed trial")
    return render(name, title, out, lambda: _box_plotly(groups, spec.primary.metric, title),
                   lambda: _box_matplotlib(groups, spec.primary.metric, title))


def _box_plotly(groups: Sequence[tuple[str, Sequence[float]]], metric: str, title: str) -> Any:
    import plotly.graph_objects as go

    figure = go.Figure()
    for label, values in groups:
        figure.add_trace(go.Box(y=list(values), name=label, boxpoints="all", jitter=0.3,
                                pointpos=0))
    figure.update_layout(title=title, yaxis_title=metric, xaxis_title="placement",
                         showlegend=False)
    return figure


def _box_matplotlib(groups: Sequence[tuple[str, Sequence[float]]], metric: str,
                    title: str) -> Any:
    import numpy as np

    plt = pyplot()
    _, axes = plt.subplots(figsize=(max(5.0, 1.3 * len(groups)), 4.0))
    labels = [label for label, _ in groups]
    # Labels set on the axis, not through boxplot: its keyword was renamed in matplotlib 3.9.
    axes.boxplot([list(values) for _, values in groups])
    axes.set_xticks(range(1, len(labels) + 1), labels)
    jitter = np.random.default_rng(0)  # fixed: the same study draws the same picture
    for position, (_, values) in enumerate(groups, start=1):
        xs = position + jitter.uniform(-0.08, 0.08, size=len(values))
        axes.scatter(xs, list(values), s=14, alpha=0.7, color="tab:blue", zorder=3)
    axes.set_title(title)
    axes.set_ylabel(metric)
    axes.set_xlabel("placement")
    axes.tick_params(axis="x", labelrotation=20)
    return axes


def pareto_front(study: optuna.Study, spec: StudySpec, out: Path) -> Figure:
    import optuna.visualization as vis
    import optuna.visualization.matplotlib as vis_mpl

    metrics = [item.metric for item in spec.objective]
    name, title = "pareto_front", f"Pareto front of {', '.join(metrics)}"
    if not spec.is_multi_objective:
        return skip(name, title, "the study has one objective")
    if len(metrics) > 3:
        return skip(name, title, f"Optuna draws 2 or 3 objectives, the study has {len(metrics)}")
    if not _complete(study):
        return skip(name, title, "no completed trial")
    return render(
        name, title, out,
        lambda: vis.plot_pareto_front(study, target_names=metrics),
        lambda: vis_mpl.plot_pareto_front(study, target_names=metrics))


def weight_curves(curves: dict[str, dict[str, Curve]], out: Path,
                  missing: str | None = None) -> Figure:
    """Per-layer ‖w‖₂ over epochs: one colour per layer, one line style per run
    (``curves``: run label → layer → points). ``missing`` says why a run is absent."""
    name, title = "weight_l2_curves", "Per-layer weight L2 norm over epochs"
    if not any(curves.values()):
        return skip(name, title, missing or "no per-epoch weight norms in MLflow")
    return render(name, title, out, lambda: _curves_plotly(curves, title),
                   lambda: _curves_matplotlib(curves, title), note=missing)


_DASHES = ("solid", "dash", "dot", "dashdot")
_MPL_STYLES = ("-", "--", ":", "-.")
# A marker of its own per run, the later ones open and larger: the best and the baseline
# often share a seed, and where their norms barely differ a line alone hid under the other.
_SYMBOLS = ("circle", "square-open", "diamond-open", "x")
_MPL_MARKERS = (("o", 3, True), ("s", 7, False), ("D", 7, False), ("x", 6, True))


def _layers(curves: dict[str, dict[str, Curve]]) -> list[str]:
    layers: list[str] = []
    for by_layer in curves.values():
        layers += [layer for layer in by_layer if layer not in layers]
    return layers


def _epochs(curves: dict[str, dict[str, Curve]]) -> int:
    return max((step for by_layer in curves.values() for points in by_layer.values()
                for step, _ in points), default=0)


def _curves_plotly(curves: dict[str, dict[str, Curve]], title: str) -> Any:
    import plotly.express as px
    import plotly.graph_objects as go

    palette = px.colors.qualitative.Plotly
    layers = _layers(curves)
    figure = go.Figure()
    for run_index, (run, by_layer) in enumerate(curves.items()):
        for layer, points in by_layer.items():
            color = palette[layers.index(layer) % len(palette)]
            figure.add_trace(go.Scatter(
                x=[step for step, _ in points], y=[value for _, value in points],
                mode="lines+markers", name=f"{layer} — {run}",
                line={"color": color, "dash": _DASHES[run_index % len(_DASHES)]},
                marker={"symbol": _SYMBOLS[run_index % len(_SYMBOLS)],
                        "size": 6 if run_index == 0 else 10}))
    figure.update_layout(title=title, xaxis_title="epoch", yaxis_title="‖w‖₂ of the kernel",
                         xaxis={"tickformat": "d", "dtick": 1 if _epochs(curves) <= 20 else None})
    return figure


def _curves_matplotlib(curves: dict[str, dict[str, Curve]], title: str) -> Any:
    plt = pyplot()
    from matplotlib.ticker import MaxNLocator

    layers = _layers(curves)
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    _, axes = plt.subplots(figsize=(7.0, 4.2))
    for run_index, (run, by_layer) in enumerate(curves.items()):
        for layer, points in by_layer.items():
            color = colors[layers.index(layer) % len(colors)]
            marker, size, filled = _MPL_MARKERS[run_index % len(_MPL_MARKERS)]
            axes.plot([step for step, _ in points], [value for _, value in points],
                      marker=marker, markersize=size, label=f"{layer} — {run}", color=color,
                      markerfacecolor=color if filled else "none",
                      linestyle=_MPL_STYLES[run_index % len(_MPL_STYLES)])
    axes.set_title(title)
    axes.set_xlabel("epoch")
    axes.xaxis.set_major_locator(MaxNLocator(integer=True))  # epochs are whole numbers
    axes.set_ylabel("‖w‖₂ of the kernel")
    # Two keys beside the axes (colour: layer, line style: run) instead of one entry per
    # curve inside them: a legend over the plot hides the curves it names.
    from matplotlib.lines import Line2D

    layer_key = axes.legend(
        [Line2D([], [], color=colors[i % len(colors)]) for i in range(len(layers))], layers,
        title="layer", fontsize="small", loc="upper left", bbox_to_anchor=(1.02, 1.0))
    axes.add_artist(layer_key)
    runs = list(curves)
    keys = [Line2D([], [], color="black", linestyle=_MPL_STYLES[i % len(_MPL_STYLES)],
                   marker=_MPL_MARKERS[i % len(_MPL_MARKERS)][0],
                   markerfacecolor="black" if _MPL_MARKERS[i % len(_MPL_MARKERS)][2] else "none")
            for i in range(len(runs))]
    axes.legend(keys, runs, title="run", fontsize="small",
                loc="lower left", bbox_to_anchor=(1.02, 0.0))
    return axes
