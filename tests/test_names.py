"""MLflow run names say what a trial tried, in a few characters."""

from __future__ import annotations

from sweep.tracking.names import duplicate_run_name, short_number, trial_run_name


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
