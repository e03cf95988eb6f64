"""startup: wall time of the commands that only read (`sweep --help`, `sweep validate`,
`sweep status`), and proof that none of them imports TensorFlow, Keras or MLflow.

Each command is a whole process, timed from spawn to exit (median of repeats after one
warm-up run). `status` reads a study with a full budget of finished trials from SQLite.
"""

from __future__ import annotations

import re
import time
from pathlib import Path
from typing import Any

from _common import (
    PYTHON,
    REPO,
    SWEEP,
    bench_env,
    median,
    parser,
    print_table,
    print_targets,
    run_timed,
    scratch,
    spread,
    target,
    write_result,
)

LIMIT_SECONDS = 1.0
HEAVY = ("tensorflow", "keras", "mlflow")
STUDY_FILE = REPO / "studies" / "digits.yaml"


def make_status_store(folder: Path) -> tuple[str, str]:
    """A study created by `sweep create`, then filled with finished trials up to its
    budget (fake trainings: `status` only reads them)."""
    import optuna
    import yaml

    from sweep.storage.connect import open_storage

    storage = f"sqlite:///{folder / 'sweep.db'}"
    tracking = f"sqlite:///{folder / 'mlflow.db'}"
    run_timed([SWEEP, "create", str(STUDY_FILE), "--storage", storage,
               "--tracking-uri", tracking])
    name = yaml.safe_load(STUDY_FILE.read_text())["name"]
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    study = optuna.load_study(study_name=name, storage=open_storage(storage))
    # `sweep create` may queue trials of its own (baselines); fill what budget is left.
    budget = study.user_attrs["spec"]["budget"]["n_trials"]
    for number in range(budget - len(study.get_trials(deepcopy=False))):
        placement = {"dense": {"kernel": {"l2": 1e-4 * (number + 1)}}}
        study.add_trial(optuna.trial.create_trial(
            value=0.9 + number / 1000,
            params={"l2": 1e-4 * (number + 1)},
            distributions={"l2": optuna.distributions.FloatDistribution(1e-6, 1e-2, log=True)},
            user_attrs={"placement": placement, "seed": number, "epochs_run": 6,
                        "worker": "bench:1", "final/val_accuracy": 0.9 + number / 1000}))
    return storage, name


def imported_modules(arguments: list[str]) -> dict[str, Any]:
    """Run the command under `python -X importtime` and list the heavy packages it
    imported, with the slowest top-level imports (where the start-up time goes)."""
    # SWEEP_VERBOSE: TensorFlow's import otherwise runs with stderr pointed at /dev/null
    # (sweep.training.runtime hides its start-up lines), and with it the importtime lines that
    # would show it.
    done = run_timed([PYTHON, "-X", "importtime", "-m", "sweep", *arguments],
                     env=bench_env(SWEEP_VERBOSE="1"))
    cumulative: dict[str, int] = {}
    heavy: set[str] = set()
    for line in done.stderr.splitlines():
        match = re.match(r"import time:\s+(\d+) \|\s+(\d+) \|\s*(\S+)", line)
        if not match:
            continue
        name = match.group(3)
        if name.split(".")[0] in HEAVY:
            heavy.add(name.split(".")[0])
        # A package's own line holds everything first imported on its behalf.
        if "." not in name and name not in ("sweep", "encodings", "site"):
            cumulative[name] = max(cumulative.get(name, 0), int(match.group(2)))
    slowest = sorted(cumulative.items(), key=lambda item: -item[1])[:6]
    return {"heavy_imported": sorted(heavy),
            "slowest_imports_ms": {name: round(us / 1000, 1) for name, us in slowest}}


def main() -> None:
    args = parser(__doc__ or "").parse_args()
    started = time.perf_counter()
    repeats = 2 if args.quick else 7
    with scratch("startup") as folder:
        storage, name = make_status_store(folder)
        commands = {
            "sweep --help": ["--help"],
            "sweep validate": ["validate", str(STUDY_FILE)],
            "sweep status": ["status", name, "--storage", storage],
        }
        env = bench_env()
        timings: dict[str, list[float]] = {label: [] for label in commands}
        floor: list[float] = []
        for arguments in commands.values():  # warm-up: page cache, .pyc files
            run_timed([SWEEP, *arguments], env=env)
        for _ in range(repeats):
            # Interleaved, so that a burst of load elsewhere hits every command alike.
            for label, arguments in commands.items():
                timings[label].append(run_timed([SWEEP, *arguments], env=env).seconds)
            floor.append(run_timed([PYTHON, "-c", "pass"], env=env).seconds)
        imports = {label: imported_modules(arguments) for label, arguments in commands.items()}
    tf_import = [run_timed([PYTHON, "-c", "import tensorflow"], env=env).seconds
                 for _ in range(1 if args.quick else 2)]

    medians = {label: median(values) for label, values in timings.items()}
    medians["python -c pass"] = median(floor)
    medians["python -c 'import tensorflow'"] = median(tf_import)
    targets = [
        target(f"{label} wall time", medians[label], LIMIT_SECONDS, unit="s",
               noise=spread(timings[label]),
               definition=f"median of {repeats} whole-process runs after a warm-up; noise: "
                          "the largest distance of a run from the median")
        for label in commands
    ] + [
        target(f"{label}: imports none of {', '.join(HEAVY)}",
               float(len(imports[label]["heavy_imported"])), 0, unit="packages",
               definition="heavy packages seen by python -X importtime")
        for label in commands
    ]
    print_table("startup (whole processes, median seconds)",
                ["command", "median s", "min s", "max s", "heavy imports", "slowest imports"],
                [[label, medians[label], min(timings[label]), max(timings[label]),
                  ", ".join(imports[label]["heavy_imported"]) or "none",
                  ", ".join(f"{k} {v:.0f} ms" for k, v in
                            list(imports[label]["slowest_imports_ms"].items())[:3])]
                 for label in commands]
                + [["python -c pass", medians["python -c pass"], min(floor), max(floor), "", ""],
                   ["import tensorflow", median(tf_import), min(tf_import), max(tf_import),
                    "", ""]])
    print_targets(targets)
    write_result(
        "startup", quick=args.quick, started=started,
        parameters={"repeats": repeats, "study_file": str(STUDY_FILE.relative_to(REPO)),
                    "status_store": "sqlite, study with its whole budget of finished trials"},
        raw={"seconds": timings, "python_floor_seconds": floor,
             "tensorflow_import_seconds": tf_import, "imports": imports},
        medians=medians,
        ratios={f"{label} / import tensorflow": medians[label] / median(tf_import)
                for label in commands},
        targets=targets)


if __name__ == "__main__":
    main()
