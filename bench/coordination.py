"""coordination: what regsweep costs per trial around an instant training, against plain
Optuna and against Optuna + MLflow wired by hand, on the same PostgreSQL server.

Three ways of running N trials that train nothing (the objective returns at once), one
process each, in turns within each of 3 rounds (a different one first each round):

  (r) regsweep   the real `sweep worker` (bench/coord_worker.py: the training replaced by
                 an instant return with the metrics a real trial logs): stored spec, TPE,
                 heartbeats, the exact-budget lock, duplicate claims, every user attribute
                 of a trial, an MLflow run per trial with params, tags, 3 epochs of
                 per-epoch metrics (24 each) and 15 final figures;
  (o) optuna     ``study.optimize`` with the same sampler (TPE, multivariate, group,
                 constant_liar, seed 0) on the same space and the same storage server, no
                 MLflow: the floor;
  (h) by hand    (o) plus MLflow as its integration wires it:
                 ``optuna_integration.MLflowCallback`` (a run per trial with its params and
                 value) and, inside the objective (``track_in_mlflow``), the same per-epoch
                 and final metrics regsweep logs, one ``log_metrics`` per epoch and one for
                 the final figures, as a user writes it. MLflow is the same PostgreSQL
                 database for (r) and (h).

Per-trial cost: the median complete-to-complete time between consecutive trials of one
process (Optuna's own timestamps; the first trial, which pays imports, left out). Ratios
are per round, medians over rounds, noise their spread. Goal (issue 36): (r) / (h) <= 1.

    .venv/bin/python bench/coordination.py [--quick]
"""

from __future__ import annotations

import itertools
import subprocess
import sys
import time
from typing import Any

from _common import (
    BENCH,
    PYTHON,
    SWEEP,
    bench_env,
    median,
    parser,
    postgres_database,
    print_table,
    print_targets,
    run_timed,
    scratch,
    seconds_between,
    spread,
    study_trials,
    target,
    write_result,
    write_yaml,
)
from coord_worker import epoch_metrics, final_figures
from workers import coordination_spec

LIMIT = 1.0  # regsweep's per-trial cost at or below the hand wiring's
EPOCHS = coordination_spec("epochs", 1)["train"]["epochs"]  # as regsweep logs


def child(mode: str, storage_url: str, tracking_uri: str, name: str, n_trials: int) -> None:
    """(o) or (h): N instant trials with plain Optuna, in this process."""
    import warnings
    import zlib

    import optuna

    from sweep.storage.connect import open_storage

    optuna.logging.set_verbosity(optuna.logging.ERROR)
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
    sampler = optuna.samplers.TPESampler(seed=0, multivariate=True, group=True,
                                         constant_liar=True)
    study = optuna.create_study(study_name=name, storage=open_storage(storage_url),
                                sampler=sampler, direction="maximize")

    def instant(trial: optuna.Trial) -> float:
        placement = trial.suggest_categorical("placement", ["first", "last", "all"])
        l1 = trial.suggest_float("l1", 1e-6, 1e-2, log=True)
        l2 = trial.suggest_float("l2", 1e-6, 1e-2, log=True)
        return zlib.crc32(repr((placement, l1, l2)).encode()) / 2**32

    if mode == "optuna":
        study.optimize(instant, n_trials=n_trials)
        return
    import mlflow
    from optuna_integration.mlflow import MLflowCallback

    callback = MLflowCallback(tracking_uri=tracking_uri, metric_name="val_accuracy")

    @callback.track_in_mlflow()
    def tracked(trial: optuna.Trial) -> float:
        score = instant(trial)
        for step in range(1, EPOCHS + 1):
            mlflow.log_metrics(epoch_metrics(score), step=step)
        mlflow.log_metrics(final_figures(score))
        return score

    study.optimize(tracked, n_trials=n_trials, callbacks=[callback])


def per_trial(trials: list[Any]) -> float:
    completes = sorted(t.datetime_complete for t in trials if t.datetime_complete)
    return median([seconds_between(a, b) for a, b in itertools.pairwise(completes[1:])])


def measure(mode: str, url: str, tracking: str, n_trials: int, round_: int) -> dict[str, Any]:
    name = f"coordination-{mode}-r{round_}"
    with scratch("coordination") as folder:
        begin = time.perf_counter()
        if mode == "regsweep":
            study_file = write_yaml(folder / "study.yaml", coordination_spec(name, n_trials))
            run_timed([SWEEP, "create", str(study_file), "--storage", url, "--tracking-uri",
                       tracking], cwd=folder)
            begin = time.perf_counter()
            command = [PYTHON, str(BENCH / "coord_worker.py"), url, tracking, name, "0"]
        else:
            command = [PYTHON, str(BENCH / "coordination.py"), "--child", mode, url, tracking,
                       name, str(n_trials)]
        done = subprocess.run(command, env=bench_env(SWEEP_WORKER_INDEX="1"), cwd=folder,
                              capture_output=True, text=True, timeout=1800)
        seconds = time.perf_counter() - begin
    if done.returncode:
        raise RuntimeError(f"{mode} failed: {done.stderr[-3000:]}")
    trials = study_trials(url, name)
    if len(trials) != n_trials or any(t.state.name != "COMPLETE" for t in trials):
        raise RuntimeError(f"{mode}: {len(trials)} trials, states "
                           f"{sorted({t.state.name for t in trials})}")
    return {"per_trial_seconds": per_trial(trials), "process_seconds": seconds,
            "trials": len(trials), "mlflow_runs": _runs(tracking, name, mode)}


def _runs(tracking: str, name: str, mode: str) -> int | None:
    """MLflow runs the mode wrote for its trials (checked: (r) and (h) log one per trial)."""
    if mode == "optuna":
        return None
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking)
    experiment = client.get_experiment_by_name(name)
    runs = client.search_runs([experiment.experiment_id], max_results=10_000)
    return sum(1 for r in runs if r.data.tags.get("sweep.role") != "study")


def main() -> None:
    if len(sys.argv) > 2 and sys.argv[1] == "--child":
        child(sys.argv[2], sys.argv[3], sys.argv[4], sys.argv[5], int(sys.argv[6]))
        return
    args = parser(__doc__ or "").parse_args()
    started = time.perf_counter()
    n_trials, rounds = (6, 1) if args.quick else (40, 3)
    modes = ["regsweep", "optuna", "hand"]
    raw: dict[str, list[dict[str, Any]]] = {mode: [] for mode in modes}
    with postgres_database("coordination_optuna") as url, \
            postgres_database("coordination_mlflow") as tracking:
        for round_ in range(rounds):
            for mode in modes[round_ % 3:] + modes[:round_ % 3]:
                result = measure(mode, url, tracking, n_trials, round_)
                raw[mode].append(result)
                print(f"round {round_ + 1}/{rounds} {mode}: "
                      f"{result['per_trial_seconds'] * 1000:.1f} ms per trial", flush=True)
    for mode in ("regsweep", "hand"):
        if any(r["mlflow_runs"] != n_trials for r in raw[mode]):
            raise SystemExit(f"{mode} did not log one MLflow run per trial: "
                             f"{[r['mlflow_runs'] for r in raw[mode]]}")
    medians = {f"{mode}_per_trial_ms": 1000 * median([r["per_trial_seconds"] for r in raw[mode]])
               for mode in modes}
    per_round = {other: [r["per_trial_seconds"] / o["per_trial_seconds"]
                         for r, o in zip(raw["regsweep"], raw[other], strict=True)]
                 for other in ("hand", "optuna")}
    ratios = {f"regsweep/{other}": median(values) for other, values in per_round.items()}
    targets = [target("coordination: regsweep's cost per instant trial / Optuna + MLflow by "
                      "hand (MLflowCallback), PostgreSQL", ratios["regsweep/hand"], LIMIT,
                      unit="x", noise=spread(per_round["hand"]),
                      definition="median complete-to-complete time per trial; noise: the "
                                 "largest distance of a round's ratio from their median")]
    labels = {"regsweep": "(r) sweep worker", "optuna": "(o) plain Optuna",
              "hand": "(h) Optuna + MLflowCallback"}
    print_table(f"coordination: {n_trials} instant trials, {rounds} rounds (median)",
                ["", "ms per trial"], [[labels[m], medians[f"{m}_per_trial_ms"]] for m in modes])
    print_table("ratios (same run)", ["ratio", "value"], [[k, v] for k, v in ratios.items()])
    print_targets(targets)
    write_result(
        "coordination", quick=args.quick, started=started,
        parameters={"trials": n_trials, "rounds": rounds, "epochs_logged": EPOCHS,
                    "stores": "PostgreSQL for Optuna and MLflow (MLflow's SQLAlchemy store)",
                    "sampler": "TPE multivariate, group, constant_liar, seed 0"},
        raw=raw, medians=medians, ratios=ratios, targets=targets)


if __name__ == "__main__":
    main()
