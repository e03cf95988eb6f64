from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner
from conftest import tiny_study, write_study

from sweep.cli import cli


def _validate(tmp_path: Path, study: dict) -> tuple[int, str]:
    path = write_study(tmp_path / "study.yaml", study)
    result = CliRunner().invoke(cli, ["validate", str(path)])
    return result.exit_code, result.output


def test_good_file_lists_the_searched_slots(tmp_path: Path) -> None:
    code, output = _validate(tmp_path, tiny_study())
    assert code == 0, output
    assert "slots searched: dense, dense_1" in output


def _search(**changes: object) -> dict:
    return dict(tiny_study()["search"], **changes)


CASES = [
    ({"search": _search(placement={"choices": ["none", "before_flatten"]})},
     "search.placement.choices[1]", "before_flatten"),
    ({"search": _search(placement={"choices": ["dropout"]})},
     "search.placement.choices[0]", "no kernel"),
    ({"search": _search(placement={"choices": ["first+middle"]})},
     "search.placement.choices[0]", "unknown selector 'middle'"),
    ({"search": _search(placement={"mask": "conv"})}, "search.placement.mask", "conv"),
    ({"model": {"layers": [{"Dens": {"units": 3}}]}}, "model.layers[0]", "did you mean 'Dense'"),
    ({"data": {"source": "npz", "path": "nowhere.npz"}}, "data.path", "nowhere.npz"),
    ({"data": {"source": "image_folder", "path": "no/such/folder"}}, "data.path", "no/such"),
    ({"model": {"file": "missing.keras"}}, "model.file", "missing.keras"),
    ({"sampler": "grid"}, "search.l1", "grid sampler"),
    ({"search": _search(targets=["bias"]), "model": {"layers": [
        {"Dense": {"units": 3, "use_bias": False}}]}}, "search.targets", "bias"),
]


@pytest.mark.parametrize(("changes", "field", "fragment"), CASES,
                         ids=[c[1] for c in CASES])
def test_deep_checks_exit_2_naming_field_and_value(tmp_path: Path, changes: dict, field: str,
                                                   fragment: str) -> None:
    code, output = _validate(tmp_path, tiny_study(**changes))
    assert code == 2, output
    assert field in output
    assert fragment in output


def test_grid_sampler_accepts_choices_and_fixed_values(tmp_path: Path) -> None:
    search = _search(l1=1e-4, l2={"choices": [1e-4, 1e-3]})
    code, output = _validate(tmp_path, tiny_study(sampler="grid", search=search))
    assert code == 0, output


def test_image_folder_with_one_class_is_refused(tmp_path: Path) -> None:
    from PIL import Image

    (tmp_path / "imgs" / "cats").mkdir(parents=True)
    Image.new("RGB", (4, 4)).save(tmp_path / "imgs" / "cats" / "a.png")
    data = {"source": "image_folder", "path": str(tmp_path / "imgs")}
    code, output = _validate(tmp_path, tiny_study(data=data))
    assert code == 2
    assert "data.path" in output


def test_validate_runs_no_builder_code_unless_asked(tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    """A builder is code: importing it runs it. validate finds its file and says it did not
    run it; --run-builder builds the model and checks the placements against its layers."""
    monkeypatch.chdir(tmp_path)
    marker = tmp_path / "builder-ran"
    (tmp_path / "sideeffect_builder.py").write_text(
        "import pathlib, keras\n"
        f"pathlib.Path({str(marker)!r}).write_text('ran')\n"
        "def build(input_shape, n_classes):\n"
        "    return keras.Sequential([keras.Input(input_shape), keras.layers.Dense(8),\n"
        "                             keras.layers.Dense(n_classes, activation='softmax')])\n")
    study = tiny_study(model={"builder": "sideeffect_builder:build"})
    code, output = _validate(tmp_path, study)
    assert code == 0, output
    assert "slots searched: not checked" in output and "--run-builder" in output
    assert not marker.exists()

    result = CliRunner().invoke(cli, ["validate", str(tmp_path / "study.yaml"),
                                      "--run-builder"])
    assert result.exit_code == 0, result.output
    assert marker.read_text() == "ran" and "slots searched: dense, dense_1" in result.output

    code, output = _validate(tmp_path, tiny_study(model={"builder": "nosuchmodule:build"}))
    assert code == 2 and "model.builder" in output and "nosuchmodule" in output


def test_the_data_is_checked_without_tensorflow_and_the_model_with_build(
        tmp_path: Path) -> None:
    import numpy as np

    x = np.random.default_rng(0).normal(size=(60, 6)).astype("float32")
    x[3, 2] = np.nan
    np.savez(tmp_path / "d.npz", x_train=x, y_train=(np.arange(60) % 3).astype("float32"))
    data = {"source": "npz", "path": str(tmp_path / "d.npz"), "validation_split": 0.25,
            "test_split": 0.25}
    code, output = _validate(tmp_path, tiny_study(data=data))
    assert code == 2 and "error: data.path: x_train has 1 values that are NaN" in output

    layers = [{"Dense": {"units": 8, "activaton": "relu"}},
              {"Dense": {"units": 3, "activation": "softmax"}}]
    path = write_study(tmp_path / "m.yaml", tiny_study(model={"layers": layers}))
    quick = CliRunner().invoke(cli, ["validate", str(path)])
    assert quick.exit_code == 0 and "slots searched: dense, dense_1" in quick.output
    built = CliRunner().invoke(cli, ["validate", str(path), "--build"])
    assert built.exit_code == 2
    assert built.output.startswith("error: model.layers[0].Dense: Unrecognized keyword")
