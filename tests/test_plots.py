"""sweep/answers/plots.py: the parameter-importance picture of a large study."""

from __future__ import annotations

from pathlib import Path

import optuna
import pytest
from conftest import tiny_study

from sweep.answers import plots
from sweep.spec import parse_spec


def _study_of(n: int) -> optuna.Study:
    """``n`` completed trials whose value depends on ``l2`` only (``l1`` is noise-free
    decoration), built in memory without training."""
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


def test_importances_of_a_large_study_come_from_one_seeded_sample_computed_once(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(plots, "MAX_TRIALS_IMPORTANCE", 40)
    evaluated: list[tuple[int, dict[str, float]]] = []
    original = optuna.importance.FanovaImportanceEvaluator.evaluate

    def counted(self, study, params=None, *, target=None):  # type: ignore[no-untyped-def]
        result = original(self, study, params, target=target)
        evaluated.append((len(study.trials), result))
        return result

    monkeypatch.setattr(optuna.importance.FanovaImportanceEvaluator, "evaluate", counted)
    spec = parse_spec(tiny_study())
    figure = plots.param_importances(_study_of(120), spec, tmp_path)

    assert figure.skipped is None
    assert (tmp_path / "param_importances.png").is_file()
    # One fit for the plotly and the matplotlib picture, on the sample only.
    assert [size for size, _ in evaluated] == [40]
    assert figure.note == "importances estimated from a random 40 of the 120 trials"
    # l2 alone drives the value, and the sample still says so.
    importances = evaluated[0][1]
    assert importances["l2"] > 0.8 > 0.2 > importances["l1"]


def test_a_study_within_the_cap_uses_every_trial_and_says_nothing(tmp_path: Path) -> None:
    spec = parse_spec(tiny_study())
    figure = plots.param_importances(_study_of(30), spec, tmp_path)
    assert figure.skipped is None and figure.note is None
