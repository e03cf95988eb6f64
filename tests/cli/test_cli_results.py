"""sweep.cli.results and sweep.cli.options: every command that prints results takes
``--format table|json|csv`` and ``-o/--output``; the old spellings (``--json``, report's
``--out``) still work for one release and say so on stderr. On the hand-made study of
test_results (no training), read back from the files and streams the commands write."""

from __future__ import annotations

import csv
import inspect
import io
import json
from pathlib import Path
from typing import Any

from click.testing import CliRunner
from hand_made import timed_study

from sweep.cli import cli


def _invoke(*args: str):
    # stdout and stderr apart: click 8.1 (our floor) mixes them unless told not to.
    runner = CliRunner(mix_stderr=False) if "mix_stderr" in inspect.signature(
        CliRunner.__init__).parameters else CliRunner()
    return runner.invoke(cli, list(args), catch_exceptions=False)


def _url(fixture: tuple[Any, Any, Any]) -> str:
    storage = fixture[2]
    return getattr(storage, "url", None) or storage._backend.url


def test_best_as_csv_on_stdout(made: tuple[Any, Any, Any]) -> None:
    result = _invoke("best", "made", "--storage", _url(made), "--top", "2", "--format", "csv")
    assert result.exit_code == 0, result.output
    rows = list(csv.DictReader(io.StringIO(result.stdout)))
    assert [(r["number"], r["value"], r["mlflow_run_id"], round(float(r["vs_baseline"]), 6))
            for r in rows] == [("1", "0.75", "r1-synced", 0.05), ("2", "0.72", "r2", 0.02)]


def test_list_as_json_into_a_file(made: tuple[Any, Any, Any], tmp_path: Path) -> None:
    target = tmp_path / "out" / "studies.json"
    result = _invoke("list", "--storage", _url(made), "--format", "json", "-o", str(target))
    assert result.exit_code == 0, result.output
    assert result.stdout == ""
    assert f"wrote 1 studies to {target}" in result.stderr
    assert json.loads(target.read_text()) == [{
        "study": "made", "trials": 7, "budget": 6, "finished": 3, "requeued": 2,
        "complete": 3, "pruned": 0, "fail": 2, "running": 1, "direction": "maximize",
        "best_value": 0.75}]
    assert not list(target.parent.glob(".*partial"))


def test_status_as_csv_is_one_flat_row(made: tuple[Any, Any, Any]) -> None:
    result = _invoke("status", "made", "--storage", _url(made), "--format", "csv")
    assert result.exit_code == 0, result.output
    (row,) = list(csv.DictReader(io.StringIO(result.stdout)))
    assert (row["study"], row["finished"], row["states:COMPLETE"], row["states:WAITING"],
            row["best_trial"]) == ("made", "3", "3", "1", "1")
    assert json.loads(row["workers"])[0]["host"] == "node2"


def test_status_says_time_left_or_that_no_worker_is_running(tmp_path: Path) -> None:
    for running, said in (
            (True, "8.0 trials/hour, about 45m0"),
            (False, "12.0 trials/hour; no trial is running, start a worker to go on: "
                    "sweep worker timed --storage 'sqlite:///")):
        folder = tmp_path / str(running)
        folder.mkdir()
        timed_study(folder, running)
        result = _invoke("status", "timed", "--storage", f"sqlite:///{folder / 's.db'}")
        assert result.exit_code == 0, result.output
        (line,) = [line for line in result.stdout.splitlines() if "trials/hour" in line]
        assert line.startswith(said), line


def test_export_as_a_table_into_a_file(made: tuple[Any, Any, Any],
                                      tmp_path: Path) -> None:
    target = tmp_path / "trials.txt"
    result = _invoke("export", "made", "--storage", _url(made), "--format", "table",
                     "--output", str(target))
    assert result.exit_code == 0, result.output
    text = target.read_text()
    assert "made: 7 trials" in text
    assert "dense: kernel l2=0.001" in text and "r1-synced" in text and "WAITING" in text


def test_export_writes_csv_by_default(made: tuple[Any, Any, Any]) -> None:
    result = _invoke("export", "made", "--storage", _url(made))
    rows = list(csv.DictReader(io.StringIO(result.stdout)))
    assert [r["state"] for r in rows] == ["COMPLETE"] * 3 + ["FAIL"] * 2 + [
        "RUNNING", "WAITING"]


def test_the_old_json_flag_still_works_and_says_it_is_deprecated(
        made: tuple[Any, Any, Any]) -> None:
    old = _invoke("status", "made", "--storage", _url(made), "--json")
    new = _invoke("status", "made", "--storage", _url(made), "--format", "json")
    assert old.exit_code == new.exit_code == 0
    assert json.loads(old.stdout)["states"] == json.loads(new.stdout)["states"] == {
        "COMPLETE": 3, "PRUNED": 0, "FAIL": 2, "RUNNING": 1, "WAITING": 1}
    assert "warning: --json is deprecated" in old.stderr and "--format json" in old.stderr
    assert new.stderr == ""


def test_the_old_out_option_of_report_names_the_new_one(tmp_path: Path) -> None:
    (tmp_path / "s.yaml").write_text("a file, not a folder\n")
    result = _invoke("report", "any", "--out", str(tmp_path / "s.yaml" / "r"),
                     "--no-confirm")
    assert result.exit_code == 2
    assert "warning: --out is deprecated" in result.stderr
    assert result.stderr.splitlines()[-1].startswith("error: --output:")


def test_a_read_command_process_ends_with_its_whole_answer_flushed(
        made: tuple[Any, Any, Any], tmp_path: Path) -> None:
    """The sweep process skips Python's teardown after a read command (sweep.cli.group
    leave): what it printed into a pipe, and the exit handlers, must all still be there."""
    import subprocess
    import sys

    marker, torn = tmp_path / "atexit.txt", tmp_path / "teardown.txt"
    # A real process, as the console script runs: a handler registered before the
    # command, as MLflow and logging register theirs, and an object only teardown frees.
    code = ("import atexit, sys; from pathlib import Path; "
            f"atexit.register(lambda: Path({str(marker)!r}).write_text('ran')); "
            f"Freed = type('Freed', (), {{'__del__': lambda self, touch=open, path={str(torn)!r}: "
            "touch(path, 'w').close()}); kept = Freed(); "
            "from sweep.cli import main; sys.argv[0] = 'sweep'; main()")
    done = subprocess.run([sys.executable, "-c", code, "export", "made", "--storage",
                           _url(made), "--format", "json"], capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr
    assert [row["state"] for row in json.loads(done.stdout)] == [
        "COMPLETE"] * 3 + ["FAIL"] * 2 + ["RUNNING", "WAITING"]
    assert marker.read_text() == "ran"
    assert not torn.exists()  # the teardown was skipped
    # Bad input exits as ever (2), through the normal exit and its teardown.
    marker.unlink()
    done = subprocess.run([sys.executable, "-c", code, "best", "no-such-study", "--storage",
                           _url(made)], capture_output=True, text=True, timeout=300)
    assert done.returncode == 2 and "no-such-study" in done.stderr
    assert marker.read_text() == "ran" and torn.exists()


def test_leaving_waits_for_a_thread_that_is_still_running(tmp_path: Path) -> None:
    import subprocess
    import sys

    marker = tmp_path / "thread.txt"
    # The thread writes the marker once it reads a line, which this test sends only after
    # the process has said it is leaving: os._exit would end it before.
    code = ("import sys, threading; from pathlib import Path; "
            "from sweep.cli.group import leave; "
            f"work = threading.Thread(target=lambda: (sys.stdin.readline(), "
            f"Path({str(marker)!r}).write_text('done'))); work.start(); "
            "print('leaving', flush=True); leave(3)")
    process = subprocess.Popen([sys.executable, "-c", code], stdin=subprocess.PIPE,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert process.stdout is not None and process.stdin is not None
    assert process.stdout.readline() == "leaving\n"
    _, err = process.communicate("go\n", timeout=300)
    assert process.returncode == 3, err
    assert marker.read_text() == "done"  # a normal exit joined it; os._exit would not
