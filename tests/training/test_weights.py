"""sweep.training.weights and sweep.training.callbacks: weight statistics and penalties
against numpy on known weights, and the per-epoch callbacks on tiny real training runs."""

from __future__ import annotations

import numpy as np
import pytest
from conftest_models import keras

from sweep.training.callbacks import NonFiniteLossGuard, PruningCallback, WeightNormCallback
from sweep.training.model import regularize
from sweep.training.weights import weight_metrics

SLOTS = ["hidden", "out"]

# Known weights, with entries below the 1e-3 sparsity threshold (5 of 12, and 2 of 6).
HIDDEN_KERNEL = np.array([
    [0.5, -0.25, 0.0],
    [1e-4, -2e-4, 1.5],
    [-0.75, 5e-4, 0.002],
    [0.3, -1.0, -9e-4],
], dtype=np.float32)
HIDDEN_BIAS = np.array([0.1, -0.2, 0.3], dtype=np.float32)
OUT_KERNEL = np.array([[0.1, -0.2], [0.0, 0.4], [-0.6, 1e-5]], dtype=np.float32)
OUT_BIAS = np.array([0.05, -0.05], dtype=np.float32)

RNG = np.random.default_rng(0)
X = RNG.normal(size=(32, 4)).astype(np.float32)
Y = (X[:, 0] > 0).astype(np.int32)
PROBE = X[:6]


def base_mlp():
    keras.backend.clear_session()
    return keras.Sequential([
        keras.Input(shape=(4,)),
        keras.layers.Dense(3, activation="relu", name="hidden"),
        keras.layers.Dense(2, activation="softmax", name="out"),
    ])


def clone_with_known_weights(placement):
    model = regularize(base_mlp(), placement, SLOTS)
    model.get_layer("hidden").kernel.assign(HIDDEN_KERNEL)
    model.get_layer("hidden").bias.assign(HIDDEN_BIAS)
    model.get_layer("out").kernel.assign(OUT_KERNEL)
    model.get_layer("out").bias.assign(OUT_BIAS)
    return model


def model_losses(model) -> float:
    return sum(float(x) for x in model.losses)


# --------------------------------------------------------------------------- weight_metrics
def test_norms_and_sparsity_match_numpy() -> None:
    model = clone_with_known_weights({})
    metrics = weight_metrics(model, SLOTS)
    for name, kernel, zeros in (("hidden", HIDDEN_KERNEL, 5), ("out", OUT_KERNEL, 2)):
        assert metrics[f"weights_l1/{name}"] == pytest.approx(np.abs(kernel).sum(), rel=1e-6)
        assert metrics[f"weights_l2/{name}"] == pytest.approx(
            np.sqrt(np.square(kernel).sum()), rel=1e-6)
        assert metrics[f"sparsity/{name}"] == pytest.approx(zeros / kernel.size)
        assert metrics[f"sparsity/{name}"] == pytest.approx(
            np.mean(np.abs(kernel) < 1e-3))


def test_sparsity_threshold_is_respected() -> None:
    model = clone_with_known_weights({})
    metrics = weight_metrics(model, SLOTS, threshold=0.31)
    assert metrics["sparsity/hidden"] == pytest.approx(8 / 12)  # 0.3 < 0.31 counts
    assert metrics["sparsity/out"] == pytest.approx(4 / 6)


def test_keys_are_the_mlflow_names() -> None:
    metrics = weight_metrics(clone_with_known_weights({}), SLOTS)
    assert list(metrics) == [
        "weights_l1/hidden", "weights_l2/hidden", "sparsity/hidden", "penalty/hidden",
        "weights_l1/out", "weights_l2/out", "sparsity/out", "penalty/out",
        "weights/l2_total", "weights/sparsity", "penalty/total",
    ]
    assert all(isinstance(value, float) for value in metrics.values())


def test_totals_cover_all_slots() -> None:
    metrics = weight_metrics(clone_with_known_weights({}), SLOTS)
    every = np.concatenate([HIDDEN_KERNEL.ravel(), OUT_KERNEL.ravel()])
    assert metrics["weights/l2_total"] == pytest.approx(np.sqrt(np.square(every).sum()),
                                                        rel=1e-6)
    assert metrics["weights/sparsity"] == pytest.approx(np.mean(np.abs(every) < 1e-3))


def test_unregularized_clone_has_exactly_zero_penalty() -> None:
    model = clone_with_known_weights({})
    metrics = weight_metrics(model, SLOTS)
    assert model.losses == []
    assert metrics["penalty/total"] == 0.0
    assert metrics["penalty/hidden"] == 0.0 and metrics["penalty/out"] == 0.0
    # ... also after a forward pass on a probe batch.
    assert weight_metrics(model, SLOTS, probe=PROBE)["penalty/total"] == 0.0


def test_kernel_penalty_follows_keras_conventions() -> None:
    l1, l2 = 0.01, 0.1
    model = clone_with_known_weights({"hidden": {"kernel": {"l1": l1, "l2": l2}}})
    metrics = weight_metrics(model, SLOTS)
    # Keras 3: l1 * sum|w| + l2 * sum(w²), no factor 1/2.
    expected = l1 * np.abs(HIDDEN_KERNEL).sum() + l2 * np.square(HIDDEN_KERNEL).sum()
    assert metrics["penalty/hidden"] == pytest.approx(expected, rel=1e-5)
    assert metrics["penalty/out"] == 0.0
    assert metrics["penalty/total"] == pytest.approx(model_losses(model), rel=1e-6)
    assert metrics["penalty/total"] == pytest.approx(expected, rel=1e-5)


def test_bias_penalty_counts_in_the_layer_share_but_not_in_the_norms() -> None:
    placement = {"hidden": {"kernel": {"l2": 0.1}}, "out": {"bias": {"l1": 0.2}}}
    model = clone_with_known_weights(placement)
    metrics = weight_metrics(model, SLOTS)
    assert metrics["penalty/hidden"] == pytest.approx(0.1 * np.square(HIDDEN_KERNEL).sum(),
                                                      rel=1e-5)
    assert metrics["penalty/out"] == pytest.approx(0.2 * np.abs(OUT_BIAS).sum(), rel=1e-5)
    assert metrics["weights_l1/out"] == pytest.approx(np.abs(OUT_KERNEL).sum(), rel=1e-6)
    assert metrics["penalty/total"] == pytest.approx(
        metrics["penalty/hidden"] + metrics["penalty/out"], rel=1e-6)
    assert metrics["penalty/total"] == pytest.approx(model_losses(model), rel=1e-6)


def test_activity_penalty_is_measured_on_the_probe_batch() -> None:
    kernel_l2, activity_l1 = 0.1, 0.05
    placement = {"hidden": {"kernel": {"l2": kernel_l2}, "activity": {"l1": activity_l1}}}
    weight_only = weight_metrics(clone_with_known_weights(placement), SLOTS)
    kernel_penalty = kernel_l2 * np.square(HIDDEN_KERNEL).sum()
    assert weight_only["penalty/total"] == pytest.approx(kernel_penalty, rel=1e-5)

    model = clone_with_known_weights(placement)
    metrics = weight_metrics(model, SLOTS, probe=PROBE)
    # The penalty of the eager call on the probe, as Keras computes it.
    model(PROBE, training=False)
    assert metrics["penalty/total"] == pytest.approx(model_losses(model), rel=1e-6)
    # Activity regularization acts on the layer's output (after relu), divided by the batch.
    activations = np.maximum(PROBE @ HIDDEN_KERNEL + HIDDEN_BIAS, 0.0)
    activity = activity_l1 * np.abs(activations).sum() / len(PROBE)
    assert metrics["penalty/hidden"] == pytest.approx(kernel_penalty + activity, rel=1e-5)
    assert metrics["penalty/total"] > weight_only["penalty/total"]
    assert metrics["penalty/out"] == 0.0


def test_recurrent_slot_is_measured_on_its_cell_kernel() -> None:
    keras.backend.clear_session()
    base = keras.Sequential([keras.Input(shape=(5, 2)), keras.layers.SimpleRNN(3, name="rnn"),
                             keras.layers.Dense(2, name="out")])
    model = regularize(base, {"rnn": {"kernel": {"l2": 0.1}}}, ["rnn", "out"])
    kernel = keras.ops.convert_to_numpy(model.get_layer("rnn").cell.kernel)
    metrics = weight_metrics(model, ["rnn", "out"])
    assert metrics["weights_l1/rnn"] == pytest.approx(np.abs(kernel).sum(), rel=1e-6)
    assert metrics["penalty/rnn"] == pytest.approx(0.1 * np.square(kernel).sum(), rel=1e-5)


# --------------------------------------------------------------------------- callbacks
def compiled(model, learning_rate: float = 0.05):
    model.compile(optimizer=keras.optimizers.SGD(learning_rate),
                  loss="sparse_categorical_crossentropy")
    return model


def test_weight_norm_callback_hands_logs_and_norms_to_the_sink() -> None:
    model = compiled(regularize(base_mlp(), {"hidden": {"kernel": {"l1": 0.01}}}, SLOTS))
    received: list[tuple[int, dict[str, float]]] = []
    callback = WeightNormCallback(SLOTS, lambda step, m: received.append((step, m)))
    history = model.fit(X, Y, validation_data=(X[:8], Y[:8]), epochs=3, batch_size=16,
                        verbose=0, callbacks=[callback])
    assert [step for step, _ in received] == [1, 2, 3]  # epochs counted from 1
    for (_, metrics), loss, val_loss in zip(
            received, history.history["loss"], history.history["val_loss"], strict=True):
        assert metrics["loss"] == pytest.approx(loss)
        assert metrics["val_loss"] == pytest.approx(val_loss)
        assert {"weights_l1/hidden", "sparsity/out", "penalty/hidden",
                "penalty/total"} <= set(metrics)
    assert callback.last == received[-1][1]
    # The last measurement is of the trained weights (the weights moved during training).
    final = weight_metrics(model, SLOTS)
    kernel = keras.ops.convert_to_numpy(model.get_layer("hidden").kernel)
    assert callback.last["weights_l1/hidden"] == pytest.approx(np.abs(kernel).sum(), rel=1e-6)
    assert callback.last["penalty/total"] == pytest.approx(final["penalty/total"], rel=1e-6)
    assert received[0][1]["weights_l1/hidden"] != received[-1][1]["weights_l1/hidden"]


def test_weight_norm_callback_after_traced_steps_with_activity_losses() -> None:
    # An ActivityRegularization layer leaves symbolic losses behind after each traced step.
    keras.backend.clear_session()
    base = keras.Sequential([
        keras.Input(shape=(4,)),
        keras.layers.Dense(3, name="hidden"),  # linear: the activity penalty is > 0
        keras.layers.ActivityRegularization(l2=0.01, name="act"),
        keras.layers.Dense(2, activation="softmax", name="out"),
    ])
    model = compiled(regularize(base, {"hidden": {"kernel": {"l2": 0.1}}}, SLOTS))
    without_probe = WeightNormCallback(SLOTS, lambda step, m: None)
    with_probe = WeightNormCallback(SLOTS, lambda step, m: None, probe=PROBE)
    model.fit(X, Y, epochs=1, batch_size=16, verbose=0, callbacks=[without_probe, with_probe])
    kernel = keras.ops.convert_to_numpy(model.get_layer("hidden").kernel)
    weight_penalty = 0.1 * np.square(kernel).sum()
    assert without_probe.last["penalty/total"] == pytest.approx(weight_penalty, rel=1e-5)
    assert with_probe.last["penalty/total"] > without_probe.last["penalty/total"]
    assert with_probe.last["penalty/total"] == pytest.approx(model_losses(model), rel=1e-6)


def regressor():
    """A mean-squared-error model run eagerly: a NaN input then makes the loss NaN whatever
    the weights. (TensorFlow's optimized graph of a traced step can drop a single NaN
    sample from the batch loss, so traced steps would not reliably produce one.)"""
    keras.backend.clear_session()
    model = keras.Sequential([keras.Input(shape=(4,)),
                              keras.layers.Dense(3, activation="relu", name="hidden"),
                              keras.layers.Dense(1, name="out")])
    model.compile(optimizer=keras.optimizers.SGD(0.01), loss="mse", run_eagerly=True)
    return model


Y_REG = X[:, :1] - X[:, 1:2]


def poisoned(x: np.ndarray) -> np.ndarray:
    x = x.copy()
    x[3, 1] = np.nan
    return x


def test_non_finite_loss_stops_training_with_a_reason() -> None:
    model = regressor()
    guard = NonFiniteLossGuard()
    history = model.fit(poisoned(X), Y_REG, epochs=5, batch_size=16, verbose=0,
                        callbacks=[guard])
    assert guard.reason is not None
    assert guard.reason.startswith("non-finite loss (nan) at epoch 1")
    assert len(history.history["loss"]) == 1


def test_non_finite_validation_loss_stops_training() -> None:
    model = regressor()
    guard = NonFiniteLossGuard()
    history = model.fit(X, Y_REG, validation_data=(poisoned(X[:8]), Y_REG[:8]), epochs=5,
                        batch_size=16, verbose=0, callbacks=[guard])
    assert guard.reason is not None and "non-finite val_loss" in guard.reason
    assert len(history.history["loss"]) == 1


def test_finite_losses_train_every_epoch() -> None:
    model = regressor()
    guard = NonFiniteLossGuard()
    history = model.fit(X, Y_REG, epochs=3, batch_size=16, verbose=0, callbacks=[guard])
    assert guard.reason is None
    assert len(history.history["loss"]) == 3


class FakeTrial:
    """The part of optuna.Trial the pruning callback uses."""

    def __init__(self, prune_at: int | None) -> None:
        self.prune_at = prune_at
        self.reports: list[tuple[float, int]] = []

    def report(self, value: float, step: int) -> None:
        self.reports.append((value, step))

    def should_prune(self) -> bool:
        return self.prune_at is not None and self.reports[-1][1] >= self.prune_at


def test_pruning_stops_after_the_pruned_epoch() -> None:
    model = compiled(base_mlp())
    trial = FakeTrial(prune_at=2)
    pruning = PruningCallback(trial, "loss")
    history = model.fit(X, Y, epochs=6, batch_size=16, verbose=0, callbacks=[pruning])
    assert pruning.pruned_at == 2
    assert len(history.history["loss"]) == 2
    assert [step for _, step in trial.reports] == [1, 2]
    assert [value for value, _ in trial.reports] == pytest.approx(history.history["loss"])


def test_pruning_without_the_monitored_metric_never_reports() -> None:
    model = compiled(base_mlp())
    trial = FakeTrial(prune_at=1)
    pruning = PruningCallback(trial, "val_accuracy")  # no validation data, no such log
    history = model.fit(X, Y, epochs=2, batch_size=16, verbose=0, callbacks=[pruning])
    assert trial.reports == [] and pruning.pruned_at is None
    assert len(history.history["loss"]) == 2


def test_pruning_skips_non_finite_values() -> None:
    model = regressor()
    trial = FakeTrial(prune_at=1)
    pruning = PruningCallback(trial, "loss")
    history = model.fit(poisoned(X), Y_REG, epochs=2, batch_size=16, verbose=0,
                        callbacks=[pruning])
    assert trial.reports == [] and pruning.pruned_at is None
    assert len(history.history["loss"]) == 2


def test_no_penalty_series_for_a_layer_without_a_penalty() -> None:
    model = compiled(regularize(base_mlp(), {"hidden": {"kernel": {"l1": 0.01}}}, SLOTS))
    received: list[dict[str, float]] = []
    callback = WeightNormCallback(SLOTS, lambda step, m: received.append(m),
                                  penalized=["hidden"])
    model.fit(X, Y, epochs=1, batch_size=16, verbose=0, callbacks=[callback])
    (metrics,) = received
    assert "penalty/hidden" in metrics and "penalty/total" in metrics
    assert "penalty/out" not in metrics
    assert {"weights_l1/out", "weights_l2/out", "sparsity/out"} <= set(metrics)
