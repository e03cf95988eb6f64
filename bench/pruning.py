"""pruning: does TPE with a pruner find what an unpruned random search finds, for a
fraction of the training, without stopping the trial that would have won?

Two data sets: the digits demo (studies/digits-cnn.yaml: its CNN, data, search space and
epochs) and a generated one (bench/_common.GENERATED_STUDY: a wide MLP that overfits, where
L2 helps), both without baseline trials. For each data set and each of 3 study seeds, an
unpruned random search is the reference, and TPE runs once with each pruner below, each a
whole `sweep run` against fresh SQLite stores, with the same number of trials.

The goal of a seed is the random search's best validation accuracy less 0.5 percentage
points. For each search, in order of completion: the epochs trained (user attr
``epochs_run``, pruned trials included) until its best-so-far value reaches the goal. The
ratio of a seed is tpe's epochs to the goal over random's epochs to the same goal (like
for like: not over random's whole budget); a seed whose pruned run never reaches the goal
is reported as not reached, with its best: the pruner stopped the trials that would have
won. A pruner holds only if every seed of both data sets reaches the goal within 1/3 of
random's epochs. A seed that reached the goal with the very configuration the random
search drew too (both samplers draw their start-up trials from the same seed) is flagged:
that is luck shared, not the pruner's merit.
"""

from __future__ import annotations

import time
from typing import Any

from _common import (
    SWEEP,
    parser,
    print_table,
    print_targets,
    run_timed,
    scratch,
    seconds_between,
    study_of,
    study_trials,
    target,
    write_result,
    write_yaml,
)

TOLERANCE = 0.005  # 0.5 percentage points of accuracy
LIMIT = 1 / 3
DATASETS = ("digits", "generated")


def candidates(epochs: int) -> dict[str, dict[str, Any]]:
    """The pruners compared, by name; the warm-up epochs scale with the study's epochs."""
    return {
        "hyperband from epoch 1": {"name": "hyperband", "warmup_epochs": 1},
        "hyperband from 1/3": {"name": "hyperband", "warmup_epochs": max(1, epochs // 3)},
        "median from 1/2": {"name": "median", "warmup_epochs": max(1, epochs // 2)},
        "median per placement from 1/3": {"name": "median_per_placement",
                                          "warmup_epochs": max(1, epochs // 3)},
    }


def study(dataset: str, seed: int, sampler: str, pruner: Any, n_trials: int,
          epochs: int | None) -> dict[str, Any]:
    spec = study_of(dataset)
    spec.update(name=f"pruning-{dataset}-{sampler}-{seed}", seed=seed, sampler=sampler,
                pruner=pruner, budget={"n_trials": n_trials})
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
        timed = run_timed([SWEEP, "run", str(study_file), *stores, "--no-progress"],
                          timeout=3600)
        trials = study_trials(storage, spec["name"])
    trials = sorted((t for t in trials if t.datetime_complete is not None),
                    key=lambda t: t.datetime_complete)
    start = min(t.datetime_start for t in trials)
    rows = [{"number": t.number, "state": t.state.name, "value": t.value, "params": t.params,
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
                    "trial": row["number"], "params": row["params"]}
    return {"reached": False, "epochs": None, "seconds": None, "trial": None, "params": None}


def main() -> None:
    arguments = parser(__doc__ or "")
    arguments.add_argument("--pruners", nargs="+",
                           help="Only these candidates (names as in the table).")
    args = arguments.parse_args()
    started = time.perf_counter()
    # Full size: the data sets' own epochs, 16 trials per search.
    seeds, n_trials, epochs = ([0], 6, 2) if args.quick else ([0, 1, 2], 16, None)
    per_seed: list[dict[str, Any]] = []
    tried: dict[str, dict[str, Any]] = {}
    for dataset in DATASETS:
        epochs_here = study(dataset, 0, "random", "none", n_trials, epochs)["train"]["epochs"]
        pruners = {k: v for k, v in candidates(epochs_here).items()
                   if not args.pruners or k in args.pruners}
        tried[dataset] = pruners
        for seed in seeds:
            random_run = run(study(dataset, seed, "random", "none", n_trials, epochs))
            goal = random_run["best"] - TOLERANCE
            random_to_goal = reach(random_run["trials"], goal)
            for label, pruner in pruners.items():
                tpe_run = run(study(dataset, seed, "tpe", pruner, n_trials, epochs))
                reached = reach(tpe_run["trials"], goal)
                drawn_alike = reached["reached"] and any(
                    row["params"] == reached["params"] for row in random_run["trials"])
                per_seed.append({
                    "dataset": dataset, "pruner": label, "pruner_spec": pruner, "seed": seed,
                    "epochs_per_trial": epochs_here, "random": random_run, "tpe": tpe_run,
                    "goal": goal, "reached": reached, "random_to_goal": random_to_goal,
                    "drawn_alike": drawn_alike,
                    "epoch_ratio": None if not reached["reached"] else
                    reached["epochs"] / random_to_goal["epochs"],
                    "time_ratio": None if not reached["reached"] else
                    reached["seconds"] / random_to_goal["seconds"]})
                print(f"{dataset} seed {seed}, {label}: {_verdict(per_seed[-1])}", flush=True)

    targets, ratios = [], {}
    for label in dict.fromkeys(s["pruner"] for s in per_seed):
        mine = [s for s in per_seed if s["pruner"] == label]
        found = [s["epoch_ratio"] for s in mine]
        worst = None if None in found else max(found)
        missed = [f"{s['dataset']} seed {s['seed']}" for s in mine
                  if not s["reached"]["reached"]]
        targets.append(target(
            f"pruning, {label}: epochs to reach the unpruned best (-0.5 pp), tpe+pruner / "
            "random, worst seed", worst, LIMIT, unit="x",
            missing="missed: " + ", ".join(missed) + " never reached the goal",
            definition=f"met only if every one of {len(mine)} seeds (both data sets) "
                       "reaches it with at most 1/3 of random's epochs to the same goal"))
        ratios[f"{label}: seeds reached"] = f"{len(mine) - len(missed)} of {len(mine)}"
        for s in mine:
            ratios[f"{label}, {s['dataset']} seed {s['seed']}"] = _verdict(s)
    print_table(f"pruning: {n_trials} trials per search",
                ["data", "pruner", "seed", "goal", "random epochs to goal",
                 "tpe+pruner best", "tpe epochs (all)", "tpe epochs to goal", "epoch ratio",
                 "drawn alike", "tpe states"],
                [[s["dataset"], s["pruner"], s["seed"], s["goal"],
                  s["random_to_goal"]["epochs"], s["tpe"]["best"], s["tpe"]["epochs"],
                  s["reached"]["epochs"], s["epoch_ratio"], s["drawn_alike"],
                  ", ".join(f"{k.lower()} {v}" for k, v in sorted(s["tpe"]["states"].items()))]
                 for s in per_seed])
    print_targets(targets)
    write_result(
        "pruning", quick=args.quick, started=started,
        parameters={"seeds": seeds, "trials_per_search": n_trials, "datasets": DATASETS,
                    "studies": "studies/digits-cnn.yaml and bench/_common.GENERATED_STUDY "
                               "(model, data, space, epochs), baselines: []",
                    "pruners": tried, "tolerance": TOLERANCE},
        raw={"per_seed": per_seed},
        medians={},  # a median over seeds would hide the seeds that never reach the goal
        ratios=ratios, targets=targets)


def _verdict(seed: dict[str, Any]) -> str:
    """One seed in words: reached (epochs and ratio) or not (its best against the goal)."""
    if not seed["reached"]["reached"]:
        return (f"not reached (best {seed['tpe']['best']:.4f} < goal {seed['goal']:.4f}; "
                f"{seed['tpe']['epochs']} epochs trained)")
    alike = ", with a configuration the random search drew too" if seed["drawn_alike"] else ""
    return (f"reached in {seed['reached']['epochs']} epochs against random's "
            f"{seed['random_to_goal']['epochs']} ({seed['epoch_ratio']:.2f}x){alike}")


if __name__ == "__main__":
    main()
