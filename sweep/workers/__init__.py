"""A worker process: the objective, Optuna's optimize loop, the watchdog, re-queueing,
and the launcher of several workers."""
