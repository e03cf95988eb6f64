"""drift: does a worker slow down or grow as it runs trials? 50 trials of a small model
in one worker process (`sweep run`, SQLite stores, full MLflow logging), read back from
Optuna: each trial's wall time and the worker's resident memory after it (user attr
``worker_rss_mb``).

A trial's wall time here is complete-to-complete: from the end of the previous trial to
the end of this one, so it also holds what the worker does between trials (budget lock,
sampling, opening the MLflow run). Single trials are noisy on a shared machine, so "trial
5" is the median of trials 3-7 and "trial 50" the median of trials 46-50 (1-based); the
single-trial figures are reported too. Every trial has the same placement structure (L1
and L2 on every kernel, coefficients searched), so trial 5 does not pay for a first trace
that trial 50 does not: what differs is what the process accumulated.
"""

from __future__ import annotations

import itertools
import time
from typing import Any

from _common import (
    SWEEP,
    median,
    parser,
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

TIME_LIMIT = 1.05
RSS_LIMIT_MB = 50.0


def study(n_trials: int) -> dict[str, Any]:
    return {
        "name": "drift",
        "seed": 0,
        "data": {"source": "synthetic", "n_samples": 1500, "shape": [20], "n_classes": 4,
                 "noise": 1.5, "validation_split": 0.2, "test_split": 0.2},
        "model": {"layers": [
            {"Dense": {"units": 64, "activation": "relu"}},
            {"Dense": {"units": 32, "activation": "relu"}},
            {"Dense": {"units": 4, "activation": "softmax"}},
        ]},
        "train": {"epochs": 3, "batch_size": 32, "optimizer": "adam", "learning_rate": 0.003,
                  "loss": "sparse_categorical_crossentropy"},
        "search": {"targets": ["kernel"], "placement": {"choices": ["all"]},
                   "coefficients": "shared",
                   "l1": {"low": 1e-6, "high": 1e-3, "log": True},
                   "l2": {"low": 1e-6, "high": 1e-2, "log": True},
                   "baselines": []},
        "objective": {"metric": "val_accuracy", "direction": "maximize"},
        "sampler": "tpe",
        "pruner": "none",
        "budget": {"n_trials": n_trials},
        # The default: a worker renews its process after 50 trials, so 50 is the longest
        # a process lives.
        "workers": {"recycle_after": 50},
    }


def main() -> None:
    args = parser(__doc__ or "").parse_args()
    started = time.perf_counter()
    n_trials = 12 if args.quick else 50
    spec = study(n_trials)
    with scratch("drift") as folder:
        study_file = write_yaml(folder / "study.yaml", spec)
        storage = f"sqlite:///{folder / 'sweep.db'}"
        stores = ["--storage", storage, "--tracking-uri", f"sqlite:///{folder / 'mlflow.db'}"]
        run_timed([SWEEP, "create", str(study_file), *stores])
        timed = run_timed([SWEEP, "run", str(study_file), *stores, "--no-progress"])
        trials = study_trials(storage, spec["name"])

    states = {t.state.name for t in trials}
    workers = {t.user_attrs.get("worker") for t in trials}
    if len(trials) != n_trials or states != {"COMPLETE"} or len(workers) != 1:
        raise RuntimeError(f"expected {n_trials} complete trials of one worker, got "
                           f"{len(trials)} {states} {workers}")
    ordered = sorted(trials, key=lambda t: t.datetime_complete)
    cycle = [seconds_between(ordered[0].datetime_start, ordered[0].datetime_complete)] + [
        seconds_between(a.datetime_complete, b.datetime_complete)
        for a, b in itertools.pairwise(ordered)]
    duration = [seconds_between(t.datetime_start, t.datetime_complete) for t in ordered]
    rss = [float(t.user_attrs["worker_rss_mb"]) for t in ordered]
    early, late = slice(2, 7), slice(n_trials - 5, n_trials)  # trials 3-7 and the last 5

    ratio = median(cycle[late]) / median(cycle[early])
    growth = rss[-1] - rss[4]
    # Noise, A/A within the same process: how much the median of 5 trials changes from one
    # window of 5 to the next (trials 3-7 vs 8-12, ...), the largest change in the run.
    windows = [median(cycle[i:i + 5]) for i in range(2, n_trials - 4, 5)]
    neighbours = [b / a for a, b in itertools.pairwise(windows)]
    noise = max(abs(r - 1.0) for r in neighbours) if neighbours else None
    medians = {
        "trial_5_seconds": median(cycle[early]), f"trial_{n_trials}_seconds": median(cycle[late]),
        "trial_5_duration_seconds": median(duration[early]),
        f"trial_{n_trials}_duration_seconds": median(duration[late]),
        "between_trials_seconds": median([c - d for c, d in zip(cycle[1:], duration[1:],
                                                                strict=True)]),
        "rss_mb_trial_5": rss[4], f"rss_mb_trial_{n_trials}": rss[-1],
        "process_seconds": timed.seconds,
    }
    ratios = {
        "late/early wall (medians of 5)": ratio,
        "late/early Optuna duration (medians of 5)": median(duration[late]) / median(
            duration[early]),
        f"single trial {n_trials}/5": cycle[-1] / cycle[4],
        "rss growth MB (trial 5 to last)": growth,
        "rss growth MB (trial 1 to 5)": rss[4] - rss[0],
        "next/previous window of 5 (A/A)": ", ".join(f"{r:.3f}" for r in neighbours),
    }
    targets = [
        target(f"drift: trial {n_trials} / trial 5 wall time", ratio, TIME_LIMIT, unit="x",
               noise=noise,
               definition="median complete-to-complete time of the last 5 trials over that "
                          "of trials 3-7; noise: the largest change between two adjacent "
                          "windows of 5 trials in the same run"),
        target(f"drift: worker RSS growth trial 5 to {n_trials}", growth, RSS_LIMIT_MB,
               unit="MB", definition="worker_rss_mb after the last trial minus after trial 5"),
    ]
    step = max(1, n_trials // 10)
    print_table(f"drift: {n_trials} trials in one worker (every {step}th shown)",
                ["trial", "wall s", "Optuna duration s", "RSS MB"],
                [[i + 1, cycle[i], duration[i], rss[i]]
                 for i in sorted({0, 4, *range(step - 1, n_trials, step)})])
    print_table("ratios", ["", "value"], [[k, v] for k, v in ratios.items()])
    print_targets(targets)
    write_result(
        "drift", quick=args.quick, started=started,
        parameters={"trials": n_trials, "epochs": spec["train"]["epochs"],
                    "model": "Dense 64-32-4, L1+L2 on every kernel (one structure)",
                    "data": spec["data"], "stores": "SQLite (Optuna and MLflow)",
                    "recycle_after": spec["workers"]["recycle_after"]},
        raw={"wall_seconds": cycle, "duration_seconds": duration, "rss_mb": rss,
             "numbers_in_completion_order": [t.number for t in ordered]},
        medians=medians, ratios=ratios, targets=targets)


if __name__ == "__main__":
    main()
