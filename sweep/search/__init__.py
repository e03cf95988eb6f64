"""Search control: what a configuration is (``grouping``), seed racing and the seed
noise, the study's limits (failures, wall time, the noise stop), the sampler's view of
the history, the pruners, and trials given back (reaped from dead workers, re-queued
after a stop)."""
