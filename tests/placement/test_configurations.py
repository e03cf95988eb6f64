"""sweep.placement.configurations: the distinct models a finite search space holds."""

from __future__ import annotations

import json
from typing import Any

from sweep.placement.configurations import placement_key, space_configurations
from sweep.placement.slots import describe_declared
from sweep.placement.space import SearchSpace
from sweep.spec import SearchSpec

# Slots: dense, dense_1, dense_2.
MLP = describe_declared([{"Dense": {"units": 4}}, {"Dense": {"units": 4}},
                         {"Dense": {"units": 3}}])


def _configurations(**search: Any) -> list[dict] | None:
    return space_configurations(SearchSpace(SearchSpec.model_validate(search), MLP))


def test_named_placements_times_coefficient_choices() -> None:
    found = _configurations(targets=["kernel"], placement={"choices": ["none", "all"]},
                            l2={"choices": [1e-4, 1e-3]})
    assert found is not None
    assert sorted(map(json.dumps, found)) == sorted(map(json.dumps, [
        {},
        {"dense": {"kernel": {"l2": 1e-4}}, "dense_1": {"kernel": {"l2": 1e-4}},
         "dense_2": {"kernel": {"l2": 1e-4}}},
        {"dense": {"kernel": {"l2": 1e-3}}, "dense_1": {"kernel": {"l2": 1e-3}},
         "dense_2": {"kernel": {"l2": 1e-3}}},
    ]))


def test_a_zero_choice_is_the_same_model_as_no_regularization() -> None:
    # 2 placements x 2 coefficients = 4 combinations, but "all" with 0 is "none".
    found = _configurations(targets=["kernel"], placement={"choices": ["none", "all"]},
                            l2={"choices": [0.0, 1e-3]})
    assert found is not None and len(found) == 2


def test_a_mask_over_three_slots_with_a_fixed_coefficient() -> None:
    found = _configurations(targets=["kernel"], placement={"mask": True}, l2=1e-3)
    assert found is not None and len(found) == 8


def test_per_layer_choices_multiply_over_the_slots_switched_on() -> None:
    # Masks: 1 empty + 3 single slots x 2 + 3 pairs x 4 + 1 triple x 8 = 27 models.
    found = _configurations(targets=["kernel"], placement={"mask": True},
                            coefficients="per_layer", l1={"choices": [1e-4, 1e-3]})
    assert found is not None and len(found) == 27


def test_a_coefficient_range_cannot_be_listed() -> None:
    assert _configurations(targets=["kernel"], placement={"choices": ["none", "all"]},
                           l2={"low": 1e-5, "high": 1e-2, "log": True}) is None


def test_the_key_survives_a_json_round_trip_and_ignores_order() -> None:
    placement = {"dense_1": {"kernel": {"l2": 1e-3, "l1": 3e-05}}, "dense": {"bias": {"l1": 0.1}}}
    reordered = {"dense": {"bias": {"l1": 0.1}}, "dense_1": {"kernel": {"l1": 3e-05, "l2": 1e-3}}}
    assert placement_key(json.loads(json.dumps(placement))) == placement_key(reordered)
    assert placement_key({}) != placement_key(placement)
    assert len(placement_key(placement)) == 16
