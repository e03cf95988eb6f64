"""What a study has found, read-only: the one ranking of its configurations, the best
rows, the no-regularization reference, status, export and the list of studies."""
