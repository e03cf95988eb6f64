"""Tiny Keras models (a few hundred weights) shared by the slot, selector, model and weight
tests. Imported as a plain module (``from conftest_models import ...``): tests/conftest.py
belongs to another suite."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from sweep.training.runtime import import_keras

keras = import_keras()
layers = keras.layers

IMAGE_SHAPE = (8, 8, 1)
N_CLASSES = 3

# The seed article's CNN, shrunk: Conv2D, MaxPooling2D, Conv2D, Flatten, Dense, Dense.
CNN_LAYERS: tuple[dict[str, dict[str, Any]], ...] = (
    {"Conv2D": {"filters": 2, "kernel_size": 3, "activation": "relu", "padding": "same"}},
    {"MaxPooling2D": {}},
    {"Conv2D": {"filters": 3, "kernel_size": 3, "activation": "relu", "padding": "same"}},
    {"Flatten": {}},
    {"Dense": {"units": 4, "activation": "relu"}},
    {"Dense": {"units": N_CLASSES, "activation": "softmax"}},
)
CNN_NAMES = ("conv2d", "max_pooling2d", "conv2d_1", "flatten", "dense", "dense_1")


def sequential(declared: Sequence[Mapping[str, Mapping[str, Any]]],
               input_shape: tuple[int, ...] = IMAGE_SHAPE):
    """A Sequential built by Keras itself from a declarative layers list, in a fresh
    session: every name not given explicitly is Keras' own choice."""
    keras.backend.clear_session()
    built = []
    for entry in declared:
        ((class_name, kwargs),) = entry.items()
        built.append(getattr(layers, class_name)(**dict(kwargs or {})))
    return keras.Sequential([keras.Input(shape=input_shape), *built])


def cnn():
    return sequential(CNN_LAYERS)


def mlp(input_dim: int = 6):
    """Dense x 3, Keras names dense, dense_1, dense_2."""
    return sequential(
        [{"Dense": {"units": 5, "activation": "relu"}},
         {"Dense": {"units": 4, "activation": "relu"}},
         {"Dense": {"units": N_CLASSES, "activation": "softmax"}}],
        input_shape=(input_dim,),
    )


def two_branch():
    """Functional: two Conv2D branches, one Flatten, one global pooling, joined."""
    keras.backend.clear_session()
    image = keras.Input(shape=IMAGE_SHAPE, name="image")
    a = layers.Conv2D(2, 3, activation="relu", name="conv_a")(image)
    a = layers.Flatten(name="flat_a")(a)
    b = layers.Conv2D(3, 3, activation="relu", name="conv_b")(image)
    b = layers.GlobalAveragePooling2D(name="pool_b")(b)
    joined = layers.Concatenate(name="joined")([a, b])
    hidden = layers.Dense(4, activation="relu", name="hidden")(joined)
    output = layers.Dense(N_CLASSES, activation="softmax", name="output")(hidden)
    return keras.Model(image, output, name="two_branch")


def normalized_cnn():
    """Non-slot layers (BatchNormalization, Dropout) between every pair of slots."""
    return sequential([
        {"Conv2D": {"filters": 2, "kernel_size": 3}},
        {"BatchNormalization": {}},
        {"Dropout": {"rate": 0.1}},
        {"Flatten": {}},
        {"Dropout": {"rate": 0.1}},
        {"Dense": {"units": 4, "use_bias": False}},
        {"BatchNormalization": {}},
        {"Dense": {"units": N_CLASSES, "activation": "softmax"}},
    ])
