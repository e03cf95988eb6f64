"""sweep/answers/parallel.py: Optuna's parallel-coordinates figure, written as JSON."""

from __future__ import annotations

import json
import re
from pathlib import Path

import optuna
import plotly.graph_objects as go
import pytest
from conftest import tiny_study

from sweep.answers import parallel, plots
from sweep.answers.figure import _chart
from sweep.spec import parse_spec

LOG = optuna.distributions.FloatDistribution(1e-6, 1e-1, log=True)
LINEAR = optuna.distributions.FloatDistribution(0.0, 1.0)
WHERE = optuna.distributions.CategoricalDistribution(["none", "dense", "output"])
UNITS = optuna.distributions.CategoricalDistribution([8, 16, 32])


def _conditional_study(directions: list[str], constraints: bool = False) -> optuna.Study:
    """Log, linear, categorical and numeric-categorical parameters, one of them missing
    from some trials (as a per-layer coefficient is), a failed trial, and optionally
    constraints (infeasible trials are drawn dotted)."""
    study = optuna.create_study(directions=directions)
    rows = [({"l1": 1e-5, "drop": 0.1, "where": "dense", "units": 16}, 0.61),
            ({"l1": 3e-3, "drop": 0.4, "where": "none", "units": 8}, 0.58),
            ({"drop": 0.2, "where": "output", "units": 32}, 0.66),
            ({"l1": 2e-2, "drop": 0.9, "where": "dense", "units": 8}, 0.52),
            ({"drop": 0.0, "where": "none", "units": 32}, 0.64)]
    distributions = {"l1": LOG, "drop": LINEAR, "where": WHERE, "units": UNITS}
    for i, (params, value) in enumerate(rows):
        values = [value] if len(directions) == 1 else [value, 1.0 - value + 0.03 * i]
        system = {"constraints": [0.5 - i % 2]} if constraints else {}
        study.add_trial(optuna.trial.create_trial(
            params=params, distributions={k: distributions[k] for k in params},
            values=values, system_attrs=system))
    study.add_trial(optuna.trial.create_trial(state=optuna.trial.TrialState.FAIL))
    return study


@pytest.mark.parametrize(("directions", "constraints", "target"), [
    (["maximize"], False, False),
    (["minimize"], True, False),
    (["maximize", "minimize"], False, False),
    (["maximize", "minimize"], False, True),
])
def test_the_figure_is_optunas_own(directions: list[str], constraints: bool,
                                   target: bool) -> None:
    study = _conditional_study(directions, constraints)
    params = ["drop", "l1", "units", "where"]
    pick = (lambda t: t.values[0]) if target else None
    ours = parallel.chart(study, params, pick, "val_acc")
    theirs = optuna.visualization.plot_parallel_coordinate(
        study, params=params, target=pick, target_name="val_acc")

    assert ours is not None
    lines = [t for t in ours["data"] if t["mode"] == "lines" and t["showlegend"] is False]
    assert len(lines) == 5  # one per completed trial; the failed one is not drawn
    # Read back through plotly: the same figure, property by property.
    assert go.Figure(ours).to_dict() == theirs.to_dict()


def test_the_chart_is_the_one_plotly_writes_for_optunas_figure() -> None:
    study = _conditional_study(["maximize"])
    ours = parallel.chart(study, ["drop", "l1", "where"], None, "val_acc")
    theirs = optuna.visualization.plot_parallel_coordinate(
        study, params=["drop", "l1", "where"], target_name="val_acc")

    def plotted(html: str) -> list[object]:
        call = re.search(r'Plotly\.newPlot\(\s*"chart-p",\s*(.*)\)\s*};?\s*</script>', html,
                         re.S)
        assert call is not None
        return list(json.loads(f"[{call.group(1)}]"))

    # Data, layout (template included) and config as report.html hands them to plotly.js.
    assert plotted(_chart(ours, "p")) == plotted(_chart(theirs, "p"))


def test_without_optunas_helpers_optuna_draws_it(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def moved(optuna_parallel: object, info: object) -> None:  # an Optuna that renamed one
        raise AttributeError("module has no attribute '_get_axis_annotations'")

    monkeypatch.setattr(parallel, "_figure", moved)
    study = _conditional_study(["maximize"])
    assert parallel.chart(study, ["drop", "l1"], None, "val_acc") is None

    figure = plots.parallel_coordinates(study, parse_spec(tiny_study()), tmp_path)
    assert figure.skipped is None and figure.chart is not None
    assert figure.chart.count('"mode":"lines"') == 5
    assert (tmp_path / "parallel_coordinates.png").is_file()
