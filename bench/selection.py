"""selection: does seed racing pick a winner that survives the noise?

On MNIST-1D (Greydanus 2020: 4,000 training and 1,000 test sequences of 40 values in 10
classes, generated here by its own `mnist1d` package, nothing downloaded; an MLP 100-100-10
with `placement: {mask: true}` and per-layer L1/L2, 60 epochs) and on digits (the demo's
CNN), for each of 3 study seeds, two studies run side by side with the same budget of
trained models (`budget.n_trials`; a re-run on a further seed is a trained model too),
each a whole `sweep run --confirm 1` against fresh SQLite stores:

  single   seeds.racing: false: every configuration trains once; the pick is the best
           single value (what Optuna, KerasTuner, Ray Tune and W&B do);
  racing   seeds.racing {min 1, max 5, top_fraction 1/3} (sweep.search.racing): the pick is
           the best by its mean over seeds shrunk by the seed noise (racing.estimates).

Per study, of its pick (what `sweep best` names):

  search value   its validation value as the study reports it (one draw, or the mean
                 over its seeds);
  confirmed      the confirmation's re-training over 5 fresh seeds (seeds.confirm), of the
                 pick and of the no-regularization baseline: mean validation value, and
                 the effect on test accuracy against the baseline with its paired p;
  gap            search value - confirmed validation mean: how much the study's answer
                 overstated the pick (the winner's curse; its size |gap| is judged);
  exceeds noise  the confirmed test effect is better than the baseline at p < 0.05.

A pick that is no regularization has effect 0 and does not exceed noise. Goals (issue
18): the gap shrinks by >= 2x (mean |gap| over study seeds, racing / single <= 0.5); the
confirmed effect of the pick is at least as large as without racing (within the seed
noise of test accuracy: the baseline's sd over the confirmation's seeds); on MNIST-1D the
pick confirms beyond noise in >= 2 of 3 study seeds.

    .venv/bin/python bench/selection.py [--quick] [--seeds 3,4,5] [--datasets mnist1d]
                                        [--racing-max 3]
"""

from __future__ import annotations

import statistics
import time
from pathlib import Path
from typing import Any

from _common import (
    confirmed_effect,
    parser,
    print_table,
    print_targets,
    run_confirmed,
    scratch,
    spread,
    study_of,
    target,
    write_result,
)

RACING = {"min": 1, "max": 5, "top_fraction": 1 / 3}
GAP_RATIO = 0.5
CONFIRMED_SEEDS = 2  # of 3 study seeds, on MNIST-1D


def mnist1d(folder: Path) -> Path:
    """MNIST-1D with the package's default arguments (the paper's data set), as .npz."""
    import numpy as np
    from mnist1d.data import get_dataset_args, make_dataset

    data = make_dataset(get_dataset_args())
    path = folder / "mnist1d.npz"
    np.savez(path, x_train=data["x"].astype("float32"), y_train=data["y"],
             x_test=data["x_test"].astype("float32"), y_test=data["y_test"])
    return path


def mnist1d_study(path: Path, epochs: int) -> dict[str, Any]:
    return {
        "data": {"source": "npz", "path": str(path), "validation_split": 0.2,
                 "test_split": 0.2},
        "model": {"layers": [{"Dense": {"units": 100, "activation": "relu"}},
                             {"Dense": {"units": 100, "activation": "relu"}},
                             {"Dense": {"units": 10, "activation": "softmax"}}]},
        "train": {"epochs": epochs, "batch_size": 100, "optimizer": "adam",
                  "learning_rate": 0.002, "loss": "sparse_categorical_crossentropy"},
        "search": {"targets": ["kernel"], "placement": {"mask": True},
                   "coefficients": "per_layer",
                   "l1": {"low": 1.0e-6, "high": 1.0e-2, "log": True, "allow_zero": True},
                   "l2": {"low": 1.0e-6, "high": 1.0e-2, "log": True, "allow_zero": True}},
        "objective": {"metric": "val_accuracy", "direction": "maximize"},
    }


def study(dataset: str, seed: int, variant: str, n_trials: int, base: dict[str, Any],
          racing: dict[str, Any]) -> dict[str, Any]:
    import json

    spec = json.loads(json.dumps(base))
    spec.update(name=f"selection-{dataset}-{variant}-{seed}", seed=seed, sampler="tpe",
                pruner="none", report={"confirm_top": 1}, budget={"n_trials": n_trials},
                seeds={"racing": racing if variant == "racing" else False, "confirm": 5})
    spec["search"]["baselines"] = ["none"]
    return spec


def run(spec: dict[str, Any]) -> dict[str, Any]:
    from sweep.storage.budget import used_budget

    done = run_confirmed(spec, "selection")
    best, trials, config, base, comparison, timed = (
        done.best, done.trials, done.pick, done.base, done.comparison, done.timed)
    confirmed_val = config.mean("val_accuracy")
    assert confirmed_val is not None, "the pick's confirmation has no val_accuracy"
    base_test = base.values("test_accuracy")
    reruns = sum("seed_of" in t.user_attrs for t in trials)
    return {
        "trials": used_budget(trials), "reruns": reruns,
        "configurations": used_budget(trials) - reruns,
        "pick": best.trial, "pick_placement": best.placement, "pick_seeds": best.seeds,
        "search_value": best.value, "confirmed_val": confirmed_val,
        "gap": best.value - confirmed_val,
        "effect": 0.0 if comparison is None else comparison.difference,
        "p_value": None if comparison is None else comparison.p_value,
        "exceeds_noise": bool(comparison is not None and comparison.significant),
        "baseline_test_sd": statistics.stdev(base_test) if len(base_test) > 1 else None,
        "seconds": timed.seconds,
    }


def main() -> None:
    arguments = parser(__doc__ or "")
    arguments.add_argument("--seeds", help="study seeds, comma-separated (default 0,1,2); "
                           "other than the default, the result is selection_extra.json")
    arguments.add_argument("--datasets", default="mnist1d,digits",
                           help="mnist1d, digits or both (default both)")
    arguments.add_argument("--racing-max", type=int, default=RACING["max"],
                           help=f"seeds.racing.max of the racing studies (default "
                                f"{RACING['max']}); other than the default, the result is "
                                "selection_extra.json")
    args = arguments.parse_args()
    racing = RACING | {"max": args.racing_max}
    started = time.perf_counter()
    seeds = [int(s) for s in args.seeds.split(",")] if args.seeds else \
        [0] if args.quick else [0, 1, 2]
    wanted = args.datasets.split(",")
    n_trials = 20 if args.quick else 30
    epochs = 15 if args.quick else 60
    rows: list[dict[str, Any]] = []
    with scratch("selection-data") as data:
        bases: dict[str, dict[str, Any]] = {}
        if "mnist1d" in wanted:
            bases["mnist1d"] = mnist1d_study(mnist1d(data), epochs)
        if "digits" in wanted:
            bases["digits"] = study_of("digits")
        for dataset, base in bases.items():
            for seed in seeds:
                single = run(study(dataset, seed, "single", n_trials, base, racing))
                raced = run(study(dataset, seed, "racing", n_trials, base, racing))
                rows.append({"dataset": dataset, "seed": seed, "single": single,
                             "racing": raced})
                for name, result in (("single", single), ("racing", raced)):
                    print(f"{dataset} seed {seed} {name}: pick #{result['pick']} over "
                          f"{result['pick_seeds']} seeds, search {result['search_value']:.4f}"
                          f", confirmed {result['confirmed_val']:.4f} (gap "
                          f"{result['gap']:+.4f}), test effect {confirmed_effect(result, 'pick')}, "
                          f"{result['configurations']} configurations, "
                          f"{result['seconds']:.0f} s", flush=True)

    targets, ratios = [], {}
    for dataset in bases:
        mine = [r for r in rows if r["dataset"] == dataset]

        def mean(variant: str, key: str, among: list[dict[str, Any]] = mine) -> float:
            return statistics.mean(r[variant][key] for r in among)

        gap_single, gap_racing = mean("single", "gap"), mean("racing", "gap")
        effect_single, effect_racing = mean("single", "effect"), mean("racing", "effect")
        noise = statistics.mean(r["single"]["baseline_test_sd"] or 0.0 for r in mine)
        confirmed = {v: sum(r[v]["exceeds_noise"] for r in mine) for v in ("single", "racing")}
        gap_noise = spread([r["racing"]["gap"] for r in mine])
        ratios |= {
            f"{dataset}: gap single (mean of seeds)": round(gap_single, 4),
            f"{dataset}: gap racing (mean of seeds)": round(gap_racing, 4),
            f"{dataset}: confirmed test effect single": round(effect_single, 4),
            f"{dataset}: confirmed test effect racing": round(effect_racing, 4),
            f"{dataset}: picks beyond noise single / racing":
                f"{confirmed['single']} / {confirmed['racing']} of {len(mine)}",
            f"{dataset}: seed noise of test accuracy (sd)": round(noise, 4),
        }
        # Sizes, not signs: a pick whose value understates it is as wrong as one that
        # overstates it.
        size_single = statistics.mean(abs(r["single"]["gap"]) for r in mine)
        size_racing = statistics.mean(abs(r["racing"]["gap"]) for r in mine)
        ratios |= {f"{dataset}: |gap| single (mean of seeds)": round(size_single, 4),
                   f"{dataset}: |gap| racing (mean of seeds)": round(size_racing, 4)}
        ratio = size_racing / size_single if size_single > 0 else None
        targets.append(target(
            f"selection {dataset}: |gap| racing / |gap| single", ratio, GAP_RATIO, unit="x",
            noise=None if gap_noise is None or size_single <= 0 else gap_noise / size_single,
            missing="the single-seed picks matched their confirmation exactly: nothing to "
                    "shrink",
            definition="|search value - confirmed validation mean| of the pick, mean over "
                       "study seeds; noise: spread of the racing gaps over seeds"))
        targets.append(target(
            f"selection {dataset}: confirmed test effect, racing - single",
            effect_racing - effect_single, 0.0, op=">=", noise=noise,
            definition="mean over study seeds; noise: sd of the baseline's test accuracy "
                       "over the confirmation's 5 seeds"))
        if dataset == "mnist1d" and len(mine) >= 3:
            targets.append(target(
                "selection mnist1d: racing picks that confirm beyond noise",
                confirmed["racing"], CONFIRMED_SEEDS, op=">=",
                definition=f"of {len(mine)} study seeds, p < 0.05 on test accuracy"))
    print_table(f"selection: {n_trials} trained models per study, pick confirmed over 5 "
                "seeds",
                ["data", "seed", "variant", "configurations", "pick (seeds)", "search value",
                 "confirmed val", "gap", "test effect (p)", "seconds"],
                [[r["dataset"], r["seed"], variant, r[variant]["configurations"],
                  f"#{r[variant]['pick']} ({r[variant]['pick_seeds']})",
                  r[variant]["search_value"], r[variant]["confirmed_val"], r[variant]["gap"],
                  confirmed_effect(r[variant], "pick"), r[variant]["seconds"]]
                 for r in rows for variant in ("single", "racing")])
    print_targets(targets)
    default = args.seeds is None and racing == RACING
    write_result("selection" if default else "selection_extra",
                 quick=args.quick, started=started,
                 parameters={"seeds": seeds, "n_trials": n_trials,
                             "mnist1d_epochs": epochs, "racing": racing,
                             "confirmation": {"confirm_top": 1, "seeds": 5},
                             "datasets": {"mnist1d": "mnist1d.data.make_dataset(defaults); "
                                                     "MLP 100-100-10, mask, per_layer",
                                          "digits": "studies/digits-cnn.yaml"}},
                 raw={"rows": rows}, medians={}, ratios=ratios, targets=targets)


if __name__ == "__main__":
    main()
