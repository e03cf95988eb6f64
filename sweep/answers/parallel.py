"""The parallel-coordinates chart of report.html: Optuna's own picture (one line per trial,
its values on hover), written as plain plotly JSON.

Optuna 5 draws each trial as a plotly ``Scatter`` trace (optuna#6763: so that each line
can have a style of its own), and plotly validates every property of every trace as it
is built: 0.6 s of CPU for the 1,000 trials a report samples, a tenth of ``sweep report``
at 10,000 trials. The same figure as JSON, which plotly.js reads as it is, costs 0.01 s.
It is drawn from Optuna's own description of the picture (``_get_parallel_coordinate_info``
and its helpers): tests/answers/test_parallel.py compares it with Optuna's
``plot_parallel_coordinate``, trace by trace, so that an Optuna release that changes its
picture fails a test instead of drawing another one. Should those private helpers move,
``chart`` returns ``None`` and the caller draws with Optuna's public function.

(plotly's ``Parcoords``, one trace for every line, would be as fast, but draws through
WebGL, which browsers without a GPU are dropping their software fallback for.)
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from sweep.storage import optuna_internals as internals

if TYPE_CHECKING:
    import optuna

log = logging.getLogger("sweep")

__all__ = ["chart"]


def chart(study: optuna.Study, params: list[str], target: Callable[[Any], float] | None,
          target_name: str) -> dict[str, Any] | None:
    """Optuna's ``plot_parallel_coordinate(study, params, target, target_name)`` as a plotly
    figure dict (``{"data": [...], "layout": {...}}``), or ``None`` where this Optuna does
    not describe its picture the way this module reads it."""
    try:
        optuna_parallel = internals.parallel_coordinate()
        info = optuna_parallel._get_parallel_coordinate_info(study, params, target,
                                                             target_name)
        return _figure(optuna_parallel, info)
    except (ImportError, AttributeError, TypeError) as error:
        log.debug("parallel coordinates through Optuna's plotly function (%s)", error)
        return None


def _figure(optuna_parallel: Any, info: Any) -> dict[str, Any]:
    """Optuna's ``_get_parallel_coordinate_plot(info)``, the same figure in plain dicts."""
    COLOR_SCALE = internals.plotly_color_scale()
    title = {"text": "Parallel Coordinate Plot", "y": 1, "yanchor": "bottom", "yref": "paper"}
    if not info.dims_params or not info.dims_objectives[0].values:
        return {"data": [], "layout": {"title": title}}
    dimensions = info.dims_objectives + info.dims_params
    color_min, color_max = optuna_parallel._get_color_range(info.color_values,
                                                            info.is_rank_color)
    normalized = [optuna_parallel._normalize_dimension(dim) for dim in dimensions]
    colors = optuna_parallel._get_line_colors(info.color_values, color_min, color_max,
                                              info.reverse_scale)
    axes = list(range(len(dimensions)))
    traces: list[dict[str, Any]] = []
    for index in info.draw_order:
        feasible = info.feasibility is None or info.feasibility[index]
        traces.append({
            "type": "scatter", "x": axes, "y": [values[index] for values in normalized],
            "customdata": [[dim.label, optuna_parallel._format_dimension_value(
                dim, dim.values[index])] for dim in dimensions],
            "mode": "lines",
            "line": {"color": colors[index], "dash": "solid" if feasible else "dot",
                     "width": 1.2},
            "opacity": 0.5, "showlegend": False,
            "hovertemplate": "%{customdata[0]}: %{customdata[1]}<extra></extra>"})
    colorbar: dict[str, Any] = {"title": {"text": info.colorbar_title}}
    if info.is_rank_color:
        colorbar["tickvals"] = list(range(int(max(info.color_values)) + 1))
    if info.feasibility is not None:
        traces += [{"type": "scatter", "x": [None], "y": [None], "mode": "lines",
                    "line": {"color": "#2F3B52", "dash": dash, "width": 2}, "name": name,
                    "showlegend": True, "hoverinfo": "skip"}
                   for dash, name in (("solid", "Feasible"), ("dot", "Infeasible"))]
    traces.append({
        "type": "scatter", "x": [None, None], "y": [None, None], "mode": "markers",
        "marker": {"color": [color_min, color_max], "cmin": color_min, "cmax": color_max,
                   "colorscale": _scale(COLOR_SCALE), "reversescale": info.reverse_scale,
                   "showscale": True, "colorbar": colorbar},
        "showlegend": False, "hoverinfo": "skip"})
    layout = {
        "title": title,
        "xaxis": {"tickmode": "array", "tickvals": axes,
                  "ticktext": [dim.label for dim in dimensions],
                  "range": [-0.2, len(dimensions) - 0.8], "showgrid": False,
                  "zeroline": False},
        "yaxis": {"range": [-0.08, 1.08], "visible": False, "fixedrange": True},
        "annotations": optuna_parallel._get_axis_annotations(dimensions),
        "shapes": [{"type": "line", "x0": axis, "x1": axis, "y0": 0, "y1": 1,
                    "line": {"color": "#888", "width": 1}, "layer": "below"}
                   for axis in axes],
        "hovermode": "closest", "plot_bgcolor": "white",
        "legend": {"orientation": "h", "x": 1, "xanchor": "right", "y": 1,
                   "yanchor": "bottom"},
    }
    return {"data": traces, "layout": layout}


def _scale(colors: list[str]) -> list[list[Any]]:
    """A list of colours as plotly.js wants a colour scale: (position, colour) pairs (the
    form plotly's validation would have turned it into)."""
    from plotly.colors import make_colorscale

    return [list(pair) for pair in make_colorscale(colors)]
