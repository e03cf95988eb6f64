"""One picture of the report, in both forms: a PNG (matplotlib, Agg backend) for report.md
and an interactive plotly chart for report.html, or the reason it was skipped. The charts
are HTML fragments without plotly.js: report.html embeds plotly.js once for all of them
(:func:`plotly_js`), so the page works offline and inside MLflow's artifact preview,
which shows it from a ``blob:`` URL where neither a CDN (no internet) nor a relative link
to a shared copy resolves."""

from __future__ import annotations

import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

_DPI = 110


@dataclass(frozen=True)
class Figure:
    name: str  # file stem inside the report folder
    title: str
    png: str | None = None  # file name, relative to the report folder
    # The interactive chart: a <div> and its script, for a page that loads plotly.js.
    chart: str | None = field(default=None, repr=False)
    skipped: str | None = None  # why there is no picture
    note: str | None = None  # what a reader should know (trials left out, ...)


def pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")  # files only: no display, no GUI toolkit needed
    import matplotlib.pyplot as plt

    return plt


def _save_png(axes: Any, path: Path) -> None:
    plt = pyplot()
    first = axes.flat[0] if hasattr(axes, "flat") else axes
    figure = first.figure
    try:
        figure.savefig(path, dpi=_DPI, bbox_inches="tight")
    finally:
        plt.close(figure)


def _chart(figure: Any, name: str) -> str:
    """The chart's HTML fragment. ``figure``: a plotly figure, or a figure as plain JSON
    (``sweep.answers.parallel``), written as it is, with plotly's default template that a
    figure object would have been given."""
    # Charts follow the page's width (a fixed 1280-px layout would overflow narrow windows
    # and MLflow's preview pane).
    fitted = {"autosize": True, "margin": {"l": 60, "r": 30, "t": 60, "b": 60}}
    options: dict[str, Any] = {
        "full_html": False, "include_plotlyjs": False, "div_id": f"chart-{name}",
        "default_width": "100%", "config": {"displaylogo": False, "responsive": True}}
    if isinstance(figure, dict):
        import plotly.io as pio

        layout = {**figure.get("layout", {}), **fitted}
        if pio.templates.default and "template" not in layout:
            layout["template"] = pio.templates[pio.templates.default].to_plotly_json()
        return str(pio.to_html({**figure, "layout": layout}, validate=False, **options))
    figure.update_layout(**fitted)
    return str(figure.to_html(**options))


def plotly_js() -> str:
    """plotly.js itself (about 4.6 MB), to embed once in a page of charts."""
    from plotly.offline import get_plotlyjs

    return str(get_plotlyjs())


def render(name: str, title: str, out: Path, plotly: Callable[[], Any],
            matplotlib: Callable[[], Any], note: str | None = None) -> Figure:
    """Both files of one picture, or a skipped :class:`Figure` that says what failed."""
    try:
        with warnings.catch_warnings():
            # Optuna marks its matplotlib backend experimental; that is not news to a reader.
            warnings.simplefilter("ignore")
            chart = _chart(plotly(), name)
            _save_png(matplotlib(), out / f"{name}.png")
    except Exception as error:  # a picture must never take the report down
        pyplot().close("all")  # whatever the failed drawing left open
        (out / f"{name}.png").unlink(missing_ok=True)
        message = str(error).splitlines()[0] if str(error) else ""
        return Figure(name, title, skipped=f"could not draw: {type(error).__name__}: {message}")
    return Figure(name, title, png=f"{name}.png", chart=chart, note=note)


def skip(name: str, title: str, reason: str) -> Figure:
    return Figure(name, title, skipped=reason)


