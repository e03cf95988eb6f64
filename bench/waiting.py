"""waiting: what a worker costs while it stays up for the end of a study (its budget is
spent, another worker's trial still runs), next to the worker that trains.

One PostgreSQL study with a budget of one long trial (`workers.heartbeat_interval` 5 s:
the waiting worker looks for stale trials that often, and whether anything still runs
every second): worker A trains it; worker B, started once A's trial runs, finds the
budget taken and waits. Over the same window, the CPU time (user + system, from /proc)
of both processes and the statements B sends to PostgreSQL (pg_stat_database's
transaction count for the study's database, less A's share measured before B started)
are sampled. Figures: B's CPU per minute of waiting, as a share of A's (training) CPU in
the same window, and B's transactions per second. Each window is one repeat; repeats
give the spread.
"""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path
from typing import Any

from _common import (
    PYTHON,
    bench_env,
    median,
    parser,
    postgres_database,
    print_table,
    print_targets,
    scratch,
    spread,
    target,
    write_result,
    write_yaml,
)

LIMIT = 0.02  # waiting may cost at most 2 % of a training worker's CPU
INTERVAL = 5


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    ticks = os.sysconf("SC_CLK_TCK")
    return (int(fields[11]) + int(fields[12])) / ticks  # utime + stime


def transactions(url: str) -> int:
    from sqlalchemy import create_engine, text

    from sweep.locations import normalize_storage_url

    engine = create_engine(normalize_storage_url(url))
    try:
        with engine.connect() as connection:
            connection.execute(text("SELECT pg_stat_clear_snapshot()"))
            return int(connection.execute(text(
                "SELECT xact_commit + xact_rollback FROM pg_stat_database "
                "WHERE datname = current_database()")).scalar_one())
    finally:
        engine.dispose()


def main() -> None:
    args = parser(__doc__ or "").parse_args()
    started = time.perf_counter()
    window, repeats = (10.0, 1) if args.quick else (30.0, 4)
    rows: list[dict[str, float]] = []
    with scratch("waiting") as folder, postgres_database("waiting") as url:
        study = {
            "name": "waiting", "seed": 0,
            "data": {"source": "digits", "validation_split": 0.2, "test_split": 0.2},
            "model": {"layers": [{"Flatten": {}}, {"Dense": {"units": 64, "activation": "relu"}},
                                 {"Dense": {"units": 10, "activation": "softmax"}}]},
            "train": {"epochs": 100000, "batch_size": 32},
            "search": {"targets": ["kernel"], "placement": {"choices": ["all"]}, "l2": 1e-4,
                       "baselines": []},
            "budget": {"n_trials": 1},
            "workers": {"heartbeat_interval": INTERVAL, "grace_period": 60},
        }
        path = write_yaml(folder / "waiting.yaml", study)
        env = bench_env(SWEEP_STORAGE=url,
                        MLFLOW_TRACKING_URI=f"sqlite:///{folder / 'mlflow.db'}")
        subprocess.run([PYTHON, "-m", "sweep", "create", str(path)], env=env, check=True,
                       capture_output=True, cwd=folder)
        a = subprocess.Popen([PYTHON, "-m", "sweep", "worker", "waiting", "--no-progress"],
                             env=env, cwd=folder, stdout=subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL)
        b_log = folder / "b.log"
        b = None
        try:
            time.sleep(20)  # A is training (TensorFlow started, trial running)
            t0, x0 = time.monotonic(), transactions(url)
            time.sleep(window)
            a_alone = (transactions(url) - x0) / (time.monotonic() - t0)  # A's own rate
            with b_log.open("w") as sink:
                b = subprocess.Popen([PYTHON, "-m", "sweep", "worker", "waiting",
                                      "--no-progress"], env=env, cwd=folder, stdout=sink,
                                     stderr=subprocess.STDOUT)
            deadline = time.monotonic() + 120
            while "budget spent; staying" not in b_log.read_text():
                if b.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"worker B did not wait: {b_log.read_text()[-2000:]}")
                time.sleep(0.5)
            for repeat in range(repeats):
                begin = time.monotonic()
                cpu_a, cpu_b, xacts = cpu_seconds(a.pid), cpu_seconds(b.pid), transactions(url)
                time.sleep(window)
                seconds = time.monotonic() - begin
                row = {"seconds": seconds,
                       "cpu_a": cpu_seconds(a.pid) - cpu_a,
                       "cpu_b": cpu_seconds(b.pid) - cpu_b,
                       "transactions_b": transactions(url) - xacts - a_alone * seconds}
                rows.append(row)
                print(f"repeat {repeat + 1}/{repeats}: A {row['cpu_a']:.1f} s CPU, "
                      f"B {row['cpu_b']:.3f} s CPU, B ~{row['transactions_b']:.0f} "
                      f"transactions in {seconds:.0f} s")
        finally:
            for process in (b, a):
                if process is not None and process.poll() is None:
                    process.terminate()
                    try:
                        process.wait(timeout=40)
                    except subprocess.TimeoutExpired:
                        process.kill()

    share = [r["cpu_b"] / r["cpu_a"] for r in rows]
    per_minute = [r["cpu_b"] / r["seconds"] * 60 for r in rows]
    per_second = [r["transactions_b"] / r["seconds"] for r in rows]
    ratios: dict[str, Any] = {"waiting_cpu_share_of_training": median(share),
                              "share_min": min(share), "share_max": max(share)}
    medians = {"waiting_cpu_seconds_per_minute": median(per_minute),
               "transactions_per_second": median(per_second),
               "training_cpu_seconds_per_minute": median(
                   [r["cpu_a"] / r["seconds"] * 60 for r in rows])}
    targets = [target("waiting: CPU of a waiting worker / CPU of a training worker",
                      ratios["waiting_cpu_share_of_training"], LIMIT, unit="share",
                      noise=spread(share),
                      definition="same window, /proc utime+stime; median of the windows, "
                                 "noise their spread")]
    print_table(f"waiting: {repeats} windows of {window:.0f} s, reaping every {INTERVAL} s",
                ["", "value"],
                [["waiting worker CPU (s per minute)", medians["waiting_cpu_seconds_per_minute"]],
                 ["training worker CPU (s per minute)",
                  medians["training_cpu_seconds_per_minute"]],
                 ["share (median, min..max)",
                  f"{median(share):.4f} ({min(share):.4f}..{max(share):.4f})"],
                 ["database transactions per second", medians["transactions_per_second"]]])
    print_targets(targets)
    write_result("waiting", quick=args.quick, started=started,
                 parameters={"window_seconds": window, "repeats": repeats,
                             "heartbeat_interval": INTERVAL, "storage": "PostgreSQL"},
                 raw={"windows": rows}, medians=medians, ratios=ratios, targets=targets)


if __name__ == "__main__":
    main()
