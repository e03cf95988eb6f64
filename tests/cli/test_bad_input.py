"""Bad input is refused before anything is written: exit 2, one line naming the field and
the value, no traceback, and the folder exactly as it was (no study database, no MLflow
store, no spool) — for the study file, its data and model, the flags and the environment.
"""

from __future__ import annotations

import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from click.testing import CliRunner
from conftest import tiny_study, write_study
from mlflow import environment_variables

from sweep.cli import cli


def _npz(folder: Path, **arrays: Any) -> dict[str, Any]:
    np.savez(folder / "d.npz", **arrays)
    return {"source": "npz", "path": str(folder / "d.npz"), "validation_split": 0.25,
            "test_split": 0.25}


def _rows(n: int, nan_x: bool = False, nan_y: bool = False) -> dict[str, np.ndarray]:
    x = np.random.default_rng(0).normal(size=(n, 6)).astype("float32")
    y = (np.arange(n) % 3).astype("float32")
    if nan_x:
        x[3, 2] = np.nan
    if nan_y:
        y[5] = np.nan
    return {"x_train": x, "y_train": y}


def _layers(*layers: dict[str, Any]) -> dict[str, Any]:
    return {"layers": list(layers)}


def _bogus_keras(folder: Path) -> dict[str, Any]:
    with zipfile.ZipFile(folder / "m.keras", "w") as archive:
        archive.writestr("config.json", '{"class_name": "NoSuchModel", "config": {}}')
        archive.writestr("metadata.json", '{"keras_version": "3.14.0"}')
    return {"file": str(folder / "m.keras")}


# (case, study changes given the folder, extra CLI args, environment, field, value)
Case = tuple[str, Callable[[Path], dict[str, Any]], list[str], dict[str, str], str, str]
CASES: list[Case] = [
    ("empty npz", lambda f: {"data": _npz(f, x_train=np.zeros((0, 6)), y_train=np.zeros(0))},
     [], {}, "data.path", "no rows"),
    ("x and y rows differ",
     lambda f: {"data": _npz(f, x_train=np.zeros((40, 6)), y_train=np.zeros(39))},
     [], {}, "data.path", "40 rows but y_train has 39"),
    ("one row per class", lambda f: {"data": _npz(f, **_rows(3))},
     [], {}, "data", "the training split has 1 rows for 3 classes"),
    ("NaN label", lambda f: {"data": _npz(f, **_rows(60, nan_y=True))},
     [], {}, "data.path", "y_train has 1 values that are NaN"),
    ("NaN feature", lambda f: {"data": _npz(f, **_rows(60, nan_x=True))},
     [], {}, "data.path", "x_train has 1 values that are NaN"),
    ("misspelled layer keyword",
     lambda f: {"model": _layers({"Dense": {"units": 8, "activaton": "relu"}},
                                 {"Dense": {"units": 3, "activation": "softmax"}})},
     [], {}, "model.layers[0].Dense", "activaton"),
    ("samples the model cannot take",
     lambda f: {"model": _layers({"Conv2D": {"filters": 4, "kernel_size": 3}},
                                 {"Flatten": {}},
                                 {"Dense": {"units": 3, "activation": "softmax"}})},
     [], {}, "model.layers", "(None, 6)"),
    ("output units do not match the classes",
     lambda f: {"model": _layers({"Dense": {"units": 8, "activation": "relu"}},
                                 {"Dense": {"units": 5, "activation": "softmax"}})},
     [], {}, "model.layers", "outputs 5 values per sample but the data has 3 classes"),
    ("a search where none can stand",
     lambda f: {"train": {"epochs": {"low": 1, "high": 9}}},
     [], {}, "train.epochs", "cannot be searched"),
    ("a log range from zero",
     lambda f: {"train": {"learning_rate": {"low": 0.0, "high": 0.1, "log": True}}},
     [], {}, "train.learning_rate", "low must be > 0 when log is true"),
    ("choices of mixed kinds",
     lambda f: {"model": _layers({"Dense": {"units": {"choices": [8, "wide"]}}},
                                 {"Dense": {"units": 3, "activation": "softmax"}})},
     [], {}, "model.layers[0].Dense.units", "all be numbers"),
    ("unknown layer class", lambda f: {"model": _layers({"Dens": {"units": 3}})},
     [], {}, "model.layers[0]", "Dens"),
    ("a .keras file with a bogus config", lambda f: {"model": _bogus_keras(f)},
     [], {}, "model.file", "m.keras"),
    ("unsupported tracking URI", lambda f: {}, ["--tracking-uri", "foo://bar"], {},
     "--tracking-uri", "foo://bar"),
    ("tracking store under a file", lambda f: {}, ["--tracking-uri", "sqlite:///s.yaml/m.db"],
     {}, "--tracking-uri", "s.yaml"),
    ("storage that is not a URL", lambda f: {}, ["--storage", "nonsense"], {},
     "--storage", "nonsense"),
    ("storage with no driver", lambda f: {}, ["--storage", "mysql://u@h/db"], {},
     "--storage", "mysql://u@h/db"),
    ("spool folder under a file", lambda f: {}, [], {"SWEEP_SPOOL_DIR": "s.yaml/spool"},
     "SWEEP_SPOOL_DIR", "s.yaml/spool"),
]


if hasattr(environment_variables, "MLFLOW_ALLOW_FILE_STORE"):
    # Newer MLflow 3 releases refuse folder stores unless MLFLOW_ALLOW_FILE_STORE is set
    # (the pyproject floor, 3.5, still takes them: there `--tracking-uri mlruns` works).
    CASES.append(("folder store MLflow refuses", lambda f: {}, ["--tracking-uri", "mlruns"],
                  {"MLFLOW_ALLOW_FILE_STORE": "false"}, "--tracking-uri",
                  "MLFLOW_ALLOW_FILE_STORE=true"))


@pytest.mark.parametrize(("case", "changes", "args", "env", "field", "value"), CASES,
                         ids=[case[0] for case in CASES])
def test_bad_input_exits_2_names_the_field_and_writes_nothing(
        workdir: Path, monkeypatch: pytest.MonkeyPatch, case: str,
        changes: Callable[[Path], dict[str, Any]], args: list[str], env: dict[str, str],
        field: str, value: str) -> None:
    inputs = workdir / "inputs"
    inputs.mkdir()
    write_study(workdir / "s.yaml", tiny_study(name="bad", **changes(inputs)))
    for name, setting in env.items():
        monkeypatch.setenv(name, setting)
    before = sorted(p.relative_to(workdir) for p in workdir.rglob("*"))
    result = CliRunner().invoke(cli, ["run", "s.yaml", "--no-progress", *args])
    assert result.exit_code == 2, (case, result.output)
    assert isinstance(result.exception, SystemExit)  # no traceback: a handled refusal
    assert "Traceback" not in result.output
    line = next(line for line in result.output.splitlines() if line.startswith("error: "))
    assert line.startswith(f"error: {field}:"), line
    assert value in line, line
    # Nothing written: no study database, no MLflow store, no spool, no lock file.
    assert sorted(p.relative_to(workdir) for p in workdir.rglob("*")) == before


@pytest.mark.parametrize(("command", "field"), [
    (["export", "any", "--format", "csv", "-o", "s.yaml/out.csv"], "--output"),
    (["report", "any", "-o", "s.yaml/report", "--no-confirm"], "--output"),
])
def test_output_paths_under_a_file_are_refused(workdir: Path, command: list[str],
                                               field: str) -> None:
    (workdir / "s.yaml").write_text("a file, not a folder\n")
    result = CliRunner().invoke(cli, command)
    assert result.exit_code == 2, result.output
    assert result.output.startswith(f"error: {field}: ") and "s.yaml is a file" in result.output
    assert sorted(p.name for p in workdir.iterdir()) == ["s.yaml"]


@pytest.mark.parametrize("command", [["status", "x"], ["best", "x"], ["list"],
                                     ["export", "x", "--format", "csv"]])
def test_an_unreachable_database_is_one_line_with_its_cause(workdir: Path,
                                                            command: list[str]) -> None:
    """Not bad input: exit 1, and the cause a user can act on (not SQLAlchemy's wrapper,
    "An exception is raised during the commit ...")."""
    url = "postgresql://someone:pw@127.0.0.1:1/db"  # nothing listens on port 1
    result = CliRunner().invoke(cli, [*command, "--storage", url])
    assert result.exit_code == 1, result.output
    assert "Traceback" not in result.output and len(result.output.splitlines()) == 1
    assert "Connection refused" in result.output and "someone:***@" in result.output
    assert "pw@" not in result.output
