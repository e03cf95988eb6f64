"""workers: finished trials per second with 1, 2, 4 and 8 workers on one PostgreSQL study.

coordination  the cost of sharing a study alone: K processes (bench/coord_worker.py), each
              the worker side of `sweep worker` (stored spec, its own sampler seed, TPE
              with constant_liar, heartbeats, the exact-budget lock, the search space)
              with a trivial objective that sleeps 1 s (trials "take >= 1 s" without
              competing for the CPU), then with one that returns at once (the raw rate
              at which the study hands out trials);
training      `sweep run --workers K` on a small real training (Optuna and MLflow both in
              PostgreSQL, created beforehand with `sweep create`); on a 2-core machine the
              trainings compete for the cores, so this cannot scale past 2.

trials/s is the steady state: for each worker, 1 / its mean complete-to-complete time
over the trials it ran while all K workers were running, summed over the workers (this
leaves out process start-up, which is not coordination). Whole-run figures (trials over
the span from the first trial's start to the last one's end, and over the process wall
time) are reported too.
"""

from __future__ import annotations

import itertools
import subprocess
import time
from typing import Any

from _common import (
    BENCH,
    POSTGRES_URL,
    PYTHON,
    SWEEP,
    bench_env,
    median,
    parser,
    postgres_database,
    print_table,
    print_targets,
    run_timed,
    scratch,
    seconds_between,
    study_trials,
    target,
    write_result,
    write_yaml,
)

SCALING_LIMIT = 0.9  # of N, from 1 to 4 workers


def coordination_spec(name: str, n_trials: int) -> dict[str, Any]:
    """A study whose trials are never trained: only its space and spec matter."""
    return {
        "name": name, "seed": 0,
        "data": {"source": "synthetic", "n_samples": 200, "shape": [8], "n_classes": 3},
        "model": {"layers": [{"Dense": {"units": 16, "activation": "relu"}},
                             {"Dense": {"units": 16, "activation": "relu"}},
                             {"Dense": {"units": 3, "activation": "softmax"}}]},
        "search": {"targets": ["kernel"],
                   "placement": {"choices": ["none", "first", "last", "all"]},
                   "l1": {"low": 1e-6, "high": 1e-2, "log": True, "allow_zero": True},
                   "l2": {"low": 1e-6, "high": 1e-2, "log": True},
                   "baselines": []},
        "sampler": "tpe", "pruner": "none", "budget": {"n_trials": n_trials},
    }


def training_spec(name: str, n_trials: int, quick: bool) -> dict[str, Any]:
    return {
        "name": name, "seed": 0,
        "data": {"source": "synthetic", "n_samples": 800 if quick else 2000, "shape": [20],
                 "n_classes": 4, "noise": 1.5, "validation_split": 0.2, "test_split": 0.2},
        "model": {"layers": [{"Dense": {"units": 64, "activation": "relu"}},
                             {"Dense": {"units": 32, "activation": "relu"}},
                             {"Dense": {"units": 4, "activation": "softmax"}}]},
        "train": {"epochs": 2 if quick else 3, "batch_size": 32, "optimizer": "adam",
                  "learning_rate": 0.003, "loss": "sparse_categorical_crossentropy"},
        "search": {"targets": ["kernel"], "placement": {"choices": ["first", "all"]},
                   "l1": {"low": 1e-6, "high": 1e-3, "log": True, "allow_zero": True},
                   "l2": {"low": 1e-6, "high": 1e-2, "log": True}},
        "sampler": "tpe", "pruner": "none", "budget": {"n_trials": n_trials},
    }


def throughput(trials: list[Any], process_seconds: float) -> dict[str, Any]:
    done = [t for t in trials if t.datetime_complete is not None]
    by_worker: dict[str, list[Any]] = {}
    for trial in done:
        by_worker.setdefault(str(trial.user_attrs.get("worker")), []).append(trial)
    for items in by_worker.values():
        items.sort(key=lambda t: t.datetime_complete)
    # All K workers are running from the last worker's first completion to the first
    # worker's last completion.
    window_start = max(items[0].datetime_complete for items in by_worker.values())
    window_end = min(items[-1].datetime_complete for items in by_worker.values())
    rate, cycles_used = 0.0, 0
    for items in by_worker.values():
        cycles = [seconds_between(a.datetime_complete, b.datetime_complete)
                  for a, b in itertools.pairwise(items)
                  if a.datetime_complete >= window_start and b.datetime_complete <= window_end]
        if not cycles:  # this worker finished no two trials in the window: use all of its
            cycles = [seconds_between(a.datetime_complete, b.datetime_complete)
                      for a, b in itertools.pairwise(items)]
        if cycles:
            rate += len(cycles) / sum(cycles)
            cycles_used += len(cycles)
    start = min(t.datetime_start for t in done)
    end = max(t.datetime_complete for t in done)
    span = seconds_between(start, end)
    durations = [seconds_between(t.datetime_start, t.datetime_complete) for t in done]
    return {"trials": len(done), "workers_seen": len(by_worker),
            "steady_trials_per_second": rate, "cycles_used": cycles_used,
            "span_trials_per_second": len(done) / span if span > 0 else None,
            "process_trials_per_second": len(done) / process_seconds,
            "median_trial_seconds": median(durations),
            "states": sorted({t.state.name for t in trials}),
            "trials_per_worker": sorted(len(v) for v in by_worker.values())}


def coordination(url: str, workers: int, per_worker: int, sleep: float) -> dict[str, Any]:
    import optuna

    from sweep.spec import parse_spec
    from sweep.storage import open_storage
    from sweep.study import create_or_resume
    from sweep.validate import check_study

    optuna.logging.set_verbosity(optuna.logging.ERROR)
    name = f"coord-{'sleep' if sleep else 'zero'}-{workers}"
    spec = parse_spec(coordination_spec(name, workers * per_worker))
    create_or_resume(spec, open_storage(url), space=check_study(spec))
    env = bench_env()
    begin = time.perf_counter()
    processes = [subprocess.Popen([PYTHON, str(BENCH / "coord_worker.py"), url, name,
                                   str(sleep), str(index + 1)], env=env,
                                  stderr=subprocess.PIPE, text=True)
                 for index in range(workers)]
    errors = [p.communicate()[1] for p in processes]
    seconds = time.perf_counter() - begin
    if any(p.returncode for p in processes):
        raise RuntimeError(f"a coordination worker failed: {errors}")
    return throughput(study_trials(url, name), seconds)


def training(url: str, tracking: str, workers: int, n_trials: int, quick: bool
             ) -> dict[str, Any]:
    name = f"train-{workers}"
    with scratch("workers") as folder:
        study_file = write_yaml(folder / "study.yaml", training_spec(name, n_trials, quick))
        stores = ["--storage", url, "--tracking-uri", tracking]
        run_timed([SWEEP, "create", str(study_file), *stores], cwd=folder)
        timed = run_timed([SWEEP, "run", str(study_file), *stores, "--workers", str(workers),
                           "--no-progress"], cwd=folder)
    result = throughput(study_trials(url, name), timed.seconds)
    result["process_seconds"] = timed.seconds
    return result


def main() -> None:
    args = parser(__doc__ or "").parse_args()
    started = time.perf_counter()
    counts = [1, 2, 4] if args.quick else [1, 2, 4, 8]
    train_counts = [1, 2] if args.quick else counts
    per_worker_sleep, per_worker_zero = (3, 5) if args.quick else (8, 12)
    train_trials = 4 if args.quick else 12
    raw: dict[str, dict[int, Any]] = {"sleep_1s": {}, "zero": {}, "training": {}}
    try:
        with postgres_database("probe"):
            pass
    except Exception as error:  # no server: the targets are reported as not measured
        print(f"no PostgreSQL server at {POSTGRES_URL}: {error}")
        write_result("workers", quick=args.quick, started=started,
                     parameters={"postgres": POSTGRES_URL}, raw={}, medians={}, ratios={},
                     targets=[target("coordination: trials/s scaling 1 to 4 workers, trials "
                                     "of 1 s", None, SCALING_LIMIT * 4, op=">=", unit="x")],
                     notes=[f"not measured: no PostgreSQL server ({type(error).__name__}); "
                            "set SWEEP_BENCH_POSTGRES_URL"])
        return
    with postgres_database("optuna") as url, postgres_database("mlflow") as tracking:
        for k in counts:
            raw["sleep_1s"][k] = coordination(url, k, per_worker_sleep, 1.0)
            raw["zero"][k] = coordination(url, k, per_worker_zero, 0.0)
            print(f"coordination, {k} workers: "
                  f"{raw['sleep_1s'][k]['steady_trials_per_second']:.2f} trials/s (1 s), "
                  f"{raw['zero'][k]['steady_trials_per_second']:.1f} trials/s (0 s)")
        for k in train_counts:
            raw["training"][k] = training(url, tracking, k, train_trials, args.quick)
            print(f"training, {k} workers: "
                  f"{raw['training'][k]['steady_trials_per_second']:.2f} trials/s steady, "
                  f"{raw['training'][k]['process_trials_per_second']:.2f} per process second")

    def scaling(kind: str, k: int, key: str = "steady_trials_per_second") -> float | None:
        one, many = raw[kind][1].get(key), raw[kind][k].get(key)
        return None if not one or not many else many / one

    ratios = {f"{kind} {k}/1 workers": scaling(kind, k) for kind in raw for k in raw[kind]
              if k > 1}
    ratios |= {f"training {k}/1 workers, whole process": scaling(
        "training", k, "process_trials_per_second") for k in train_counts[1:]}
    medians = {f"{kind} {k} workers trials/s": raw[kind][k]["steady_trials_per_second"]
               for kind in raw for k in raw[kind]}
    medians |= {f"coordination ms per trial, {k} workers (sleep 1 s)":
                1000 * (k / raw["sleep_1s"][k]["steady_trials_per_second"] - 1.0)
                for k in counts}
    four = 4 if 4 in counts else counts[-1]
    targets = [target(f"coordination: trials/s scaling 1 to {four} workers, trials of 1 s",
                      scaling("sleep_1s", four), SCALING_LIMIT * four, op=">=", unit="x",
                      definition=f"steady-state trials/s with {four} workers over 1 worker, "
                                 f"trivial objective sleeping 1 s; target 0.9 x {four}")]
    rows = []
    for kind, label in (("sleep_1s", "coordination, trials of 1 s"),
                        ("zero", "coordination, trials of 0 s"),
                        ("training", "real small trainings")):
        for k in raw[kind]:
            r = raw[kind][k]
            rows.append([label, k, r["steady_trials_per_second"], scaling(kind, k),
                         r["span_trials_per_second"], r["process_trials_per_second"],
                         r["median_trial_seconds"], r["trials"]])
    print_table("workers on PostgreSQL (trials/s)",
                ["", "workers", "steady", "scaling", "span", "per process s",
                 "median trial s", "trials"], rows)
    print_targets(targets)
    write_result(
        "workers", quick=args.quick, started=started,
        parameters={"workers": counts, "trials_per_worker_sleep": per_worker_sleep,
                    "trials_per_worker_zero": per_worker_zero,
                    "training_trials_per_run": train_trials,
                    "training_study": training_spec("train-K", train_trials, args.quick),
                    "storage": "PostgreSQL (fresh database, dropped afterwards), MLflow "
                               "in a second fresh PostgreSQL database"},
        raw={kind: {str(k): v for k, v in by_k.items()} for kind, by_k in raw.items()},
        medians=medians, ratios=ratios, targets=targets)


if __name__ == "__main__":
    main()
