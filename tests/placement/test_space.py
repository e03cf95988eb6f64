"""sweep.placement.space: define-by-run suggestions with real Optuna trials. A FixedTrial raises on
any parameter it was not given, so ``trial.params == given`` proves that exactly these
parameters, and no dead one, were suggested."""

from __future__ import annotations

import itertools
import math
from typing import Any

import optuna
import pytest

from sweep.errors import SpecError
from sweep.placement.slots import LayerInfo, describe_declared
from sweep.placement.space import SearchSpace, describe_placement
from sweep.spec import SearchSpec

optuna.logging.set_verbosity(optuna.logging.WARNING)

# Slots: conv2d, conv2d_1 (no bias), dense, dense_1.
CNN = describe_declared([
    {"Conv2D": {"filters": 2, "kernel_size": 3}},
    {"MaxPooling2D": {}},
    {"Conv2D": {"filters": 2, "kernel_size": 3, "use_bias": False}},
    {"Flatten": {}},
    {"Dense": {"units": 4}},
    {"Dense": {"units": 3}},
])
MLP = describe_declared([{"Dense": {"units": 4}}, {"Dense": {"units": 4}}, {"Dense": {"units": 3}}])
RANGE = {"low": 1e-6, "high": 1e-2, "log": True}
SEED_CHOICES = ["none", "before_flatten", "first+penultimate", "all"]


def space(layers: list[LayerInfo] = CNN, **search: Any) -> SearchSpace:
    return SearchSpace(SearchSpec.model_validate(search), layers)


def fixed(space_: SearchSpace, params: dict[str, Any]):
    """The resolved placement for these exact parameters; fails on any other parameter."""
    trial = optuna.trial.FixedTrial(params)
    placement = space_.suggest(trial)
    assert trial.params == params  # every given parameter used, no other one asked
    return placement


# --------------------------------------------------------------------------- shared / per layer
def test_shared_coefficients_are_suggested_once() -> None:
    s = space(placement={"choices": SEED_CHOICES}, l1=RANGE, l2=RANGE)
    placement = fixed(s, {"placement": "first+penultimate", "l1": 1e-4, "l2": 1e-3})
    both = {"kernel": {"l1": 1e-4, "l2": 1e-3}}
    assert placement == {"conv2d": both, "dense": both}


def test_shared_mode_with_a_real_study() -> None:
    s = space(placement={"choices": SEED_CHOICES}, l2=RANGE)
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    for _ in range(12):
        trial = study.ask()
        placement = s.suggest(trial)
        chosen = trial.params["placement"]
        expected_slots = {"none": [], "before_flatten": ["conv2d_1"],
                          "first+penultimate": ["conv2d", "dense"],
                          "all": ["conv2d", "conv2d_1", "dense", "dense_1"]}[chosen]
        assert list(placement) == expected_slots
        if chosen == "none":
            assert set(trial.params) == {"placement"}
        else:
            assert set(trial.params) == {"placement", "l2"}
            assert {v["kernel"]["l2"] for v in placement.values()} == {trial.params["l2"]}
            assert 1e-6 <= trial.params["l2"] <= 1e-2
        study.tell(trial, 0.0)


def test_per_layer_coefficients_only_for_selected_slots() -> None:
    s = space(placement={"choices": SEED_CHOICES}, coefficients="per_layer", l2=RANGE)
    placement = fixed(s, {"placement": "first+penultimate", "l2/conv2d": 1e-3,
                          "l2/dense": 2e-5})
    assert placement == {"conv2d": {"kernel": {"l2": 1e-3}}, "dense": {"kernel": {"l2": 2e-5}}}
    assert fixed(s, {"placement": "before_flatten", "l2/conv2d_1": 5e-4}) == {
        "conv2d_1": {"kernel": {"l2": 5e-4}}}


def test_placement_none_suggests_no_coefficient() -> None:
    for coefficients in ("shared", "per_layer"):
        s = space(placement={"choices": SEED_CHOICES}, coefficients=coefficients,
                  l1={**RANGE, "allow_zero": True}, l2=RANGE)
        assert fixed(s, {"placement": "none"}) == {}


# --------------------------------------------------------------------------- zero / fixed
def test_allow_zero_switch_off_drops_the_penalty() -> None:
    s = space(placement={"choices": ["all"]}, l2={**RANGE, "allow_zero": True})
    assert fixed(s, {"l2_on": False}) == {}
    on = fixed(s, {"l2_on": True, "l2": 1e-3})
    assert set(on) == {"conv2d", "conv2d_1", "dense", "dense_1"}


def test_allow_zero_per_kind() -> None:
    s = space(placement={"choices": ["last"]}, l1={**RANGE, "allow_zero": True},
              l2={**RANGE, "allow_zero": True})
    assert fixed(s, {"l1_on": True, "l1": 1e-5, "l2_on": False}) == {
        "dense_1": {"kernel": {"l1": 1e-5}}}


def test_without_allow_zero_there_is_no_switch() -> None:
    s = space(placement={"choices": ["last"]}, l2=RANGE)
    assert fixed(s, {"l2": 1e-3}) == {"dense_1": {"kernel": {"l2": 1e-3}}}


def test_a_plain_number_fixes_the_coefficient() -> None:
    s = space(placement={"choices": ["none", "all"]}, l1=RANGE, l2=1e-4)
    placement = fixed(s, {"placement": "all", "l1": 2e-6})
    assert placement["dense"] == {"kernel": {"l1": 2e-6, "l2": 1e-4}}
    s = space(placement={"choices": ["conv"]}, coefficients="per_layer", l2=1e-4)
    assert fixed(s, {}) == {"conv2d": {"kernel": {"l2": 1e-4}},
                            "conv2d_1": {"kernel": {"l2": 1e-4}}}


def test_a_single_choice_fixes_the_placement() -> None:
    s = space(placement={"choices": ["before_flatten"]}, l2=RANGE)
    assert fixed(s, {"l2": 1e-3}) == {"conv2d_1": {"kernel": {"l2": 1e-3}}}


def test_zero_coefficients_are_dropped_from_the_resolved_placement() -> None:
    s = space(placement={"choices": ["all"]}, l1=0.0, l2=1e-3)
    assert all(targets == {"kernel": {"l2": 1e-3}} for targets in fixed(s, {}).values())
    s = space(placement={"choices": ["dense"]}, coefficients="per_layer",
              l2={"choices": [0.0, 1e-3]})
    assert fixed(s, {"l2/dense": 0.0, "l2/dense_1": 1e-3}) == {
        "dense_1": {"kernel": {"l2": 1e-3}}}
    assert fixed(s, {"l2/dense": 0.0, "l2/dense_1": 0.0}) == {}


def test_choices_of_coefficients() -> None:
    s = space(placement={"choices": ["first"]}, l2={"choices": [1e-4, 1e-3]})
    assert fixed(s, {"l2": 1e-3}) == {"conv2d": {"kernel": {"l2": 1e-3}}}


# --------------------------------------------------------------------------- targets
def test_bias_target_skips_slots_without_bias() -> None:
    s = space(targets=["bias"], placement={"choices": ["all"]}, coefficients="per_layer",
              l2=RANGE)
    placement = fixed(s, {"l2/conv2d": 1e-3, "l2/dense": 1e-4, "l2/dense_1": 1e-5})
    assert placement == {"conv2d": {"bias": {"l2": 1e-3}}, "dense": {"bias": {"l2": 1e-4}},
                         "dense_1": {"bias": {"l2": 1e-5}}}
    assert "conv2d_1" not in s.candidate_slots


def test_bias_only_placement_on_a_layer_without_bias_asks_nothing() -> None:
    s = space(targets=["bias"], placement={"choices": ["before_flatten", "last"]}, l2=RANGE)
    assert fixed(s, {"placement": "before_flatten"}) == {}


def test_kernel_and_bias_targets() -> None:
    s = space(targets=["kernel", "bias"], placement={"choices": ["conv"]}, l1=1e-5)
    assert fixed(s, {}) == {"conv2d": {"kernel": {"l1": 1e-5}, "bias": {"l1": 1e-5}},
                            "conv2d_1": {"kernel": {"l1": 1e-5}}}


def test_activity_target() -> None:
    s = space(targets=["activity"], placement={"choices": ["penultimate"]}, l1=RANGE)
    assert fixed(s, {"l1": 1e-3}) == {"dense": {"activity": {"l1": 1e-3}}}


def test_bias_target_without_any_bias_is_a_spec_error() -> None:
    layers = describe_declared([{"Dense": {"units": 3, "use_bias": False}}])
    with pytest.raises(SpecError) as error:
        space(layers, targets=["bias"], placement={"choices": ["all"]}, l2=RANGE)
    assert error.value.field == "search.targets"


# --------------------------------------------------------------------------- mask
def test_mask_searches_each_slot_on_and_off() -> None:
    s = space(placement={"mask": True}, coefficients="per_layer", l2=RANGE)
    params = {"mask/conv2d": True, "mask/conv2d_1": False, "mask/dense": True,
              "mask/dense_1": False, "l2/conv2d": 1e-3, "l2/dense": 1e-4}
    assert fixed(s, params) == {"conv2d": {"kernel": {"l2": 1e-3}},
                                "dense": {"kernel": {"l2": 1e-4}}}


def test_mask_all_off_suggests_no_coefficient() -> None:
    s = space(placement={"mask": True}, l2=RANGE)
    assert fixed(s, {f"mask/{n}": False for n in ("conv2d", "conv2d_1", "dense", "dense_1")}) \
        == {}


def test_mask_limited_by_a_selector() -> None:
    s = space(placement={"mask": "conv"}, l2=RANGE)
    assert s.mask_slots == ("conv2d", "conv2d_1")
    assert fixed(s, {"mask/conv2d": False, "mask/conv2d_1": True, "l2": 1e-3}) == {
        "conv2d_1": {"kernel": {"l2": 1e-3}}}


def test_mask_with_a_bias_target_has_no_switch_for_slots_without_bias() -> None:
    s = space(targets=["bias"], placement={"mask": True}, l2=1e-3)
    assert s.mask_slots == ("conv2d", "dense", "dense_1")
    assert fixed(s, {"mask/conv2d": True, "mask/dense": False, "mask/dense_1": False}) == {
        "conv2d": {"bias": {"l2": 1e-3}}}


# --------------------------------------------------------------------------- grid
def test_grid_of_choices_and_fixed_values() -> None:
    s = space(placement={"choices": ["none", "all"]}, l1=1e-5, l2={"choices": [1e-4, 1e-3]})
    assert s.grid() == {"placement": ["none", "all"], "l2": [1e-4, 1e-3]}


def test_grid_per_layer_and_mask() -> None:
    s = space(placement={"choices": ["first", "last"]}, coefficients="per_layer",
              l2={"choices": [0.0, 1e-3]})
    assert s.grid() == {"placement": ["first", "last"], "l2/conv2d": [0.0, 1e-3],
                        "l2/dense_1": [0.0, 1e-3]}
    s = space(placement={"mask": "dense"}, l2=1e-4)
    assert s.grid() == {"mask/dense": [True, False], "mask/dense_1": [True, False]}


def test_grid_drives_optunas_grid_sampler_without_unknown_parameters() -> None:
    s = space(targets=["bias"], placement={"mask": True}, coefficients="per_layer",
              l2={"choices": [1e-4, 1e-3]})
    grid = s.grid()
    assert "mask/conv2d_1" not in grid and "l2/conv2d_1" not in grid
    study = optuna.create_study(sampler=optuna.samplers.GridSampler(grid, seed=0))
    study.optimize(lambda trial: float(len(s.suggest(trial))),
                   n_trials=math.prod(len(v) for v in grid.values()))
    assert all(set(t.params) <= set(grid) for t in study.trials)
    placements = {len(t.params) for t in study.trials}
    assert max(placements) == len(grid)  # every parameter of the grid is used
    assert max(t.value for t in study.trials) == 3  # conv2d, dense, dense_1: all biases


def test_grid_refuses_a_range() -> None:
    s = space(placement={"choices": ["all"]}, l1=1e-5, l2=RANGE)
    with pytest.raises(SpecError, match="grid sampler") as error:
        s.grid()
    assert error.value.field == "search.l2"


# --------------------------------------------------------------------------- errors
def test_selector_matching_no_layer_names_its_choice() -> None:
    with pytest.raises(SpecError) as error:
        space(MLP, placement={"choices": ["all", "before_flatten"]}, l2=RANGE)
    assert error.value.field == "search.placement.choices[1]"
    assert error.value.value == "before_flatten"
    assert str(error.value).startswith("search.placement.choices[1]:")


def test_unknown_selector_in_a_union_names_its_choice() -> None:
    with pytest.raises(SpecError) as error:
        space(placement={"choices": ["none", "first", "last+middle"]}, l2=RANGE)
    assert error.value.field == "search.placement.choices[2]"


def test_mask_selector_error_names_the_mask() -> None:
    with pytest.raises(SpecError) as error:
        space(MLP, placement={"mask": "conv"}, l2=RANGE)
    assert error.value.field == "search.placement.mask"


# --------------------------------------------------------------------------- misc
def test_candidate_slots_is_the_union_of_choices_in_model_order() -> None:
    s = space(placement={"choices": ["last", "first", "none"]}, l2=RANGE)
    assert s.candidate_slots == ("conv2d", "dense_1")


def test_describe_placement() -> None:
    assert describe_placement({}) == "none"
    text = describe_placement({"conv2d": {"kernel": {"l2": 1e-4}},
                               "dense": {"kernel": {"l1": 1e-5, "l2": 2e-3}}})
    assert text == "conv2d: kernel l2=0.0001; dense: kernel l1=1e-05 l2=0.002"


@pytest.mark.parametrize("seed", [0, 1])
def test_suggestions_are_reproducible_for_a_seed(seed: int) -> None:
    s = space(placement={"mask": True}, coefficients="per_layer", l1=RANGE,
              l2={**RANGE, "allow_zero": True})

    def run() -> list[dict]:
        study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=seed))
        out = []
        for _ in range(5):
            trial = study.ask()
            out.append(s.suggest(trial))
            study.tell(trial, 0.0)
        return out

    first, second = run(), run()
    assert first == second
    assert any(first) and any(p != q for p, q in itertools.pairwise(first))
