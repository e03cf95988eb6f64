"""sweep.tracking.spool: runs kept on local disk while MLflow is down, replayed once, in
order, resuming where an interrupted replay stopped."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from sweep.tracking import spool


@pytest.fixture
def folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("SWEEP_SPOOL_DIR", str(tmp_path / "spool"))
    return tmp_path / "spool"


def _created(study: str = "s", number: int = 3) -> spool.Spool:
    return spool.Spool.for_run(None, {
        "op": "create_run", "tracking_uri": "https://alice:hunter2@mlflow.example/",
        "tags": {"optuna.study_name": study, "optuna.trial_number": str(number)}})


def test_a_spool_file_is_private_ordered_and_holds_no_password(folder: Path) -> None:
    run = _created()
    run.append({"op": "log", "metrics": [["loss", 0.5, 1, 1]]})
    run.append({"op": "finish", "state": "FINISHED"})
    assert folder.stat().st_mode & 0o777 == 0o700
    assert run.path.stat().st_mode & 0o777 == 0o600
    lines = [json.loads(line) for line in run.path.read_text().splitlines()]
    assert [line["op"] for line in lines] == ["create_run", "log", "finish"]
    assert lines[0]["tracking_uri"] == "https://alice:***@mlflow.example/"
    assert "hunter2" not in run.path.read_text()
    existing = spool.Spool.for_run("abc123", None, "postgresql://u:pw@db/x")
    assert json.loads(existing.path.read_text()) == {
        "op": "run", "run_id": "abc123", "tracking_uri": "postgresql://u:***@db/x"}
    assert set(spool.pending()) == {run.path, existing.path}
    assert spool.spooled_studies() == {"s"}  # only created runs need their ids linked


def test_replay_applies_each_operation_once_even_when_interrupted(folder: Path) -> None:
    run = _created(number=7)
    for step in (1, 2, 3):
        run.append({"op": "log", "metrics": [["loss", 1.0 / step, 0, step]]})
    applied: list[int] = []

    def resolve(first: dict[str, Any]) -> tuple[Any, str]:
        assert first["op"] == "create_run"
        return "client", "run-1"

    def apply_failing_at_step_3(client: Any, run_id: str, op: dict[str, Any]) -> None:
        step = op["metrics"][0][3]
        if step == 3:
            raise ConnectionError("MLflow went away again")
        applied.append(step)

    with pytest.raises(ConnectionError):
        spool.replay(run.path, resolve_run=resolve, apply=apply_failing_at_step_3)
    assert applied == [1, 2] and run.path.exists()  # kept, with its progress

    def apply(client: Any, run_id: str, op: dict[str, Any]) -> None:
        assert (client, run_id) == ("client", "run-1")
        applied.append(op["metrics"][0][3])

    done = spool.replay(run.path, resolve_run=resolve, apply=apply)
    assert applied == [1, 2, 3]  # steps 1 and 2 were not logged twice
    assert (done.run_id, done.operations, done.study_name, done.trial_number) == (
        "run-1", 3, "s", 7)
    assert spool.pending() == [] and list(folder.iterdir()) == []


def test_a_spool_folder_under_a_file_is_refused(tmp_path: Path,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    from sweep.errors import SpecError

    (tmp_path / "f").write_text("")
    monkeypatch.setenv("SWEEP_SPOOL_DIR", str(tmp_path / "f" / "spool"))
    with pytest.raises(SpecError, match="SWEEP_SPOOL_DIR"):
        spool.check_spool_dir()
    monkeypatch.setenv("SWEEP_SPOOL_DIR", str(tmp_path / "new" / "spool"))
    spool.check_spool_dir()  # not there yet, but can be created
    assert not (tmp_path / "new").exists()  # checking writes nothing
