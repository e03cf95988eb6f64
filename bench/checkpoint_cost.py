"""checkpoint: what saving a trial's training state at every epoch end costs, as a share
of the epoch, on the overhead benchmark's study (the demo's CNN on digits).

The model is trained on the sweep's own training path (``sweep.train.Batches``,
``sweep.reuse.ModelCache``, ``sweep.train.fit``) in fits that take turns, with the same
seed, epochs and data:

  none       no checkpoint;
  none_b     no checkpoint again (an A/A pair: its difference to `none` is the noise);
  every_1    ``sweep.callbacks.TrainingCheckpoint`` saving every epoch (the default);
  every_5    saving every fifth epoch (``workers.checkpoint_every: 5``).

Figures per variant: the median epoch time and its ratio to `none`, epoch 1 of each fit
left out (tracing); the noise is the A/A ratio and the spread (min..max) of the per-repeat
ratios. A ratio within noise is reported as such.
"""

from __future__ import annotations

import os
import tempfile
import time
from pathlib import Path
from typing import Any

from _common import median, parser, print_table, print_targets, scratch, target, write_result
from overhead import study

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
LIMIT = 0.03
VARIANTS = ("none", "every_1", "none_b", "every_5")


def main() -> None:
    args = parser(__doc__ or "").parse_args()
    started = time.perf_counter()
    repeats = 1 if args.quick else 5
    epochs = 4 if args.quick else 12

    from sweep.callbacks import TrainingCheckpoint
    from sweep.data import load_data
    from sweep.model import build_base_model
    from sweep.reuse import ModelCache
    from sweep.runtime import import_keras
    from sweep.slots import describe_model, slot_names
    from sweep.spec import parse_spec
    from sweep.train import Batches, fit

    keras = import_keras()
    spec = parse_spec(study(1, epochs))
    splits = load_data(spec.data, spec.seed)
    keras.utils.set_random_seed(0)
    base = build_base_model(spec.model, splits.input_shape, splits.n_classes)
    slots = slot_names(describe_model(base))
    placement = {slot: {"kernel": {"l2": 1e-4}} for slot in slots}
    models = ModelCache(spec.train)
    batches = Batches(splits, spec.train)

    class Mark(keras.callbacks.Callback):
        def __init__(self) -> None:
            super().__init__()
            self.begins: list[float] = []
            self.ends: list[float] = []

        def on_epoch_begin(self, epoch: int, logs: dict | None = None) -> None:
            self.begins.append(time.perf_counter())

        def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
            self.ends.append(time.perf_counter())

    epoch_seconds: dict[str, list[list[float]]] = {v: [] for v in VARIANTS}
    saved_bytes: list[int] = []
    with scratch("checkpoint") as folder:
        def run_fit(variant: str, number: int) -> None:
            keras.utils.set_random_seed(7)
            model = models.model_for(base, placement, slots)
            first, last = Mark(), Mark()
            callbacks: list[Any] = [first]
            path = Path(tempfile.mkdtemp(dir=folder))
            if variant.startswith("every_"):
                # The last epoch is never saved (the trial ends): `epochs` is one more.
                callbacks.append(TrainingCheckpoint(path, every=int(variant[6:]),
                                                    trial=number))
            callbacks.append(last)
            fit(model, batches, callbacks, seed=7)
            epoch_seconds[variant].append(
                [b - a for a, b in zip(first.begins[1:], last.ends[1:], strict=True)])
            files = [p.stat().st_size for p in path.glob("*.weights.h5")]
            if files:
                saved_bytes.append(max(files))

        run_fit("none", 0)  # warm-up: builds and traces the model
        epoch_seconds["none"].clear()
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
    cost = ratios["every_1_vs_none"]
    within_noise = abs(cost) <= noise
    notes = [f"every_1 vs none: {cost:+.2%}; A/A noise {noise:.2%}"
             + (" -> within noise" if within_noise else "")]
    targets = [target("checkpoint: saving every epoch / epoch time", cost, LIMIT,
                      unit="share",
                      definition="median epoch time with TrainingCheckpoint(every=1) / "
                                 "without, minus 1 (A/A noise in the notes)")]
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
        parameters={"model": "demo CNN (studies/digits.yaml), L2 on every kernel",
                    "train_samples": len(splits.x_train), "epochs_per_fit": epochs,
                    "batch_size": spec.train.batch_size, "repeats": repeats,
                    "checkpoint_bytes": max(saved_bytes, default=None),
                    "store": "local disk (the scratch folder)"},
        raw={"epoch_seconds": epoch_seconds}, medians={"epoch_seconds": overall},
        ratios=ratios, targets=targets, notes=notes)


if __name__ == "__main__":
    main()
