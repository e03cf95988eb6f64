"""peer: `sweep run` against what users compare it with, on the same configurations.

The same N configurations (L2 on every kernel of a digits CNN with 32 and 64 filters,
one coefficient each, the same epochs, batch size and data split) are trained by

  (s) ``sweep run study.yaml``, as a user starts a study, with full logging: Optuna in
      SQLite, MLflow in SQLite (both created by the run), a run per trial with params,
      per-epoch metrics and per-layer weight norms, final figures on every split. The
      grid sampler over the N coefficients makes it train exactly them, each once
      (checked afterwards: N trials, N distinct coefficients, none a duplicate, every
      epoch trained);
  (k) a bare Keras loop as a user writes it: a fresh model per configuration, ``fit`` with
      Keras' defaults (bench/bare_fit.py --mode keras);
  (t) KerasTuner's RandomSearch over exactly these coefficients, no tracking
      (bench/bare_fit.py --mode kerastuner; keras-tuner is installed for the benchmarks
      only, bench/requirements.txt).

Each is one whole process, timed from spawn to exit; the three take
turns within each round, a different one first each round, and the figures are medians
over rounds, each ratio's noise the spread of its per-round values. Goals (issue 36):
sweep / KerasTuner <= 0.5 and sweep / bare loop <= 0.75.

    .venv/bin/python bench/peer.py [--quick]
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from _common import (
    SWEEP,
    median,
    parser,
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
from overhead import configs_for, run_bare, study

KERASTUNER_LIMIT = 0.5
KERAS_LIMIT = 0.75
FILTERS = (32, 64)


def run_sweep(folder: Path, spec: dict[str, Any]) -> dict[str, Any]:
    """One ``sweep run`` of the grid over the coefficients; what it trained, checked."""
    study_file = write_yaml(folder / "study.yaml", spec)
    storage = f"sqlite:///{folder / 'sweep.db'}"
    timed = run_timed([SWEEP, "run", str(study_file), "--storage", storage, "--tracking-uri",
                       f"sqlite:///{folder / 'mlflow.db'}", "--no-progress"], cwd=folder)
    trials = study_trials(storage, spec["name"])
    coefficients = spec["search"]["l2"]["choices"]
    trained = [t for t in trials if t.state.name == "COMPLETE" and "duplicate_of" not in
               t.user_attrs and t.user_attrs.get("epochs_run") == spec["train"]["epochs"]]
    if sorted(t.params.get("l2") for t in trained) != sorted(coefficients) or \
            len(trials) != len(coefficients):
        raise RuntimeError(f"sweep run did not train each coefficient once: "
                           f"{[(t.state.name, t.params) for t in trials]}")
    return {"process_seconds": timed.seconds, "val_accuracy": [t.value for t in trials]}


def main() -> None:
    args = parser(__doc__ or "").parse_args()
    started = time.perf_counter()
    n_configs, epochs, rounds = (2, 2, 1) if args.quick else (8, 10, 3)
    spec = {**study(n_configs, epochs, filters=FILTERS, name="peer"), "sampler": "grid"}
    configs = configs_for(spec)
    modes = ["sweep", "keras", "kerastuner"]
    raw: dict[str, list[dict[str, Any]]] = {mode: [] for mode in modes}
    for round_ in range(rounds):
        order = modes[round_ % 3:] + modes[:round_ % 3]
        for mode in order:
            with scratch("peer") as folder:
                if mode == "sweep":
                    result = run_sweep(folder, spec)
                    result["seconds"] = result["process_seconds"]
                else:
                    study_file = write_yaml(folder / "study.yaml", spec)
                    configs_file = folder / "configs.json"
                    configs_file.write_text(json.dumps(configs))
                    result = run_bare(folder, study_file, configs_file, mode)
                    result["seconds"] = result["process_seconds"]
            raw[mode].append(result)
            print(f"round {round_ + 1}/{rounds} {mode}: {result['seconds']:.1f} s", flush=True)

    medians = {f"{mode}_seconds": median([r["seconds"] for r in raw[mode]]) for mode in modes}
    per_round = {other: [s["seconds"] / o["seconds"]
                         for s, o in zip(raw["sweep"], raw[other], strict=True)]
                 for other in ("kerastuner", "keras")}
    ratios = {f"sweep/{other}": median(values) for other, values in per_round.items()}
    ratios.update({f"sweep/{other}, per round": ", ".join(f"{r:.3f}" for r in values)
                   for other, values in per_round.items()})
    targets = [
        target("peer: sweep run (full MLflow logging) / KerasTuner RandomSearch (no "
               "tracking), whole processes", ratios["sweep/kerastuner"], KERASTUNER_LIMIT,
               unit="x", noise=spread(per_round["kerastuner"]),
               definition="the same configurations, epochs and data; noise: the largest "
                          "distance of a round's own ratio from their median"),
        target("peer: sweep run / a bare hand-written Keras loop, whole processes",
               ratios["sweep/keras"], KERAS_LIMIT, unit="x", noise=spread(per_round["keras"]),
               definition="as above; the loop builds a fresh model per configuration and "
                          "fits with Keras' defaults"),
    ]
    labels = {"sweep": "(s) sweep run", "keras": "(k) bare Keras loop",
              "kerastuner": "(t) KerasTuner RandomSearch"}
    print_table(f"peer: {n_configs} configs x {epochs} epochs, CNN {FILTERS[0]}/{FILTERS[1]} "
                f"filters, {rounds} rounds (median seconds)",
                ["", "seconds", "median val_acc"],
                [[labels[mode], medians[f"{mode}_seconds"],
                  median([median(r["val_accuracy"]) for r in raw[mode]])] for mode in modes])
    print_table("ratios (same run)", ["ratio", "value"], [[k, v] for k, v in ratios.items()])
    print_targets(targets)
    write_result(
        "peer", quick=args.quick, started=started,
        parameters={"configs": configs, "epochs": epochs, "batch_size": 64, "rounds": rounds,
                    "model": f"digits CNN, Conv2D {FILTERS[0]} and {FILTERS[1]} filters, L2 "
                             "on every kernel",
                    "data": "sklearn digits (1797 8x8 images), 60/20/20 split, seed 0",
                    "stores": "SQLite for Optuna and MLflow (the sweep only)"},
        raw=raw, medians=medians, ratios=ratios, targets=targets,
        notes=["KerasTuner seeds once per search, the loop and the sweep once per "
               "configuration: the same configurations, not the same initial weights"])


if __name__ == "__main__":
    main()
