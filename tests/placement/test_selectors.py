"""sweep.placement.selectors: the placement grammar on architectures built with real Keras."""

from __future__ import annotations

import pytest
from conftest import tiny_study
from conftest_models import CNN_LAYERS, cnn, mlp, normalized_cnn, sequential, two_branch

from sweep.errors import SpecError
from sweep.placement.selectors import KEYWORDS, SelectorError, select
from sweep.placement.slots import LayerInfo, describe_declared, describe_model
from sweep.spec import parse_spec
from sweep.study.check import check_study


@pytest.fixture(scope="module")
def cnn_layers() -> list[LayerInfo]:
    # conv2d, max_pooling2d, conv2d_1, flatten, dense, dense_1
    return describe_model(cnn())


@pytest.fixture(scope="module")
def mlp_layers() -> list[LayerInfo]:
    # dense, dense_1, dense_2
    return describe_model(mlp())


@pytest.fixture(scope="module")
def branch_layers() -> list[LayerInfo]:
    # conv_a -> flat_a, conv_b -> pool_b, joined -> hidden -> output
    return describe_model(two_branch())


@pytest.fixture(scope="module")
def normalized_layers() -> list[LayerInfo]:
    # conv2d, batch_normalization, dropout, flatten, dropout_1, dense, batch_normalization_1,
    # dense_1
    return describe_model(normalized_cnn())


CNN_EXPECTED = {
    "none": (),
    "all": ("conv2d", "conv2d_1", "dense", "dense_1"),
    "first": ("conv2d",),
    "last": ("dense_1",),
    "penultimate": ("dense",),
    "before_flatten": ("conv2d_1",),
    "after_flatten": ("dense",),
    "conv": ("conv2d", "conv2d_1"),
    "dense": ("dense", "dense_1"),  # the keyword, although a layer is also named 'dense'
    "conv2d_1": ("conv2d_1",),
    "dense_1": ("dense_1",),
    "first+penultimate": ("conv2d", "dense"),  # the seed article's Model-5
    "last+first": ("conv2d", "dense_1"),  # model order, not the order written
    " first + last ": ("conv2d", "dense_1"),
    "conv+dense": ("conv2d", "conv2d_1", "dense", "dense_1"),
    "first+conv+conv2d": ("conv2d", "conv2d_1"),  # overlapping terms, no duplicates
    "before_flatten+dense_1": ("conv2d_1", "dense_1"),
}


def test_every_keyword_is_covered() -> None:
    assert set(KEYWORDS) <= set(CNN_EXPECTED)


@pytest.mark.parametrize(("selector", "expected"), list(CNN_EXPECTED.items()))
def test_sequential_cnn(cnn_layers, selector: str, expected: tuple[str, ...]) -> None:
    assert select(selector, cnn_layers) == expected


@pytest.mark.parametrize("selector", list(CNN_EXPECTED))
def test_declared_layers_select_like_the_built_model(cnn_layers, selector: str) -> None:
    # `sweep validate` works on the declared list without TensorFlow: same answers.
    assert select(selector, describe_declared(CNN_LAYERS)) == select(selector, cnn_layers)


@pytest.mark.parametrize(("selector", "expected"), [
    ("all", ("dense", "dense_1", "dense_2")),
    ("first", ("dense",)),
    ("last", ("dense_2",)),
    ("penultimate", ("dense_1",)),
    ("dense", ("dense", "dense_1", "dense_2")),
    ("first+last", ("dense", "dense_2")),
    ("dense_1", ("dense_1",)),
    ("none", ()),
])
def test_mlp(mlp_layers, selector: str, expected: tuple[str, ...]) -> None:
    assert select(selector, mlp_layers) == expected


@pytest.mark.parametrize("selector", ["before_flatten", "after_flatten", "conv", "last+conv"])
def test_mlp_keywords_that_match_no_layer_are_errors(mlp_layers, selector: str) -> None:
    with pytest.raises(SelectorError, match="matches no layer") as error:
        select(selector, mlp_layers)
    assert "dense, dense_1, dense_2" in str(error.value)  # names what there is


def test_flatten_right_after_the_input_has_nothing_before_it() -> None:
    layers = describe_model(sequential(
        [{"Flatten": {}}, {"Dense": {"units": 4}}, {"Dense": {"units": 2}}]))
    assert select("after_flatten", layers) == ("dense",)
    with pytest.raises(SelectorError, match="before_flatten"):
        select("before_flatten", layers)


@pytest.mark.parametrize(("selector", "expected"), [
    ("before_flatten", ("conv_a", "conv_b")),  # one slot per branch
    ("after_flatten", ("hidden",)),  # both branches feed the same slot, named once
    ("conv", ("conv_a", "conv_b")),
    ("dense", ("hidden", "output")),
    ("all", ("conv_a", "conv_b", "hidden", "output")),
    ("first", ("conv_a",)),
    ("last", ("output",)),
    ("penultimate", ("hidden",)),
    ("conv_b", ("conv_b",)),
    ("conv_b+output", ("conv_b", "output")),
    ("before_flatten+after_flatten", ("conv_a", "conv_b", "hidden")),
])
def test_two_branch_functional(branch_layers, selector: str, expected: tuple[str, ...]) -> None:
    assert select(selector, branch_layers) == expected


@pytest.mark.parametrize(("selector", "expected"), [
    # BatchNormalization and Dropout are walked through, never selected.
    ("before_flatten", ("conv2d",)),
    ("after_flatten", ("dense",)),
    ("all", ("conv2d", "dense", "dense_1")),
    ("penultimate", ("dense",)),
    ("last", ("dense_1",)),
    ("conv", ("conv2d",)),
    ("dense", ("dense", "dense_1")),
])
def test_non_slot_layers_between_slots(normalized_layers, selector: str,
                                       expected: tuple[str, ...]) -> None:
    assert select(selector, normalized_layers) == expected


@pytest.mark.parametrize("name", ["batch_normalization", "dropout_1", "flatten"])
def test_a_non_slot_layer_name_is_an_error(normalized_layers, name: str) -> None:
    with pytest.raises(SelectorError, match=f"layer '{name}' has no kernel"):
        select(name, normalized_layers)


def test_flatten_name_in_a_union_is_an_error(cnn_layers) -> None:
    with pytest.raises(SelectorError, match="'flatten' has no kernel"):
        select("first+flatten", cnn_layers)


@pytest.mark.parametrize("selector", ["middle", "Dense", "first+middle", "conv2d_9"])
def test_unknown_terms_are_errors(cnn_layers, selector: str) -> None:
    with pytest.raises(SelectorError, match="unknown selector") as error:
        select(selector, cnn_layers)
    assert "before_flatten" in str(error.value)  # lists the keywords
    assert "conv2d_1" in str(error.value)  # and the slot names


@pytest.mark.parametrize("selector", ["none+all", "all+none", "first+none"])
def test_none_in_a_union_is_an_error(cnn_layers, selector: str) -> None:
    with pytest.raises(SelectorError, match="'none' cannot be part of a union"):
        select(selector, cnn_layers)


@pytest.mark.parametrize("selector", ["", "first+", "+last", "first++last"])
def test_empty_terms_are_errors(cnn_layers, selector: str) -> None:
    with pytest.raises(SelectorError, match="empty term"):
        select(selector, cnn_layers)


def test_a_selector_error_reaches_the_user_as_a_spec_error_naming_the_field() -> None:
    spec = parse_spec(tiny_study(search=dict(tiny_study()["search"],
                                             placement={"choices": ["first+middle"]})))
    with pytest.raises(SpecError) as raised:
        check_study(spec)
    assert raised.value.field == "search.placement.choices[0]"
    assert "unknown selector 'middle'" in str(raised.value)
