"""Base models from the study file, and regularized clones of them.

The base model comes from a declared ``layers`` list, a Python builder, or a ``.keras``
file. A trial never touches it: it clones the base with ``keras.regularizers`` objects on
the chosen slots and copies the base weights into the clone, so every placement of a
given seed starts from the very same initial (or pre-trained) weights.
"""

from __future__ import annotations

import importlib
import inspect
import sys
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from sweep.errors import SpecError
from sweep.placement.slots import declared_layer_names
from sweep.spec import ModelSpec
from sweep.training.runtime import import_keras

# layer -> target ("kernel" | "bias" | "activity") -> kind ("l1" | "l2") -> coefficient
Placement = Mapping[str, Mapping[str, Mapping[str, float]]]

_REGULARIZER_FIELDS = {
    "kernel": "kernel_regularizer",
    "bias": "bias_regularizer",
    "activity": "activity_regularizer",
}


def load_builder(reference: str):
    """Import ``package.module:function``; the current folder is importable, as with
    ``python -m``, so a study next to its builder module just works."""
    module_name, _, function_name = reference.partition(":")
    if "" not in sys.path and str(Path.cwd()) not in sys.path:
        sys.path.insert(0, str(Path.cwd()))
    try:
        module = importlib.import_module(module_name)
    except ImportError as error:
        raise SpecError("model.builder", f"cannot import module: {error}", reference) from None
    function = getattr(module, function_name, None)
    if not callable(function):
        raise SpecError("model.builder", f"module has no function '{function_name}'", reference)
    return function


def build_base_model(spec: ModelSpec, input_shape: tuple[int, ...], n_classes: int | None,
                     *, mixed_precision: bool = False):
    """Build the unregularized base model (call after seeding, once per trial)."""
    keras = import_keras()
    # Layer names must not depend on how many models this process built before:
    # clear_session resets Keras' name counters (and frees the previous trial's graph).
    # free_memory=False: its full garbage collection runs every trial and frees nothing
    # that sweep.training.cache has not already made unnecessary.
    keras.backend.clear_session(free_memory=False)
    # Keras keeps the policy in its global state, which clear_session has just reset.
    keras.mixed_precision.set_dtype_policy("mixed_float16" if mixed_precision else "float32")
    if spec.layers is not None:
        layers = []
        names = declared_layer_names(spec.layers)
        for index, (name, entry) in enumerate(zip(names, spec.layers, strict=True)):
            ((class_name, kwargs),) = entry.items()
            kwargs = {k: v for k, v in (kwargs or {}).items() if k != "name"}
            if mixed_precision and index == len(spec.layers) - 1:
                kwargs.setdefault("dtype", "float32")  # the output (softmax) in full precision
            try:
                layers.append(getattr(keras.layers, class_name)(name=name, **kwargs))
            except (TypeError, ValueError, AttributeError) as error:
                raise SpecError(f"model.layers[{index}].{class_name}", str(error),
                                dict(kwargs)) from None
        try:
            return keras.Sequential([keras.Input(shape=input_shape), *layers], name="base")
        except (TypeError, ValueError) as error:
            raise SpecError("model.layers", f"the layers do not fit together: {error}",
                            None, show_value=False) from None
    if spec.builder is not None:
        function = load_builder(spec.builder)
        offered = {"input_shape": tuple(input_shape), "n_classes": n_classes}
        parameters = inspect.signature(function).parameters
        accepts_any = any(p.kind is p.VAR_KEYWORD for p in parameters.values())
        arguments = dict(spec.arguments or {})  # the study file's, given whatever is declared
        unknown = sorted(k for k in arguments if not accepts_any and k not in parameters)
        if unknown:
            raise SpecError("model.arguments", f"the builder takes no argument {unknown[0]!r} "
                            f"(it takes {sorted(parameters)})", unknown[0])
        try:
            model = function(**{k: v for k, v in offered.items()
                                if accepts_any or k in parameters}, **arguments)
        except Exception as error:  # the user's code: say where it failed, in one line
            raise SpecError("model.builder", f"raised {type(error).__name__}: {error}",
                            spec.builder) from None
        if not isinstance(model, keras.Model):
            raise SpecError("model.builder", "must return a keras.Model",
                            type(model).__name__)
        # Regularizers are placed by cloning, which needs the model's graph.
        if not (isinstance(model, keras.Sequential) or type(model).__name__ == "Functional"):
            raise SpecError(
                "model.builder", "must return a Sequential or functional model "
                "(a subclassed model cannot be cloned with new regularizers)",
                type(model).__name__)
        return model
    try:
        return keras.saving.load_model(spec.file, compile=False, safe_mode=True)
    except Exception as error:  # OSError, ValueError, TypeError (unknown class), ...
        from sweep.errors import describe_failure

        raise SpecError("model.file", f"cannot load: {describe_failure(error, 300)}",
                        str(spec.file)) from None


def _regularizer(keras, penalties: Mapping[str, float] | None, layer: str = "",
                 target: str = ""):
    if not penalties:
        return None
    l1, l2 = penalties.get("l1", 0.0), penalties.get("l2", 0.0)
    if l1 and l2:
        return keras.regularizers.L1L2(l1=l1, l2=l2)
    return keras.regularizers.L1(l1) if l1 else keras.regularizers.L2(l2)


def regularize(base, placement: Placement, slots: list[str], *,
               make_regularizer: Callable[..., Any] | None = None):
    """A clone of ``base`` whose slots carry exactly the penalties ``placement`` lists.

    Every slot is rebuilt with all three regularizer fields set from the placement, so a
    penalty already present in a builder's or file's model does not leak into a trial
    that did not ask for it. Layers that are not slots are cloned unchanged.
    ``make_regularizer(keras, {kind: value} | None, layer, target)`` builds each penalty
    (default: Keras' own L1/L2/L1L2; ``sweep.training.cache`` passes adjustable ones).
    """
    keras = import_keras()
    make_regularizer = make_regularizer or _regularizer
    slot_set = set(slots)

    def clone_layer(layer):
        config = layer.get_config()
        if layer.name in slot_set:
            wanted = placement.get(layer.name, {})
            for target, field in _REGULARIZER_FIELDS.items():
                # Keras' Layer.get_config leaves out ``activity_regularizer`` when it is None
                # (Dense does), yet every layer accepts it: set it regardless, or an
                # activity penalty would silently never reach such a layer.
                if field in config or target == "activity":
                    config[field] = make_regularizer(keras, wanted.get(target), layer.name,
                                                     target)
        return layer.__class__.from_config(config)

    clone = keras.models.clone_model(base, clone_function=clone_layer)
    clone.set_weights(base.get_weights())
    return clone
