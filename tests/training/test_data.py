"""sweep.training.data: loading, deterministic stratified splits and the cheap checks of
`sweep validate`.

No TensorFlow here; the only slow step is importing scikit-learn for the digits data (once).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from sweep.errors import SpecError
from sweep.spec import DigitsData, ImageFolderData, NpzData, SyntheticData
from sweep.training.data import Splits, check_data, load_data

SPLIT_NAMES = ("train", "val", "test")


def parts(splits: Splits) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    return {name: (getattr(splits, f"x_{name}"), getattr(splits, f"y_{name}"))
            for name in SPLIT_NAMES}


def synthetic(**kwargs: object) -> SyntheticData:
    return SyntheticData(source="synthetic", **kwargs)


# --------------------------------------------------------------------------- digits
@pytest.fixture(scope="module")
def digits() -> Splits:
    return load_data(DigitsData(source="digits"), 0)


def test_digits_shapes_dtypes_and_ranges(digits: Splits) -> None:
    assert digits.n_classes == 10
    assert digits.input_shape == (8, 8, 1)
    sizes = digits.sizes()
    assert set(sizes) == {"train", "validation", "test"}
    assert sum(sizes.values()) == 1797
    assert sizes["test"] == round(0.2 * 1797) and sizes["validation"] == round(0.2 * 1797)
    for x, y in parts(digits).values():
        assert x.dtype == np.float32 and y.dtype == np.int32
        assert x.shape[1:] == (8, 8, 1) and len(x) == len(y)
        assert x.min() >= 0.0 and x.max() <= 1.0
        assert set(np.unique(y)) == set(range(10))
    assert digits.x_train.max() == 1.0  # scaled by 16, not by the observed maximum


def test_digits_cached_and_read_only(digits: Splits) -> None:
    assert load_data(DigitsData(source="digits"), 0) is digits
    with pytest.raises(ValueError, match="read-only"):
        digits.x_train[0, 0, 0, 0] = 5.0


# --------------------------------------------------------------------------- synthetic
def test_synthetic_shapes_and_not_constant() -> None:
    splits = load_data(synthetic(n_samples=200, shape=(4, 3), n_classes=3, noise=0.5), 7)
    assert splits.input_shape == (4, 3)
    assert splits.n_classes == 3
    assert sum(splits.sizes().values()) == 200
    x = splits.x_train
    assert x.dtype == np.float32 and splits.y_train.dtype == np.int32
    assert np.all(np.isfinite(x)) and x.std() > 0.5
    assert not np.any(np.all(x == 0, axis=(1, 2)))
    # Learnable: class means are further apart than the noise.
    means = np.stack([x[splits.y_train == c].mean(axis=0) for c in range(3)])
    assert np.linalg.norm(means[0] - means[1]) > 1.0


# --------------------------------------------------------------------------- splitting
NpzSplits = Callable[..., Splits]


@pytest.fixture
def npz_splits(tmp_path: Path) -> NpzSplits:
    """Save x, y as an npz file in tmp_path and load it with the given fractions."""

    def load(x: np.ndarray, y: np.ndarray, seed: int = 0, **fractions: float) -> Splits:
        path = tmp_path / "data.npz"
        np.savez(path, x_train=x, y_train=y)
        return load_data(NpzData(source="npz", path=path, **fractions), seed)

    return load


def test_same_seed_same_arrays_other_seed_other_split() -> None:
    spec = synthetic(n_samples=120, n_classes=3)
    first = load_data(spec, 3)
    load_data.cache_clear()
    again = load_data(spec, 3)
    assert again is not first
    for (xa, ya), (xb, yb) in zip(parts(first).values(), parts(again).values(), strict=True):
        np.testing.assert_array_equal(xa, xb)
        np.testing.assert_array_equal(ya, yb)
    other = load_data(spec, 4)
    assert not np.array_equal(first.x_val, other.x_val)


def test_regression_split_deterministic_and_disjoint(tmp_path: Path) -> None:
    x = np.arange(50, dtype=np.float64).reshape(50, 1)
    y = np.linspace(0.0, 1.0, 50)
    path = tmp_path / "reg.npz"
    np.savez(path, x_train=x, y_train=y)
    spec = NpzData(source="npz", path=path)
    a, b, c = load_data(spec, 0), load_data(spec, 0), load_data(spec, 1)
    np.testing.assert_array_equal(a.x_test, b.x_test)
    assert not np.array_equal(a.x_test, c.x_test)
    ids = [set(p[0][:, 0].tolist()) for p in parts(a).values()]
    assert sum(len(i) for i in ids) == 50 and len(set.union(*ids)) == 50


def test_splits_are_disjoint_and_cover_all_samples() -> None:
    splits = load_data(synthetic(n_samples=150, shape=(5,), n_classes=4), 11)
    rows = [{tuple(row) for row in x.tolist()} for x, _ in parts(splits).values()]
    assert sum(len(r) for r in rows) == 150  # no duplicate rows within a split
    assert not rows[0] & rows[1] and not rows[0] & rows[2] and not rows[1] & rows[2]


def test_stratified_splits(npz_splits: NpzSplits) -> None:
    # Unbalanced classes: 60 / 30 / 10 samples.
    x = np.random.default_rng(0).standard_normal((100, 2))
    y = np.repeat([0, 1, 2], [60, 30, 10])
    splits = npz_splits(x, y, seed=5, validation_split=0.2, test_split=0.1)
    assert splits.sizes() == {"train": 70, "validation": 20, "test": 10}
    assert np.bincount(splits.y_val, minlength=3).tolist() == [12, 6, 2]
    assert np.bincount(splits.y_test, minlength=3).tolist() == [6, 3, 1]
    assert np.bincount(splits.y_train, minlength=3).tolist() == [42, 21, 7]


def test_every_split_gets_every_class_when_possible(npz_splits: NpzSplits) -> None:
    # A class of three samples still reaches all three splits.
    x = np.arange(103, dtype=np.float32).reshape(-1, 1)
    y = np.repeat([0, 1], [100, 3])
    splits = npz_splits(x, y, seed=1)
    for _, labels in parts(splits).values():
        assert set(labels.tolist()) == {0, 1}


def test_too_few_samples_for_a_split() -> None:
    with pytest.raises(SpecError) as caught:
        load_data(synthetic(n_samples=4, validation_split=0.1, test_split=0.3), 0)
    assert caught.value.field == "data.validation_split"
    assert "data.validation_split" in str(caught.value) and "0.1" in str(caught.value)
    with pytest.raises(SpecError) as caught:
        load_data(synthetic(n_samples=4, validation_split=0.3, test_split=0.1), 0)
    assert caught.value.field == "data.test_split" and "0.1" in str(caught.value)


def test_a_split_with_fewer_rows_than_classes_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "d.npz"
    np.savez(path, x_train=np.ones((6, 2)), y_train=np.arange(6) % 3)  # two rows per class
    with pytest.raises(SpecError) as caught:
        load_data(NpzData(source="npz", path=path, validation_split=0.25, test_split=0.25), 0)
    assert str(caught.value) == (
        "data: the training split has 2 rows for 3 classes: every split needs at least one "
        "row of each class (more data, or larger splits)")
    np.savez(path, x_train=np.ones((12, 2)), y_train=np.arange(12) % 3,
             x_test=np.ones((2, 2)), y_test=np.array([0, 1]))
    with pytest.raises(SpecError) as caught:
        load_data(NpzData(source="npz", path=path, validation_split=0.25), 0)
    assert caught.value.field == "data" and "the test split has 2 rows for 3 classes" in \
        str(caught.value)


def test_zero_test_split_gives_empty_test_set() -> None:
    splits = load_data(synthetic(n_samples=20, shape=(3,), test_split=0.0), 0)
    assert splits.sizes() == {"train": 16, "validation": 4, "test": 0}
    assert splits.x_test.shape == (0, 3)


# --------------------------------------------------------------------------- npz
def test_npz_classification_without_test_arrays(tmp_path: Path) -> None:
    x = np.random.default_rng(0).integers(0, 255, (40, 3, 2), dtype=np.uint8)
    y = np.arange(40) % 4
    path = tmp_path / "d.npz"
    np.savez(path, x_train=x, y_train=y)
    splits = load_data(NpzData(source="npz", path=path, validation_split=0.25, test_split=0.25),
                       0)
    assert splits.n_classes == 4
    assert splits.sizes() == {"train": 20, "validation": 10, "test": 10}
    assert splits.x_train.dtype == np.float32 and splits.y_train.dtype == np.int32
    assert splits.input_shape == (3, 2)


def test_npz_with_test_arrays_ignores_test_split(tmp_path: Path) -> None:
    path = tmp_path / "d.npz"
    np.savez(path, x_train=np.ones((30, 5)), y_train=(np.arange(30) % 3).astype(float),
             x_test=np.zeros((7, 5)), y_test=np.array([0, 1, 2, 0, 1, 2, 5]))
    splits = load_data(NpzData(source="npz", path=path, validation_split=0.2, test_split=0.5), 0)
    assert splits.sizes() == {"train": 24, "validation": 6, "test": 7}
    assert splits.n_classes == 6  # labels of the test arrays count too
    assert splits.y_test.dtype == np.int32 and splits.x_test.dtype == np.float32
    np.testing.assert_array_equal(splits.x_test, np.zeros((7, 5)))


def test_npz_regression_targets(tmp_path: Path) -> None:
    path = tmp_path / "d.npz"
    rng = np.random.default_rng(0)
    np.savez(path, x_train=rng.standard_normal((20, 2)), y_train=rng.standard_normal(20),
             x_test=rng.standard_normal((5, 2)), y_test=rng.standard_normal(5))
    splits = load_data(NpzData(source="npz", path=path), 0)
    assert splits.n_classes is None
    assert splits.y_train.dtype == np.float32 and splits.y_test.dtype == np.float32
    assert splits.sizes() == {"train": 16, "validation": 4, "test": 5}


def test_npz_multi_output_integers_are_regression(tmp_path: Path) -> None:
    path = tmp_path / "d.npz"
    np.savez(path, x_train=np.ones((10, 2)), y_train=np.ones((10, 2), dtype=int))
    assert load_data(NpzData(source="npz", path=path), 0).n_classes is None


# --------------------------------------------------------------------------- image folders
def _write_images(root: Path, n_per_class: int, classes: tuple[str, ...] = ("cat", "dog")) -> None:
    for label, name in enumerate(classes):
        folder = root / name
        folder.mkdir(parents=True)
        for i in range(n_per_class):
            value = 40 if label == 0 else 220
            # Mixed modes and sizes: the loader converts and resizes all of them.
            if i % 2:
                image = Image.new("L", (6, 5), value)
            else:
                image = Image.new("RGB", (5 + i, 7), (value, value, value))
            suffix = ".PNG" if i == 1 else ".png"
            image.save(folder / f"img{i}{suffix}", format="PNG")
        (folder / "notes.txt").write_text("not an image")


@pytest.fixture
def image_root(tmp_path: Path) -> Path:
    _write_images(tmp_path / "train", 6)
    _write_images(tmp_path / "test", 2)
    return tmp_path


@pytest.mark.parametrize(("grayscale", "channels"), [(True, 1), (False, 3)])
def test_image_folder(image_root: Path, grayscale: bool, channels: int) -> None:
    spec = ImageFolderData(source="image_folder", path=image_root / "train",
                           test_path=image_root / "test", image_size=(4, 3),
                           grayscale=grayscale, validation_split=0.25)
    check_data(spec)
    splits = load_data(spec, 0)
    assert splits.input_shape == (4, 3, channels)  # image_size is (height, width)
    assert splits.n_classes == 2
    assert splits.sizes() == {"train": 9, "validation": 3, "test": 4}
    assert splits.y_test.tolist() == [0, 0, 1, 1]
    # File names only (the notes.txt files are not images): decoding is the pipeline's.
    assert sorted(Path(p).name for p in splits.x_test) == ["img0.png", "img0.png",
                                                           "img1.PNG", "img1.PNG"]
    for split, (x, y) in zip(("train", "val", "test"), parts(splits).values(), strict=True):
        assert y.dtype == np.int32
        folders = [Path(p).parent.name for p in x]
        assert folders == [("cat", "dog")[label] for label in y]
        pixels = splits.head(split, len(x))
        assert pixels.shape == (len(x), 4, 3, channels) and pixels.dtype == np.float32
        # "cat" (class 0, sorted first) is dark, "dog" bright.
        assert np.all(pixels[y == 0] < 0.5) and np.all(pixels[y == 1] > 0.5)


def test_image_folder_without_test_path_carves_test_split(image_root: Path) -> None:
    spec = ImageFolderData(source="image_folder", path=image_root / "train", image_size=(2, 2),
                           validation_split=0.25, test_split=0.25)
    splits = load_data(spec, 0)
    assert splits.sizes() == {"train": 6, "validation": 3, "test": 3}
    assert set(splits.y_test.tolist()) == {0, 1}


# --------------------------------------------------------------------------- check_data errors
def _assert_spec_error(spec: object, field: str, value: object, *words: str) -> None:
    with pytest.raises(SpecError) as caught:
        check_data(spec)  # type: ignore[arg-type]
    text = str(caught.value)
    assert caught.value.field == field
    assert field in text and str(value) in text, text
    for word in words:
        assert word in text, text
    # load_data reports the same problem instead of crashing later.
    with pytest.raises(SpecError):
        load_data(spec, 0)  # type: ignore[arg-type]


def test_builtin_sources_need_no_files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)  # an empty folder: nothing to read from
    assert check_data(DigitsData(source="digits")) is None
    assert check_data(synthetic()) is None
    splits = load_data(synthetic(), 0)
    assert sum(splits.sizes().values()) == synthetic().n_samples
    assert list(tmp_path.iterdir()) == []


def test_check_npz_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "nope.npz"
    _assert_spec_error(NpzData(source="npz", path=path), "data.path", path, "does not exist")


@pytest.mark.parametrize(
    ("arrays", "word"),
    [
        ({"y_train": np.zeros(3)}, "x_train"),
        ({"x_train": np.zeros((3, 1))}, "y_train"),
        ({"x_train": np.zeros((3, 1)), "y_train": np.zeros(3), "x_test": np.zeros((2, 1))},
         "y_test"),
    ],
)
def test_check_npz_missing_arrays(tmp_path: Path, arrays: dict[str, np.ndarray], word: str
                                  ) -> None:
    path = tmp_path / "d.npz"
    np.savez(path, **arrays)
    _assert_spec_error(NpzData(source="npz", path=path), "data.path", path, word)


def test_check_npz_not_an_archive(tmp_path: Path) -> None:
    path = tmp_path / "d.npz"
    path.write_text("hello")
    _assert_spec_error(NpzData(source="npz", path=path), "data.path", path)


def test_check_image_folder_missing(tmp_path: Path) -> None:
    path = tmp_path / "missing"
    _assert_spec_error(ImageFolderData(source="image_folder", path=path), "data.path", path,
                       "does not exist")


def test_check_image_folder_missing_test_path(image_root: Path) -> None:
    test_path = image_root / "missing"
    spec = ImageFolderData(source="image_folder", path=image_root / "train", test_path=test_path)
    _assert_spec_error(spec, "data.test_path", test_path, "does not exist")


def test_check_image_folder_one_class(tmp_path: Path) -> None:
    _write_images(tmp_path / "train", 2, classes=("only",))
    (tmp_path / "train" / ".ipynb_checkpoints").mkdir()
    path = tmp_path / "train"
    _assert_spec_error(ImageFolderData(source="image_folder", path=path), "data.path", path,
                       "two classes")


def test_check_image_folder_empty_class(image_root: Path) -> None:
    empty = image_root / "train" / "emu"
    empty.mkdir()
    (empty / "readme.txt").write_text("no images")
    spec = ImageFolderData(source="image_folder", path=image_root / "train")
    _assert_spec_error(spec, "data.path", empty, "no image files")


def test_check_image_test_folder_problems(image_root: Path) -> None:
    (image_root / "test" / "dog" / "img0.png").unlink()
    (image_root / "test" / "dog" / "img1.PNG").unlink()
    spec = ImageFolderData(source="image_folder", path=image_root / "train",
                           test_path=image_root / "test")
    _assert_spec_error(spec, "data.test_path", image_root / "test" / "dog", "no image files")


def test_check_image_test_folder_other_classes(image_root: Path) -> None:
    _write_images(image_root / "test2", 1, classes=("cat", "cow"))
    spec = ImageFolderData(source="image_folder", path=image_root / "train",
                           test_path=image_root / "test2")
    _assert_spec_error(spec, "data.test_path", image_root / "test2", "cow", "dog")
