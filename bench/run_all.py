"""Run every benchmark (`make bench`), each in a fresh process, then write the figures
table of bench/README.md from their results (bench/summarize.py).

    .venv/bin/python bench/run_all.py [--quick] [--only NAME ...]

`make bench` runs BENCHMARKS; `make bench-scale` runs SCALE (--only scale_trials
many_workers).

A benchmark that crashes does not stop the others; the run then exits 1. A target that
is missed is a figure, not a failure.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time

import summarize
from _common import BENCH, PYTHON, RESULTS, git_info, machine_info, parser

BENCHMARKS = ("startup", "overhead", "peer", "coordination", "drift", "logging_cost",
              "checkpoint_cost", "pruning", "noise_stop", "selection", "demo", "workers",
              "waiting", "images", "gpu")
# `make bench-scale`: longer than the rest together (10,000 trials; 64 worker processes).
SCALE = ("scale_trials", "many_workers")


def main() -> None:
    arguments = parser(__doc__ or "")
    arguments.add_argument("--only", nargs="+", choices=BENCHMARKS + SCALE,
                           default=list(BENCHMARKS))
    args = arguments.parse_args()
    started = time.perf_counter()
    # Other people commit while a run goes on: say which commit it started and ended at.
    commit_at_start = git_info()["commit"]
    runs = []
    for name in args.only:
        print(f"\n=== {name} ===", flush=True)
        begin = time.perf_counter()
        done = subprocess.run([PYTHON, str(BENCH / f"{name}.py"),
                               *(["--quick"] if args.quick else [])])
        runs.append({"benchmark": name, "exit_code": done.returncode,
                     "seconds": round(time.perf_counter() - begin, 1)})
    total = time.perf_counter() - started
    RESULTS.mkdir(parents=True, exist_ok=True)
    if args.only == list(BENCHMARKS):  # only a complete run stands for `make bench`
        # The versions the figures were taken with (`pip install -c` reproduces them).
        frozen = subprocess.run([PYTHON, "-m", "pip", "freeze", "--exclude-editable"],
                                capture_output=True, text=True, check=True).stdout
        (BENCH / "versions.txt").write_text(
            "# pip freeze of the environment of the last full `make bench` "
            "(bench/README.md's figures)\n" + frozen)
        (RESULTS / "run_all.json").write_text(json.dumps({
            "quick": args.quick, "wall_seconds": round(total, 1), "runs": runs,
            "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "commit_at_start": commit_at_start, **git_info(),
            "machine": machine_info()}, indent=2) + "\n")
    summarize.main()
    print(f"\nall benchmarks: {total / 60:.1f} min")
    for run in runs:
        status = "ok" if run["exit_code"] == 0 else f"FAILED (exit {run['exit_code']})"
        print(f"  {run['benchmark']:<14} {run['seconds']:>7.1f} s  {status}")
    if any(run["exit_code"] for run in runs):
        sys.exit(1)


if __name__ == "__main__":
    main()
