"""sweep.training.trainer: one configuration trained end to end, and the speed switches of the
training spec as the process sees them (GPU paths are checked through Keras' config)."""

from __future__ import annotations

import math

import pytest
from conftest import tiny_study

from sweep.spec import parse_spec
from sweep.training.trainer import Trainer


def _spec(**train):
    return parse_spec(tiny_study(train=dict(tiny_study()["train"], **train)))


def test_a_configuration_trains_and_reports_every_split() -> None:
    epochs: list[int] = []
    trainer = Trainer(_spec())
    placement = {"dense": {"kernel": {"l2": 1e-3}}}
    trained = trainer.train(placement, 7, lambda step, metrics: epochs.append(step))
    assert trained.epochs_run == 2 and epochs == [1, 2] and trained.pruned_at is None
    assert trained.usage == {}  # no GPU here: nothing measured
    final = trained.final
    for split in ("train", "val", "test"):
        assert 0.0 <= final[f"final/{split}_accuracy"] <= 1.0
        assert math.isfinite(final[f"final/{split}_data_loss"])
    assert final["final/penalty_total"] > 0.0
    assert final["final/weights_l2_total"] > 0.0


def test_a_diverging_training_raises_and_records_no_final_figures() -> None:
    from sweep.errors import TrialFailed

    # An L2 coefficient of 1e38 overflows float32: the loss becomes inf, then NaN.
    with pytest.raises(TrialFailed, match="non-finite"):
        Trainer(_spec()).train({"dense": {"kernel": {"l2": 1.0e38}}}, 7, lambda *_: None)


def test_speed_switches_reach_the_compiled_model() -> None:
    trainer = Trainer(_spec(steps_per_execution=3, mixed_precision=True))
    fitted = trainer.fit({}, 1, lambda *_: None)
    model = fitted.model
    assert model.steps_per_execution == 3
    # Float32 variables, float16 compute; the output layer computes in float32.
    assert model.layers[0].kernel.dtype == "float32"
    assert model.layers[0].compute_dtype == "float16"
    assert model.layers[-1].compute_dtype == "float32"
    assert math.isfinite(trainer.final_figures(fitted)["final/val_data_loss"])

    plain = Trainer(_spec(steps_per_execution=1)).fit({}, 1, lambda *_: None).model
    assert plain.layers[0].compute_dtype == "float32" and plain.steps_per_execution == 1


def test_batches_per_compiled_call_divide_the_epoch() -> None:
    from sweep.training.fit import execution_steps

    # auto: the whole epoch in one call up to 64 batches, else the largest divisor.
    assert [execution_steps("auto", n) for n in (1, 3, 17, 64, 100, 67)] == [
        1, 3, 17, 64, 50, 1]
    # A fixed count that does not divide the epoch is lowered to one that does.
    assert [execution_steps(16, n) for n in (32, 17, 24)] == [16, 1, 12]


def test_more_batches_per_call_train_the_same_epochs_to_the_same_figures() -> None:
    """The tiny study's epoch is 3 batches (80 images of 32): `auto` runs each epoch in one
    compiled call, and 2 (not dividing 3) is lowered to 1; the same batches in the same
    order, so every epoch's figures and the final ones match per-batch training."""
    runs = {}
    for setting in (1, 2, "auto"):
        epochs: list[tuple[int, float]] = []
        trainer = Trainer(_spec(steps_per_execution=setting, epochs=4))
        trained = trainer.train({"dense": {"kernel": {"l2": 1e-3}}}, 7,
                                lambda step, m, seen=epochs: seen.append(
                                    (step, m["val_data_loss"])))
        runs[setting] = (trained, epochs)
        assert trained.model.steps_per_execution == {1: 1, 2: 1, "auto": 3}[setting]
    reference, reference_epochs = runs[1]
    for setting in (2, "auto"):
        trained, epochs = runs[setting]
        assert [step for step, _ in epochs] == [1, 2, 3, 4]
        assert [v for _, v in epochs] == pytest.approx([v for _, v in reference_epochs],
                                                      rel=1e-5)
        assert trained.final == pytest.approx(reference.final, rel=1e-5)


def test_a_cached_model_trains_exactly_like_a_freshly_cloned_one() -> None:
    """sweep.training.cache's claim: a trial on the shared compiled model (coefficients in
    variables, weights and optimizer state loaded) ends with the weights a freshly cloned
    model with Keras' own L1/L2 reaches from the same seed."""
    import numpy as np

    from sweep.placement.slots import describe_model, slot_names
    from sweep.training.data import load_data
    from sweep.training.fit import Batches, compile_model, fit
    from sweep.training.model import build_base_model, regularize
    from sweep.training.runtime import import_keras

    # Without the Dropout layer: the cached model's dropout stream is the base model's
    # (its seed generator's state is loaded with the weights), a fresh clone draws its own.
    layers = [layer for layer in tiny_study()["model"]["layers"] if "Dropout" not in layer]
    spec = parse_spec(tiny_study(model={"layers": layers}))
    first = {"dense": {"kernel": {"l2": 1e-3}}, "dense_1": {"kernel": {"l1": 1e-4}}}
    second = {"dense": {"kernel": {"l2": 5e-2}}, "dense_1": {"kernel": {"l1": 2e-2}}}
    trainer = Trainer(spec)
    trainer.fit(first, 3, lambda *_: None)  # builds and trains the shared model
    cached = trainer.fit(second, 5, lambda *_: None).model  # same structure: reused
    assert len(trainer._models._entries) == 1

    keras = import_keras()
    splits = load_data(spec.data, spec.seed)
    keras.utils.set_random_seed(5)
    base = build_base_model(spec.model, splits.input_shape, splits.n_classes,
                            mixed_precision=False)
    fresh = regularize(base, second, slot_names(describe_model(base)))
    assert isinstance(fresh.get_layer("dense").kernel_regularizer, keras.regularizers.L2)
    compile_model(fresh, spec.train)
    fit(fresh, Batches(splits, spec.train), [], seed=5)
    for ours, theirs in zip(cached.get_weights(), fresh.get_weights(), strict=True):
        np.testing.assert_allclose(ours, theirs, rtol=1e-5, atol=1e-6)
    # Not vacuous: the first trial's coefficients would have given other weights.
    assert not np.allclose(cached.get_weights()[0], trainer.fit(
        first, 5, lambda *_: None).model.get_weights()[0], atol=1e-4)


def test_jit_compile_reaches_the_compiled_model_and_trains() -> None:
    trainer = Trainer(_spec(jit_compile=True))
    fitted = trainer.fit({"dense": {"kernel": {"l2": 1e-3}}}, 2, lambda *_: None)
    assert fitted.model.jit_compile is True and fitted.failure is None
    assert math.isfinite(trainer.final_figures(fitted)["final/val_data_loss"])
    assert Trainer(_spec()).fit({}, 2, lambda *_: None).model.jit_compile is False


def test_searched_settings_reach_keras_and_reuse_the_model_where_the_graph_is_the_same(
        ) -> None:
    study = tiny_study()
    study["train"].update(learning_rate={"low": 1e-4, "high": 1e-2, "log": True},
                          batch_size={"choices": [16, 32]},
                          optimizer={"choices": ["adam", "adamw"]},
                          weight_decay={"choices": [0.0, 0.01]})
    study["model"]["layers"][1]["Dropout"]["rate"] = {"low": 0.0, "high": 0.5}
    trainer = Trainer(parse_spec(study))
    chosen = {"train/learning_rate": 0.005, "train/batch_size": 16,
              "train/optimizer": "adamw", "train/weight_decay": 0.01, "dropout/rate": 0.3}
    fitted = trainer.fit({}, 1, lambda *_: None, settings=chosen)
    model = fitted.model
    assert type(model.optimizer).__name__ == "AdamW"
    assert float(model.optimizer.learning_rate.numpy()) == pytest.approx(0.005)
    assert float(model.optimizer.weight_decay.numpy()) == pytest.approx(0.01)
    assert model.get_layer("dropout").rate == 0.3
    assert fitted.batches.steps_per_epoch() == 5  # 80 training samples in batches of 16
    # Another learning rate and weight decay: the same compiled model, new values.
    again = trainer.fit({}, 1, lambda *_: None, settings={
        **chosen, "train/learning_rate": 0.001, "train/weight_decay": 0.0})
    assert again.model is model
    assert float(model.optimizer.learning_rate.numpy()) == pytest.approx(0.001)
    assert float(model.optimizer.weight_decay.numpy()) == 0.0
    # Another dropout rate changes the graph: a model of its own.
    other = trainer.fit({}, 1, lambda *_: None, settings={**chosen, "dropout/rate": 0.1})
    assert other.model is not model and other.model.get_layer("dropout").rate == 0.1
    assert math.isfinite(trainer.final_figures(other)["final/val_data_loss"])
