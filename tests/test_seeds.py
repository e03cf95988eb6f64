"""sweep.seeds: every seed derived from the study seed in one place, one word per purpose,
so that trials, extra seeds, confirmations and samplers never share a seed."""

from __future__ import annotations

from sweep.seeds import confirmation_seeds, extra_seed, sampler_seed, trial_seed


def test_each_seed_depends_on_the_study_seed_and_its_place_only() -> None:
    assert trial_seed(0, 0) == 821328062
    assert trial_seed(0, 5) == 161328693
    # The extra seeds every configuration shares (racing re-runs, the baseline's noise
    # seeds): the values studies raced with before they moved here.
    assert extra_seed(0, 1) == 759045492
    assert extra_seed(0, 2) == 776195886
    assert extra_seed(7, 1) == 1505749142
    assert confirmation_seeds(0, 3) == (1336250872, 185239278, 44848948)
    assert confirmation_seeds(7, 2) == (466218803, 220533928)


def test_a_fresh_studys_first_worker_samples_with_the_study_seed() -> None:
    assert sampler_seed(17, 0, 0) == 17
    assert sampler_seed(0, 1, 0) == 43226053  # a second worker draws other start-ups
    assert sampler_seed(0, 0, 12) == 515013178  # a resumed worker does not replay its draws


def test_no_two_purposes_hand_out_the_same_seed() -> None:
    trials = {trial_seed(3, n) for n in range(2000)}
    extras = {extra_seed(3, k) for k in range(1, 50)}
    confirms = set(confirmation_seeds(3, 50))
    samplers = {sampler_seed(3, w, t) for w in range(1, 9) for t in range(0, 200, 10)}
    assert len(trials) == 2000 and len(extras) == 49 and len(confirms) == 50
    assert not (trials & extras or trials & confirms or extras & confirms
                or samplers & (trials | extras | confirms))
