"""sweep/answers/plots.py: parameter importances computed once for both pictures."""

from __future__ import annotations

from pathlib import Path

import optuna
import pytest
from conftest import tiny_study

from sweep.answers import plots
from sweep.spec import parse_spec


def _study_of(n: int) -> optuna.Study:
    """``n`` completed trials whose value depends on ``l2`` only, built without training."""
    study = optuna.create_study(direction="maximize")
    distributions = {"l1": optuna.distributions.FloatDistribution(1e-6, 1e-1, log=True),
                     "l2": optuna.distributions.FloatDistribution(1e-6, 1e-1, log=True)}
    for i in range(n):
        l1 = 10 ** (-6 + 5 * ((i * 7) % n) / n)
        l2 = 10 ** (-6 + 5 * i / n)
        study.add_trial(optuna.trial.create_trial(
            params={"l1": l1, "l2": l2}, distributions=distributions,
            value=1.0 - abs(i / n - 0.5)))
    return study


def test_importances_are_computed_once_for_both_pictures(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    evaluated: list[dict[str, float]] = []
    original = optuna.importance.FanovaImportanceEvaluator.evaluate

    def counted(self, study, params=None, *, target=None):  # type: ignore[no-untyped-def]
        result = original(self, study, params, target=target)
        evaluated.append(result)
        return result

    monkeypatch.setattr(optuna.importance.FanovaImportanceEvaluator, "evaluate", counted)
    spec = parse_spec(tiny_study())
    figure = plots.param_importances(_study_of(60), spec, tmp_path, note="a note")

    assert figure.skipped is None and figure.note == "a note"
    assert (tmp_path / "param_importances.png").is_file()
    assert len(evaluated) == 1  # the plotly and the matplotlib picture share the fit
    # l2 alone drives the value.
    assert evaluated[0]["l2"] > 0.8 > 0.2 > evaluated[0]["l1"]


def test_the_history_draws_configurations_with_their_seed_spread(tmp_path: Path) -> None:
    """One point per configuration at its first trial, its mean with ± sd as a bar, and
    the best mean so far as the line."""
    from optuna.trial import create_trial

    from sweep.answers.drawn import Drawn

    spec = parse_spec(tiny_study())  # maximized
    points = [create_trial(value=value, user_attrs={"seeds": n, "sd": sd})
              for value, n, sd in ((0.5, 3, 0.1), (0.7, 1, None), (0.6, 2, 0.05))]
    for number, trial in zip((0, 4, 9), points, strict=True):
        trial.number = number
    figure = plots.optimization_history(Drawn("h", [optuna.study.StudyDirection.MAXIMIZE],
                                              points), spec, tmp_path)
    assert figure.skipped is None and (tmp_path / "optimization_history.png").exists()
    chart = figure.chart.replace(" ", "")
    assert '"x":[0,4,9]' in chart and '"y":[0.5,0.7,0.6]' in chart
    assert '"array":[0.1,0.0,0.05]' in chart
    assert '"y":[0.5,0.7,0.7]' in chart  # the best mean so far
