"""pruning: does TPE with the study's pruner find what an unpruned random search finds,
for a fraction of the training?

For each of 3 study seeds, the demo study (studies/digits.yaml: its CNN, data, search
space and epochs; without its baseline trials) is run twice with the same number of trials, each a
whole `sweep run` against fresh SQLite stores:

  random   sampler random, no pruner: its best validation accuracy is the reference;
  tpe      sampler tpe with the pruner below (Optuna's HyperbandPruner, from epoch 1).

The goal of a seed is the random search's best validation accuracy less 0.5 percentage
points. For each search, in order of completion: the epochs trained (user attr
``epochs_run``, pruned trials included) until its best-so-far value reaches the goal.
The ratio of a seed is tpe's epochs to the goal over random's epochs to the same goal
(like for like: not over random's whole budget); a seed whose tpe run never reaches the
goal is reported as not reached, with its best. The target holds only if every seed
reaches the goal within 1/3 of random's epochs. A seed that reached the goal with the
very configuration the random search drew too (both samplers draw their start-up trials
from the same seed) is flagged: that is luck shared, not the pruner's merit.
"""

from __future__ import annotations

import time
from typing import Any

import yaml
from _common import (
    REPO,
    SWEEP,
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
        random_to_goal = reach(random_run["trials"], goal)
        drawn_alike = reached["reached"] and any(
            row["params"] == reached["params"] for row in random_run["trials"])
        per_seed.append({
            "seed": seed, "random": random_run, "tpe": tpe_run, "goal": goal,
            "reached": reached, "random_to_goal": random_to_goal, "drawn_alike": drawn_alike,
            "epoch_ratio": None if not reached["reached"] else
            reached["epochs"] / random_to_goal["epochs"],
            "time_ratio": None if not reached["reached"] else
            reached["seconds"] / random_to_goal["seconds"],
        })
        print(f"seed {seed}: random best {random_run['best']:.4f}, goal {goal:.4f} reached "
              f"in {random_to_goal['epochs']} epochs; tpe+pruner: {reached}")

    ratios_found = [s["epoch_ratio"] for s in per_seed]
    worst = None if None in ratios_found else max(ratios_found)
    targets = [target("pruning: epochs to reach the unpruned best (-0.5 pp), tpe+pruner / "
                      "random, worst of the seeds", worst, LIMIT, unit="x",
                      missing="missed: " + ", ".join(
                          f"seed {s['seed']}" for s in per_seed if not s["reached"]["reached"])
                      + " never reached the goal",
                      definition=f"met only if every one of {len(seeds)} seeds reaches it "
                                 "with at most 1/3 of random's epochs to the same goal")]
    print_table(f"pruning: {n_trials} trials x {epochs} epochs per search, digits CNN",
                ["seed", "goal", "random epochs (all)", "random epochs to goal",
                 "tpe+pruner best", "tpe epochs (all)", "tpe epochs to goal", "epoch ratio",
                 "time ratio", "drawn alike", "tpe states"],
                [[s["seed"], s["goal"], s["random"]["epochs"], s["random_to_goal"]["epochs"],
                  s["tpe"]["best"], s["tpe"]["epochs"], s["reached"]["epochs"],
                  s["epoch_ratio"], s["time_ratio"], s["drawn_alike"],
                  ", ".join(f"{k.lower()} {v}" for k, v in sorted(s["tpe"]["states"].items()))]
                 for s in per_seed])
    print_targets(targets)
    write_result(
        "pruning", quick=args.quick, started=started,
        parameters={"seeds": seeds, "trials_per_search": n_trials, "epochs": epochs,
                    "study": "studies/digits.yaml (model, data, space, epochs), baselines: []",
                    "pruner": PRUNER, "tolerance": TOLERANCE},
        raw={"per_seed": per_seed},
        medians={},  # a median over seeds would hide the seeds that never reach the goal
        ratios={f"seed {s['seed']}": _verdict(s) for s in per_seed}
        | {"seeds reached": f"{sum(s['reached']['reached'] for s in per_seed)} of "
                            f"{len(per_seed)}"},
        targets=targets)


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
