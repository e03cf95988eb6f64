"""The optimization history of a study of one objective, drawn by regsweep: one point per
configuration at its first trial (its mean over seeds, ± the sd of its draws as a bar) and
the best mean so far. Optuna's own history indexes values by trial number and breaks on a
study whose points skip numbers, which configurations do."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sweep.answers.figure import pyplot
from sweep.spec import StudySpec

__all__ = ["matplotlib", "plotly", "points"]


def points(complete: Sequence[Any], spec: StudySpec) -> list[tuple[int, float, float, float]]:
    """(first trial, mean, sd or 0, best mean so far) of each completed configuration
    (``drawn.configuration_trial``), in the order they were first tried."""
    from sweep.answers.drawn import SD_ATTR

    maximize = spec.primary.resolved_direction == "maximize"
    points, best = [], None
    for trial in sorted(complete, key=lambda t: t.number):
        mean = float(trial.values[0])
        best = mean if best is None else (max if maximize else min)(best, mean)
        points.append((trial.number, mean, float(trial.user_attrs.get(SD_ATTR) or 0.0), best))
    return points


def plotly(points: Sequence[tuple[int, float, float, float]], label: str,
           title: str) -> Any:
    import plotly.graph_objects as go

    numbers, means, sds, best = (list(column) for column in zip(*points, strict=True))
    figure = go.Figure([
        go.Scatter(x=numbers, y=means, mode="markers", name=f"{label} (mean over seeds)",
                   error_y={"type": "data", "array": sds, "visible": True, "thickness": 1},
                   text=[f"#{n}" for n in numbers],
                   hovertemplate="%{text}: %{y:.4f} ± %{error_y.array:.4f}<extra></extra>"),
        go.Scatter(x=numbers, y=best, mode="lines", line={"shape": "hv"},
                   name="best mean so far")])
    figure.update_layout(title=title, xaxis_title="first trial of the configuration",
                         yaxis_title=label)
    return figure


def matplotlib(points: Sequence[tuple[int, float, float, float]], label: str,
               title: str) -> Any:
    numbers, means, sds, best = (list(column) for column in zip(*points, strict=True))
    _, axes = pyplot().subplots(figsize=(8.0, 5.0))
    axes.errorbar(numbers, means, yerr=sds, fmt="o", markersize=4, elinewidth=1, capsize=2,
                  label=f"{label} (mean over seeds)")
    axes.step(numbers, best, where="post", color="tab:red", label="best mean so far")
    axes.set(title=title, xlabel="first trial of the configuration", ylabel=label)
    axes.legend(loc="best")
    return axes
