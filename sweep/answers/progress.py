"""The confirmation's progress: one bar over all its trainings (configurations × seeds)
on a terminal, one line per training elsewhere."""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn


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
