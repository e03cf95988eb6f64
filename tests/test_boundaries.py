"""The package boundaries of sweep/, read from the source (every import, the lazy ones
inside functions included): only sweep/training touches TensorFlow or Keras, the study
file's package imports neither Optuna nor MLflow, nothing imports the CLI, and each
package imports only the packages below it (README, Architecture)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SWEEP = Path(__file__).resolve().parent.parent / "sweep"

# Lowest first: a module may import its own layer and the ones before it, never later ones.
LAYERS = [
    {"keys", "errors", "redact", "interrupt", "locations", "seeds"},
    {"spec"},
    {"placement"},
    {"training"},
    {"tracking"},
    {"study"},
    {"answers"},
    {"workers"},
    {"api"},
    {"cli", "__main__"},
]


def _unit(module: str) -> str:
    """sweep.study.budget -> study; sweep.keys -> keys; sweep -> sweep."""
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


def _layer(unit: str) -> int:
    return next(i for i, names in enumerate(LAYERS) if unit in names)


def test_every_module_belongs_to_a_layer() -> None:
    units = {_unit(module) for module, _ in _modules()} - {"__init__", "sweep"}
    assert units == set().union(*LAYERS)


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
    upward = [f"line {line}: {name}" for line, name in _imports(path)
              if name.startswith("sweep.") and _layer(_unit(name)) > _layer(unit)]
    assert upward == [], f"{module} imports a later layer"


def test_the_checks_see_lazy_imports(tmp_path: Path) -> None:
    sample = tmp_path / "sample.py"
    sample.write_text("def f():\n    import tensorflow as tf\n    from sweep import cli\n")
    assert _imports(sample) == [(2, "tensorflow"), (3, "sweep"), (3, "sweep.cli")]


def test_no_module_is_over_400_lines() -> None:
    long = {module: n for module, path in _modules()
            if (n := len(path.read_text().splitlines())) > 400}
    assert long == {}
