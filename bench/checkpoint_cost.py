"""checkpoint: what saving a trial's training state costs, as a share of the epoch, at
the default ``workers.checkpoint_every: auto`` and at every epoch, on the overhead
benchmark's study (the demo's CNN on digits).

The model is trained on the sweep's own training path
(``sweep.training.fit.Batches``, ``sweep.training.cache.ModelCache``,
``sweep.training.fit.fit``) in fits that take turns, with the same seed, epochs and data:

  none       no checkpoint;
  none_b     no checkpoint again (an A/A pair: its difference to `none` is the noise);
  every_1    ``sweep.training.callbacks.TrainingCheckpoint`` saving every epoch
             (``workers.checkpoint_every: 1``; variables copied on the training thread,
             written by ``checkpoint.Writer``'s);
  every_5    saving every fifth epoch (``workers.checkpoint_every: 5``);
  auto       the default: a save at the first epoch end 30 s or more after the previous
             one (none within these short fits: its end-to-end figure checks that the
             rule itself costs nothing).

Figures per variant: the median epoch time and its ratio to `none`, epoch 1 of each fit
left out (tracing); the noise is the largest A/A difference (overall or per repeat). A
ratio within noise is reported as such. The cost judged against the target is the
attributable one (the copy of the variables in the callback plus the CPU of the
background write, per epoch), or the end-to-end difference if that exceeds the noise
and is larger. At the default, the attributable cost is the per-save cost over the time
between saves, max(epoch, 30 s); the every-epoch figure is shown beside it.
"""

from __future__ import annotations

import os
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from _common import (
    epoch_mark,
    median,
    parser,
    print_table,
    print_targets,
    scratch,
    target,
    write_result,
)
from overhead import study

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
LIMIT = 0.03
VARIANTS = ("none", "every_1", "none_b", "every_5", "auto")


def main() -> None:
    args = parser(__doc__ or "").parse_args()
    started = time.perf_counter()
    repeats = 1 if args.quick else 8
    epochs = 4 if args.quick else 12

    from sweep.placement.slots import describe_model, slot_names
    from sweep.spec import parse_spec
    from sweep.training.cache import ModelCache
    from sweep.training.callbacks import AUTO_SECONDS, TrainingCheckpoint
    from sweep.training.checkpoint import Writer
    from sweep.training.data import load_data
    from sweep.training.fit import Batches, execution_steps, fit
    from sweep.training.model import build_base_model
    from sweep.training.runtime import import_keras

    keras = import_keras()
    spec = parse_spec(study(1, epochs))
    splits = load_data(spec.data, spec.seed)
    keras.utils.set_random_seed(0)
    base = build_base_model(spec.model, splits.input_shape, splits.n_classes)
    slots = slot_names(describe_model(base))
    placement = {slot: {"kernel": {"l2": 1e-4}} for slot in slots}
    batches = Batches(splits, spec.train)
    # As a sweep worker compiles: the same batches per compiled call.
    models = ModelCache(spec.train, execution_steps(spec.train.steps_per_execution,
                                                    batches.steps_per_epoch()))

    Mark = epoch_mark(keras)

    epoch_seconds: dict[str, list[list[float]]] = {v: [] for v in VARIANTS}
    fit_seconds: dict[str, list[float]] = {v: [] for v in VARIANTS}
    in_loop: dict[str, list[float]] = {v: [] for v in VARIANTS}  # per epoch, callback
    write_cpu: dict[str, list[float]] = {v: [] for v in VARIANTS}  # per save
    saved_bytes: list[int] = []
    with scratch("checkpoint") as folder:
        def run_fit(variant: str, number: int) -> None:
            keras.utils.set_random_seed(7)
            model = models.model_for(base, placement, slots)
            first, last = Mark(), Mark()
            callbacks: list[Any] = [first]
            path = Path(tempfile.mkdtemp(dir=folder))
            writer = Writer(path, number)
            original_write = writer._write

            def timed_write(epoch: int, arrays: Any) -> None:
                cpu = time.thread_time()  # on the writer's thread
                original_write(epoch, arrays)
                write_cpu[variant].append(time.thread_time() - cpu)

            writer._write = timed_write  # type: ignore[method-assign]
            if variant != "none" and variant != "none_b":
                # As in a trial: the variables are copied on the training thread, written
                # on the writer's (both inside the timed epochs, on the same two cores).
                every = "auto" if variant == "auto" else int(variant[6:])
                saver = TrainingCheckpoint(writer, every=every)
                original_end = saver.on_epoch_end

                def timed_end(epoch: int, logs: Any = None) -> None:
                    wall = time.perf_counter()
                    original_end(epoch, logs)
                    in_loop[variant].append(time.perf_counter() - wall)

                saver.on_epoch_end = timed_end  # type: ignore[method-assign]
                callbacks.append(saver)
            callbacks.append(last)
            began = time.perf_counter()
            fit(model, batches, callbacks, seed=7)
            writer.flush()  # a fit is over once its last checkpoint is on disk
            fit_seconds[variant].append(time.perf_counter() - began)
            epoch_seconds[variant].append(
                [b - a for a, b in zip(first.begins[1:], last.ends[1:], strict=True)])
            files = [p.stat().st_size for p in path.glob("*.npz")]
            if files:
                saved_bytes.append(max(files))

        run_fit("none", 0)  # warm-up: builds and traces the model
        epoch_seconds["none"].clear()
        fit_seconds["none"].clear()
        for repeat in range(repeats):
            for index in range(len(VARIANTS)):
                variant = VARIANTS[(repeat + index) % len(VARIANTS)]
                run_fit(variant, 1 + repeat * len(VARIANTS) + index)
            print(f"repeat {repeat + 1}/{repeats}: " + ", ".join(
                f"{v} {median(epoch_seconds[v][-1]) * 1000:.1f} ms" for v in VARIANTS))

    per_repeat = {v: [median(r) for r in runs] for v, runs in epoch_seconds.items()}
    overall = {v: median([s for r in runs for s in r]) for v, runs in epoch_seconds.items()}
    ratios: dict[str, Any] = {}
    for variant in VARIANTS[1:]:
        paired = [b / a - 1 for a, b in zip(per_repeat["none"], per_repeat[variant],
                                             strict=True)]
        ratios[f"{variant}_vs_none"] = overall[variant] / overall["none"] - 1
        ratios[f"{variant}_vs_none_per_repeat"] = paired
    noise = max(abs(x) for x in ratios["none_b_vs_none_per_repeat"] +
                [ratios["none_b_vs_none"]])
    ratios["noise_aa"] = noise
    ratios["fit_every_1_vs_none"] = median(fit_seconds["every_1"]) / \
        median(fit_seconds["none"]) - 1
    ratios["fit_none_b_vs_none"] = median(fit_seconds["none_b"]) / \
        median(fit_seconds["none"]) - 1
    epochs_timed = max(1, sum(len(r) for r in epoch_seconds["every_1"]))
    saves = len(write_cpu["every_1"])
    # Per epoch of every_1: the copy on the training thread (epoch 1 included, as it is
    # saved too) and the writer's CPU, spread over the epochs that were timed.
    attributable = (median(in_loop["every_1"]) * saves
                    + sum(write_cpu["every_1"])) / epochs_timed / overall["none"]
    ratios["attributable_every_1"] = attributable
    ratios["copy_ms_per_save"] = median(in_loop["every_1"]) * 1000
    ratios["write_cpu_ms_per_save"] = median(write_cpu["every_1"]) * 1000
    end_to_end = ratios["every_1_vs_none"]
    within_noise = abs(end_to_end) <= noise
    cost = attributable if within_noise else max(end_to_end, attributable)
    notes = [f"every_1 vs none: {end_to_end:+.2%}; A/A noise {noise:.2%}"
             + (" -> within noise" if within_noise else ""),
             f"attributable: copy {ratios['copy_ms_per_save']:.2f} ms on the training "
             f"thread + write {ratios['write_cpu_ms_per_save']:.2f} ms CPU on the writer's "
             f"per save = {attributable:.2%} of an epoch",
             f"whole fit (last checkpoint written): every_1 "
             f"{ratios['fit_every_1_vs_none']:+.2%}, A/A {ratios['fit_none_b_vs_none']:+.2%}"]
    # The attributable cost is a mean over every save, measured on thread clocks: its noise
    # is two standard errors of the per-save cost; the end-to-end cost's is the A/A noise.
    per_save = [(c + w) * saves / epochs_timed / overall["none"]
                for c, w in zip(in_loop["every_1"], write_cpu["every_1"], strict=False)]
    ratios["every_1_cost"] = cost
    ratios["every_1_cost_noise"] = noise if cost == end_to_end and not within_noise else (
        2 * statistics.stdev(per_save) / len(per_save) ** 0.5 if len(per_save) > 1 else None)
    # The default saves once per max(epoch, AUTO_SECONDS): its attributable share is a
    # save's cost over that time. Its end-to-end difference checks the rule is free.
    per_save_seconds = median(in_loop["every_1"]) + median(write_cpu["every_1"])
    auto_share = per_save_seconds / max(overall["none"], AUTO_SECONDS)
    auto_end_to_end = ratios["auto_vs_none"]
    auto_within = abs(auto_end_to_end) <= noise
    ratios["attributable_auto"] = auto_share
    auto_cost = auto_share if auto_within else max(auto_end_to_end, auto_share)
    notes.append(f"default (auto): a save ({per_save_seconds * 1000:.2f} ms) per "
                 f"max(epoch, {AUTO_SECONDS:.0f} s) = {auto_share:.4%} of the time; end to "
                 f"end {auto_end_to_end:+.2%} against A/A noise {noise:.2%}"
                 + (" -> within noise" if auto_within else ""))
    save_seconds = [c + w for c, w in zip(in_loop["every_1"], write_cpu["every_1"],
                                          strict=False)]
    auto_noise = noise if auto_cost != auto_share else (
        2 * statistics.stdev(save_seconds) / len(save_seconds) ** 0.5
        / max(overall["none"], AUTO_SECONDS) if len(save_seconds) > 1 else None)
    targets = [target("checkpoint: at the default (auto) / epoch time", auto_cost, LIMIT,
                      noise=auto_noise, unit="share",
                      definition="a save's cost (copy on the training thread + CPU of the "
                                 "background write) per max(epoch, 30 s), or the end-to-end "
                                 "difference of `auto` when it exceeds the A/A noise and is "
                                 "larger")]
    # Every epoch (checkpoint_every: 1) is a choice, not the default: shown, not judged.
    print_table(f"checkpoint: demo CNN on digits, {len(splits.x_train)} training samples, "
                f"{epochs} epochs per fit, {repeats} repeats",
                ["variant", "median epoch (ms)", "vs none", "per repeat"],
                [[v, overall[v] * 1000, "" if v == "none" else ratios[f"{v}_vs_none"],
                  "" if v == "none" else " ".join(
                      f"{x:+.1%}" for x in ratios[f"{v}_vs_none_per_repeat"])]
                 for v in VARIANTS])
    print("\n".join(notes))
    print_targets(targets)
    write_result(
        "checkpoint_cost", quick=args.quick, started=started,
        parameters={"model": "demo CNN (studies/digits-cnn.yaml), L2 on every kernel",
                    "train_samples": len(splits.x_train), "epochs_per_fit": epochs,
                    "batch_size": spec.train.batch_size, "repeats": repeats,
                    "checkpoint_bytes": max(saved_bytes, default=None),
                    "store": "local disk (the scratch folder)"},
        raw={"epoch_seconds": epoch_seconds, "fit_seconds": fit_seconds},
        medians={"epoch_seconds": overall,
                 "fit_seconds": {v: median(f) for v, f in fit_seconds.items()}},
        ratios=ratios, targets=targets, notes=notes)


if __name__ == "__main__":
    main()
