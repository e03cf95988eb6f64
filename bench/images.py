"""images: an image folder streamed from disk against the same images held in memory.

A generated folder of 20,000 64x64 RGB PNGs (10 classes) is trained on, each variant in a
fresh worker process of its own, on the sweep's training path (``load_data``,
``sweep.training.fit.Batches``, ``fit``) with a small CNN:

  stream    ``data.source: image_folder``: file names listed, images decoded once into the
            worker's cache file (sweep.training.images), epochs read through the shuffle
            buffer;
  memory    the same pixels as an ``npz`` archive of float32 arrays (the in-memory path);
  stream_q  the stream on a quarter of the folder: its memory must not grow with the folder.

Per process: resident memory (RSS) after TensorFlow, the model and the data pipelines are
set up but before any data is read (``base``), and its peak over the whole run; the data's
share is peak minus base. Epoch times leave out epoch 1 (tracing). The variants take turns
(stream, memory, ...) for ``repeats`` rounds; the epoch-time ratio stream/memory is taken
per round, and its noise is the spread of the rounds.

    .venv/bin/python bench/images.py [--quick]
"""

from __future__ import annotations

import json
import os
import resource
import sys
import time
from pathlib import Path
from typing import Any

from _common import (
    PYTHON,
    bench_env,
    median,
    parser,
    print_table,
    print_targets,
    run_timed,
    scratch,
    spread,
    target,
    write_result,
)

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
EPOCH_RATIO_LIMIT = 1.2
MEMORY_SHARE_LIMIT = 0.25  # the stream's data memory / the decoded float32 data size
SIDE = 64
CLASSES = 10


def generate(root: Path, n: int) -> None:
    """``n`` PNGs in class folders: each class a colour and a stripe frequency, plus
    noise, so a small CNN has something to learn and PNG cannot compress it away."""
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(0)
    axis = np.linspace(0, 2 * np.pi, SIDE, dtype=np.float32)
    for label in range(CLASSES):
        (root / f"class{label}").mkdir(parents=True)
    for i in range(n):
        label = i % CLASSES
        colour = np.array([(label * 37) % 255, (label * 91) % 255, (label * 53) % 255],
                          dtype=np.float32)
        stripes = (np.sin(axis * (label + 1))[None, :, None] + 1) * 60
        pixels = colour * 0.5 + stripes + rng.normal(0, 40, (SIDE, SIDE, 3))
        image = Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8))
        image.save(root / f"class{label}" / f"{i:05d}.png")


def to_npz(root: Path, path: Path) -> int:
    """The same images as float32 arrays (PNG is lossless and the size unchanged: the
    pixels the stream decodes). Returns the decoded float32 size in bytes."""
    import numpy as np
    from PIL import Image

    files = sorted(root.glob("class*/*.png"))
    x = np.empty((len(files), SIDE, SIDE, 3), dtype=np.float32)
    y = np.empty(len(files), dtype=np.int32)
    for row, file in enumerate(files):
        with Image.open(file) as image:
            x[row] = np.asarray(image.convert("RGB"), dtype=np.float32) / 255.0
        y[row] = int(file.parent.name.removeprefix("class"))
    np.savez(path, x_train=x, y_train=y)
    return int(x.nbytes)


def study_data(variant: str, folder: Path, npz: Path, cache: Path) -> dict[str, Any]:
    split = {"validation_split": 0.1, "test_split": 0.1}
    if variant == "memory":
        return {"source": "npz", "path": str(npz), **split}
    return {"source": "image_folder", "path": str(folder), "image_size": [SIDE, SIDE],
            "cache_dir": str(cache), **split}


# ---------------------------------------------------------------- one worker process
def child(spec_json: str) -> None:
    """Train on one variant and print its figures as JSON (runs in its own process)."""
    from _common import epoch_mark

    from sweep.placement.slots import describe_model, slot_names
    from sweep.spec import parse_spec
    from sweep.training.cache import ModelCache
    from sweep.training.data import load_data
    from sweep.training.fit import Batches, fit
    from sweep.training.model import build_base_model
    from sweep.training.runtime import import_keras

    keras = import_keras()
    spec = parse_spec(json.loads(spec_json))
    start = time.perf_counter()
    splits_shape = (SIDE, SIDE, 3)
    # Not 0: TensorFlow's shuffle cannot take a tensor seed under a global seed of 0
    # (random_seed.get_seed compares it as a Python bool); trial seeds are never 0.
    keras.utils.set_random_seed(1)
    base = build_base_model(spec.model, splits_shape, CLASSES)
    slots = slot_names(describe_model(base))
    models = ModelCache(spec.train)
    model = models.model_for(base, {slots[0]: {"kernel": {"l2": 1e-4}}}, slots)
    rss_base = _rss_mb()
    splits = load_data(spec.data, spec.seed)
    batches = Batches(splits, spec.train, spec.data)
    setup = time.perf_counter() - start
    mark = epoch_mark(keras)()
    fit(model, batches, [mark], seed=1)
    epochs = [end - begin for begin, end in zip(mark.begins, mark.ends, strict=True)]
    print(json.dumps({"rss_base_mb": rss_base, "rss_peak_mb": _peak_rss_mb(),
                      "setup_seconds": setup, "epoch_seconds": epochs,
                      "val_accuracy": float(model.history.history["val_accuracy"][-1])}))


def _rss_mb() -> float:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # kB on Linux


# ---------------------------------------------------------------- the comparison
def main() -> None:
    args = parser(__doc__ or "").parse_args()
    started = time.perf_counter()
    n = 2000 if args.quick else 20_000
    repeats = 1 if args.quick else 3
    epochs = 3 if args.quick else 4

    with scratch("images") as tmp:
        folder, quarter, npz = tmp / "images", tmp / "quarter", tmp / "images.npz"
        begin = time.perf_counter()
        generate(folder, n)
        generate(quarter, n // 4)
        decoded_bytes = to_npz(folder, npz)
        generated = time.perf_counter() - begin
        print(f"generated {n} + {n // 4} images and the npz in {generated:.0f} s", flush=True)

        def run(variant: str) -> dict[str, Any]:
            source = quarter if variant == "stream_q" else folder
            study = {
                "name": f"images-{variant}", "seed": 0,
                "data": study_data(variant, source, npz, tmp / "cache"),
                "model": {"layers": [
                    {"Conv2D": {"filters": 8, "kernel_size": 3, "activation": "relu"}},
                    {"MaxPooling2D": {"pool_size": 4}},
                    {"Flatten": {}},
                    {"Dense": {"units": 32, "activation": "relu"}},
                    {"Dense": {"units": CLASSES, "activation": "softmax"}}]},
                "train": {"epochs": epochs, "batch_size": 64, "optimizer": "adam",
                          "learning_rate": 0.003,
                          "loss": "sparse_categorical_crossentropy"},
                "search": {"targets": ["kernel"], "placement": {"choices": ["all"]},
                           "coefficients": "shared", "l2": {"low": 1e-5, "high": 1e-3}},
                "objective": {"metric": "val_accuracy", "direction": "maximize"},
            }
            done = run_timed([PYTHON, __file__, "--child", json.dumps(study)],
                             env=bench_env(), timeout=3600)
            result = json.loads(done.stdout.strip().splitlines()[-1])
            result["process_seconds"] = done.seconds
            print(f"  {variant}: {json.dumps(result)}", flush=True)
            return result

        rounds: list[dict[str, dict[str, Any]]] = []
        for index in range(repeats):
            print(f"round {index + 1}/{repeats}", flush=True)
            rounds.append({variant: run(variant) for variant in ("stream", "memory",
                                                                 "stream_q")})

    def steady(result: dict[str, Any]) -> float:
        return median(result["epoch_seconds"][1:])

    def data_mb(result: dict[str, Any]) -> float:
        return result["rss_peak_mb"] - result["rss_base_mb"]

    ratios = [steady(r["stream"]) / steady(r["memory"]) for r in rounds]
    ratio = median(ratios)
    decoded_mb = decoded_bytes / 2**20
    stream_mb = median([data_mb(r["stream"]) for r in rounds])
    memory_mb = median([data_mb(r["memory"]) for r in rounds])
    quarter_mb = median([data_mb(r["stream_q"]) for r in rounds])
    share = stream_mb / decoded_mb
    share_noise = spread([data_mb(r["stream"]) / decoded_mb for r in rounds])
    targets = [
        target("images: stream epoch time / in-memory epoch time (cached)", ratio,
               EPOCH_RATIO_LIMIT, noise=spread(ratios),
               definition="median over rounds of (median epoch 2.. of stream) / (same "
                          "of memory), each round's pair run back to back"),
        target("images: stream's data memory / decoded float32 size", share,
               MEMORY_SHARE_LIMIT, noise=share_noise,
               definition="(peak RSS - RSS before reading data) / size of the images "
                          "as float32"),
    ]
    print_table("image folder: stream vs memory",
                ["variant", "data memory (MB)", "setup (s)", "epoch (s)", "val acc"],
                [[v, median([data_mb(r[v]) for r in rounds]),
                  median([r[v]["setup_seconds"] for r in rounds]),
                  median([steady(r[v]) for r in rounds]),
                  median([r[v]["val_accuracy"] for r in rounds])]
                 for v in ("stream", "memory", "stream_q")])
    print_targets(targets)
    write_result(
        "images", quick=args.quick, started=started,
        parameters={"images": n, "quarter": n // 4, "side": SIDE, "classes": CLASSES,
                    "epochs": epochs, "repeats": repeats, "batch_size": 64,
                    "shuffle_buffer": 4096},
        raw={"rounds": rounds, "generate_seconds": generated},
        medians={"decoded_mb": decoded_mb, "stream_data_mb": stream_mb,
                 "memory_data_mb": memory_mb, "stream_quarter_data_mb": quarter_mb,
                 "stream_epoch_s": median([steady(r["stream"]) for r in rounds]),
                 "memory_epoch_s": median([steady(r["memory"]) for r in rounds]),
                 "stream_setup_s": median([r["stream"]["setup_seconds"] for r in rounds]),
                 "memory_setup_s": median([r["memory"]["setup_seconds"] for r in rounds])},
        ratios={"epoch_stream_over_memory": ratio, "epoch_ratios": ratios,
                "stream_data_share": share,
                "stream_quarter_over_full_data_mb": quarter_mb / stream_mb
                if stream_mb else None},
        targets=targets,
        notes=["setup of the stream includes decoding every image once into the cache "
               "file; the memory path's includes reading the npz"])


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--child":
        child(sys.argv[2])
    else:
        main()
