"""Progress of a worker: a bar for the study and one for the running trial on a terminal,
one line per finished trial otherwise (cluster logs, CI)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from sweep.keys import FAIL_REASON, SEED_VALUE
from sweep.placement.searched import searched_values, searches_regularizers
from sweep.search.grouping import group_label, seed_index
from sweep.spec import StudySpec

if TYPE_CHECKING:
    import optuna
    from optuna.trial import FrozenTrial


class StudyProgress:
    def __init__(self, *, study_name: str, budget: int, done: int, epochs: int, metric: str,
                 spec: StudySpec | None = None, console: Console | None = None,
                 enabled: bool = True):
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
        self.spec = spec
        self._searched: list[Any] | None = None  # the spec's searched values, once read

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

    def trial_finished(self, study: optuna.Study, trial: FrozenTrial,
                       trials: list[FrozenTrial] | None = None) -> list[Any]:
        """An Optuna ``optimize`` callback. The count is the study's, over all workers
        (``[7/20]``: seven of the twenty trials of the budget are done). ``trials``: the
        study's trials if the caller has just read them (each read is a round trip to the
        database or `sweep proxy`). The value shown is the trial's own draw; a re-run
        says whose seed it trained and its configuration's new figure; the best is the
        study's ranking's first configuration with its figure over seeds. Returns that
        ranking (configurations, best first; none with several objectives)."""
        from sweep.study.create import finished_count

        if trials is None:
            trials = study.get_trials(deepcopy=False)
        self.done = finished_count(study, trials)
        ranking = self._ranking(study, trials)
        own = trial.user_attrs.get(SEED_VALUE, trial.values[0] if trial.values else None)
        value = "" if own is None else f" {self.metric}={own:.4f}"
        mine = next((c for c in ranking if any(m.number == trial.number for m in c.members)),
                    None)
        name = ""
        if mine is not None and mine.complete and seed_index(trial):
            name = f" ({mine.rerun_name(trial)})"
            if trial.values:
                value += f", {mine.name} now {mine.figure()}"
        reason = trial.user_attrs.get(FAIL_REASON)
        best = "" if not ranking else f"best {self._named(ranking[0])} {ranking[0].figure()}"
        line = (f"trial {trial.number}{name} {trial.state.name}{value}"
                f"{f' ({best})' if best else ''}{f': {reason}' if reason else ''}")
        if self._progress is not None:
            self._progress.update(self._study_task, completed=self.done, info=best)
            self._progress.console.print(line, highlight=False)
        else:
            # One line per trial, never folded at the terminal's width: logs are grepped.
            self.console.print(f"[{self.done}/{self.budget}] {line}", highlight=False,
                               soft_wrap=True)
        return ranking

    def _named(self, configuration: Any) -> str:
        """``#3``; with a searched regularizer besides the penalties, its family too
        (``#3 (l2 (all) + dropout)``), as the report's rows and verdict name it."""
        if self.spec is None or not configuration.complete:
            return configuration.name
        if self._searched is None:
            self._searched = searched_values(self.spec)
        if not searches_regularizers(self._searched):
            return configuration.name
        label = group_label(configuration.named, self.spec, self._searched)
        return f"{configuration.name} ({label})"

    def _ranking(self, study: optuna.Study, trials: list[FrozenTrial]) -> list[Any]:
        """The study's configurations best first, from trials already read (the one
        ranking, sweep.search.racing.ranked); none with several objectives."""
        if self.spec is None or self.spec.is_multi_objective:
            return []
        from sweep.search.racing import ranked

        return ranked(trials, self.spec, study=study)
