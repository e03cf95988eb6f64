"""Progress of a worker: a bar for the study and one for the running trial on a terminal,
one line per finished trial otherwise (cluster logs, CI)."""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from sweep.keys import FAIL_REASON


class StudyProgress:
    def __init__(self, *, study_name: str, budget: int, done: int, epochs: int, metric: str,
                 console: Console | None = None, enabled: bool = True):
        self.console = console or Console(stderr=True)
        self.metric = metric
        self.epochs = epochs
        self.budget = budget
        self.done = done
        self.live = enabled and self.console.is_terminal
        self._progress: Progress | None = None
        self._study_task: Any = None
        self._trial_task: Any = None
        self.study_name = study_name
        self._directions: list[Any] | None = None

    def __enter__(self) -> StudyProgress:
        if self.live:
            self._progress = Progress(
                TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                TextColumn("{task.fields[info]}"), TimeElapsedColumn(), console=self.console,
            )
            self._progress.start()
            self._study_task = self._progress.add_task(
                f"study {self.study_name}", total=self.budget, completed=self.done, info="")
        return self

    def __exit__(self, *exc: object) -> None:
        if self._progress is not None:
            self._progress.stop()

    def trial_started(self, number: int, placement: str) -> None:
        if self._progress is None:
            return
        if self._trial_task is not None:
            self._progress.remove_task(self._trial_task)
        self._trial_task = self._progress.add_task(
            f"trial {number}", total=self.epochs, info=placement[:60])

    def epoch(self, number: int, done: int, logs: dict[str, Any]) -> None:
        if self._progress is None or self._trial_task is None:
            return
        value = logs.get(self.metric)
        info = f"{self.metric}={value:.4f}" if value is not None else ""
        self._progress.update(self._trial_task, completed=done, info=info)

    def trial_finished(self, study: Any, trial: Any, trials: list[Any] | None = None
                       ) -> None:
        """An Optuna ``optimize`` callback. The count is the study's, over all workers
        (``[7/20]``: seven of the twenty trials of the budget are done). ``trials``: the
        study's trials if the caller has just read them (each read is a round trip to the
        database or `sweep proxy`)."""
        from sweep.study.create import finished_count

        if trials is None:
            trials = study.get_trials(deepcopy=False)
        self.done = finished_count(study, trials)
        value = "" if not trial.values else f" {self.metric}={trial.values[0]:.4f}"
        reason = trial.user_attrs.get(FAIL_REASON)
        found = self._best(study, trials)
        best = "" if found is None else f" (best {found:.4f})"
        line = (f"trial {trial.number} {trial.state.name}{value}{best}"
                f"{f': {reason}' if reason else ''}")
        if self._progress is not None:
            self._progress.update(self._study_task, completed=self.done, info=best.strip())
            self._progress.console.print(line)
        else:
            self.console.print(f"[{self.done}/{self.budget}] {line}", highlight=False)

    def _best(self, study: Any, trials: list[Any]) -> float | None:
        """``study.best_value`` from trials already read; None with several objectives."""
        from optuna.study import StudyDirection
        from optuna.trial import TrialState

        if self._directions is None:  # a study's directions never change
            self._directions = list(study.directions)
        if len(self._directions) != 1:
            return None
        values = [t.values[0] for t in trials if t.state == TrialState.COMPLETE and t.values]
        if not values:
            return None
        return max(values) if self._directions[0] == StudyDirection.MAXIMIZE else min(values)


class ConfirmProgress:
    """One bar over all confirmation trainings (configs × seeds); lines when no terminal."""

    def __init__(self, total: int, *, console: Console | None = None, enabled: bool = True):
        self.console = console or Console(stderr=True)
        self.total = total
        self.done = 0
        self.enabled = enabled
        self.live = enabled and self.console.is_terminal
        self._progress: Progress | None = None
        self._task: Any = None

    def __enter__(self) -> ConfirmProgress:
        if self.live:
            self._progress = Progress(
                TextColumn("confirming"), BarColumn(), MofNCompleteColumn(),
                TextColumn("{task.fields[info]}"), TimeElapsedColumn(), console=self.console)
            self._progress.start()
            self._task = self._progress.add_task("confirm", total=self.total, info="")
        return self

    def __exit__(self, *exc: object) -> None:
        if self._progress is not None:
            self._progress.stop()

    def step(self, what: str) -> None:
        """Called as each training starts."""
        if self._progress is not None:
            self._progress.update(self._task, completed=self.done, info=what)
        elif self.enabled:
            self.console.print(f"[confirm {self.done + 1}/{self.total}] {what}", highlight=False)
        self.done += 1
