"""Optuna's RDB storage as regsweep uses it: opening it (URLs, engine options, read-only
commands without alembic), the exact study-wide budget and per-study locks in the
database (``BudgetedStorage``), trials read without the ORM, the gRPC proxy with a batch
method, and every part of Optuna outside its public API (``optuna_internals``)."""
