"""sweep/answers/drawn.py: what the report's pictures are drawn from in a large study."""

from __future__ import annotations

import optuna
import pytest
from conftest import tiny_study
from optuna.distributions import FloatDistribution
from optuna.trial import create_trial

from sweep.answers.drawn import drawn
from sweep.spec import parse_spec


def _study(n: int) -> optuna.Study:
    """Maximized; trial i scores i % 1000 / 1000 except that trials 0, 5, 50 and 3000
    set new bests early or late (#3000 scores 2.0), and #7 is the baseline."""
    study = optuna.create_study(direction="maximize")
    distributions = {"l2": FloatDistribution(1e-6, 1e-1, log=True)}
    for i in range(n):
        value = {0: 0.5, 5: 0.9995, 50: 1.5, 3000: 2.0}.get(i, (i % 1000) / 1000 * 0.999)
        # Each trial a configuration of its own (a placement of its own).
        attrs = {"baseline": "none", "placement": {}} if i == 7 else \
            {"placement": {"dense": {"kernel": {"l2": float(i + 1)}}}}
        study.add_trial(create_trial(params={"l2": 1e-3}, distributions=distributions,
                                     value=value, user_attrs=attrs))
    return study


def test_a_large_study_is_drawn_from_a_sample_that_keeps_what_matters() -> None:
    spec = parse_spec(tiny_study())  # val_accuracy: maximized
    study = _study(3500)
    everything, sample, note = drawn(study, spec)
    assert len(everything.get_trials()) == 3500
    kept = [t.number for t in sample.get_trials()]
    assert len(kept) == 1000 and kept == sorted(kept)
    assert {0, 5, 50, 3000, 7} <= set(kept)  # every new best, and the baseline
    # The 100 best after #3000 and #50: values 0.998... of i % 1000 == 999 and below.
    best = sorted(study.trials, key=lambda t: -t.values[0])[:100]
    assert {t.number for t in best} <= set(kept)
    assert note == ("drawn from 1,000 of the 3,500 completed configurations: every one that "
                    "set a new best, the 100 best, the baselines and a random rest")
    # Nothing is copied: the same trial objects on every read, under their own numbers.
    assert sample.get_trials()[0] is sample.trials[0]
    assert sample.get_trials(deepcopy=True)[3] is sample.get_trials()[3]
    # Seeded: the same study draws the same sample.
    assert [t.number for t in drawn(study, spec)[1].get_trials()] == kept


def test_a_small_study_is_drawn_whole() -> None:
    spec = parse_spec(tiny_study())
    everything, sample, note = drawn(_study(40), spec)
    assert sample is everything and note is None
    assert len(sample.trials) == 40


def test_a_configuration_is_one_point_its_mean_over_seeds() -> None:
    """A re-run on another seed is no point of its own: the trial that names its
    configuration carries the mean, the seed count and the sd of the draws."""
    spec = parse_spec(tiny_study())
    study = optuna.create_study(direction="maximize")
    distributions = {"l2": FloatDistribution(1e-6, 1e-1, log=True)}
    placement = {"dense": {"kernel": {"l2": 1e-3}}}
    for value, attrs in ((0.6, {"placement": placement}),
                         (0.5, {"placement": {"dense": {"kernel": {"l2": 1e-2}}}}),
                         # #0's second seed: its own draw 0.8, told the mean 0.7
                         (0.7, {"placement": placement, "seed_of": 0, "seed_index": 1,
                                "seed_value": 0.8})):
        study.add_trial(create_trial(params={"l2": placement["dense"]["kernel"]["l2"]},
                                     distributions=distributions, value=value,
                                     user_attrs=attrs))
    everything, _, _ = drawn(study, spec)
    points = {t.number: (t.values[0], t.user_attrs) for t in everything.get_trials()}
    assert sorted(points) == [0, 1]
    assert points[0][0] == pytest.approx(0.7)
    assert points[0][1]["seeds"] == 2
    assert points[0][1]["sd"] == pytest.approx(0.1414213562)
    assert points[1] == (0.5, {"seeds": 1, "sd": None})
