"""sweep/answers/painter.py: the report's pictures drawn in a second process."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import optuna
from conftest import tiny_study

from sweep.answers import plots
from sweep.answers.drawn import pictured
from sweep.answers.painter import Painter, Scene, paint
from sweep.spec import parse_spec

NAMES = ["param_importances", "parallel_coordinates", "slice"]


def _scene(out: Path) -> Scene:
    """Twelve completed trials of two searched coefficients, built without training."""
    study = optuna.create_study(direction="maximize", study_name="painted")
    distributions = {"l1": optuna.distributions.FloatDistribution(1e-6, 1e-1, log=True),
                     "l2": optuna.distributions.FloatDistribution(1e-6, 1e-1, log=True)}
    for i in range(12):
        study.add_trial(optuna.trial.create_trial(
            params={"l1": 10 ** (-6 + (i * 5) % 12 / 3), "l2": 10 ** (-6 + i / 3)},
            distributions=distributions, value=0.5 + i / 100,
            user_attrs={"placement": {"first": ["kernel"]}}))
    out.mkdir(parents=True, exist_ok=True)
    return Scene("painted", tuple(study.directions),
                 [pictured(t) for t in study.get_trials()], None, parse_spec(tiny_study()), out)


def _summary(figures: list) -> list[tuple[str, str | None, str | None, bool]]:
    return [(f.name, f.skipped, f.png, bool(f.chart)) for f in figures]


def test_the_painter_draws_in_its_own_process_what_this_process_would(tmp_path: Path) -> None:
    here = paint(_scene(tmp_path / "here"))
    with Painter(apart=True) as painter:
        assert painter.apart
        job = painter.submit(paint, _scene(tmp_path / "apart"))
        box = painter.submit(plots.objective_by_placement,
                             [("none", [0.5, 0.6]), ("first", [0.7])],
                             parse_spec(tiny_study()), tmp_path / "apart")
        apart = job.result()
        assert job.future is not None and job.future.done()  # answered by the painter
        assert box.result().png == "objective_by_placement.png"
    assert _summary(apart) == _summary(here)
    assert [f.name for f in apart] == NAMES
    assert all(f.skipped is None for f in apart)
    for name in [*NAMES, "objective_by_placement"]:
        png = tmp_path / "apart" / f"{name}.png"
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", name


def test_a_dead_painter_costs_time_never_a_picture(tmp_path: Path) -> None:
    with Painter(apart=True) as painter:
        process = painter._process
        assert process is not None
        process.kill()
        process.wait()
        figures = painter.submit(paint, _scene(tmp_path)).result()  # drawn here instead
    assert [f.name for f in figures] == NAMES and all(f.skipped is None for f in figures)
    assert (tmp_path / "slice.png").is_file()


def test_a_job_the_painter_has_not_begun_is_drawn_here(tmp_path: Path) -> None:
    gate = tmp_path / "gate"
    os.mkfifo(gate)
    with Painter(apart=True) as painter:
        held = painter.submit(gate.read_text)  # the painter waits on the gate
        queued = painter.submit(os.getpid)
        assert queued.steal()  # not begun: taken back, and drawn here
        assert queued.result() == os.getpid()
        gate.write_text("open")  # returns once the painter reads it
        assert held.result() == "open" and held.future is not None  # the painter's answer
        assert not held.steal()


def test_closing_stops_the_painter_at_once(tmp_path: Path) -> None:
    painter = Painter(apart=True)
    process = painter._process
    assert process is not None
    painter.submit(paint, _scene(tmp_path))  # queued while the painter still imports
    painter.close()
    assert process.poll() is not None  # killed, not waited for
    assert not painter.apart


def test_a_script_without_a_main_guard_is_not_run_again(tmp_path: Path) -> None:
    """multiprocessing's spawn would import the caller's script in the painter: a script
    that runs a study and then reports, unguarded, would run its study twice."""
    script = tmp_path / "unguarded.py"
    script.write_text(textwrap.dedent(f"""
        from pathlib import Path
        with open({str(tmp_path / "runs.txt")!r}, "a") as runs:
            runs.write("ran\\n")
        from sweep.answers.painter import Painter
        from sweep.answers.plots import objective_by_placement
        from sweep.spec import parse_spec
        from conftest import tiny_study
        with Painter(apart=True) as painter:
            figure = painter.submit(objective_by_placement, [("none", [0.5, 0.6])],
                                    parse_spec(tiny_study()), Path({str(tmp_path)!r})).result()
        print(figure.png)
    """))
    tests = str(Path(__file__).parents[1])
    done = subprocess.run([sys.executable, str(script)], capture_output=True, text=True,
                          timeout=300, env={**os.environ, "PYTHONPATH": tests})
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "objective_by_placement.png"
    assert (tmp_path / "runs.txt").read_text() == "ran\n"


def test_a_process_that_draws_already_draws_itself() -> None:
    import matplotlib.pyplot  # noqa: F401
    import optuna.visualization  # noqa: F401

    with Painter() as painter:
        assert not painter.apart


def test_what_the_painter_says_on_stderr_shows_only_with_verbose(tmp_path: Path) -> None:
    script = tmp_path / "chatty.py"
    script.write_text(textwrap.dedent("""
        import traceback
        from sweep.answers.painter import Painter
        with Painter(apart=True) as painter:
            painter.submit(traceback.print_stack).result()  # prints in the painter
        print("done")
    """))
    for verbose, shown in (("", False), ("1", True)):
        done = subprocess.run([sys.executable, str(script)], capture_output=True, text=True,
                              timeout=300, env={**os.environ, "SWEEP_VERBOSE": verbose})
        assert done.returncode == 0 and done.stdout == "done\n", done.stderr
        assert ("File " in done.stderr) is shown, done.stderr
