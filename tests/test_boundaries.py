"""The package boundaries of sweep/, read from the source (every import, the lazy ones
inside functions included): only sweep/training touches TensorFlow or Keras, the study
file's package imports neither Optuna nor MLflow, nothing imports the CLI, and each
package imports only the packages the graph lets it use (README, Architecture, draws
it)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SWEEP = Path(__file__).resolve().parent.parent / "sweep"

# Which package may use which (README, Architecture): a package imports only the ones
# listed here and what those may import in turn. The leaves (names, errors, URLs, seeds)
# import nothing above them.
LEAVES = {"keys", "errors", "redact", "interrupt", "locations", "seeds"}
USES: dict[str, set[str]] = {
    "spec": LEAVES,
    "placement": {"spec"},
    "training": {"placement"},
    "tracking": {"placement"},
    "storage": LEAVES,
    "search": {"storage", "tracking", "training"},
    "results": {"search"},
    "study": {"results"},
    "answers": {"study"},
    "workers": {"answers"},
    "api": {"workers"},
    "cli": {"api"},
    "__main__": {"cli"},
}


def _reachable(unit: str) -> set[str]:
    """The packages ``unit`` may import: those it uses, transitively, and the leaves."""
    seen: set[str] = set()
    todo = [unit]
    while todo:
        for used in USES.get(todo.pop(), set()):
            if used not in seen:
                seen.add(used)
                todo.append(used)
    return seen | LEAVES | {unit}


def _unit(module: str) -> str:
    """sweep.storage.budget -> study; sweep.keys -> keys; sweep -> sweep."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else parts[0]


def _imports(path: Path) -> list[tuple[int, str]]:
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.append((node.lineno, node.module))
            if node.module == "sweep":  # `from sweep import interrupt`
                found += [(node.lineno, f"sweep.{alias.name}") for alias in node.names]
    return found


def _modules() -> list[tuple[str, Path]]:
    return [(".".join(("sweep", *p.relative_to(SWEEP).with_suffix("").parts)), p)
            for p in sorted(SWEEP.rglob("*.py"))]


def test_every_module_belongs_to_a_package_of_the_graph() -> None:
    units = {_unit(module) for module, _ in _modules()} - {"__init__", "sweep"}
    assert units == LEAVES | set(USES)


def test_readme_draws_the_graph() -> None:
    """README's Architecture drawing says, for each package, what it uses: the same graph."""
    import re

    readme = (SWEEP.parent / "README.md").read_text()
    drawn = readme.split("## Architecture", 1)[1].split("```", 2)[1]
    blocks = re.split(r"^(?=sweep/|leaves)", drawn, flags=re.MULTILINE)
    uses = {}
    for block in blocks:
        found = re.match(r"sweep/(\w+)", block)
        if found:
            said = re.search(r"uses: (.+)$", block, re.MULTILINE)
            assert said, f"sweep/{found[1]} says nothing of what it uses"
            uses[found[1]] = set() if said[1].strip() == "(leaves)" else \
                set(said[1].strip().split(", "))
    assert sorted(uses) == sorted(unit for unit in USES if unit != "__main__")
    assert uses == {unit: used - LEAVES for unit, used in USES.items() if unit != "__main__"}


def test_only_sweep_training_imports_tensorflow_or_keras() -> None:
    offenders = [f"{module}:{line} imports {name}" for module, path in _modules()
                 for line, name in _imports(path)
                 if name.split(".")[0] in ("tensorflow", "keras", "tf_keras")
                 and _unit(module) != "training"]
    assert offenders == []


def test_the_study_file_package_imports_neither_optuna_nor_mlflow() -> None:
    offenders = [f"{module}:{line} imports {name}" for module, path in _modules()
                 for line, name in _imports(path)
                 if _unit(module) == "spec" and name.split(".")[0] in ("optuna", "mlflow")]
    assert offenders == []


def test_nothing_imports_the_cli() -> None:
    offenders = [f"{module}:{line}" for module, path in _modules()
                 for line, name in _imports(path)
                 if name.startswith("sweep.cli") and _unit(module) not in ("cli", "__main__")]
    assert offenders == []


@pytest.mark.parametrize("module_path", _modules(), ids=lambda item: item[0])
def test_imports_point_down_the_layers(module_path: tuple[str, Path]) -> None:
    module, path = module_path
    unit = _unit(module)
    if unit in ("__init__", "sweep"):  # the lazy re-exports of the public API
        return
    allowed = _reachable(unit)
    upward = [f"line {line}: {name}" for line, name in _imports(path)
              if name.startswith("sweep.") and _unit(name) not in allowed]
    assert upward == [], f"{module} imports a package it may not use"


def test_the_checks_see_lazy_imports(tmp_path: Path) -> None:
    sample = tmp_path / "sample.py"
    sample.write_text("def f():\n    import tensorflow as tf\n    from sweep import cli\n")
    assert _imports(sample) == [(2, "tensorflow"), (3, "sweep"), (3, "sweep.cli")]


def test_no_module_is_over_400_lines() -> None:
    long = {module: n for module, path in _modules()
            if (n := len(path.read_text().splitlines())) > 400}
    assert long == {}


def test_the_tests_mirror_the_packages() -> None:
    """tests/<package>/ holds the tests of sweep/<package>: a folder of tests names a
    package of the graph (tests/slurm: the job array on a real SLURM, `make test-slurm`)."""
    tests = Path(__file__).resolve().parent
    folders = {path.name for path in tests.iterdir()
               if path.is_dir() and not path.name.startswith((".", "__"))}
    assert folders - set(USES) == {"slurm"}
    for folder in folders - {"slurm"}:
        assert list((tests / folder).glob("test_*.py")), f"tests/{folder} holds no test"
