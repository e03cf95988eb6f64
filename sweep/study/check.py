"""Checks that need more than the file itself: the model's layers, the data on disk, and
what the chosen sampler and objective require. Run before anything is written anywhere.

Declared ``layers`` and ``.keras`` files are checked without TensorFlow; a Python builder
is user code: ``sweep validate`` finds its file but runs it only with ``--run-builder``
(``run`` and ``create`` run it: they are about to train with it).
"""

from __future__ import annotations

import difflib
import importlib.util
import sys
import zipfile
from pathlib import Path

from sweep.errors import SpecError
from sweep.placement.searched import resolve, searched_values
from sweep.placement.slots import (
    DECLARABLE_LAYER_CLASSES,
    LayerInfo,
    describe_declared,
    describe_keras_file,
)
from sweep.placement.space import SearchSpace
from sweep.spec import GAP_PREFIX, StudySpec
from sweep.training.data import Splits, check_data
from sweep.training.fit import metric_names


def describe_layers(spec: StudySpec) -> list[LayerInfo]:
    model = spec.model
    if model.layers is not None:
        for index, entry in enumerate(model.layers):
            ((class_name, kwargs),) = entry.items()
            if class_name not in DECLARABLE_LAYER_CLASSES:
                near = difflib.get_close_matches(class_name, DECLARABLE_LAYER_CLASSES, n=1)
                hint = f"; did you mean {near[0]!r}?" if near else \
                    "; use a builder for other layers"
                raise SpecError(f"model.layers[{index}]", f"unknown layer class{hint}",
                                class_name)
            if kwargs is not None and not isinstance(kwargs, dict):
                raise SpecError(f"model.layers[{index}].{class_name}",
                                "arguments must be a mapping", kwargs)
        return describe_declared(model.layers)
    if model.file is not None:
        if not model.file.is_file():
            raise SpecError("model.file", "no such file", str(model.file))
        try:
            return describe_keras_file(model.file)
        except (zipfile.BadZipFile, KeyError, ValueError) as error:
            raise SpecError("model.file", f"not a .keras model file ({error})",
                            str(model.file)) from None
    from sweep.placement.slots import describe_model
    from sweep.training.data import load_data
    from sweep.training.model import build_base_model

    splits = load_data(spec.data, spec.seed)
    # A builder's searched arguments at their typical values (sweep.placement.searched).
    return describe_model(build_base_model(resolve(spec, {})[1], splits.input_shape,
                                           splits.n_classes))


def builder_source(reference: str) -> Path:
    """The file of a builder's module, found the way ``import`` would find it (the current
    folder first) but without importing anything: a module runs code when imported."""
    module_name = reference.partition(":")[0]
    parts = module_name.split(".")
    for root in [Path.cwd(), *(Path(entry) for entry in sys.path if entry)]:
        base = root.joinpath(*parts)
        for candidate in (base.with_suffix(".py"), base / "__init__.py"):
            if candidate.is_file():
                return candidate
    raise SpecError("model.builder", f"no module {module_name!r} in the current folder or "
                    "on the Python path", reference)


def check_study(spec: StudySpec, *, run_builder: bool = True,
                build_model: bool = True) -> SearchSpace | None:
    """Everything a run would trip over later, found now. Returns the search space, or
    None when the model comes from a builder and ``run_builder`` is False: a builder is
    user code, and its layers (which the placements refer to) exist only once it ran.
    ``build_model`` runs the model on the data (``check_model_on_data``), which imports
    TensorFlow: `sweep validate` asks for it only with ``--build``."""
    check_data(spec.data)
    known = [m for m in metric_names(spec.train) if m != "loss"]  # loss carries the penalty
    produced = ", ".join("val_" + m for m in known)
    for index, item in enumerate(spec.objective):
        field = "objective.metric" if len(spec.objective) == 1 else f"objective[{index}].metric"
        if item.is_keras_metric and item.metric.removeprefix("val_") not in known:
            raise SpecError(field, "Keras does not produce this metric for train.loss "
                            f"{spec.train.loss!r}; use one of {produced}", item.metric)
        if item.metric.startswith(GAP_PREFIX) and item.metric.removeprefix(GAP_PREFIX) \
                not in known:
            gaps = ", ".join(GAP_PREFIX + m for m in known)
            raise SpecError(field, "a generalization gap needs a data metric measured on "
                            f"both splits: one of {gaps}", item.metric)
    # A pruner watching a metric Keras never logs would silently never prune: caught here.
    monitor = spec.pruner.monitor
    if spec.pruner.name != "none" and monitor is not None and (
            not monitor.startswith("val_") or monitor.removeprefix("val_") not in known):
        raise SpecError("pruner.monitor", "Keras does not produce this metric on the "
                        f"validation split for train.loss {spec.train.loss!r}; use one of "
                        f"{produced}", monitor)
    if spec.model.builder is not None and not run_builder:
        builder_source(spec.model.builder)
        return None
    layers = describe_layers(spec)
    # Before the placements: broken data or a broken model explains more.
    splits = check_data_content(spec)
    if build_model and spec.model.builder is None:
        check_model_on_data(spec, splits)
    space = SearchSpace(spec.search, layers, searched_values(spec))
    if spec.sampler == "grid":
        space.grid()
    if spec.sampler == "gp" and importlib.util.find_spec("torch") is None:
        raise SpecError("sampler", "Optuna's GP sampler needs PyTorch (pip install torch)",
                        spec.sampler)
    return space


def check_data_content(spec: StudySpec) -> Splits:
    """Load the data as a trial would (numpy, no TensorFlow): an empty archive, rows that
    do not match, NaN, labels a classification loss cannot take are found here. An image
    folder's images are decoded by the trials only (they may not fit in memory): its
    splits hold file names."""
    from sweep.training.data import load_data

    splits = load_data(spec.data, spec.seed)
    if spec.train.loss == "sparse_categorical_crossentropy" and splits.n_classes is None:
        raise SpecError("train.loss", "needs class labels (integers from 0), but the data's "
                        "y values are not", spec.train.loss)
    return splits


def check_model_on_data(spec: StudySpec, splits: Splits) -> None:
    """Build the base model on the loaded data as a trial would, then run it on two
    samples: a layer keyword that does not exist, a sample shape the model cannot take,
    an output that does not match the classes are found here (no training), before a
    study is written, instead of failing every trial. Imports TensorFlow. A builder's
    model is user code down to its layers' ``call`` (which may block or run for long): it
    is checked in the trials, under the watchdog of ``budget.trial_timeout``, not here."""
    import numpy as np

    from sweep.errors import describe_failure
    from sweep.training.model import build_base_model

    # Searched layer arguments at their typical values (sweep.placement.searched).
    model = build_base_model(resolve(spec, {})[1], splits.input_shape, splits.n_classes)
    field = "model.file" if spec.model.file is not None else "model.layers"
    try:
        output = np.asarray(model(splits.head("train", 2), training=False))
    except Exception as error:
        raise SpecError(field, f"cannot take the data's samples of shape "
                        f"{splits.input_shape}: {describe_failure(error, 300)}",
                        None, show_value=False) from None
    if spec.train.loss == "sparse_categorical_crossentropy" and \
            output.shape[-1] != splits.n_classes:
        raise SpecError(field, f"the model outputs {output.shape[-1]} values per sample but "
                        f"the data has {splits.n_classes} classes", None, show_value=False)
