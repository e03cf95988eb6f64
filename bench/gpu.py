"""gpu: trials per hour with K trials sharing one GPU, with and without mixed precision and
XLA, and what the GPU did meanwhile. Ready for the day a GPU machine is lent: on a machine
without one it says so and exits 0 (``--allow-cpu`` runs the same measurement on the CPU,
to check the benchmark itself; its figures say nothing about GPUs).

For each precision variant (float32 / mixed_float16) x XLA (off / on) x K in
``--trials-per-gpu`` (default 1 2 4), in turns, ``--repeats`` times: a fresh study on
PostgreSQL (MLflow in a second database) trained by ``sweep run --gpus <gpu>
--trials-per-gpu K`` (K workers whose CUDA_VISIBLE_DEVICES is that GPU), each worker
running ``--trials-per-worker`` trials of a CNN on generated 32x32x3 images. Measured:

  trials/hour   steady state, as in bench/workers.py: per worker 1 / its mean
                complete-to-complete time while all K ran, summed over workers, x 3600;
  utilization   the GPU's utilization and memory in use, sampled every second by
                ``nvidia-smi`` (NVML) during the run: median and peak; and as each
                trial's MLflow run recorded it (MLflow's system metrics,
                ``system/gpu_<index>_utilization_percentage``, which needs the ``gpu``
                extra): the median over trials of each trial's median;
  scaling(K)    trials/hour at K / trials/hour at K = 1 (same variant), per repeat; its
                noise is the spread of the repeats.

A good result: scaling(K) >= 0.8 K for every K until the GPU saturates (utilization
near 100 % at K - 1: more trials per GPU cannot add throughput then, and the target for
that K is reported as "saturated", not missed); mixed precision and XLA each raise
trials/hour at K = 1 on GPUs with tensor cores.

    .venv/bin/python bench/gpu.py [--gpu 0] [--trials-per-gpu 1 2 4] [--repeats 2]
                                  [--quick] [--allow-cpu]
"""

from __future__ import annotations

import itertools
import shutil
import subprocess
import threading
import time
from typing import Any

from _common import (
    SWEEP,
    median,
    parser,
    postgres_database,
    print_table,
    print_targets,
    run_timed,
    scratch,
    spread,
    study_trials,
    target,
    write_result,
    write_yaml,
)
from workers import throughput

SCALING_SHARE = 0.8  # of K
SATURATED = 90.0  # GPU utilization (%) at which more trials per GPU cannot help
VARIANTS = {  # name: (train.mixed_precision, train.jit_compile)
    "fp32": (False, False), "mixed": (True, False), "fp32+xla": (False, True),
    "mixed+xla": (True, True),
}


def gpus() -> list[dict[str, str]]:
    """The GPUs ``nvidia-smi`` lists (index, name, total memory), or none."""
    if shutil.which("nvidia-smi") is None:
        return []
    done = subprocess.run(["nvidia-smi", "--query-gpu=index,name,memory.total",
                           "--format=csv,noheader,nounits"], capture_output=True, text=True)
    if done.returncode != 0:
        return []
    rows = [line.split(", ") for line in done.stdout.strip().splitlines() if line.strip()]
    return [{"index": r[0], "name": r[1], "memory_total_mb": r[2]} for r in rows if len(r) == 3]


class GpuSampler:
    """Utilization (%) and memory used (MB) of one GPU, once a second, from a background
    ``nvidia-smi --loop`` (NVML underneath) until stopped."""

    def __init__(self, gpu: str):
        self.samples: list[tuple[float, float]] = []
        self._process: subprocess.Popen[str] | None = None
        if shutil.which("nvidia-smi") is None:
            return
        self._process = subprocess.Popen(
            ["nvidia-smi", "-i", gpu, "--query-gpu=utilization.gpu,memory.used",
             "--format=csv,noheader,nounits", "--loop-ms=1000"],
            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self._process is not None and self._process.stdout is not None
        for line in self._process.stdout:
            parts = [p.strip() for p in line.split(",")]
            if len(parts) == 2 and all(p.replace(".", "", 1).isdigit() for p in parts):
                self.samples.append((float(parts[0]), float(parts[1])))

    def stop(self) -> dict[str, float | None]:
        if self._process is not None:
            self._process.terminate()
            self._process.wait(timeout=10)
        utilization = [u for u, _ in self.samples]
        memory = [m for _, m in self.samples]
        return {"samples": len(self.samples),
                "utilization_median": median(utilization) if utilization else None,
                "utilization_peak": max(utilization) if utilization else None,
                "memory_used_median_mb": median(memory) if memory else None,
                "memory_used_peak_mb": max(memory) if memory else None}


def study(name: str, n_trials: int, variant: str, quick: bool) -> dict[str, Any]:
    mixed, xla = VARIANTS[variant]
    return {
        "name": name, "seed": 0,
        "data": {"source": "synthetic", "n_samples": 2000 if quick else 20_000,
                 "shape": [32, 32, 3], "n_classes": 10, "noise": 2.0,
                 "validation_split": 0.1, "test_split": 0.1},
        "model": {"layers": [
            {"Conv2D": {"filters": 32, "kernel_size": 3, "activation": "relu",
                        "padding": "same"}},
            {"Conv2D": {"filters": 64, "kernel_size": 3, "activation": "relu",
                        "padding": "same"}},
            {"MaxPooling2D": {"pool_size": 2}},
            {"Conv2D": {"filters": 64, "kernel_size": 3, "activation": "relu"}},
            {"GlobalAveragePooling2D": {}},
            {"Dense": {"units": 128, "activation": "relu"}},
            {"Dense": {"units": 10, "activation": "softmax"}}]},
        "train": {"epochs": 1 if quick else 3, "batch_size": 128, "optimizer": "adam",
                  "learning_rate": 0.002, "loss": "sparse_categorical_crossentropy",
                  "mixed_precision": mixed, "jit_compile": xla},
        # Every configuration new: no trial reuses another's figures instead of training.
        "search": {"targets": ["kernel"], "placement": {"choices": ["first", "all"]},
                   "l2": {"low": 1e-6, "high": 1e-2, "log": True}, "baselines": []},
        "sampler": "tpe", "pruner": "none", "budget": {"n_trials": n_trials},
    }


def measure(url: str, tracking: str, gpu: str, variant: str, k: int, per_worker: int,
            repeat: int, quick: bool) -> dict[str, Any]:
    name = f"gpu-{variant.replace('+', '-')}-k{k}-r{repeat}"
    with scratch("gpu") as folder:
        study_file = write_yaml(folder / "study.yaml", study(name, k * per_worker, variant,
                                                             quick))
        stores = ["--storage", url, "--tracking-uri", tracking]
        run_timed([SWEEP, "create", str(study_file), *stores], cwd=folder)
        sampler = GpuSampler(gpu)
        try:
            timed = run_timed([SWEEP, "run", str(study_file), *stores, "--gpus", gpu,
                               "--trials-per-gpu", str(k), "--no-progress"], cwd=folder,
                              timeout=6 * 3600)
        finally:
            device = sampler.stop()
    trials = study_trials(url, name)
    result = throughput(trials, timed.seconds)
    result["trials_per_hour"] = result["steady_trials_per_second"] * 3600
    result["process_seconds"] = timed.seconds
    device["trial_runs_utilization_median"] = recorded_utilization(tracking, trials, gpu)
    result["gpu"] = device
    return result


def recorded_utilization(tracking: str, trials: list[Any], gpu: str) -> float | None:
    """The median over the trials' MLflow runs of each run's median GPU utilization, as
    MLflow's system metrics recorded it (None where no run has any: no GPU, or no
    ``nvidia-ml-py``). NVML numbers GPUs as the machine does, whatever
    CUDA_VISIBLE_DEVICES says: the key is the physical index."""
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking)
    key = f"system/gpu_{gpu}_utilization_percentage"
    per_run = []
    for trial in trials:
        run_id = trial.user_attrs.get("mlflow_run_id")
        if not run_id:
            continue
        values = [m.value for m in client.get_metric_history(run_id, key)]
        if values:
            per_run.append(median(values))
    return median(per_run) if per_run else None


def main() -> None:
    arguments = parser(__doc__ or "")
    arguments.add_argument("--gpu", default="0", help="the GPU to measure (its index)")
    arguments.add_argument("--trials-per-gpu", type=int, nargs="+", default=[1, 2, 4])
    arguments.add_argument("--variants", nargs="+", choices=list(VARIANTS),
                           default=list(VARIANTS))
    arguments.add_argument("--repeats", type=int, default=2)
    arguments.add_argument("--trials-per-worker", type=int, default=6)
    arguments.add_argument("--allow-cpu", action="store_true",
                           help="without a GPU, measure on the CPU (checks the benchmark)")
    args = arguments.parse_args()
    started = time.perf_counter()
    found = gpus()
    if not found and not args.allow_cpu:
        print("gpu: no GPU on this machine (nvidia-smi is missing or lists none): nothing "
              "measured. On a GPU machine: .venv/bin/python bench/gpu.py")
        return
    device = next((g for g in found if g["index"] == args.gpu), None)
    if found and device is None:
        raise SystemExit(f"gpu: no GPU {args.gpu} (nvidia-smi lists "
                         f"{[g['index'] for g in found]})")
    counts = sorted(set(args.trials_per_gpu))
    repeats = 1 if args.quick else args.repeats
    per_worker = 2 if args.quick else args.trials_per_worker
    runs: dict[str, dict[int, list[dict[str, Any]]]] = {
        v: {k: [] for k in counts} for v in args.variants}
    with postgres_database("gpu_optuna") as url, postgres_database("gpu_mlflow") as tracking:
        for repeat in range(repeats):
            for variant in args.variants:
                # Each K first once across repeats: no K always runs on a warm machine.
                order = counts[repeat % len(counts):] + counts[:repeat % len(counts)]
                for k in order:
                    result = measure(url, tracking, args.gpu, variant, k, per_worker,
                                     repeat, args.quick)
                    runs[variant][k].append(result)
                    print(f"repeat {repeat + 1}/{repeats} {variant} K={k}: "
                          f"{result['trials_per_hour']:.0f} trials/h, GPU utilization "
                          f"{result['gpu']['utilization_median']}%", flush=True)

    def rate(variant: str, k: int) -> float:
        return median([r["trials_per_hour"] for r in runs[variant][k]])

    def utilization(variant: str, k: int) -> float | None:
        values = [r["gpu"]["utilization_median"] for r in runs[variant][k]
                  if r["gpu"]["utilization_median"] is not None]
        return median(values) if values else None

    targets, ratios = [], {}
    for variant in args.variants:
        for previous, k in itertools.pairwise(counts):
            per_repeat = [many["trials_per_hour"] / one["trials_per_hour"]
                          for one, many in zip(runs[variant][counts[0]], runs[variant][k],
                                               strict=True)]
            ratios[f"{variant}_k{k}_over_k{counts[0]}"] = median(per_repeat)
            busy = utilization(variant, previous)
            entry = target(f"gpu {variant}: trials/h at K={k} / at K={counts[0]}",
                           median(per_repeat), SCALING_SHARE * k / counts[0], op=">=",
                           noise=spread(per_repeat),
                           definition="steady trials per hour, per repeat")
            if busy is not None and busy >= SATURATED and not entry["met"]:
                entry["verdict"] = f"saturated (GPU {busy:.0f} % busy at K={previous})"
            targets.append(entry)
    def recorded(variant: str, k: int) -> float | None:
        values = [r["gpu"]["trial_runs_utilization_median"] for r in runs[variant][k]
                  if r["gpu"]["trial_runs_utilization_median"] is not None]
        return median(values) if values else None

    print_table("trials per GPU", ["variant", "K", "trials/h", "GPU util (median %)",
                                   "util. in trial runs (%)", "GPU memory (peak MB)"],
                [[v, k, rate(v, k), utilization(v, k), recorded(v, k),
                  median([r["gpu"]["memory_used_peak_mb"] or 0 for r in runs[v][k]])]
                 for v in args.variants for k in counts])
    print_targets(targets)
    write_result(
        "gpu", quick=args.quick, started=started,
        parameters={"gpu": device or "none (--allow-cpu)", "trials_per_gpu": counts,
                    "variants": args.variants, "repeats": repeats,
                    "trials_per_worker": per_worker},
        raw={"runs": runs},
        medians={f"{v}_k{k}_trials_per_hour": rate(v, k)
                 for v in args.variants for k in counts},
        ratios=ratios, targets=targets,
        notes=[] if found else ["measured on the CPU (--allow-cpu): says nothing about GPUs"])


if __name__ == "__main__":
    main()
