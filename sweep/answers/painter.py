"""The report's pictures, drawn in a second process while the report does the rest.

Most of what ``sweep report`` costs does not grow with the study: importing scikit-learn
(fANOVA's forest, about 1 s), matplotlib and plotly, drawing each picture twice (plotly
and PNG), importing MLflow (about 1 s). The painter, a second process started first,
imports the drawing libraries and scikit-learn while the report reads the study, then
takes the report's picture jobs in order (``sweep.answers.drawn``'s sample: parameter
importances, parallel coordinates, slices; every trial: the history; the placements and
weight curves) while the report loads MLflow and builds its tables. When the report has
nothing else to do, it draws the jobs the painter has not begun, from the back of the
queue (:meth:`Job.steal`): two cores busy to the end, whichever of the two is faster.

A process that has imported the drawing libraries already (a notebook, the test suite)
draws everything itself: a second process would only import them again. A painter that
dies or cannot take a job costs time, never a picture: the job is drawn here.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import pickle
import signal
import subprocess
import sys
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from optuna.study import StudyDirection
from optuna.trial import FrozenTrial

from sweep.answers import plots
from sweep.answers.drawn import Drawn
from sweep.answers.figure import Figure
from sweep.spec import StudySpec

log = logging.getLogger("sweep")

__all__ = ["Job", "Painter", "Scene", "paint", "paint_history"]


@dataclass(frozen=True)
class Scene:
    """What the painter draws from: the sampled trials (as ``drawn.pictured`` keeps
    them; at most ``drawn.MAX_DRAWN``, so that sending them is cheap)."""

    name: str
    directions: tuple[StudyDirection, ...]
    trials: Sequence[FrozenTrial]
    note: str | None  # what a reader should know about the sample
    spec: StudySpec
    out: Path


def paint(scene: Scene) -> list[Figure]:
    """The pictures of the sample: parameter importances, parallel coordinates, slices."""
    sample = Drawn(scene.name, scene.directions, scene.trials)
    spec, out, note = scene.spec, scene.out, scene.note
    return [plots.param_importances(sample, spec, out, note=note),
            plots.parallel_coordinates(sample, spec, out, note=note),
            plots.coefficient_slices(sample, spec, out, note=note)]


def paint_history(scene: Scene) -> list[Figure]:
    """The pictures of every trial: the optimization history, and the Pareto front of a
    study of several objectives."""
    everything = Drawn(scene.name, scene.directions, scene.trials)
    figures = [plots.optimization_history(everything, scene.spec, scene.out)]
    if scene.spec.is_multi_objective:
        figures.append(plots.pareto_front(everything, scene.spec, scene.out))
    return figures


def _warm() -> None:
    """The painter's start: what drawing needs, imported while the report reads."""
    import optuna.importance  # scikit-learn, for fANOVA
    import optuna.visualization
    import optuna.visualization.matplotlib  # noqa: F401

    from sweep.answers.figure import pyplot
    from sweep.storage.connect import quiet_optuna

    pyplot()
    quiet_optuna()


def _drawing_loaded() -> bool:
    return "matplotlib.pyplot" in sys.modules and "optuna.visualization" in sys.modules


def main() -> None:
    """The painter process (started by :class:`Painter`): imports what drawing
    needs, then answers jobs, one pickled ``(function, args)`` on stdin at a time, with a
    pickled ``(True, result)`` or ``(False, "what failed")`` on stdout, until stdin ends."""
    # Ctrl-C reaches the whole process group: the report stops its painter itself.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    # The protocol owns the real stdout; anything a library prints goes to stderr.
    channel = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    _warm()
    requests = sys.stdin.buffer
    with contextlib.suppress(EOFError, BrokenPipeError):  # the report ended or closed us
        while True:
            function, args = pickle.load(requests)
            try:
                answer: tuple[bool, Any] = (True, function(*args))
            except Exception as error:
                answer = (False, f"{type(error).__name__}: {error}")
            pickle.dump(answer, channel, protocol=pickle.HIGHEST_PROTOCOL)
            channel.flush()


_PATH = "SWEEP_PAINTER_PATH"
_START = (f"import json, os, sys; sys.path[:] = json.loads(os.environ['{_PATH}']); "
          "from sweep.answers.painter import main; main()")


@dataclass
class Job:
    """A picture job: its result from the painter, or drawn here if the painter failed or
    never began it (:meth:`steal`)."""

    future: Future[Any] | None
    function: Callable[..., Any]
    args: tuple[Any, ...]
    _answer: tuple[Any] | None = None

    def steal(self) -> bool:
        """Take the job back unless the painter has begun it; it is then drawn here, by
        :meth:`result`. Whether this process draws it."""
        if self.future is not None and self.future.cancel():
            self.future = None
        return self.future is None

    def result(self) -> Any:
        if self._answer is None:
            self._answer = (self._result(),)
        return self._answer[0]

    def _result(self) -> Any:
        if self.future is not None:
            try:
                return self.future.result()
            except Exception as error:  # the painter died, or the job failed there
                log.debug("painter failed (%s); drawing here", error)
        return self.function(*self.args)


class Painter:
    """A second process that draws (``apart``; default: unless this process has the
    drawing libraries loaded already), started at once so that it imports them while the
    caller does other work. Close it (or use it as a context manager) when done.

    A plain ``python -c`` process, not multiprocessing's spawn: spawn runs the caller's
    main script again in the child, which repeats the whole study of a script that calls
    ``report()`` without an ``if __name__ == "__main__"`` guard."""

    def __init__(self, apart: bool | None = None) -> None:
        if apart is None:
            apart = not _drawing_loaded()
        self._process: subprocess.Popen[bytes] | None = None
        self._courier: ThreadPoolExecutor | None = None
        if apart and sys.executable:
            from sweep.training.runtime import VERBOSE

            # The painter imports exactly what this process would (its sys.path). What it
            # says on stderr (a traceback, should it fail) only with `sweep --verbose`:
            # its jobs are then drawn here, and a failing picture says why in the report.
            self._process = subprocess.Popen(
                [sys.executable, "-c", _START], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                stderr=None if os.environ.get(VERBOSE) else subprocess.DEVNULL,
                env={**os.environ, _PATH: json.dumps(sys.path)})
            # One thread carries the jobs to the painter and back, in order: submitting
            # never waits for the painter's imports.
            self._courier = ThreadPoolExecutor(1, thread_name_prefix="sweep-painter")

    @property
    def apart(self) -> bool:
        return self._process is not None

    def _carry(self, function: Callable[..., Any], args: tuple[Any, ...]) -> Any:
        process = self._process
        assert process is not None and process.stdin is not None and process.stdout is not None
        pickle.dump((function, args), process.stdin, protocol=pickle.HIGHEST_PROTOCOL)
        process.stdin.flush()
        done, answer = pickle.load(process.stdout)
        if not done:
            raise RuntimeError(answer)
        return answer

    def submit(self, function: Callable[..., Any], *args: Any) -> Job:
        future = None
        if self._courier is not None:
            future = self._courier.submit(self._carry, function, args)
        return Job(future, function, args)

    def close(self) -> None:
        """Stop the painter now, whatever it is doing: a report that failed early must not
        wait for the painter's imports before it exits."""
        process, courier = self._process, self._courier
        self._process = self._courier = None
        if process is None or courier is None:
            return
        process.kill()  # a courier waiting on it meets the end of its pipes
        process.wait()
        courier.shutdown(wait=True, cancel_futures=True)
        for pipe in (process.stdin, process.stdout):
            if pipe is not None:
                with contextlib.suppress(OSError):
                    pipe.close()

    def __enter__(self) -> Painter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

