"""sweep.placement.slots: which layers are slots, their names, and the three ways to
describe a model (declared layers list, live model, ``.keras`` file) agreeing with Keras
and each other."""

from __future__ import annotations

import inspect

import pytest
from conftest_models import CNN_LAYERS, CNN_NAMES, cnn, keras, sequential, two_branch

from sweep.placement.slots import (
    DECLARABLE_LAYER_CLASSES,
    FLATTENING_CLASSES,
    KERNEL_LAYER_CLASSES,
    LayerInfo,
    declared_layer_names,
    describe_config,
    describe_declared,
    describe_keras_file,
    describe_model,
    slot_names,
    to_snake_case,
)


def _takes_kernel_regularizer(class_name: str) -> bool:
    cls = getattr(keras.layers, class_name)
    return "kernel_regularizer" in inspect.signature(cls.__init__).parameters


# --------------------------------------------------------------------------- class lists
def test_kernel_layer_classes_take_a_kernel_regularizer() -> None:
    assert KERNEL_LAYER_CLASSES <= DECLARABLE_LAYER_CLASSES
    without = sorted(n for n in KERNEL_LAYER_CLASSES if not _takes_kernel_regularizer(n))
    assert without == []


def test_declarable_classes_are_public_keras_layers() -> None:
    missing = sorted(n for n in DECLARABLE_LAYER_CLASSES if not hasattr(keras.layers, n))
    assert missing == []
    for name in DECLARABLE_LAYER_CLASSES:
        assert issubclass(getattr(keras.layers, name), keras.layers.Layer), name


def test_no_other_declarable_class_takes_a_kernel_regularizer() -> None:
    # A declarable layer with a kernel that is not listed would never be a slot.
    unlisted = sorted(n for n in DECLARABLE_LAYER_CLASSES - KERNEL_LAYER_CLASSES
                      if _takes_kernel_regularizer(n))
    assert unlisted == []


def test_flattening_classes_are_keras_layers_without_a_kernel() -> None:
    for name in FLATTENING_CLASSES:
        assert hasattr(keras.layers, name), name
        assert not _takes_kernel_regularizer(name), name


# --------------------------------------------------------------------------- names
def test_to_snake_case_matches_keras_default_names() -> None:
    checked = []
    # One fresh session: each class has its own name prefix, so each first instance gets
    # the bare default name.
    keras.backend.clear_session()
    for class_name in sorted(DECLARABLE_LAYER_CLASSES):
        try:
            layer = getattr(keras.layers, class_name)()
        except (TypeError, ValueError):
            continue  # needs arguments; covered by the Sequential comparisons below
        assert layer.name == to_snake_case(class_name), class_name
        checked.append(class_name)
    assert {"Flatten", "ReLU", "PReLU", "BatchNormalization", "GlobalAveragePooling2D",
            "MaxPooling2D", "LayerNormalization"} <= set(checked)


MIXED_LAYERS = (
    {"Conv2D": {"filters": 2, "kernel_size": 3, "padding": "same"}},
    {"BatchNormalization": {}},
    {"ReLU": {}},
    {"Conv2DTranspose": {"filters": 2, "kernel_size": 3, "padding": "same"}},
    {"Conv2D": {"filters": 2, "kernel_size": 3}},
    {"MaxPooling2D": {}},
    {"GlobalAveragePooling2D": {}},
    {"Dense": {"units": 4}},
    {"Dropout": {"rate": 0.5}},
    {"Dense": {"units": 4}},
    {"BatchNormalization": {}},
    {"EinsumDense": {"equation": "ab,bc->ac", "output_shape": 3}},
    {"Dense": {"units": 2}},
)


@pytest.mark.parametrize("declared", [CNN_LAYERS, MIXED_LAYERS], ids=["cnn", "mixed"])
def test_declared_names_are_the_names_keras_gives_in_a_fresh_session(declared) -> None:
    expected = declared_layer_names(declared)
    assert [layer.name for layer in sequential(declared).layers] == expected
    # A second model in the same fresh-session state gets the very same names.
    assert [layer.name for layer in sequential(declared).layers] == expected


def test_declared_names_of_the_seed_cnn() -> None:
    assert declared_layer_names(CNN_LAYERS) == list(CNN_NAMES)


def test_explicit_names_win_and_default_names_step_around_them() -> None:
    declared = [
        {"Dense": {"units": 3, "name": "dense_1"}},
        {"Dense": {"units": 3}},
        {"Dense": {"units": 3}},
        {"Dense": {"units": 3, "name": "head"}},
        {"Flatten": None},
    ]
    names = declared_layer_names(declared)
    assert names == ["dense_1", "dense", "dense_2", "head", "flatten"]
    assert len(set(names)) == len(names)


def test_an_explicit_name_equal_to_a_later_default_is_kept() -> None:
    declared = [{"Dense": {"units": 3}}, {"Dense": {"units": 3, "name": "dense"}}]
    names = declared_layer_names(declared)
    assert names[1] == "dense"
    assert names[0] != "dense" and len(set(names)) == 2


# --------------------------------------------------------------------------- descriptions
BIAS_LAYERS = (
    {"Conv2D": {"filters": 2, "kernel_size": 3, "use_bias": False}},
    {"BatchNormalization": {}},
    {"Conv2D": {"filters": 2, "kernel_size": 3}},
    {"Flatten": {}},
    {"Dropout": {"rate": 0.2}},
    {"Dense": {"units": 4, "use_bias": False, "name": "bottleneck"}},
    {"EinsumDense": {"equation": "ab,bc->ac", "output_shape": 4}},
    {"EinsumDense": {"equation": "ab,bc->ac", "output_shape": 4, "bias_axes": "c"}},
    {"Dense": {"units": 3, "activation": "softmax"}},
)


@pytest.mark.parametrize("declared", [CNN_LAYERS, BIAS_LAYERS], ids=["cnn", "bias"])
def test_declared_description_equals_the_built_models(declared) -> None:
    described = describe_declared(declared)
    assert described == describe_model(sequential(declared))


def test_declared_description_fields() -> None:
    described = {info.name: info for info in describe_declared(BIAS_LAYERS)}
    assert [n for n, i in described.items() if i.is_slot] == [
        "conv2d", "conv2d_1", "bottleneck", "einsum_dense", "einsum_dense_1", "dense"]
    assert {n for n, i in described.items() if i.has_bias} == {
        "conv2d_1", "einsum_dense_1", "dense"}
    assert described["batch_normalization"] == LayerInfo(
        "batch_normalization", "BatchNormalization", False, False, ("conv2d",))
    assert described["conv2d"].inbound == ()
    assert described["bottleneck"].inbound == ("dropout",)


def test_keras_file_description_equals_the_sequential_models(tmp_path) -> None:
    model = cnn()
    path = tmp_path / "m.keras"
    model.save(path)
    described = describe_keras_file(path)
    assert described == describe_model(model)
    assert [i.name for i in described] == list(CNN_NAMES)
    assert slot_names(described) == ["conv2d", "conv2d_1", "dense", "dense_1"]


def test_keras_file_description_keeps_the_edges_of_a_functional_model(tmp_path) -> None:
    model = two_branch()
    path = tmp_path / "m.keras"
    model.save(path)
    described = describe_keras_file(path)
    assert described == describe_model(model)
    # The full serialized form and the inner config describe the same model.
    assert describe_config({"class_name": "Functional", "config": model.get_config()}) \
        == described
    edges = {info.name: info.inbound for info in described}
    assert edges == {
        "conv_a": (),  # fed by the Input, which is not a layer of the description
        "conv_b": (),
        "flat_a": ("conv_a",),
        "pool_b": ("conv_b",),
        "joined": ("flat_a", "pool_b"),
        "hidden": ("joined",),
        "output": ("hidden",),
    }
    assert slot_names(described) == ["conv_a", "conv_b", "hidden", "output"]
