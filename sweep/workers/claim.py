"""The duplicate rule at a trial's start: a trial records its configuration (placement
and settings) only once no other trial is training the same one, and a configuration
already trained is not trained again (its figures are reused; sweep.search.grouping says
what makes two trials one configuration)."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from sweep import interrupt
from sweep.keys import PLACEMENT, SETTINGS
from sweep.search.grouping import Configuration, grouped
from sweep.storage import optuna_internals as internals
from sweep.storage.budget import set_user_attrs

if TYPE_CHECKING:
    import optuna


def claim(trial: optuna.Trial, placement: dict, settings: dict, started: dict[str, Any], *,
          on_wait: Callable[[int], None] | None = None, poll: float = 2.0
          ) -> Configuration | None:
    """Record ``started`` (the placement and settings among it) on ``trial`` once no other
    trial is training the same configuration (placement and settings), and return the
    trained configuration it is (its figures are then reused) or None (this trial trains
    it). A trial that samples a
    placement another is still training waits for it: two workers trained no
    regularization side by side (#0 queued, #2 sampled), and seed racing then raced both.
    Checked and recorded under the study's placement lock, so of two workers sampling
    the same placement at once, one trains and the other waits; behind `sweep proxy`
    (no lock on this side) both may rarely train. ``on_wait``: told the number of the
    trial waited for, once."""
    import contextlib

    from sweep.storage.budget import budgeted_backend

    backend = budgeted_backend(internals.storage(trial.study))
    waited: int | None = None
    while True:
        lock = backend.study_lock(internals.study_id(trial.study), "placement") \
            if backend is not None else contextlib.nullcontext()
        with lock:
            earlier = _same_config(trial, placement, settings)
            training = None if earlier is not None else _training(trial, placement, settings)
            if training is None:
                set_user_attrs(trial, started)
                return earlier
        if waited != training.number and on_wait is not None:
            on_wait(training.number)
        waited = training.number
        interrupt.sleep(poll)  # a stop request ends the wait (the caller re-queues)


def _training(trial: optuna.Trial, placement: dict, settings: dict) -> Any:
    """Another RUNNING trial that has claimed this configuration (recorded it), or None."""
    import optuna

    return next((other for other in trial.study.get_trials(
        deepcopy=False, states=(optuna.trial.TrialState.RUNNING,))
        if other.number != trial.number and other.user_attrs.get(PLACEMENT) == placement
        and (other.user_attrs.get(SETTINGS) or {}) == settings), None)


def _same_config(trial: optuna.Trial, placement: dict, settings: dict) -> Configuration | None:
    """The study's trained configuration with this placement (the duplicate rule is the
    grouping's: sweep.search.grouping), or None. Two workers may each have trained it as a
    configuration of its own before either finished: the one measured on the most seeds
    stands for it, then the earlier."""
    study = trial.study
    same = [c for c in grouped(study, study.get_trials(deepcopy=False))
            if c.complete and c.placement == placement and c.settings == settings]
    return max(same, key=lambda c: (c.n, -c.key), default=None)
