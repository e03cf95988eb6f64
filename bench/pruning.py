"""pruning: does TPE with the study's pruner find what an unpruned random search finds,
for a fraction of the training?

For each of 3 study seeds, the demo study (studies/digits.yaml: its CNN, data, search
space and epochs; without its baseline trials) is run twice with the same number of trials, each a
whole `sweep run` against fresh SQLite stores:

  random   sampler random, no pruner: its best validation accuracy is the reference;
  tpe      sampler tpe with the pruner below (Optuna's HyperbandPruner, from epoch 1).

For the tpe run: the epochs trained (user attr ``epochs_run``, pruned trials included)
and the time (from its first trial's start) until its best-so-far validation accuracy is
within 0.5 percentage points of the random search's best, in order of completion. The
target compares those epochs with all the epochs the random search trained.
"""

from __future__ import annotations

import time
from typing import Any

import yaml
from _common import (
    REPO,
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

TOLERANCE = 0.005  # 0.5 percentage points of accuracy
LIMIT = 1 / 3
PRUNER = {"name": "hyperband", "warmup_epochs": 1}


def study(seed: int, sampler: str, pruner: Any, n_trials: int, epochs: int | None
          ) -> dict[str, Any]:
    spec = yaml.safe_load((REPO / "studies" / "digits.yaml").read_text())
    spec.update(name=f"pruning-{sampler}-{seed}", seed=seed, sampler=sampler, pruner=pruner,
                budget={"n_trials": n_trials})
    # No baseline trials: they are the same trials, with the same seeds, in both searches,
    # and the random search would no longer be only random.
    spec["search"]["baselines"] = []
    if epochs is not None:
        spec["train"]["epochs"] = epochs
    return spec


def run(spec: dict[str, Any]) -> dict[str, Any]:
    with scratch("pruning") as folder:
        study_file = write_yaml(folder / "study.yaml", spec)
        storage = f"sqlite:///{folder / 'sweep.db'}"
        stores = ["--storage", storage, "--tracking-uri", f"sqlite:///{folder / 'mlflow.db'}"]
        run_timed([SWEEP, "create", str(study_file), *stores])
        timed = run_timed([SWEEP, "run", str(study_file), *stores, "--no-progress"])
        trials = study_trials(storage, spec["name"])
    trials = sorted((t for t in trials if t.datetime_complete is not None),
                    key=lambda t: t.datetime_complete)
    start = min(t.datetime_start for t in trials)
    rows = [{"number": t.number, "state": t.state.name, "value": t.value,
             "epochs": int(t.user_attrs.get("epochs_run") or 0),
             "reused": "duplicate_of" in t.user_attrs,
             "done_seconds": seconds_between(start, t.datetime_complete)} for t in trials]
    return {"process_seconds": timed.seconds, "trials": rows,
            "states": {s: sum(r["state"] == s for r in rows) for s in {r["state"] for r in rows}},
            "epochs": sum(r["epochs"] for r in rows),
            "best": max((r["value"] for r in rows if r["state"] == "COMPLETE"), default=None),
            "seconds": rows[-1]["done_seconds"] if rows else None}


def reach(rows: list[dict[str, Any]], goal: float) -> dict[str, Any]:
    """Epochs and seconds until the best-so-far complete value is at least ``goal``."""
    epochs, best = 0, None
    for row in rows:
        epochs += row["epochs"]
        if row["state"] == "COMPLETE":
            best = row["value"] if best is None else max(best, row["value"])
        if best is not None and best >= goal:
            return {"reached": True, "epochs": epochs, "seconds": row["done_seconds"],
                    "trial": row["number"]}
    return {"reached": False, "epochs": None, "seconds": None, "trial": None}


def main() -> None:
    args = parser(__doc__ or "").parse_args()
    started = time.perf_counter()
    # Full size: the demo study as it is (its epochs), 16 trials per search.
    seeds, n_trials, epochs = ([0], 6, 2) if args.quick else ([0, 1, 2], 16, None)
    epochs = study(0, "random", "none", n_trials, epochs)["train"]["epochs"]
    per_seed: list[dict[str, Any]] = []
    for seed in seeds:
        random_run = run(study(seed, "random", "none", n_trials, epochs))
        tpe_run = run(study(seed, "tpe", PRUNER, n_trials, epochs))
        goal = random_run["best"] - TOLERANCE
        reached = reach(tpe_run["trials"], goal)
        own = reach(random_run["trials"], random_run["best"])
        per_seed.append({
            "seed": seed, "random": random_run, "tpe": tpe_run, "goal": goal,
            "reached": reached, "random_to_own_best": own,
            "epoch_ratio": None if not reached["reached"] else
            reached["epochs"] / random_run["epochs"],
            "time_ratio": None if not reached["reached"] else
            reached["seconds"] / random_run["seconds"],
            "epoch_ratio_vs_random_to_best": None if not reached["reached"] else
            reached["epochs"] / own["epochs"],
        })
        print(f"seed {seed}: random best {random_run['best']:.4f} in {random_run['epochs']} "
              f"epochs; tpe+pruner: {reached}")

    ratios_found = [s["epoch_ratio"] for s in per_seed]
    worst = None if None in ratios_found else max(ratios_found)
    targets = [target("pruning: epochs to reach the unpruned best (-0.5 pp) / epochs of the "
                      "unpruned search, worst of the seeds", worst, LIMIT, unit="x",
                      definition=f"met only if every one of {len(seeds)} seeds reaches it "
                                 "with at most 1/3 of the epochs")]
    print_table(f"pruning: {n_trials} trials x {epochs} epochs per search, digits CNN",
                ["seed", "random best", "random epochs", "random s", "tpe+pruner best",
                 "tpe epochs (all)", "epochs to reach", "s to reach", "epoch ratio",
                 "time ratio", "tpe states"],
                [[s["seed"], s["random"]["best"], s["random"]["epochs"], s["random"]["seconds"],
                  s["tpe"]["best"], s["tpe"]["epochs"], s["reached"]["epochs"],
                  s["reached"]["seconds"], s["epoch_ratio"], s["time_ratio"],
                  ", ".join(f"{k.lower()} {v}" for k, v in sorted(s["tpe"]["states"].items()))]
                 for s in per_seed])
    print_targets(targets)
    found = [r for r in ratios_found if r is not None]
    times = [s["time_ratio"] for s in per_seed if s["time_ratio"] is not None]
    write_result(
        "pruning", quick=args.quick, started=started,
        parameters={"seeds": seeds, "trials_per_search": n_trials, "epochs": epochs,
                    "study": "studies/digits.yaml (model, data, space, epochs), baselines: []",
                    "pruner": PRUNER, "tolerance": TOLERANCE},
        raw={"per_seed": per_seed},
        medians={"epoch_ratio": median(found) if found else None,
                 "time_ratio": median(times) if times else None,
                 "random_epochs": median([s["random"]["epochs"] for s in per_seed]),
                 "tpe_epochs_all": median([s["tpe"]["epochs"] for s in per_seed])},
        ratios={f"seed {s['seed']} epochs": s["epoch_ratio"] for s in per_seed}
        | {f"seed {s['seed']} time": s["time_ratio"] for s in per_seed}
        | {"seeds reached": sum(s["reached"]["reached"] for s in per_seed)},
        targets=targets)


if __name__ == "__main__":
    main()
