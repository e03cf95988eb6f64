"""One worker of bench/workers.py's coordination runs: the worker side of a sweep worker
(the study loaded from the database with its stored spec, this worker's sampler and seed,
heartbeats, the exact-budget storage, the search space suggested trial by trial) with a
trivial objective that sleeps instead of training. It stops when the budget is spent.

    python bench/coord_worker.py STORAGE_URL STUDY_NAME SLEEP_SECONDS WORKER_INDEX
"""

from __future__ import annotations

import sys
import time
import zlib
from typing import Any


def main() -> None:
    storage_url, name, sleep, index = sys.argv[1], sys.argv[2], float(sys.argv[3]), int(
        sys.argv[4])
    import optuna

    from sweep.budget import is_budget_exhausted
    from sweep.storage import open_storage
    from sweep.study import configure, load
    from sweep.validate import check_study
    from sweep.worker import enable_heartbeats, worker_name

    optuna.logging.set_verbosity(optuna.logging.ERROR)
    storage = open_storage(storage_url)
    study, spec = load(storage, name, storage_url=storage_url)
    space = check_study(spec)
    configure(study, spec, space, worker_index=index)
    enable_heartbeats(study._storage, spec, None)
    me = worker_name()

    def objective(trial: Any) -> float:
        placement = space.suggest(trial)
        # The attributes a real trial records before it trains.
        trial.set_user_attr("placement", placement)
        trial.set_user_attr("seed", trial.number)
        trial.set_user_attr("worker", me)
        time.sleep(sleep)
        # A value that depends on the parameters, so that TPE has something to model.
        return zlib.crc32(repr(sorted(trial.params.items())).encode()) / 2**32

    try:
        study.optimize(objective, n_trials=None, gc_after_trial=False)
    except Exception as error:
        if not is_budget_exhausted(error):
            raise


if __name__ == "__main__":
    main()
