"""MLflow run names say what a trial tried, in a few characters."""

from __future__ import annotations

from sweep.tracking.names import duplicate_run_name, short_number, trial_note, trial_run_name


def test_numbers_are_short() -> None:
    assert [short_number(v) for v in (4.7e-4, 1e-5, 0.01, 3.16e-4, 0.0)] == \
        ["4.7e-4", "1e-5", "1e-2", "3.2e-4", "0"]


def test_names_carry_placement_and_coefficients() -> None:
    assert trial_run_name(5, "before_flatten", {"conv2d_1": {"kernel": {"l2": 4.7e-4}}}) == \
        "#5 before_flatten l2=4.7e-4"
    assert trial_run_name(3, "all", {"a": {"kernel": {"l1": 1e-5, "l2": 2e-4}},
                                     "b": {"kernel": {"l1": 2e-5, "l2": 2e-4}}}) == \
        "#3 all l1=per-layer l2=2e-4"
    assert trial_run_name(4, "none", {}) == "#4 none"


def test_baselines_and_duplicates_say_so() -> None:
    assert trial_run_name(0, "none", {}, "none") == "#0 baseline: no regularization"
    assert trial_run_name(1, "uniform_l2", {"a": {"kernel": {"l2": 3.2e-4}},
                                            "b": {"kernel": {"l2": 3.2e-4}}},
                          "uniform_l2") == "#1 baseline: uniform_l2 l2=3.2e-4"
    assert duplicate_run_name(8, 0) == "#8 = #0 (duplicate)"


def test_a_trial_runs_description_says_which_configuration_and_seed_it_trained() -> None:
    placement = {"dense": {"kernel": {"l2": 0.001}}}
    assert trial_note(7, placement, "val_data_loss", 0.31234) == (
        "**Configuration #7** (dense: kernel l2=0.001), its first seed: val_data_loss 0.3123 "
        "on this seed. The configuration's mean over its seeds is `seeds/mean` on the run "
        "that names it; its re-runs are grouped under it in the study's runs view.\n\n"
        "The kernel norm of every layer beside no regularization's: Artifacts → "
        "`weights.svg`.")
    assert trial_note(11, placement, "val_data_loss", 0.3, origin=7, index=2).startswith(
        "**#7 seed 3**: configuration #7 (dense: kernel l2=0.001) trained again on a further "
        "seed: val_data_loss 0.3000 on this seed (its own draw; the configuration's mean is "
        "`seeds/mean` on #7's run).")
