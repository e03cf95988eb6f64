"""The study's life: checking a study file before anything is written, creating or
resuming the study (its baselines, its seed replicates, a warm start), loading it by
name, the study file's git commit, and a worker's identity."""
