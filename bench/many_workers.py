"""many_workers: 8, 32 and 64 workers on one PostgreSQL study, directly and through
`sweep proxy`: throughput, database connections held, and the exact budget.

Each worker is the real `sweep worker` with its training replaced by a 1-s sleep
(bench/coord_worker.py, as bench/workers.py's coordination runs: every user attribute, an
MLflow run per trial with per-epoch metrics, here logged to a real `mlflow server`). For
N workers, ``per_worker`` trials each; ``direct`` workers use the PostgreSQL URL,
``proxy`` workers ``grpc://`` to one `sweep proxy` in front of the same database. Measured:

  trials/s      steady state (bench/workers.py's definition), and its ideal N / (1 s +
                the 1-worker coordination time per trial, measured first);
  efficiency    trials/s / ideal: 1.0 is perfect scaling (the issue's goal is >= 0.9 up
                to what two cores can run);
  connections   the peak number of connections to the study's database, sampled from
                pg_stat_activity every 0.25 s while the workers run;
  budget        exactly N x per_worker trials, all COMPLETE;
  CPU           the machine's CPU busy share while the workers run (/proc/stat): near
                100 % says the cores, not the database or the proxy, set the limit.

With ``--repeats R`` each N runs R times, direct and proxy taking turns (each first in
turn): the efficiency is the median, its noise the spread of the repeats. Other than the
default (8, 32, 64 once), the result is many_workers_extra.json.

    .venv/bin/python bench/many_workers.py [--quick] [--workers 8 32 64] [--repeats 1]
"""

from __future__ import annotations

import contextlib
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from typing import Any

from _common import (
    BENCH,
    PYTHON,
    SWEEP,
    bench_env,
    median,
    mlflow_server,
    parser,
    postgres_database,
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
from workers import coordination_spec, throughput

EFFICIENCY_LIMIT = 0.9


class Sampler:
    """Peak connections to one database and the machine's CPU busy share, sampled in a
    thread until stopped."""

    def __init__(self, admin_url: str, database: str):
        import sqlalchemy

        # Autocommit: inside one transaction PostgreSQL shows the same statistics snapshot
        # (pg_stat_activity included) on every read.
        self._engine = sqlalchemy.create_engine(admin_url, pool_size=1,
                                                isolation_level="AUTOCOMMIT")
        self._database = database
        self.peak = 0
        self._stop = threading.Event()
        self._cpu_start = _cpu_times()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        import sqlalchemy

        query = sqlalchemy.text("SELECT count(*) FROM pg_stat_activity WHERE datname = :d "
                                "AND pid <> pg_backend_pid()")
        with self._engine.connect() as connection:
            while not self._stop.is_set():
                count = connection.execute(query, {"d": self._database}).scalar_one()
                self.peak = max(self.peak, int(count))
                self._stop.wait(0.25)

    def stop(self) -> dict[str, float]:
        self._stop.set()
        self._thread.join(timeout=10)
        self._engine.dispose()
        busy0, total0 = self._cpu_start
        busy1, total1 = _cpu_times()
        return {"peak_connections": self.peak,
                "cpu_busy": (busy1 - busy0) / (total1 - total0) if total1 > total0 else 0.0}


def _cpu_times() -> tuple[float, float]:
    with open("/proc/stat") as stat:
        fields = [float(v) for v in stat.readline().split()[1:]]
    idle = fields[3] + fields[4]  # idle + iowait
    return sum(fields) - idle, sum(fields)


@contextlib.contextmanager
def proxy(url: str) -> Iterator[str]:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    process = subprocess.Popen([SWEEP, "proxy", "--storage", url, "--port", str(port)],
                               env=bench_env(), stdout=subprocess.DEVNULL,
                               stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        deadline = time.monotonic() + 60
        while True:
            with socket.socket() as client:
                if client.connect_ex(("127.0.0.1", port)) == 0:
                    break
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"sweep proxy did not start: {process.stderr.read()}")
            time.sleep(0.2)
        yield f"grpc://127.0.0.1:{port}"
    finally:
        process.send_signal(signal.SIGINT)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()


def run(url: str, storage: str, tracking: str, admin: str, database: str, workers: int,
        per_worker: int, label: str, repeat: int = 0) -> dict[str, Any]:
    # A study of its own per repeat: a repeat on the same study would find its budget spent.
    name = f"many-{label}-{workers}" + (f"-{repeat}" if repeat else "")
    with scratch("many") as folder:
        study_file = write_yaml(folder / "study.yaml",
                                coordination_spec(name, workers * per_worker))
        run_timed([SWEEP, "create", str(study_file), "--storage", url, "--tracking-uri",
                   tracking], cwd=folder)
        sampler = Sampler(admin, database)
        begin = time.perf_counter()
        processes = [subprocess.Popen(
            [PYTHON, str(BENCH / "coord_worker.py"), storage, tracking, name, "1.0"],
            env=bench_env(SWEEP_WORKER_INDEX=str(index + 1)), cwd=folder,
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
            for index in range(workers)]
        errors = [p.communicate()[1] for p in processes]
        seconds = time.perf_counter() - begin
        machine = sampler.stop()
    failed = [e[-1500:] for p, e in zip(processes, errors, strict=True) if p.returncode]
    trials = study_trials(url, name)
    result = throughput(trials, seconds) | machine
    result["failed_workers"] = len(failed)
    result["failures"] = failed[:3]
    result["budget_exact"] = len(trials) == workers * per_worker and all(
        t.state.name == "COMPLETE" for t in trials)
    return result


def disqualified(entry: dict[str, Any], result: dict[str, Any]) -> dict[str, Any]:
    """A run that lost workers or missed its budget measured a failure, not a rate."""
    why = ([f"{result['failed_workers']} workers failed"] if result["failed_workers"] else []) \
        + ([] if result["budget_exact"] else ["budget not exact"])
    if why:
        entry |= {"met": False, "verdict": f"invalid: {', '.join(why)}"}
    return entry


def _said(label: str, k: int, result: dict[str, Any]) -> None:
    print(f"{label} {k} workers: {result['steady_trials_per_second']:.2f} trials/s "
          f"(efficiency {result['efficiency']:.2f}), {result['peak_connections']} "
          f"connections, CPU {result['cpu_busy']:.0%}, budget exact "
          f"{result['budget_exact']}, failed workers {result['failed_workers']}", flush=True)


def _combined(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """The repeats of one N and storage as one result: the run of median efficiency
    (the lower middle one of an even number), with every run's efficiency, the largest
    connection count, and any failure of any run."""
    order = sorted(runs, key=lambda r: r["efficiency"])
    middle = dict(order[(len(order) - 1) // 2])
    middle["efficiencies"] = [r["efficiency"] for r in runs]
    middle["efficiency"] = median(middle["efficiencies"])
    middle["peak_connections"] = max(r["peak_connections"] for r in runs)
    middle["failed_workers"] = sum(r["failed_workers"] for r in runs)
    middle["budget_exact"] = all(r["budget_exact"] for r in runs)
    return middle


def main() -> None:
    arguments = parser(__doc__ or "")
    arguments.add_argument("--workers", type=int, nargs="+", default=[8, 32, 64])
    arguments.add_argument("--repeats", type=int, default=1,
                           help="runs per N and storage, taking turns (default 1)")
    args = arguments.parse_args()
    default = sorted(args.workers) == [8, 32, 64] and args.repeats == 1
    started = time.perf_counter()
    counts = [2, 4] if args.quick else sorted(args.workers)
    per_worker = 3 if args.quick else 8
    results: dict[str, dict[int, dict[str, Any]]] = {"direct": {}, "proxy": {}}
    with postgres_database("many_optuna") as url, \
            postgres_database("many_mlflow") as mlflow_db, scratch("many-server") as folder, \
            mlflow_server(folder, mlflow_db) as tracking:
        from sqlalchemy.engine import make_url

        database = make_url(url).database
        admin = make_url(url).set(database="postgres").render_as_string(hide_password=False)
        one = run(url, url, tracking, admin, database, 1, per_worker * 2, "one")
        cost = 1.0 / one["steady_trials_per_second"] - 1.0  # coordination per trial
        print(f"1 worker: {one['steady_trials_per_second']:.2f} trials/s "
              f"(coordination {cost * 1000:.0f} ms per trial)", flush=True)
        with proxy(url) as grpc:
            for k in counts:
                runs: dict[str, list[dict[str, Any]]] = {"direct": [], "proxy": []}
                for repeat in range(args.repeats):
                    turn = [("direct", url), ("proxy", grpc)]
                    for label, storage in turn[::-1] if repeat % 2 else turn:
                        result = run(url, storage, tracking, admin, database, k,
                                     per_worker, label, repeat)
                        result["ideal_trials_per_second"] = k / (1.0 + cost)
                        result["efficiency"] = (result["steady_trials_per_second"]
                                                / result["ideal_trials_per_second"])
                        runs[label].append(result)
                        _said(label, k, result)
                for label, done in runs.items():
                    results[label][k] = _combined(done)
    targets = []
    for label, by_k in results.items():
        for k, result in by_k.items():
            repeats = len(result["efficiencies"])
            entry = target(f"many workers: {label} {k}: trials/s / ideal",
                           result["efficiency"], EFFICIENCY_LIMIT, op=">=",
                           noise=spread(result["efficiencies"]),
                           definition="steady trials/s over N / (1 s + 1-worker "
                                      "coordination per trial); "
                           + ("one run" if repeats == 1 else f"median of {repeats} runs"))
            targets.append(disqualified(entry, result))
    print_table("many workers (1-s trials)",
                ["storage", "workers", "trials/s", "ideal", "efficiency", "peak connections",
                 "CPU busy", "budget exact", "failed workers"],
                [[label, k, r["steady_trials_per_second"], r["ideal_trials_per_second"],
                  r["efficiency"], r["peak_connections"], r["cpu_busy"], r["budget_exact"],
                  r["failed_workers"]] for label, by_k in results.items()
                 for k, r in by_k.items()])
    print_targets(targets)
    write_result(
        "many_workers" if default else "many_workers_extra", quick=args.quick,
        started=started,
        parameters={"workers": counts, "trials_per_worker": per_worker, "sleep_seconds": 1.0,
                    "repeats": args.repeats},
        raw={"one": one, **{label: {str(k): v for k, v in by_k.items()}
                            for label, by_k in results.items()}},
        medians={f"{label} {k} trials/s": r["steady_trials_per_second"]
                 for label, by_k in results.items() for k, r in by_k.items()}
        | {"coordination_ms_per_trial_1_worker": cost * 1000},
        ratios={f"{label} {k} efficiency": r["efficiency"]
                for label, by_k in results.items() for k, r in by_k.items()}
        | {f"{label} {k} efficiency, per repeat": r["efficiencies"]
           for label, by_k in results.items() for k, r in by_k.items() if args.repeats > 1}
        | {f"{label} {k} peak connections": r["peak_connections"]
           for label, by_k in results.items() for k, r in by_k.items()}
        | {"budget exact in every run": all(r["budget_exact"] for by_k in results.values()
                                            for r in by_k.values())},
        targets=targets,
        notes=["one run per N (64 processes take minutes to start on two cores); the "
               "efficiency has no repeat-based noise estimate"] if args.repeats == 1 else
        [f"{args.repeats} runs per N and storage, taking turns; the efficiency is their "
         "median, its noise their spread"])


if __name__ == "__main__":
    main()
