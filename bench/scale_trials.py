"""scale_trials: what a trial costs, and how fast the read commands answer, as a study on
PostgreSQL grows to 10,000 trials.

The study is bench/workers.py's coordination study; its trials run through the real
``sweep worker`` (bench/coord_worker.py: stored spec, TPE, heartbeats, the exact-budget
lock, every user attribute a trial records, an MLflow run per trial with per-epoch
metrics, logged to a real ``mlflow server`` whose runs are in PostgreSQL) with the
training replaced by nothing (0 s), so what is timed is coordination alone.

At each size (100, 1,000, 3,000, 10,000 trials) a window of real trials runs; between
windows the study is filled up to the next size with copies of the real trials (all
their attributes, intermediate values and MLflow run ids; the coefficients moved by a
hair so that every copy is a configuration of its own) written straight through Optuna's
storage, and with the seed re-runs racing's schedule asks for among them (the promotions
a study grown trial by trial ran along the way): each window then starts from a study
that owes what a grown one owes, and does the same racing work. Measured at each size:

  per trial     median complete-to-complete time of the window's trials (its first 5
                left out: worker start-up), whole worker path;
  TPE           the sampler's own time per trial, on an in-memory copy of the study
                (storage reads left out): the capped TPE sweep uses (sweep/search/history.py)
                and Optuna's TPE on every trial, side by side;
  restart       wall time of a worker process that runs one trial (a worker renewed by
                `workers.recycle_after` pays it);
  commands      wall time of `sweep status`, `best`, `export --format csv` and
                `report --no-confirm`, whole processes, median of 3.

  ratio         the target's per-trial figure: a second, small study (its own database,
                the same MLflow server) of the first size's trials, and the large one
                once it is full, run windows of real trials taking turns (ABBA): the
                ratio of their per-trial times, pair by pair. Identical windows minutes
                apart differed by up to 40 % on this host; windows taking turns share
                its drift.

Planner statistics are kept as PostgreSQL's autovacuum keeps them, where the server runs
none (bench/_common.py autoanalyze).

Targets: per-trial time at 10,000 / at 100 <= 1.5 (median of the pairs' ratios; noise:
their spread); each command at 10,000 trials <= 5 s (noise: the spread of its 3 runs).

    .venv/bin/python bench/scale_trials.py [--quick]
"""

from __future__ import annotations

import itertools
import subprocess
import time
from pathlib import Path
from typing import Any

from _common import (
    BENCH,
    PYTHON,
    SWEEP,
    autoanalyze,
    bench_env,
    median,
    mlflow_server,
    parser,
    postgres_database,
    print_table,
    print_targets,
    run_timed,
    scratch,
    seconds_between,
    spread,
    target,
    write_result,
    write_yaml,
)
from workers import coordination_spec

TRIAL_RATIO_LIMIT = 1.5
PAIRS = 6  # alternating windows of the small and the large study, for the ratio
COMMAND_LIMIT = 5.0
COMMANDS = {
    "status": ["status"],
    "best": ["best"],
    "export": ["export", "--format", "csv"],
    "report": ["report", "--no-confirm", "--no-progress"],
}


def real_window(url: str, tracking: str, name: str, n: int, folder: Path) -> dict[str, Any]:
    """``n`` trials through the real worker; their complete-to-complete times."""
    from sweep.keys import SEED_OF

    begin = time.perf_counter()
    done = subprocess.run([PYTHON, str(BENCH / "coord_worker.py"), url, tracking, name, "0",
                           str(n)], env=bench_env(SWEEP_WORKER_INDEX="1"), cwd=folder,
                          capture_output=True, text=True, timeout=3600)
    seconds = time.perf_counter() - begin
    if done.returncode != 0:
        raise RuntimeError(f"coord_worker failed: {done.stderr[-3000:]}")
    trials, spec = _read(url, name)
    window = sorted((t for t in trials if t.datetime_complete is not None),
                    key=lambda t: t.datetime_complete)[-n:]
    cycles = [seconds_between(a.datetime_complete, b.datetime_complete)
              for a, b in itertools.pairwise(window)][5:]
    thirds = [median(cycles[i::3]) for i in range(3)]
    # Seed racing's re-runs among them: the windows compare equal work only if the shares
    # are alike (a re-run costs its promotion's decision and its configuration's mean).
    reruns = sum(1 for t in window if SEED_OF in t.user_attrs)
    return {"trials": len(window), "trials_in_study": len(trials),
            "process_seconds": seconds,
            "per_trial_seconds": median(cycles), "thirds": thirds, "reruns": reruns,
            "owed_after": _owed(trials, spec),
            "states": sorted({t.state.name for t in window})}


def _read(url: str, name: str) -> tuple[list[Any], Any]:
    """The study's trials and its stored spec."""
    import optuna

    from sweep.study.create import stored_spec

    storage = optuna.storages.RDBStorage(url)
    try:
        study = optuna.load_study(study_name=name, storage=storage)
        return study.get_trials(deepcopy=False), stored_spec(study)
    finally:
        storage.engine.dispose()


def _trials(url: str, name: str) -> list[Any]:
    return _read(url, name)[0]


def fill(url: str, name: str, size: int) -> dict[str, Any]:
    """Copy the study's real trials until it holds ``size`` trials, running along the way
    the promotions seed racing asks for (``settle``), as a study grown trial by trial
    would have."""
    import optuna

    from sweep.study.create import stored_spec

    storage = optuna.storages.RDBStorage(url)
    study = optuna.load_study(study_name=name, storage=storage)
    spec = stored_spec(study)
    trials = study.get_trials(deepcopy=False)
    real = [t for t in trials if t.state.name == "COMPLETE" and t.user_attrs.get("worker")
            and "copy_of" not in t.user_attrs]
    begin, copied, settled = time.perf_counter(), 0, 0
    while len(trials) < size:
        # The copies of a round are each owed what racing promotes among them (about 8
        # re-runs per 9 new configurations, rung sizes 1, 3, 5 and a third promoted): copy
        # a share of what is missing, then settle, so the study ends at ``size`` with
        # (nearly) nothing owed.
        missing = size - len(trials)
        copied += _copy(study, real, len(trials), max(1, min(500, missing * 9 // 17)))
        trials = study.get_trials(deepcopy=False)
        settled += settle(study, spec, trials, size - len(trials))
        trials = study.get_trials(deepcopy=False)
    owed = _owed(trials, spec)
    # Thousands of trials written in a minute leave PostgreSQL's planner statistics
    # behind: it then scans a study's every trial where an index finds the few it needs
    # (1.2 ms against 0.08 ms per read at 10,000 trials). Autovacuum analyzes a table
    # after every 10 % of growth, which a study that grew over hours had long had.
    if storage.engine.dialect.name == "postgresql":
        import sqlalchemy

        with storage.engine.connect().execution_options(
                isolation_level="AUTOCOMMIT") as connection:
            connection.execute(sqlalchemy.text("ANALYZE"))
    storage.engine.dispose()
    return {"copied": copied, "settled": settled, "owed": owed,
            "seconds": time.perf_counter() - begin}


def _owed(trials: list[Any], spec: Any) -> int:
    """Re-runs racing's schedule asks for and the study has not queued (a study grown
    trial by trial owes a few: one promotion is queued at a time)."""
    from sweep.search.racing import configurations, due

    return sum(extra for _, extra in due(configurations(trials), spec))


def _copy(study: Any, real: list[Any], base: int, count: int) -> int:
    """``count`` copies of the real trials (numbered from ``base``: nothing else runs while
    filling), each a configuration of its own (coefficients moved by a hair); a copy of a
    seed re-run is a re-run of its origin's copy with the same parameters."""
    import optuna
    from optuna.distributions import FloatDistribution

    from sweep.keys import DUPLICATE_OF, SEED_INDEX, SEED_OF, SEED_VALUE, SEEDS

    position = {t.number: p for p, t in enumerate(real)}
    batch, copied = [], {}  # copied: this round's copies' params, by template position
    for i in range(count):
        round_, at = divmod(i, len(real))
        template = real[at]
        origin = position.get(template.user_attrs.get(SEED_OF, -1))
        if origin is not None and origin < at:
            params = dict(copied[origin])
            attrs = {k: v for k, v in template.user_attrs.items() if k != DUPLICATE_OF}
            attrs[SEED_OF] = base + round_ * len(real) + origin
        else:
            params = dict(template.params)
            for key, distribution in template.distributions.items():
                if isinstance(distribution, FloatDistribution):
                    nudged = params[key] * (1 + 1e-9 * (base + i + 1))
                    params[key] = min(distribution.high, max(distribution.low, nudged))
            attrs = {k: v for k, v in template.user_attrs.items()
                     if k not in (DUPLICATE_OF, SEED_OF, SEED_INDEX, SEED_VALUE, SEEDS)}
        copied[at] = params
        attrs["copy_of"] = template.number
        batch.append(optuna.trial.create_trial(
            params=params, distributions=template.distributions, values=template.values,
            user_attrs=attrs, intermediate_values=template.intermediate_values))
    for start in range(0, len(batch), 500):
        study.add_trials(batch[start:start + 500])
    return len(batch)


def settle(study: Any, spec: Any, trials: list[Any], room: int) -> int:
    """Add, as finished re-runs, the extra seeds racing's schedule asks for (at most
    ``room`` trials), rung after rung, until it asks for none: the promotions a study
    grown trial by trial ran along the way. The simulated training's value does not
    depend on the seed, so each re-run's draw is its configuration's first."""
    import optuna

    from sweep.keys import DUPLICATE_OF, SEED, SEED_INDEX, SEED_OF, SEED_VALUE, SEEDS
    from sweep.search.racing import configurations, due
    from sweep.seeds import extra_seed

    added = 0
    while added < room:
        owed = due(configurations(trials), spec)
        if not owed:
            break
        batch = []
        for configuration, extra in owed:
            first = configuration.first
            for index in range(configuration.scheduled, configuration.scheduled + extra):
                attrs = {k: v for k, v in first.user_attrs.items() if k != DUPLICATE_OF}
                attrs |= {SEED_OF: first.number, SEED_INDEX: index,
                          SEED: extra_seed(spec.seed, index),
                          SEED_VALUE: configuration.draws[0], SEEDS: index + 1}
                batch.append(optuna.trial.create_trial(
                    params=first.params, distributions=first.distributions,
                    values=[configuration.mean], user_attrs=attrs,
                    intermediate_values=first.intermediate_values))
        batch = batch[:room - added]
        for start in range(0, len(batch), 500):
            study.add_trials(batch[start:start + 500])
        added += len(batch)
        trials = study.get_trials(deepcopy=False)
    return added


def tpe_cost(url: str, name: str, asks: int) -> dict[str, float]:
    """Seconds per ask of the capped TPE and of Optuna's TPE on every trial, on an
    in-memory copy of the study (storage reads left out), taking turns."""
    import optuna

    from sweep.search.history import RecentHistory

    # Queued trials (seed racing's re-runs) left out: ask() would hand them out with their
    # parameters fixed, and TPE would not be timed at all.
    trials = [t for t in _trials(url, name) if t.state.name != "WAITING"]
    template = next(t for t in reversed(trials) if t.state.name == "COMPLETE")

    def tpe() -> Any:
        return optuna.samplers.TPESampler(seed=1, multivariate=True, group=True,
                                          constant_liar=True)

    copies = {}
    for kind, sampler in (("capped", RecentHistory(tpe())), ("all", tpe())):
        copy = optuna.create_study(directions=[d for d in optuna.load_study(
            study_name=name, storage=url).directions], sampler=sampler)
        copy.add_trials(trials)
        copies[kind] = copy
    seconds: dict[str, list[float]] = {"capped": [], "all": []}
    for _ in range(asks):
        for kind, copy in copies.items():
            start = time.perf_counter()
            trial = copy.ask(template.distributions)
            seconds[kind].append(time.perf_counter() - start)
            copy.tell(trial, state=optuna.trial.TrialState.FAIL)
    return {f"{kind}_seconds": median(values) for kind, values in seconds.items()} | {
        f"{kind}_spread": spread(values) or 0.0 for kind, values in seconds.items()}


def commands(url: str, tracking: str, name: str, folder: Path, repeats: int
             ) -> dict[str, list[float]]:
    times: dict[str, list[float]] = {command: [] for command in COMMANDS}
    for repeat in range(repeats):
        for command, args in COMMANDS.items():
            extra = ["--tracking-uri", tracking] if command == "report" else []
            output = ["-o", str(folder / f"{command}-{repeat}")] if command != "status" else []
            timed = run_timed([SWEEP, *args, name, "--storage", url, *extra, *output],
                              cwd=folder, timeout=1800)
            times[command].append(timed.seconds)
    return times


def restart(url: str, tracking: str, name: str, folder: Path) -> float:
    """A worker process that runs one trial, start to exit."""
    return real_window(url, tracking, name, 1, folder)["process_seconds"]


def main() -> None:
    import optuna

    optuna.logging.set_verbosity(optuna.logging.ERROR)
    args = parser(__doc__ or "").parse_args()
    started = time.perf_counter()
    sizes = (30, 300) if args.quick else (100, 1000, 3000, 10_000)
    window = 30 if args.quick else 100
    repeats = 1 if args.quick else 3
    name, small = "scale", "scale_small"
    pair_window = 15 if args.quick else 25
    pairs = 2 if args.quick else PAIRS
    by_size: dict[int, dict[str, Any]] = {}
    with postgres_database("scale_optuna") as url, \
            postgres_database("scale_small") as small_url, \
            postgres_database("scale_mlflow") as mlflow_db, scratch("scale") as folder, \
            mlflow_server(folder, mlflow_db) as tracking, \
            autoanalyze(url, small_url, mlflow_db):
        for study_name, storage in ((name, url), (small, small_url)):
            study_file = write_yaml(folder / f"{study_name}.yaml",
                                    coordination_spec(study_name, 10 * sizes[-1]))
            run_timed([SWEEP, "create", str(study_file), "--storage", storage,
                       "--tracking-uri", tracking], cwd=folder)
        # The small study: the first size's trials, real ones; the reference of the ratio.
        small_start = real_window(small_url, tracking, small, sizes[0], folder)
        for index, size in enumerate(sizes):
            entry: dict[str, Any] = {}
            if index:  # the first size is real trials only: the templates of the copies
                entry["fill"] = fill(url, name, size - window)
            entry["window"] = real_window(url, tracking, name, window, folder)
            entry["tpe"] = tpe_cost(url, name, 5 if args.quick else 15)
            entry["restart_seconds"] = restart(url, tracking, name, folder)
            entry["commands"] = commands(url, tracking, name, folder, repeats)
            entry["trials"] = len(_trials(url, name))
            by_size[size] = entry
            print(f"{entry['trials']} trials: {entry['window']['per_trial_seconds'] * 1000:.0f}"
                  f" ms per trial ({entry['window']['reruns']} re-runs in the window, "
                  f"{entry['window']['owed_after']} owed after it),"
                  f" TPE {entry['tpe']['capped_seconds'] * 1000:.0f} ms capped /"
                  f" {entry['tpe']['all_seconds'] * 1000:.0f} ms on all, restart "
                  f"{entry['restart_seconds']:.1f} s, commands "
                  f"{ {k: round(median(v), 1) for k, v in entry['commands'].items()} }",
                  flush=True)
        # The ratio: windows of the small and the large study taking turns (ABBA), so that
        # the host's drift (identical windows minutes apart differed by up to 40 % here)
        # falls on both alike; its noise is the spread of the pairs' ratios.
        alternating = []
        for pair in range(pairs):
            order = ((small, small_url), (name, url))
            found = {study_name: real_window(storage, tracking, study_name, pair_window,
                                             folder)
                     for study_name, storage in (order if pair % 2 == 0 else order[::-1])}
            alternating.append({"small": found[small], "large": found[name],
                                "ratio": found[name]["per_trial_seconds"]
                                / found[small]["per_trial_seconds"]})
            print(f"pair {pair + 1}: {found[small]['per_trial_seconds'] * 1000:.0f} ms per "
                  f"trial at {found[small]['trials_in_study']} trials, "
                  f"{found[name]['per_trial_seconds'] * 1000:.0f} ms at "
                  f"{found[name]['trials_in_study']} ({found[small]['reruns']} and "
                  f"{found[name]['reruns']} re-runs of {pair_window})", flush=True)

    first, last = by_size[sizes[0]], by_size[sizes[-1]]
    ratios = [p["ratio"] for p in alternating]
    ratio = median(ratios)
    small_sizes = (small_start["trials_in_study"],
                   alternating[-1]["small"]["trials_in_study"])
    targets = [target(f"scale: per-trial time at {sizes[-1]:,} / at {sizes[0]:,} trials",
                      ratio, TRIAL_RATIO_LIMIT, noise=spread(ratios),
                      definition=f"median over {pairs} alternating pairs of windows "
                                 f"({pair_window} trials each; the small study holding "
                                 f"{small_sizes[0]}-{small_sizes[1]} trials) of the ratio of "
                                 "their median complete-to-complete times of real worker "
                                 "trials (0-s training), whole worker path")]
    for command in COMMANDS:
        values = last["commands"][command]
        targets.append(target(f"scale: sweep {command} at {sizes[-1]:,} trials",
                              median(values), COMMAND_LIMIT, unit="s",
                              noise=spread(values), definition="whole process, median"))
    print_table("per size", ["trials", "per trial (ms)", "TPE capped (ms)", "TPE all (ms)",
                             "restart (s)", *[f"{c} (s)" for c in COMMANDS]],
                [[e["trials"], e["window"]["per_trial_seconds"] * 1000,
                  e["tpe"]["capped_seconds"] * 1000, e["tpe"]["all_seconds"] * 1000,
                  e["restart_seconds"], *[median(e["commands"][c]) for c in COMMANDS]]
                 for e in by_size.values()])
    print_targets(targets)
    write_result(
        "scale_trials", quick=args.quick, started=started,
        parameters={"sizes": list(sizes), "window": window, "repeats": repeats,
                    "pairs": pairs, "pair_window": pair_window,
                    "training_seconds": 0},
        raw={str(size): entry for size, entry in by_size.items()}
        | {"small_start": small_start, "pairs": alternating},
        medians={f"{size}_{key}": value for size, entry in by_size.items() for key, value in
                 (("per_trial_ms", entry["window"]["per_trial_seconds"] * 1000),
                  ("tpe_capped_ms", entry["tpe"]["capped_seconds"] * 1000),
                  ("tpe_all_ms", entry["tpe"]["all_seconds"] * 1000),
                  ("restart_s", entry["restart_seconds"]),
                  *((f"{c}_s", median(entry["commands"][c])) for c in COMMANDS))},
        ratios={"per_trial_large_over_small": ratio,
                "per_trial_pairs": ratios,
                "per_trial_last_over_first_window": last["window"]["per_trial_seconds"]
                / first["window"]["per_trial_seconds"],
                "tpe_capped_last_over_first": last["tpe"]["capped_seconds"]
                / first["tpe"]["capped_seconds"],
                "tpe_all_last_over_first": last["tpe"]["all_seconds"]
                / first["tpe"]["all_seconds"],
                "restart_last_over_first": last["restart_seconds"] / first["restart_seconds"]},
        targets=targets,
        notes=["trials beyond the real windows are copies of real trials written through "
               "Optuna's storage; their MLflow run ids point at the real trials' runs",
               "the per-trial ratio: windows of a small study (its own database) and of "
               "the large one taking turns; its noise: the spread of the pairs' ratios",
               "planner statistics kept as autovacuum keeps them (bench/_common.py "
               "autoanalyze) where the server runs no autovacuum"])


if __name__ == "__main__":
    main()
