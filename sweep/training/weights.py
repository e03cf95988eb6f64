"""Per-slot weight statistics and penalties of a (regularized) Keras model.

Named by statistic first, so that MLflow's UI groups one statistic of every layer in one
section: ``weights_l1/<layer>``: sum of |w| over the layer's kernel;
``weights_l2/<layer>``: the Euclidean norm of the kernel; ``sparsity/<layer>``: the
fraction of kernel entries with |w| below the threshold; ``penalty/<layer>``: the layer's
share of ``model.losses``
(kernel + bias regularization, plus activity regularization on the probe batch);
``penalty/total``: the sum of ``model.losses``. Without a probe batch both are the weight
penalties only. Over all slots together: ``weights/l2_total`` (the Euclidean norm of all
kernels) and ``weights/sparsity`` (the fraction of all kernel entries below the threshold).
"""

from __future__ import annotations

import weakref
from collections.abc import Sequence
from typing import Any

import numpy as np

from sweep.keys import WEIGHTS_L2_PREFIX


def weight_metrics(
    model: Any,
    slots: Sequence[str],
    *,
    threshold: float = 1e-3,
    probe: np.ndarray | None = None,
) -> dict[str, float]:
    """Statistics of every slot, computed as tensor ops and copied to the host once."""
    from keras import ops

    if probe is not None:
        # Activity penalties exist only for a forward pass; an eager call on a fixed probe
        # batch also replaces the symbolic losses left behind by the traced training step.
        model(probe, training=False)
        keys, stacked = _statistics(model, tuple(slots), threshold, called=True)
    else:
        keys = _keys(slots)
        stacked = _compiled(model, tuple(slots), threshold)()
    values = ops.convert_to_numpy(stacked)
    return {key: float(value) for key, value in zip(keys, values, strict=True)}


# One traced function per (model, slots, threshold). Run eagerly, the statistics are over
# a hundred small ops for a 10-layer model (bench/logging_cost.py measures the cost in
# the training loop); traced, one call. Compiled models are reused across trials
# (sweep.training.cache) and their penalty coefficients are variables, so a trace serves every
# trial of its model.
_traced: weakref.WeakKeyDictionary[Any, dict[tuple, Any]] = weakref.WeakKeyDictionary()


def _compiled(model: Any, slots: tuple[str, ...], threshold: float) -> Any:
    import tensorflow as tf

    functions = _traced.setdefault(model, {})
    key = (slots, threshold)
    if key not in functions:
        # A weak reference: the function must not keep an evicted model alive.
        ref = weakref.ref(model)
        functions[key] = tf.function(
            lambda: _statistics(ref(), slots, threshold, called=False)[1])
    return functions[key]


def _keys(slots: Sequence[str]) -> list[str]:
    keys: list[str] = []
    for name in slots:
        keys += [f"weights_l1/{name}", f"{WEIGHTS_L2_PREFIX}{name}", f"sparsity/{name}",
                 f"penalty/{name}"]
    if slots:
        keys += ["weights/l2_total", "weights/sparsity"]
    return [*keys, "penalty/total"]


def _statistics(model: Any, slots: tuple[str, ...], threshold: float, *,
                called: bool) -> tuple[list[str], Any]:
    """The keys (``_keys``) and one stacked float32 tensor of their values."""
    from keras import ops

    values: list[Any] = []
    squares: list[Any] = []
    small: list[Any] = []
    entries = 0
    for name in slots:
        layer = model.get_layer(name)
        kernel = _kernel(layer)
        magnitude = ops.abs(kernel)
        square = ops.sum(ops.square(kernel))
        below = ops.sum(ops.cast(ops.less(magnitude, threshold), "float32"))
        size = int(np.prod(kernel.shape))
        squares.append(square)
        small.append(below)
        entries += size
        losses = _penalties(layer, called=called)
        values += [ops.sum(magnitude), ops.sqrt(square), below / float(size),
                   ops.sum(ops.stack(losses)) if losses else ops.zeros(())]
    if slots:
        values += [ops.sqrt(ops.sum(ops.stack(squares))),
                   ops.sum(ops.stack(small)) / float(entries)]
    total = _penalties(model, called=called)
    values.append(ops.sum(ops.stack(total)) if total else ops.zeros(()))
    return _keys(slots), ops.stack([ops.cast(v, "float32") for v in values])


def _penalties(layer: Any, *, called: bool) -> list[Any]:
    """``layer.losses`` after the eager probe call; without one, only the weight penalties.
    Losses added during a call (activity penalties, ``ActivityRegularization`` layers) are
    then stale: after ``fit`` they are symbolic tensors of the traced training step, which
    cannot be evaluated and would crash the measurement."""
    if called:
        return layer.losses
    return [w.regularizer(w) for w in layer.trainable_weights if w.regularizer is not None]


def _kernel(layer: Any) -> Any:
    """The layer's kernel; recurrent layers (LSTM, GRU, SimpleRNN, ConvLSTM*) keep theirs
    on their cell (the input kernel, the one ``kernel_regularizer`` applies to)."""
    kernel = getattr(layer, "kernel", None)
    if kernel is None and getattr(layer, "cell", None) is not None:
        kernel = layer.cell.kernel
    if kernel is None:
        raise ValueError(f"layer '{layer.name}' has no kernel")
    return kernel
