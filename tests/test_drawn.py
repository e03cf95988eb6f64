"""sweep/answers/drawn.py: what the report's pictures are drawn from in a large study."""

from __future__ import annotations

import optuna
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
        attrs = {"baseline": "none", "placement": {}} if i == 7 else {}
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
    assert note == ("drawn from 1,000 of the 3,500 completed trials: every trial that set "
                    "a new best, the 100 best, the baselines and a random rest")
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
