"""noise_stop: does `budget.stop_within_noise` save trials without losing the answer?

For each data set (the digits demo's CNN and data; a generated one: 400 samples of 60
very noisy features in 5 classes, where a wide MLP overfits and L2 helps) and each of 3
study seeds, two studies run side by side, each a whole `sweep run --confirm 1` against
fresh SQLite stores:

  full   budget.n_trials trials (baseline `none`, then TPE);
  stop   the same, with budget.stop_within_noise (seeds.noise 3, patience 8).

Per study: the trials it trained (its used budget: the stop variant's two extra baseline
seeds count) and the confirmed effect of its final winner (the best configuration on
validation, re-trained over seeds.confirm = 5 fresh seeds against the no-regularization
baseline and tested once: Δ test accuracy, p). A winner that is no regularization has
effect 0. The goal: >= 40 % fewer trials, with a confirmed effect within noise of the
full budget's (noise: the sd of the baseline's test accuracy over the confirmation's 5
seeds, from the full study).
"""

from __future__ import annotations

import statistics
import time
from typing import Any

from _common import (
    GENERATED_STUDY,
    SWEEP,
    confirmed_effect,
    parser,
    print_table,
    print_targets,
    run_timed,
    scratch,
    study_of,
    study_trials,
    target,
    write_result,
    write_yaml,
)

STOP = {"stop_within_noise": True, "patience": 8}
REDUCTION = 0.40


def study(dataset: str, seed: int, variant: str, n_trials: int) -> dict[str, Any]:
    spec = study_of(dataset)
    spec.update(name=f"noise-{dataset}-{variant}-{seed}", seed=seed, sampler="tpe",
                pruner="none", report={"confirm_top": 1}, seeds={"noise": 3, "confirm": 5})
    spec["search"]["baselines"] = ["none"]
    spec["budget"] = {"n_trials": n_trials, **(STOP if variant == "stop" else {})}
    return spec


def run(spec: dict[str, Any]) -> dict[str, Any]:
    from sweep.answers.confirm import Confirmation
    from sweep.storage.budget import used_budget

    with scratch("noise") as folder:
        study_file = write_yaml(folder / "study.yaml", spec)
        storage = f"sqlite:///{folder / 'sweep.db'}"
        timed = run_timed([SWEEP, "run", str(study_file), "--storage", storage,
                           "--tracking-uri", f"sqlite:///{folder / 'mlflow.db'}",
                           "--no-progress", "--confirm", "1"], timeout=3600)
        trials = study_trials(storage, spec["name"])
        import optuna

        attrs = optuna.load_study(study_name=spec["name"], storage=storage).user_attrs
    complete = [t for t in trials if t.state.name == "COMPLETE"]
    best = min(complete, key=lambda t: (-t.value, t.number))
    confirmation = Confirmation.from_json(attrs["confirmation"])
    base = confirmation.baseline
    effect, p_value, significant = 0.0, None, False
    if best.user_attrs.get("placement"):
        config = next(c for c in confirmation.configs
                      if c.placement == best.user_attrs["placement"])
        comparison = confirmation.compare(config)
        effect, p_value = comparison.difference, comparison.p_value
        significant = comparison.significant
    base_values = base.values("test_accuracy") if base else ()
    # The worker's console wraps long lines: rejoin them before looking for the verdict.
    said = " ".join((timed.stderr + "\n" + timed.stdout).split())
    stopped = [said[said.index("study stopped"):].split(")", 1)[0] + ")"] \
        if "study stopped" in said else []
    return {"trials": used_budget(trials), "recorded": len(trials),
            "best_trial": best.number, "best_value": best.value,
            "winner": best.user_attrs.get("placement"), "effect": effect,
            "p_value": p_value, "exceeds_noise": significant,
            "baseline_test_sd": statistics.stdev(base_values) if len(base_values) > 1 else None,
            "stopped": stopped[0] if stopped else None, "seconds": timed.seconds}


def main() -> None:
    args = parser(__doc__ or "").parse_args()
    started = time.perf_counter()
    seeds, n_trials = ([0], 16) if args.quick else ([0, 1, 2], 30)
    rows: list[dict[str, Any]] = []
    for dataset in ("digits", "generated"):
        for seed in seeds:
            full = run(study(dataset, seed, "full", n_trials))
            stop = run(study(dataset, seed, "stop", n_trials))
            rows.append({"dataset": dataset, "seed": seed, "full": full, "stop": stop,
                         "trial_ratio": stop["trials"] / full["trials"],
                         "effect_difference": stop["effect"] - full["effect"]})
            print(f"{dataset} seed {seed}: full {full['trials']} trials, effect "
                  f"{full['effect']:+.4f}; stop {stop['trials']} trials, effect "
                  f"{stop['effect']:+.4f} ({stop['stopped']})", flush=True)

    targets, ratios = [], {}
    for dataset in ("digits", "generated"):
        mine = [r for r in rows if r["dataset"] == dataset]
        ratio = statistics.mean(r["trial_ratio"] for r in mine)
        difference = statistics.mean(r["effect_difference"] for r in mine)
        noise = statistics.mean(r["full"]["baseline_test_sd"] or 0.0 for r in mine)
        ratios[f"{dataset}: trials stop/full (mean of seeds)"] = round(ratio, 3)
        ratios[f"{dataset}: effect stop - full (mean of seeds)"] = round(difference, 4)
        ratios[f"{dataset}: seed noise of test accuracy (sd)"] = round(noise, 4)
        targets.append(target(f"noise_stop {dataset}: trials used, stop / full", ratio,
                              1 - REDUCTION, unit="x",
                              definition=">= 40 % fewer trials (mean over seeds)"))
        targets.append(target(f"noise_stop {dataset}: confirmed effect, stop vs full "
                              "(absolute difference)", abs(difference), noise,
                              definition="within the seed noise of the test metric (sd of "
                                         "the baseline over 5 confirmation seeds)"))
    print_table(f"noise_stop: up to {n_trials} trials, confirmed over 5 seeds",
                ["data", "seed", "full trials", "full effect (p)", "stop trials",
                 "stop effect (p)", "trials ratio"],
                [[r["dataset"], r["seed"], r["full"]["trials"],
                  confirmed_effect(r["full"], "winner"), r["stop"]["trials"],
                  confirmed_effect(r["stop"], "winner"),
                  r["trial_ratio"]] for r in rows])
    print_targets(targets)
    write_result("noise_stop", quick=args.quick, started=started,
                 parameters={"seeds": seeds, "n_trials": n_trials, "stop": STOP,
                             "confirmation": {"confirm_top": 1, "seeds": 5},
                             "datasets": {"digits": "studies/digits-cnn.yaml",
                                          "generated": GENERATED_STUDY}},
                 raw={"rows": rows}, medians={}, ratios=ratios, targets=targets)


if __name__ == "__main__":
    main()
