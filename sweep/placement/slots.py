"""What a model offers to regularize: its layers, in model order, and which are *slots*.

A slot is a layer that owns a kernel and so accepts a ``kernel_regularizer`` (Dense,
Conv1D/2D/3D, ...). The same description is built from three places: the study file's
``layers`` list (no TensorFlow needed, so ``sweep validate`` stays instant), a Keras model
config (a live model's ``get_config()``), or the ``config.json`` inside a ``.keras`` file.
"""

from __future__ import annotations

import json
import re
import zipfile
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class LayerInfo:
    name: str
    class_name: str
    is_slot: bool
    has_bias: bool = False
    inbound: tuple[str, ...] = ()


# Keras 3 layer classes whose constructor takes ``kernel_regularizer`` (checked against
# Keras by tests/placement/test_slots.py) — needed only for the declarative ``layers``
# list, where no config exists yet; configs and live models are read directly.
KERNEL_LAYER_CLASSES = frozenset({
    "Conv1D", "Conv2D", "Conv3D", "Conv1DTranspose", "Conv2DTranspose", "Conv3DTranspose",
    "Dense", "EinsumDense", "GRU", "LSTM", "SimpleRNN", "ConvLSTM1D", "ConvLSTM2D", "ConvLSTM3D",
})

# Layers a declarative ``layers`` list may use. Only common, serializable-by-class-name
# layers are accepted so that a typo is caught by ``sweep validate`` without TensorFlow.
DECLARABLE_LAYER_CLASSES = KERNEL_LAYER_CLASSES | frozenset({
    "Activation", "ActivityRegularization", "AlphaDropout", "AveragePooling1D",
    "AveragePooling2D", "AveragePooling3D", "BatchNormalization", "Cropping1D", "Cropping2D",
    "Dropout", "ELU", "Flatten", "GaussianDropout", "GaussianNoise", "GlobalAveragePooling1D",
    "GlobalAveragePooling2D", "GlobalAveragePooling3D", "GlobalMaxPooling1D",
    "GlobalMaxPooling2D", "GlobalMaxPooling3D", "GroupNormalization", "LayerNormalization",
    "LeakyReLU", "MaxPooling1D", "MaxPooling2D", "MaxPooling3D", "Permute", "PReLU", "ReLU",
    "RandomFlip", "RandomRotation", "RandomTranslation", "RandomZoom", "Rescaling", "Reshape",
    "Softmax", "SpatialDropout1D", "SpatialDropout2D", "SpatialDropout3D", "UpSampling1D",
    "UpSampling2D", "UpSampling3D", "ZeroPadding1D", "ZeroPadding2D", "ZeroPadding3D",
})

FLATTENING_CLASSES = frozenset({
    "Flatten", "GlobalAveragePooling1D", "GlobalAveragePooling2D", "GlobalAveragePooling3D",
    "GlobalMaxPooling1D", "GlobalMaxPooling2D", "GlobalMaxPooling3D", "GlobalAvgPool1D",
    "GlobalAvgPool2D", "GlobalAvgPool3D", "GlobalMaxPool1D", "GlobalMaxPool2D",
    "GlobalMaxPool3D",
})


def _has_bias(class_name: str, config: Mapping[str, Any]) -> bool:
    """Whether a slot adds a bias: ``use_bias`` (true by default), except EinsumDense, which
    has no ``use_bias`` and adds a bias only when ``bias_axes`` is given."""
    if class_name == "EinsumDense":
        return config.get("bias_axes") is not None
    return bool(config.get("use_bias", True))


def to_snake_case(name: str) -> str:
    """Keras' own default-name rule (``Conv2D`` → ``conv2d``, ``MaxPooling2D`` →
    ``max_pooling2d``), so declared layers get the names users see in Keras."""
    name = re.sub(r"\W+", "", name)
    name = re.sub("(.)([A-Z][a-z]+)", r"\1_\2", name)
    return re.sub("([a-z])([A-Z])", r"\1_\2", name).lower()


def declared_layer_names(layers: Sequence[Mapping[str, Mapping[str, Any]]]) -> list[str]:
    """Names for a declarative layers list: an explicit ``name`` wins; otherwise Keras'
    pattern (``dense``, ``dense_1``, ...). Assigned here rather than by Keras because
    Keras numbers names process-wide, and a trial's layer names must not depend on how
    many models the worker built before it."""
    used: set[str] = {
        str(kwargs["name"]) for entry in layers for kwargs in entry.values()
        if kwargs and "name" in kwargs
    }
    counts: dict[str, int] = {}
    names = []
    for entry in layers:
        ((class_name, kwargs),) = entry.items()
        if kwargs and "name" in kwargs:
            names.append(str(kwargs["name"]))
            continue
        base = to_snake_case(class_name)
        while True:
            n = counts.get(base, 0)
            counts[base] = n + 1
            candidate = base if n == 0 else f"{base}_{n}"
            if candidate not in used:
                break
        used.add(candidate)
        names.append(candidate)
    return names


def describe_declared(layers: Sequence[Mapping[str, Mapping[str, Any]]]) -> list[LayerInfo]:
    """Describe a Sequential model declared as a ``layers`` list (no TensorFlow)."""
    infos: list[LayerInfo] = []
    previous: tuple[str, ...] = ()
    for name, entry in zip(declared_layer_names(layers), layers, strict=True):
        ((class_name, kwargs),) = entry.items()
        kwargs = kwargs or {}
        is_slot = class_name in KERNEL_LAYER_CLASSES
        infos.append(LayerInfo(
            name=name, class_name=class_name, is_slot=is_slot,
            has_bias=is_slot and _has_bias(class_name, kwargs), inbound=previous,
        ))
        previous = (name,)
    return infos


def _keras_histories(node: Any) -> Iterable[str]:
    """Layer names referenced by a serialized Keras 3 node (``keras_history`` entries)."""
    if isinstance(node, Mapping):
        history = node.get("config", {}).get("keras_history") if isinstance(
            node.get("config"), Mapping) else None
        if node.get("class_name") == "__keras_tensor__" and history:
            yield str(history[0])
            return
        for value in node.values():
            yield from _keras_histories(value)
    elif isinstance(node, list | tuple):
        for value in node:
            yield from _keras_histories(value)


def describe_config(model_config: Mapping[str, Any]) -> list[LayerInfo]:
    """Describe a model from its Keras config (Sequential or Functional).

    Accepts either the inner ``config`` mapping or the full serialized form with
    ``class_name``/``config`` (as in a ``.keras`` file's ``config.json``)."""
    config = model_config.get("config", model_config) if "class_name" in model_config \
        else model_config
    entries = [e for e in config.get("layers", []) if e.get("class_name") != "InputLayer"]
    sequential = all("inbound_nodes" not in e for e in entries)
    infos: list[LayerInfo] = []
    previous: tuple[str, ...] = ()
    for entry in entries:
        layer_config = entry.get("config", {})
        name = str(entry.get("name") or layer_config.get("name"))
        is_slot = "kernel_regularizer" in layer_config
        if sequential:
            inbound = previous
        else:
            inbound = tuple(dict.fromkeys(_keras_histories(entry.get("inbound_nodes", []))))
        class_name = str(entry.get("class_name"))
        infos.append(LayerInfo(
            name=name, class_name=class_name, is_slot=is_slot,
            has_bias=is_slot and _has_bias(class_name, layer_config), inbound=inbound,
        ))
        previous = (name,)
    known = {info.name for info in infos}
    # Input layers were dropped above; references to them are not edges between layers.
    return [
        LayerInfo(i.name, i.class_name, i.is_slot, i.has_bias,
                  tuple(n for n in i.inbound if n in known))
        for i in infos
    ]


def describe_keras_file(path: str | Path) -> list[LayerInfo]:
    """Describe a ``.keras`` file from its ``config.json`` without loading TensorFlow."""
    with zipfile.ZipFile(path) as archive:
        config = json.loads(archive.read("config.json"))
    return describe_config(config)


def describe_model(model: Any) -> list[LayerInfo]:
    """Describe a live Keras model."""
    return describe_config(model.get_config())


def slot_names(layers: Iterable[LayerInfo]) -> list[str]:
    return [layer.name for layer in layers if layer.is_slot]
