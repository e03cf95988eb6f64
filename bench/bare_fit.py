"""The baseline of bench/overhead.py: the same configurations trained by bare
``model.fit`` in a loop, with no Optuna, no MLflow, no callbacks. One process, timed whole
by the caller; the time of each configuration is written to ``--out``.

Modes:
  keras   what a user writes by hand: for each configuration a fresh Keras model with
          ``keras.regularizers.L2`` on every kernel, compiled, ``fit`` on the numpy arrays;
  reuse   the training path of a sweep worker without its bookkeeping: the same tf.data
          pipelines and the same compiled model reused across configurations
          (``sweep.training.fit.Batches``, ``sweep.training.cache.ModelCache``), ``fit``
          without callbacks;
  kerastuner  KerasTuner's RandomSearch over exactly these coefficients
          (``hp.Choice("l2", ...)``, ``max_trials`` = their number, so it tries each once:
          checked), building the keras mode's model, its own trial files in a scratch
          folder, no tracking. KerasTuner seeds once, not per trial. Installed for the
          benchmark only (bench/requirements.txt).

Both use the study's data split, layers, epochs, batch size, optimizer and learning rate,
and seed each configuration as the sweep seeds its trial (``keras.utils.set_random_seed``
with the trial's seed before the model is built).
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")


def build_keras(spec: Any, splits: Any, l2: float) -> Any:
    """The study's layers with ``keras.regularizers.L2(l2)`` on every kernel, compiled as
    a user would (Keras' defaults otherwise)."""
    import keras

    from sweep.placement.slots import KERNEL_LAYER_CLASSES

    layers = []
    for entry in spec.model.layers:
        ((class_name, kwargs),) = entry.items()
        kwargs = dict(kwargs or {})
        if class_name in KERNEL_LAYER_CLASSES:
            kwargs["kernel_regularizer"] = keras.regularizers.L2(l2)
        layers.append(getattr(keras.layers, class_name)(**kwargs))
    model = keras.Sequential([keras.Input(shape=splits.input_shape), *layers])
    optimizer = keras.optimizers.Adam(learning_rate=spec.train.learning_rate)
    model.compile(optimizer=optimizer, loss=spec.train.loss, metrics=["accuracy"])
    return model


def train_keras(spec: Any, splits: Any, configs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    import keras

    out = []
    for config in configs:
        start = time.perf_counter()
        keras.utils.set_random_seed(config["seed"])
        model = build_keras(spec, splits, config["l2"])
        history = model.fit(splits.x_train, splits.y_train, batch_size=spec.train.batch_size,
                            epochs=spec.train.epochs, validation_data=(splits.x_val, splits.y_val),
                            verbose=0)
        out.append({**config, "seconds": time.perf_counter() - start,
                    "val_accuracy": float(history.history["val_accuracy"][-1])})
    return out


def train_reuse(spec: Any, splits: Any, configs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    from sweep.placement.slots import describe_model, slot_names
    from sweep.training.cache import ModelCache
    from sweep.training.fit import Batches, execution_steps, fit
    from sweep.training.model import build_base_model
    from sweep.training.runtime import import_keras

    keras = import_keras()
    batches = Batches(splits, spec.train)
    # As a sweep worker compiles: the same batches per compiled call.
    models = ModelCache(spec.train, execution_steps(spec.train.steps_per_execution,
                                                    batches.steps_per_epoch()))
    out = []
    for config in configs:
        start = time.perf_counter()
        keras.utils.set_random_seed(config["seed"])
        base = build_base_model(spec.model, splits.input_shape, splits.n_classes)
        slots = slot_names(describe_model(base))
        placement = {slot: {"kernel": {"l2": config["l2"]}} for slot in slots}
        model = models.model_for(base, placement, slots)
        fit(model, batches, [], seed=config["seed"])
        out.append({**config, "seconds": time.perf_counter() - start,
                    "val_accuracy": float(model.history.history["val_accuracy"][-1])})
    return out


def train_kerastuner(spec: Any, splits: Any, configs: list[dict[str, Any]]
                     ) -> list[dict[str, Any]]:
    import tempfile

    import keras
    import keras_tuner

    values = [config["l2"] for config in configs]
    keras.utils.set_random_seed(configs[0]["seed"])
    with tempfile.TemporaryDirectory(prefix="kerastuner-") as folder:
        tuner = keras_tuner.RandomSearch(
            lambda hp: build_keras(spec, splits, hp.Choice("l2", values)),
            objective="val_accuracy", max_trials=len(values), seed=0, directory=folder,
            project_name="bench", overwrite=True)
        tuner.search(splits.x_train, splits.y_train, batch_size=spec.train.batch_size,
                     epochs=spec.train.epochs, validation_data=(splits.x_val, splits.y_val),
                     verbose=0)
        trials = list(tuner.oracle.trials.values())
        tried = sorted(trial.hyperparameters.get("l2") for trial in trials)
        if tried != sorted(values):  # else the comparison would not be like for like
            raise SystemExit(f"kerastuner tried {tried}, not {sorted(values)}")
        by_value = {trial.hyperparameters.get("l2"): trial for trial in trials}
        return [{**config, "seconds": None,
                 "val_accuracy": float(by_value[config["l2"]].score)} for config in configs]


def main() -> None:
    arguments = argparse.ArgumentParser(description=__doc__,
                                        formatter_class=argparse.RawDescriptionHelpFormatter)
    arguments.add_argument("study_file", type=Path)
    arguments.add_argument("--configs", type=Path, required=True,
                           help='JSON list of {"l2": coefficient, "seed": seed}')
    arguments.add_argument("--mode", choices=tuple(MODES), default="keras")
    arguments.add_argument("--out", type=Path, required=True)
    args = arguments.parse_args()

    from sweep.spec import load_spec
    from sweep.training.data import load_data

    spec = load_spec(args.study_file)
    splits = load_data(spec.data, spec.seed)
    configs = json.loads(args.configs.read_text())
    args.out.write_text(json.dumps(MODES[args.mode](spec, splits, configs)))


MODES = {"keras": train_keras, "reuse": train_reuse, "kerastuner": train_kerastuner}

if __name__ == "__main__":
    main()
