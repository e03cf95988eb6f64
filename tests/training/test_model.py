"""sweep.training.model: base models from the three sources, and regularized clones that carry
exactly the penalties of a placement while the base model stays untouched."""

from __future__ import annotations

import sys
import textwrap
import uuid

import numpy as np
import pytest
from conftest_models import CNN_LAYERS, CNN_NAMES, IMAGE_SHAPE, N_CLASSES, keras, two_branch

from sweep.errors import SpecError
from sweep.placement.slots import describe_model, slot_names
from sweep.spec import ModelSpec
from sweep.training.model import build_base_model, regularize

FIELDS = {"kernel": "kernel_regularizer", "bias": "bias_regularizer",
          "activity": "activity_regularizer"}

BUILDERS = '''
from __future__ import annotations

import keras

CALLS = []


def functional(input_shape, n_classes):
    CALLS.append((input_shape, n_classes))
    image = keras.Input(shape=input_shape)
    x = keras.layers.Conv2D(2, 3, name="conv")(image)
    x = keras.layers.Flatten(name="flat")(x)
    x = keras.layers.Dense(4, name="hidden", kernel_regularizer=keras.regularizers.L2(0.5),
                           activity_regularizer=keras.regularizers.L1(0.25))(x)
    return keras.Model(image, keras.layers.Dense(n_classes, name="head")(x))


def only_shape(input_shape):
    return keras.Sequential([keras.Input(shape=input_shape), keras.layers.Flatten(),
                             keras.layers.Dense(2)])


def anything(**kwargs):
    CALLS.append(kwargs)
    return only_shape(kwargs["input_shape"])


class Tiny(keras.Model):
    def __init__(self, n_classes):
        super().__init__()
        self.flat = keras.layers.Flatten()
        self.head = keras.layers.Dense(n_classes)

    def call(self, x):
        return self.head(self.flat(x))


def subclassed(input_shape, n_classes):
    model = Tiny(n_classes)
    model(keras.ops.zeros((1, *input_shape)))
    return model


def not_a_model(input_shape, n_classes):
    return [input_shape, n_classes]
'''


@pytest.fixture
def builders(tmp_path, monkeypatch):
    """A builder module written to tmp_path and importable, under a name of its own."""
    name = f"regsweep_test_builders_{uuid.uuid4().hex[:8]}"
    (tmp_path / f"{name}.py").write_text(textwrap.dedent(BUILDERS))
    monkeypatch.syspath_prepend(str(tmp_path))
    yield name
    sys.modules.pop(name, None)


def penalties(regularizer) -> dict[str, float] | None:
    """A Keras regularizer as {kind: coefficient}; exact class checked."""
    if regularizer is None:
        return None
    kind = type(regularizer)
    if kind is keras.regularizers.L1L2:
        return {"l1": float(regularizer.l1), "l2": float(regularizer.l2)}
    if kind is keras.regularizers.L1:
        return {"l1": float(regularizer.l1)}
    if kind is keras.regularizers.L2:
        return {"l2": float(regularizer.l2)}
    raise AssertionError(f"unexpected regularizer {regularizer!r}")


def carried(model, layer_name: str) -> dict[str, dict[str, float]]:
    """What a layer of a model is regularized with, as {target: {kind: value}}."""
    layer = model.get_layer(layer_name)
    found = {target: penalties(getattr(layer, field, None)) for target, field in FIELDS.items()}
    return {target: value for target, value in found.items() if value is not None}


def assert_carries(model, layer_name: str, expected) -> None:
    """The layer carries exactly the expected {target: {kind: value}} (Keras may keep a
    coefficient as float32)."""
    found = carried(model, layer_name)
    assert {t: set(k) for t, k in found.items()} == {t: set(k) for t, k in expected.items()}, \
        (layer_name, found, expected)
    for target, kinds in expected.items():
        for kind, value in kinds.items():
            assert found[target][kind] == pytest.approx(value, rel=1e-6), (layer_name, target)


def same_weights(a, b) -> bool:
    wa, wb = a.get_weights(), b.get_weights()
    return len(wa) == len(wb) and all(np.array_equal(x, y) for x, y in zip(wa, wb, strict=True))


# --------------------------------------------------------------------------- base models
def test_declared_layers() -> None:
    model = build_base_model(ModelSpec(layers=CNN_LAYERS), IMAGE_SHAPE, N_CLASSES)
    assert isinstance(model, keras.Sequential)
    assert [layer.name for layer in model.layers] == list(CNN_NAMES)
    assert model.input_shape == (None, *IMAGE_SHAPE)
    assert model.output_shape == (None, N_CLASSES)
    assert model.get_layer("conv2d").filters == 2
    assert model.get_layer("dense").activation is keras.activations.relu


def test_declared_names_do_not_depend_on_earlier_models() -> None:
    keras.backend.clear_session()
    earlier = [keras.layers.Dense(1) for _ in range(3)]  # Keras' name counters move on
    assert [layer.name for layer in earlier] == ["dense", "dense_1", "dense_2"]
    model = build_base_model(ModelSpec(layers=CNN_LAYERS), IMAGE_SHAPE, N_CLASSES)
    assert [layer.name for layer in model.layers] == list(CNN_NAMES)


def test_declared_explicit_name_is_used() -> None:
    declared = ({"Flatten": {}}, {"Dense": {"units": 3, "name": "head"}})
    model = build_base_model(ModelSpec(layers=declared), IMAGE_SHAPE, N_CLASSES)
    assert [layer.name for layer in model.layers] == ["flatten", "head"]


def test_declared_bad_arguments_name_the_entry() -> None:
    declared = ({"Flatten": {}}, {"Dense": {"units": 3, "colour": "red"}})
    with pytest.raises(SpecError) as error:
        build_base_model(ModelSpec(layers=declared), IMAGE_SHAPE, N_CLASSES)
    assert error.value.field == "model.layers[1].Dense"


def test_builder_gets_input_shape_and_n_classes(builders) -> None:
    model = build_base_model(ModelSpec(builder=f"{builders}:functional"), IMAGE_SHAPE, 5)
    module = __import__(builders)
    assert module.CALLS == [(IMAGE_SHAPE, 5)]
    assert model.input_shape == (None, *IMAGE_SHAPE)
    assert model.output_shape == (None, 5)
    assert slot_names(describe_model(model)) == ["conv", "hidden", "head"]


def test_builder_is_given_only_the_arguments_it_takes(builders) -> None:
    model = build_base_model(ModelSpec(builder=f"{builders}:only_shape"), IMAGE_SHAPE, 5)
    assert model.output_shape == (None, 2)
    build_base_model(ModelSpec(builder=f"{builders}:anything"), IMAGE_SHAPE, 5)
    assert __import__(builders).CALLS == [{"input_shape": IMAGE_SHAPE, "n_classes": 5}]


@pytest.mark.parametrize(("function", "message"), [
    ("subclassed", "Sequential or functional"),
    ("not_a_model", "must return a keras.Model"),
    ("missing", "no function 'missing'"),
])
def test_builder_errors_name_model_builder(builders, function: str, message: str) -> None:
    with pytest.raises(SpecError, match=message) as error:
        build_base_model(ModelSpec(builder=f"{builders}:{function}"), IMAGE_SHAPE, N_CLASSES)
    assert error.value.field == "model.builder"
    assert str(error.value).startswith("model.builder:")


def test_builder_module_that_does_not_import() -> None:
    with pytest.raises(SpecError, match="cannot import") as error:
        build_base_model(ModelSpec(builder="no_such_module_xyz:build"), IMAGE_SHAPE, 3)
    assert error.value.field == "model.builder"


def test_keras_file(tmp_path) -> None:
    saved = two_branch()
    path = tmp_path / "base.keras"
    saved.save(path)
    model = build_base_model(ModelSpec(file=path), IMAGE_SHAPE, N_CLASSES)
    assert describe_model(model) == describe_model(saved)
    assert same_weights(model, saved)


def test_missing_keras_file_names_model_file(tmp_path) -> None:
    with pytest.raises(SpecError) as error:
        build_base_model(ModelSpec(file=tmp_path / "absent.keras"), IMAGE_SHAPE, N_CLASSES)
    assert error.value.field == "model.file"


# --------------------------------------------------------------------------- regularize
CNN_PLACEMENT = {
    "conv2d": {"kernel": {"l2": 1e-3}},
    "dense": {"kernel": {"l1": 1e-4, "l2": 2e-4}, "bias": {"l1": 3e-4}},
    "dense_1": {"activity": {"l2": 5e-3}, "bias": {"l2": 4e-4}},
}


@pytest.fixture
def base_cnn():
    return build_base_model(ModelSpec(layers=CNN_LAYERS), IMAGE_SHAPE, N_CLASSES)


def test_clone_carries_exactly_the_placement(base_cnn) -> None:
    slots = slot_names(describe_model(base_cnn))
    clone = regularize(base_cnn, CNN_PLACEMENT, slots)
    for slot in slots:
        assert_carries(clone, slot, CNN_PLACEMENT.get(slot, {}))
    assert carried(clone, "conv2d_1") == {}
    assert type(clone.get_layer("dense").kernel_regularizer) is keras.regularizers.L1L2


def test_clone_leaves_the_base_model_alone(base_cnn) -> None:
    before = [layer.get_config() for layer in base_cnn.layers]
    slots = slot_names(describe_model(base_cnn))
    clone = regularize(base_cnn, CNN_PLACEMENT, slots)
    assert clone is not base_cnn
    assert not {id(layer) for layer in clone.layers} & {id(layer) for layer in base_cnn.layers}
    for slot in slots:
        assert carried(base_cnn, slot) == {}
    assert [layer.get_config() for layer in base_cnn.layers] == before
    assert base_cnn.losses == []


def test_clone_starts_from_the_base_weights(base_cnn) -> None:
    clone = regularize(base_cnn, CNN_PLACEMENT, slot_names(describe_model(base_cnn)))
    assert same_weights(clone, base_cnn)
    x = np.random.default_rng(0).random((2, *IMAGE_SHAPE), dtype=np.float32)
    np.testing.assert_allclose(keras.ops.convert_to_numpy(clone(x, training=False)),
                               keras.ops.convert_to_numpy(base_cnn(x, training=False)),
                               rtol=1e-6)


def test_clone_keeps_the_architecture_and_names(base_cnn) -> None:
    clone = regularize(base_cnn, CNN_PLACEMENT, slot_names(describe_model(base_cnn)))
    assert describe_model(clone) == describe_model(base_cnn)
    assert [type(layer) for layer in clone.layers] == [type(layer) for layer in base_cnn.layers]


def test_clone_of_a_functional_model() -> None:
    base = two_branch()
    slots = slot_names(describe_model(base))
    placement = {"conv_a": {"kernel": {"l1": 1e-3}}, "conv_b": {"kernel": {"l1": 1e-3}},
                 "hidden": {"activity": {"l1": 2e-3, "l2": 3e-3}}}
    clone = regularize(base, placement, slots)
    assert describe_model(clone) == describe_model(base)  # edges and names preserved
    for slot in slots:
        assert_carries(clone, slot, placement.get(slot, {}))
        assert carried(base, slot) == {}
    assert same_weights(clone, base)


def test_empty_placement_gives_an_unregularized_clone(base_cnn) -> None:
    clone = regularize(base_cnn, {}, slot_names(describe_model(base_cnn)))
    for layer in clone.layers:
        assert carried(clone, layer.name) == {}
    assert clone.losses == []


def test_builder_penalties_do_not_leak_into_other_placements(builders) -> None:
    base = build_base_model(ModelSpec(builder=f"{builders}:functional"), IMAGE_SHAPE, 3)
    assert_carries(base, "hidden", {"kernel": {"l2": 0.5}, "activity": {"l1": 0.25}})
    slots = slot_names(describe_model(base))

    elsewhere = regularize(base, {"conv": {"kernel": {"l2": 1e-3}}}, slots)
    assert carried(elsewhere, "hidden") == {}
    assert_carries(elsewhere, "conv", {"kernel": {"l2": 1e-3}})
    assert len(elsewhere.losses) == 1  # only conv's kernel penalty remains

    replaced = regularize(base, {"hidden": {"kernel": {"l1": 1e-4}}}, slots)
    assert_carries(replaced, "hidden", {"kernel": {"l1": 1e-4}})

    # The base keeps its own penalties: other trials clone it again.
    assert_carries(base, "hidden", {"kernel": {"l2": 0.5}, "activity": {"l1": 0.25}})
    assert same_weights(elsewhere, base)
