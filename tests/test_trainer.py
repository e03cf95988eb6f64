"""sweep.trainer: one configuration trained end to end, and the speed switches of the
training spec as the process sees them (GPU paths are checked through Keras' config)."""

from __future__ import annotations

import math

from conftest import tiny_study

from sweep.spec import parse_spec
from sweep.trainer import Trainer


def _spec(**train):
    return parse_spec(tiny_study(train=dict(tiny_study()["train"], **train)))


def test_a_configuration_trains_and_reports_every_split() -> None:
    epochs: list[int] = []
    trainer = Trainer(_spec())
    placement = {"dense": {"kernel": {"l2": 1e-3}}}
    fitted = trainer.fit(placement, 7, lambda step, metrics: epochs.append(step))
    assert fitted.failure is None and fitted.epochs_run == 2 and epochs == [1, 2]
    final = trainer.final_figures(fitted)
    for split in ("train", "val", "test"):
        assert 0.0 <= final[f"final/{split}_accuracy"] <= 1.0
        assert math.isfinite(final[f"final/{split}_data_loss"])
    assert final["final/penalty_total"] > 0.0
    assert final["final/weights_l2_total"] > 0.0


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

    plain = Trainer(_spec()).fit({}, 1, lambda *_: None).model
    assert plain.layers[0].compute_dtype == "float32" and plain.steps_per_execution == 1
