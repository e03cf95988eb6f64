"""logging: what the per-epoch metric and weight-norm logging of a trial costs, as a share
of the epoch, for a model with 10 regularizable layers (10 Dense layers, L1+L2 on every
kernel).

The model is trained on the sweep's own training path (``sweep.training.fit.Batches``,
``sweep.training.cache.ModelCache``) in fits that take turns:

  none      no callback at all;
  logging   ``sweep.training.callbacks.WeightNormCallback`` handing every epoch's Keras metrics,
            per-layer norms, sparsities and penalties to ``TrialRun.log_epoch`` of a real
            MLflow run (SQLite store created beforehand; writes happen on the run's
            background thread, as in a trial);
  trial     the product's own training call, ``sweep.training.trainer.Trainer.fit``
            (the base model built from the seed, the cached compiled model, every
            callback a trial has without Optuna: ``StopRequestCheck`` after each batch,
            ``NonFiniteLossGuard``, the weight norms) logging into a real MLflow run;
  none (A/A) no callback again: how much two identical fits differ, the noise of the
            end-to-end figure.

Three views of the cost of `logging`, each per epoch and divided by the median epoch
time of `none`: the time the training loop spends in the callback; the CPU time of the
background writes (they compete for the same two cores); and the end-to-end difference
of median epoch times. The target is judged on the larger of the end-to-end difference
and the sum of the first two; its noise is the A/A difference (end to end) or the
spread of the per-fit shares over repeats (attributable). The first epoch of every fit
(tracing) is left out.
"""

from __future__ import annotations

import os
import time
import uuid
from typing import Any

from _common import (
    epoch_mark,
    median,
    parser,
    print_table,
    print_targets,
    scratch,
    spread,
    target,
    write_result,
)

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
LIMIT = 0.02
LAYERS = 10


def spec_for(quick: bool) -> Any:
    from sweep.spec import parse_spec

    hidden = [{"Dense": {"units": 128, "activation": "relu"}} for _ in range(LAYERS - 1)]
    return parse_spec({
        "name": "logging",
        "seed": 0,
        # Generated classes with noise (never constant data).
        "data": {"source": "synthetic", "n_samples": 1000 if quick else 8000, "shape": [64],
                 "n_classes": 4, "noise": 2.0, "validation_split": 0.2, "test_split": 0.1},
        "model": {"layers": [*hidden, {"Dense": {"units": 4, "activation": "softmax"}}]},
        "train": {"epochs": 3 if quick else 8, "batch_size": 64, "optimizer": "adam",
                  "learning_rate": 0.001, "loss": "sparse_categorical_crossentropy"},
        "search": {"targets": ["kernel"], "placement": {"choices": ["all"]},
                   "l1": 1e-5, "l2": 1e-4, "baselines": []},
        "budget": {"n_trials": 1},
    })


def main() -> None:
    args = parser(__doc__ or "").parse_args()
    started = time.perf_counter()
    repeats = 1 if args.quick else 6

    from sweep.placement.slots import describe_model, slot_names
    from sweep.tracking.tracker import StudyTracker
    from sweep.training.cache import ModelCache
    from sweep.training.callbacks import WeightNormCallback
    from sweep.training.data import load_data
    from sweep.training.fit import Batches, execution_steps, fit
    from sweep.training.model import build_base_model
    from sweep.training.runtime import import_keras
    from sweep.training.trainer import Trainer

    keras = import_keras()
    spec = spec_for(args.quick)
    splits = load_data(spec.data, spec.seed)
    if float(splits.x_train.std()) == 0.0:
        raise RuntimeError("constant training data")
    keras.utils.set_random_seed(0)
    base = build_base_model(spec.model, splits.input_shape, splits.n_classes)
    slots = slot_names(describe_model(base))
    if len(slots) != LAYERS:
        raise RuntimeError(f"expected {LAYERS} regularizable layers, got {slots}")
    placement = {slot: {"kernel": {"l1": 1e-5, "l2": 1e-4}} for slot in slots}
    batches = Batches(splits, spec.train)
    # As a sweep worker compiles: the same batches per compiled call.
    models = ModelCache(spec.train, execution_steps(spec.train.steps_per_execution,
                                                    batches.steps_per_epoch()))
    trainer = Trainer(spec)  # keeps its own model cache and batches, as a worker does

    Mark = epoch_mark(keras)

    epoch_seconds: dict[str, list[float]] = {"none": [], "logging": [], "trial": [],
                                             "none_again": []}
    in_loop: list[float] = []
    per_fit: list[float] = []
    writes: list[dict[str, float]] = []
    drain_waits: list[float] = []

    with scratch("logging") as folder:
        tracker = StudyTracker(f"sqlite:///{folder / 'mlflow.db'}", experiment="logging",
                               study_name="logging", study_uid=uuid.uuid4().hex,
                               worker="bench")
        tracker.parent_run_id()  # the store and the study's run exist before timing

        def run_fit(variant: str, number: int) -> None:
            seed = 1000 + number
            keras.utils.set_random_seed(seed)
            model = models.model_for(base, placement, slots)
            first, last = Mark(), Mark()
            callbacks: list[Any] = [first]
            run = None
            if variant != "none":
                run = tracker.start_trial(number, {}, placement, seed)
                original = run._perform

                def timed(op: dict[str, Any], original: Any = original) -> None:
                    # Runs on the run's background thread: its wall and CPU time.
                    wall, cpu = time.perf_counter(), time.thread_time()
                    original(op)
                    if op["op"] == "log" and op.get("metrics"):
                        # One write may carry several epochs (TrialRun buffers them).
                        epochs = len({m[3] for m in op["metrics"]})
                        writes.append({"wall": time.perf_counter() - wall,
                                       "cpu": time.thread_time() - cpu, "epochs": epochs})

                run._perform = timed  # type: ignore[method-assign]
            if variant == "trial":
                assert run is not None
                # Trainer.fit puts its own callbacks (norms included) before these marks:
                # the epoch measured from `first` to `last` contains their work.
                trainer.fit(placement, seed, run.log_epoch, [first, last])
                ends = last.ends[1:]
                epoch_seconds[variant] += [b - a for a, b in zip(first.begins[1:], ends,
                                                                 strict=True)]
                wait = time.perf_counter()
                run.finish("COMPLETE", {})
                drain_waits.append(time.perf_counter() - wait)
                return
            if run is not None:
                inner = Mark()
                callbacks += [inner, WeightNormCallback(slots, run.log_epoch,
                                                        threshold=spec.tracking.sparsity_threshold)]
            callbacks.append(last)
            writes_before, in_loop_before = len(writes), len(in_loop)
            fit(model, batches, callbacks, seed=seed)
            ends = last.ends[1:]  # epoch 1 of a fit may trace
            epoch_seconds[variant] += [b - a for a, b in zip(first.begins[1:], ends,
                                                             strict=True)]
            if variant == "logging":
                in_loop.extend(b - a for a, b in zip(inner.ends[1:], ends, strict=True))
            if run is not None:
                wait = time.perf_counter()
                run.finish("COMPLETE", {})
                drain_waits.append(time.perf_counter() - wait)
            if variant == "logging":  # this fit's own attributable seconds per epoch
                mine = writes[writes_before:]
                per_fit.append(median(in_loop[in_loop_before:])
                               + sum(w["cpu"] for w in mine)
                               / (sum(w["epochs"] for w in mine) or 1))

        run_fit("logging", 0)  # warm-up: builds and traces the model, opens MLflow
        run_fit("trial", 0)  # and the trainer's own cached model
        writes.clear()
        drain_waits.clear()
        in_loop.clear()
        per_fit.clear()
        epoch_seconds["logging"].clear()
        epoch_seconds["trial"].clear()
        variants = ["none", "logging", "trial", "none_again"]
        for repeat in range(repeats):
            for index in range(len(variants)):
                variant = variants[(repeat + index) % len(variants)]
                run_fit(variant, 1 + repeat * len(variants) + index)
            print(f"repeat {repeat + 1}/{repeats}: " + ", ".join(
                f"{v} {median(epoch_seconds[v]) * 1000:.0f} ms" for v in variants))

    epoch = {variant: median(values) for variant, values in epoch_seconds.items()}
    in_loop_s = median(in_loop)
    logged_epochs = sum(w["epochs"] for w in writes) or 1
    write_cpu = sum(w["cpu"] for w in writes) / logged_epochs
    write_wall = sum(w["wall"] for w in writes) / logged_epochs
    end_to_end = (epoch["logging"] - epoch["none"]) / epoch["none"]
    attributable = (in_loop_s + write_cpu) / epoch["none"]
    share = max(end_to_end, attributable)
    a_a = (epoch["none_again"] - epoch["none"]) / epoch["none"]
    noise = abs(a_a) if end_to_end >= attributable else \
        spread([seconds / epoch["none"] for seconds in per_fit])
    metrics_per_epoch = len(slots) * 4 + 1 + len(keras_metric_names())
    medians = {
        "epoch_seconds_none": epoch["none"], "epoch_seconds_logging": epoch["logging"],
        "epoch_seconds_trainer_fit": epoch["trial"],
        "in_loop_seconds_per_epoch": in_loop_s,
        "background_write_cpu_seconds_per_epoch": write_cpu,
        "background_write_wall_seconds_per_epoch": write_wall,
        "finish_drain_wait_seconds_per_fit": median(drain_waits),
    }
    ratios = {
        "end_to_end_share": end_to_end,
        "A/A end-to-end share (noise)": a_a,
        "in_loop_share": in_loop_s / epoch["none"],
        "background_cpu_share": write_cpu / epoch["none"],
        "attributable_share": attributable,
        "trainer_fit_share": (epoch["trial"] - epoch["none"]) / epoch["none"],
        "epoch_seconds_for_2_percent": (in_loop_s + write_cpu) / LIMIT,
    }
    targets = [target("logging: per-epoch metric + weight-norm logging / epoch time", share,
                      LIMIT, unit="share", noise=noise,
                      definition="max(end-to-end epoch-time difference, time in the "
                                 "callback + CPU of the background write) / epoch time "
                                 "without logging; noise: A/A (end to end) or the spread "
                                 "of the per-fit shares (attributable)")]
    print_table(f"logging: {LAYERS} Dense layers, epoch of {len(splits.x_train)} samples, "
                f"{repeats} repeats (median per epoch)",
                ["", "value"],
                [["epoch, no callbacks (s)", epoch["none"]],
                 ["epoch, logging (s)", epoch["logging"]],
                 ["epoch, logging + stop check + NaN guard (s)", epoch["trial"]],
                 ["in the training loop: norms + submit (ms)", in_loop_s * 1000],
                 ["background MLflow write, CPU (ms)", write_cpu * 1000],
                 ["background MLflow write, wall (ms)", write_wall * 1000],
                 ["end-to-end share", end_to_end], ["attributable share", attributable],
                 ["epoch length at which logging is 2% (s)",
                  ratios["epoch_seconds_for_2_percent"]]])
    print_targets(targets)
    write_result(
        "logging_cost", quick=args.quick, started=started,
        parameters={"layers": LAYERS, "model": "9 x Dense(128, relu) + Dense(4, softmax), "
                    "L1 1e-5 + L2 1e-4 on every kernel",
                    "data": spec.data.model_dump(mode="json"), "train_samples":
                    len(splits.x_train), "epochs_per_fit": spec.train.epochs,
                    "batch_size": spec.train.batch_size, "repeats": repeats,
                    "metrics_logged_per_epoch": metrics_per_epoch,
                    "store": "MLflow SQLite, created before timing"},
        raw={"epoch_seconds": epoch_seconds, "in_loop_seconds": in_loop, "writes": writes,
             "finish_drain_wait_seconds": drain_waits},
        medians=medians, ratios=ratios, targets=targets)


def keras_metric_names() -> list[str]:
    return ["loss", "data_loss", "accuracy", "val_loss", "val_data_loss", "val_accuracy"]


if __name__ == "__main__":
    main()
