"""workers: finished trials per second with 1, 2, 4 and 8 workers on one PostgreSQL study.

coordination  the cost of sharing a study alone: K processes (bench/coord_worker.py), each
              the real `sweep worker` (stored spec, its own sampler seed, TPE with
              constant_liar, heartbeats, the exact-budget lock, the search space, every
              user attribute of a trial, an MLflow run per trial with per-epoch metrics
              and final figures, MLflow in PostgreSQL) whose training is replaced by a
              sleep of 1 s (trials "take >= 1 s" without competing for the CPU), then of
              0 s (the raw rate at which the study hands out trials). K = 1, 2, 4, 8 take
              turns within each of 3 repeats (each K first once); figures are medians
              over repeats, the noise of a scaling ratio the spread of its repeats;
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
    spread,
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
        # No `none` placement and no zero coefficient: every configuration is new, so
        # no trial reuses an earlier one's figures instead of "training".
        "search": {"targets": ["kernel"],
                   "placement": {"choices": ["first", "last", "all"]},
                   "l1": {"low": 1e-6, "high": 1e-2, "log": True},
                   "l2": {"low": 1e-6, "high": 1e-2, "log": True},
                   "baselines": []},
        "train": {"epochs": 3},
        "sampler": "tpe", "pruner": "none", "budget": {"n_trials": n_trials},
        "workers": {"recycle_after": 1000},  # one process per worker, as timed
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


def coordination(url: str, tracking: str, workers: int, per_worker: int, sleep: float,
                 repeat: int) -> dict[str, Any]:
    name = f"coord-{'sleep' if sleep else 'zero'}-{workers}-r{repeat}"
    with scratch("coord") as folder:
        study_file = write_yaml(folder / "study.yaml",
                                coordination_spec(name, workers * per_worker))
        run_timed([SWEEP, "create", str(study_file), "--storage", url, "--tracking-uri",
                   tracking], cwd=folder)
        begin = time.perf_counter()
        processes = [subprocess.Popen(
            [PYTHON, str(BENCH / "coord_worker.py"), url, tracking, name, str(sleep)],
            env=bench_env(SWEEP_WORKER_INDEX=str(index + 1)), cwd=folder,
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
            for index in range(workers)]
        errors = [p.communicate()[1] for p in processes]
        seconds = time.perf_counter() - begin
    if any(p.returncode for p in processes):
        raise RuntimeError(f"a coordination worker failed: {errors}")
    trials = study_trials(url, name)
    result = throughput(trials, seconds)
    result["attrs_per_trial"] = median([len(t.user_attrs) for t in trials])
    result["budget_exact"] = len(trials) == workers * per_worker and all(
        t.state.name == "COMPLETE" for t in trials)
    return result


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
    repeats = 1 if args.quick else 3
    train_trials = 4 if args.quick else 12
    runs: dict[str, dict[int, list[Any]]] = {"sleep_1s": {k: [] for k in counts},
                                             "zero": {k: [] for k in counts}}
    training_runs: dict[int, Any] = {}
    with postgres_database("optuna") as url, postgres_database("mlflow") as tracking:
        for repeat in range(repeats):
            order = counts[repeat % len(counts):] + counts[:repeat % len(counts)]
            for k in order:
                runs["sleep_1s"][k].append(coordination(url, tracking, k, per_worker_sleep,
                                                        1.0, repeat))
                runs["zero"][k].append(coordination(url, tracking, k, per_worker_zero, 0.0,
                                                    repeat))
                print(f"repeat {repeat + 1}/{repeats}, {k} workers: "
                      f"{runs['sleep_1s'][k][-1]['steady_trials_per_second']:.2f} trials/s "
                      f"(1 s), {runs['zero'][k][-1]['steady_trials_per_second']:.1f} (0 s)")
        for k in train_counts:
            training_runs[k] = training(url, tracking, k, train_trials, args.quick)
            print(f"training, {k} workers: "
                  f"{training_runs[k]['steady_trials_per_second']:.2f} trials/s steady, "
                  f"{training_runs[k]['process_trials_per_second']:.2f} per process second")

    def rate(kind: str, k: int) -> float:
        return median([r["steady_trials_per_second"] for r in runs[kind][k]])

    def per_repeat_scaling(kind: str, k: int) -> list[float]:
        return [many["steady_trials_per_second"] / one["steady_trials_per_second"]
                for one, many in zip(runs[kind][1], runs[kind][k], strict=True)]

    ratios: dict[str, Any] = {}
    for kind in runs:
        for k in counts[1:]:
            ratios[f"{kind} {k}/1 workers"] = rate(kind, k) / rate(kind, 1)
            ratios[f"{kind} {k}/1 workers, per repeat"] = ", ".join(
                f"{r:.2f}" for r in per_repeat_scaling(kind, k))
    for k in train_counts[1:]:
        one, many = training_runs[1], training_runs[k]
        ratios[f"training {k}/1 workers"] = (many["steady_trials_per_second"]
                                             / one["steady_trials_per_second"])
        ratios[f"training {k}/1 workers, whole process"] = (
            many["process_trials_per_second"] / one["process_trials_per_second"])
    ratios["budget exact in every run"] = all(
        r["budget_exact"] for by_k in runs.values() for rs in by_k.values() for r in rs)
    medians = {f"{kind} {k} workers trials/s": rate(kind, k) for kind in runs for k in counts}
    medians |= {f"training {k} workers trials/s": training_runs[k]["steady_trials_per_second"]
                for k in train_counts}
    medians |= {f"coordination ms per trial, {k} workers (sleep 1 s)":
                1000 * (k / rate("sleep_1s", k) - 1.0) for k in counts}
    medians["user attributes per trial"] = runs["sleep_1s"][1][0]["attrs_per_trial"]
    four = 4 if 4 in counts else counts[-1]
    targets = [target(f"coordination: trials/s scaling 1 to {four} workers, trials of 1 s",
                      ratios[f"sleep_1s {four}/1 workers"], SCALING_LIMIT * four, op=">=",
                      unit="x", noise=spread(per_repeat_scaling("sleep_1s", four)),
                      definition=f"steady-state trials/s with {four} workers over 1 worker, "
                                 f"real worker with a 1-s sleep for training; median of "
                                 f"{repeats} interleaved repeats; target 0.9 x {four}")]
    rows = []
    for kind, label in (("sleep_1s", "coordination, trials of 1 s"),
                        ("zero", "coordination, trials of 0 s")):
        for k in counts:
            rows.append([label, k, rate(kind, k), rate(kind, k) / rate(kind, 1),
                         median([r["span_trials_per_second"] for r in runs[kind][k]]),
                         median([r["median_trial_seconds"] for r in runs[kind][k]]),
                         runs[kind][k][0]["trials"]])
    for k in train_counts:
        r = training_runs[k]
        rows.append(["real small trainings", k, r["steady_trials_per_second"],
                     r["steady_trials_per_second"] / training_runs[1]["steady_trials_per_second"],
                     r["span_trials_per_second"], r["median_trial_seconds"], r["trials"]])
    print_table("workers on PostgreSQL (trials/s, medians over repeats)",
                ["", "workers", "steady", "scaling", "span", "median trial s", "trials"], rows)
    print_targets(targets)
    write_result(
        "workers", quick=args.quick, started=started,
        parameters={"workers": counts, "repeats": repeats,
                    "trials_per_worker_sleep": per_worker_sleep,
                    "trials_per_worker_zero": per_worker_zero,
                    "training_trials_per_run": train_trials,
                    "training_study": training_spec("train-K", train_trials, args.quick),
                    "storage": "PostgreSQL (fresh database, dropped afterwards), MLflow "
                               "in a second fresh PostgreSQL database"},
        raw={"coordination": {kind: {str(k): v for k, v in by_k.items()}
                              for kind, by_k in runs.items()},
             "training": {str(k): v for k, v in training_runs.items()}},
        medians=medians, ratios=ratios, targets=targets)


if __name__ == "__main__":
    main()
