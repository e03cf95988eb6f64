"""demo: is `make demo`'s answer real, and how often?

Runs the demo as `make demo` does (`sweep run studies/digits.yaml --confirm 1`: a 256-256
MLP on 6 % of scikit-learn's digits, 20 trials with seed racing, then the best
configuration and no regularization re-trained on 5 fresh seeds) once per study seed
(`seed:` in the study file; 0 is the demo itself), each against fresh SQLite stores, and
reads back through Optuna and regsweep's own API:

  configurations  distinct configurations the 20 trials explored (goal: >= 12)
  pick            the configuration `sweep best` names, and its placement
  effect          the confirmation's test_data_loss of the pick minus no regularization's
                  (negative: the penalty helps), its 95 % interval and paired p
  beyond noise    the confirmation's verdict (p < 0.05 and the right sign)
  seconds         the whole `sweep run --confirm 1`, process spawn to exit

Goal (issue 35): the verdict is beyond seed noise in every study seed, and one demo takes
about five minutes on 2 cores.

    .venv/bin/python bench/demo.py [--seeds 0,1,2] [--quick]
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import yaml
from _common import (
    parser,
    print_table,
    print_targets,
    run_confirmed,
    target,
    write_result,
)

REPO = Path(__file__).resolve().parent.parent
DEMO = REPO / "studies" / "digits.yaml"
METRIC = "test_data_loss"


def run(seed: int, quick: bool) -> dict[str, Any]:
    from sweep.search.grouping import configurations
    from sweep.storage.budget import used_budget

    spec = yaml.safe_load(DEMO.read_text())
    spec["seed"] = seed
    if quick:
        spec["train"]["epochs"] = 3
        spec["budget"]["n_trials"] = 6
    done = run_confirmed(spec, "demo", timeout=3600)
    best, trials, comparison = done.best, done.trials, done.comparison
    return {
        "seed": seed, "trials": used_budget(trials),
        "configurations": sum(c.complete != [] for c in configurations(trials)),
        "pick": f"#{best.trial}", "placement": best.placement, "pick_seeds": best.seeds,
        "effect": 0.0 if comparison is None else comparison.difference,
        "metric": None if comparison is None else comparison.metric,
        "low": None if comparison is None else comparison.ci_low,
        "high": None if comparison is None else comparison.ci_high,
        "p_value": None if comparison is None else comparison.p_value,
        "beyond_noise": bool(comparison is not None and comparison.significant
                             and comparison.better),
        "seconds": done.timed.seconds,
    }


def main() -> None:
    arguments = parser(__doc__ or "")
    arguments.add_argument("--seeds", default="0,1,2", help="study seeds, comma-separated")
    options = arguments.parse_args()
    started = time.perf_counter()
    seeds = [int(s) for s in options.seeds.split(",")]
    results = [run(seed, options.quick) for seed in seeds]
    print_table("the demo per study seed", [
        "seed", "trials", "configurations", "pick", f"Δ {METRIC} [95% CI]", "p",
        "beyond noise", "seconds"],
        [[r["seed"], r["trials"], r["configurations"], f"{r['pick']} ({r['placement']})",
          f"{r['effect']:+.4f}" + ("" if r["low"] is None else
                                   f" [{r['low']:+.4f}, {r['high']:+.4f}]"),
          r["p_value"], "yes" if r["beyond_noise"] else "no", round(r["seconds"])]
         for r in results])
    beyond = sum(r["beyond_noise"] for r in results)
    slowest = max(r["seconds"] for r in results)
    targets = [
        target("study seeds whose verdict is beyond seed noise", beyond, len(results),
               op=">=", unit=f"of {len(results)}"),
        target("fewest configurations explored", min(r["configurations"] for r in results),
               12, op=">=", unit=""),
        target("slowest demo", slowest, 360.0, unit="s"),
    ]
    print_targets(targets)
    write_result("demo", quick=options.quick, started=started,
                 parameters={"study": "studies/digits.yaml", "seeds": seeds,
                             "command": "sweep run --confirm 1"},
                 raw={"runs": results}, medians={}, ratios={}, targets=targets,
                 notes=["each demo runs alone (one process, two cores); the figures are "
                        "confirmation results, not timings, except seconds"])


if __name__ == "__main__":
    main()
