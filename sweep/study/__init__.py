"""The Optuna study: storage, exact budget, creation and loading, limits, the read-only
views, dead workers' trials, the check of a study file before anything is written."""
