"""Data sets described by the ``data`` section of a study, loaded and split without TensorFlow.

``check_data`` is what ``sweep validate`` runs: it only lists directories and archive members,
so a study with a large image folder validates instantly. ``load_data`` reads arrays (an
image folder: only its file names; the images are decoded by the training pipeline,
sweep.training.images) and splits them deterministically from the study's seed, so every
worker of a study trains and validates on exactly the same samples.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from sweep.errors import SpecError

if TYPE_CHECKING:
    from sweep.spec import DigitsData, ImageFolderData, NpzData, SyntheticData

    AnyDataSpec = DigitsData | SyntheticData | NpzData | ImageFolderData
    # What a loader returns: x, y, n_classes and the separate test set if there is one.
    _Loaded = tuple[np.ndarray, np.ndarray, int | None, tuple[np.ndarray, np.ndarray] | None]

__all__ = ["Splits", "check_data", "load_data"]

_IMAGE_EXTENSIONS = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".gif"})
_NPZ_REQUIRED = ("x_train", "y_train")


@dataclass(frozen=True, eq=False)
class Splits:
    """Train / validation / test arrays. The arrays are read-only because ``load_data``
    hands the same cached object to every caller in the process. For an image folder the
    x arrays hold file paths and ``image_shape`` the (height, width, channels) they are
    decoded to."""

    x_train: np.ndarray
    y_train: np.ndarray
    x_val: np.ndarray
    y_val: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    n_classes: int | None  # None for regression targets
    image_shape: tuple[int, int, int] | None = None

    @property
    def input_shape(self) -> tuple[int, ...]:
        if self.image_shape is not None:
            return self.image_shape
        return tuple(int(d) for d in self.x_train.shape[1:])

    def head(self, split: str, n: int) -> np.ndarray:
        """The first ``n`` inputs of ``split`` ("train", "val", "test") as the model sees
        them (images decoded: imports TensorFlow)."""
        x = getattr(self, f"x_{split}")[:n]
        if self.image_shape is None:
            return x
        from sweep.training.images import decode_files

        return decode_files(x, self.image_shape)

    def sizes(self) -> dict[str, int]:
        return {
            "train": len(self.x_train),
            "validation": len(self.x_val),
            "test": len(self.x_test),
        }


# --------------------------------------------------------------------------- checks
def check_data(spec: AnyDataSpec) -> None:
    """Cheap checks for ``sweep validate``; raises :class:`SpecError` naming field and value."""
    if spec.source == "npz":
        _npz_members(spec.path)
    elif spec.source == "image_folder":
        train_classes = _class_folders(spec.path, "data.path")
        if spec.test_path is not None:
            test_classes = _class_folders(spec.test_path, "data.test_path")
            train_names = [folder.name for folder, _ in train_classes]
            test_names = [folder.name for folder, _ in test_classes]
            if test_names != train_names:
                raise SpecError(
                    "data.test_path",
                    f"class sub-folders {test_names} differ from those of data.path "
                    f"{train_names}",
                    str(spec.test_path),
                )
    # digits and synthetic need nothing from disk.


def _existing(path: Path, field: str) -> None:
    if not path.exists():
        raise SpecError(field, "does not exist", str(path))


def _npz_members(path: Path) -> frozenset[str]:
    """The archive's member names, read from the zip directory without loading any array."""
    _existing(path, "data.path")
    if not path.is_file():
        raise SpecError("data.path", "is not a file", str(path))
    try:
        archive = np.load(path, allow_pickle=False)
    except Exception as error:  # OSError, ValueError, BadZipFile, EOFError... by file content
        raise SpecError("data.path", f"cannot read as .npz: {error}", str(path)) from None
    if not isinstance(archive, np.lib.npyio.NpzFile):
        raise SpecError("data.path", "is a single .npy array, not an .npz archive", str(path))
    with archive:
        members = frozenset(archive.files)
    for key in _NPZ_REQUIRED:
        if key not in members:
            raise SpecError("data.path", f"the archive has no array {key!r} "
                            f"(it has {sorted(members)})", str(path))
    if ("x_test" in members) != ("y_test" in members):
        present, absent = ("x_test", "y_test") if "x_test" in members else ("y_test", "x_test")
        raise SpecError("data.path", f"the archive has {present!r} but no {absent!r}", str(path))
    return members


def _class_folders(path: Path, field: str) -> list[tuple[Path, list[Path]]]:
    """(class folder, image files) pairs in class-index order, i.e. sorted by folder name."""
    _existing(path, field)
    if not path.is_dir():
        raise SpecError(field, "is not a directory", str(path))
    # Hidden entries (.ipynb_checkpoints, .git, ...) are tool debris, not classes.
    folders = sorted(
        (p for p in path.iterdir() if p.is_dir() and not p.name.startswith(".")),
        key=lambda p: p.name,
    )
    if len(folders) < 2:
        raise SpecError(
            field,
            f"needs one sub-folder per class and at least two classes (found {len(folders)})",
            str(path),
        )
    classes = []
    for folder in folders:
        images = sorted(
            p for p in folder.iterdir()
            if p.is_file() and not p.name.startswith(".")
            and p.suffix.lower() in _IMAGE_EXTENSIONS
        )
        if not images:
            raise SpecError(
                field,
                f"class sub-folder has no image files ({', '.join(sorted(_IMAGE_EXTENSIONS))})",
                str(folder),
            )
        classes.append((folder, images))
    return classes


# --------------------------------------------------------------------------- loading
@functools.lru_cache(maxsize=8)
def load_data(spec: AnyDataSpec, seed: int) -> Splits:
    """Load and split deterministically from ``seed``; cached per process on (spec, seed)."""
    check_data(spec)
    loader = _LOADERS[spec.source]
    x, y, n_classes, test = loader(spec, seed)
    splits = _split(x, y, n_classes, test, spec, seed)
    if spec.source == "image_folder":
        height, width = spec.image_size
        splits = dataclasses.replace(
            splits, image_shape=(height, width, 1 if spec.grayscale else 3))
    for array in vars(splits).values():
        if isinstance(array, np.ndarray):
            array.flags.writeable = False
    return splits


def _load_digits(spec: DigitsData, seed: int) -> _Loaded:
    # The CSV scikit-learn ships (what its load_digits reads), read without importing
    # scikit-learn: that import pulls in scipy, about a second `sweep validate` would pay.
    import importlib.util

    found = importlib.util.find_spec("sklearn")
    if found is None or not found.submodule_search_locations:
        raise SpecError("data.source", "needs scikit-learn, which ships the digits", "digits")
    path = Path(next(iter(found.submodule_search_locations))) / "datasets" / "data" / \
        "digits.csv.gz"
    table = np.loadtxt(path, delimiter=",", dtype=np.float32)  # 64 pixels, then the label
    # Pixel intensities are 0..16 in this data set.
    x = (table[:, :-1] / 16.0).reshape(-1, 8, 8, 1)
    return x, table[:, -1].astype(np.int32), 10, None


def _load_synthetic(spec: SyntheticData, seed: int) -> _Loaded:
    # A stream separate from the split's default_rng(seed), so the draws do not correlate.
    rng = np.random.default_rng([seed, 1])
    shape = tuple(spec.shape)
    centroids = rng.standard_normal((spec.n_classes, *shape)) * 3.0
    # Balanced labels so that every class exists even for small n_samples.
    y = rng.permutation(np.arange(spec.n_samples) % spec.n_classes).astype(np.int32)
    x = centroids[y] + spec.noise * rng.standard_normal((spec.n_samples, *shape))
    return x.astype(np.float32), y, spec.n_classes, None


def _load_npz(spec: NpzData, seed: int) -> _Loaded:
    path = str(spec.path)
    members = _npz_members(spec.path)
    with np.load(spec.path, allow_pickle=False) as archive:
        try:
            arrays = {key: archive[key] for key in (*_NPZ_REQUIRED, "x_test", "y_test")
                      if key in members}
        except Exception as error:  # object arrays need pickle; corrupt members fail here
            raise SpecError("data.path", f"cannot read the arrays: {error}", path) from None
    for key, array in arrays.items():
        if array.dtype.kind not in "biuf":
            raise SpecError("data.path", f"{key} must be numeric (dtype is {array.dtype})", path)
        if array.ndim == 0:
            raise SpecError("data.path", f"{key} must have one row per sample, not be a scalar",
                            path)
    for key, array in arrays.items():  # one NaN turns every loss after it into NaN
        bad = int(array.size - np.count_nonzero(np.isfinite(array)))
        if bad:
            raise SpecError("data.path", f"{key} has {bad} values that are NaN or infinite",
                            path)
    x, y = arrays["x_train"], arrays["y_train"]
    if len(x) == 0:
        raise SpecError("data.path", "x_train has no rows", path)
    if len(x) != len(y):
        raise SpecError("data.path", f"x_train has {len(x)} rows but y_train has {len(y)}", path)
    test = None
    if "x_test" in arrays:
        x_test, y_test = arrays["x_test"], arrays["y_test"]
        if len(x_test) != len(y_test):
            raise SpecError("data.path",
                            f"x_test has {len(x_test)} rows but y_test has {len(y_test)}", path)
        if len(x_test) == 0:
            raise SpecError("data.path", "x_test is empty (leave it out to split off a test "
                            "set with data.test_split)", path)
        if x_test.shape[1:] != x.shape[1:] or y_test.shape[1:] != y.shape[1:]:
            raise SpecError(
                "data.path",
                f"test arrays have sample shapes {x_test.shape[1:]}, {y_test.shape[1:]} but "
                f"training arrays have {x.shape[1:]}, {y.shape[1:]}",
                path,
            )
        test = (x_test, y_test)
    labels = [y] if test is None else [y, test[1]]
    is_classes = all(_are_class_labels(labels_) for labels_ in labels)
    n_classes = max(int(labels_.max()) for labels_ in labels) + 1 if is_classes else None
    y_dtype = np.int32 if is_classes else np.float32

    def finish(x_: np.ndarray, y_: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        # A single feature saved as shape (n,) still needs a feature axis for Keras.
        x_ = x_.reshape(-1, 1) if x_.ndim == 1 else x_
        return x_.astype(np.float32), y_.astype(y_dtype)

    x, y = finish(x, y)
    return x, y, n_classes, None if test is None else finish(*test)


def _are_class_labels(y: np.ndarray) -> bool:
    """1-D, non-negative and integer-valued (floats like 3.0 count: files often store them so)."""
    if y.ndim != 1 or y.size == 0:
        return False
    if y.dtype.kind == "f" and not (np.all(np.isfinite(y)) and np.all(y == np.rint(y))):
        return False
    return bool(y.min() >= 0)


def _load_image_folder(spec: ImageFolderData, seed: int) -> _Loaded:
    """File paths (str) and labels: the pictures themselves may not fit in memory."""
    classes = _class_folders(spec.path, "data.path")
    x, y = _image_files(classes)
    test = None
    if spec.test_path is not None:
        test = _image_files(_class_folders(spec.test_path, "data.test_path"))
    return x, y, len(classes), test


def _image_files(classes: list[tuple[Path, list[Path]]]) -> tuple[np.ndarray, np.ndarray]:
    files = [str(file) for _, images in classes for file in images]
    labels = [label for label, (_, images) in enumerate(classes) for _ in images]
    return np.array(files, dtype=str), np.array(labels, dtype=np.int32)


_LOADERS: dict[str, Callable[[Any, int], _Loaded]] = {
    "digits": _load_digits,
    "synthetic": _load_synthetic,
    "npz": _load_npz,
    "image_folder": _load_image_folder,
}


# --------------------------------------------------------------------------- splitting
def _split(
    x: np.ndarray,
    y: np.ndarray,
    n_classes: int | None,
    test: tuple[np.ndarray, np.ndarray] | None,
    spec: AnyDataSpec,
    seed: int,
) -> Splits:
    n = len(x)
    carve_test = test is None and spec.test_split > 0
    n_test = round(spec.test_split * n) if carve_test else 0
    n_val = round(spec.validation_split * n)
    if carve_test and n_test < 1:
        raise SpecError("data.test_split", f"leaves no test sample out of {n} samples",
                        spec.test_split)
    if n_val < 1:
        raise SpecError("data.validation_split",
                        f"leaves no validation sample out of {n} samples", spec.validation_split)
    if n - n_test - n_val < 1:
        raise SpecError("data.validation_split",
                        f"leaves no training sample out of {n} samples "
                        f"(with test_split {spec.test_split})", spec.validation_split)

    if n_classes is not None:
        # A split with fewer rows than classes cannot hold every class: with one row per
        # class a study ran and reported val_accuracy = 0.0000 without a word.
        rows = {"training": n - n_test - n_val, "validation": n_val}
        if test is not None or carve_test:  # test_split 0: no test set, on purpose
            rows["test"] = n_test if test is None else len(test[0])
        for split, count in rows.items():
            if count < n_classes:
                raise SpecError("data", f"the {split} split has {count} rows for {n_classes} "
                                "classes: every split needs at least one row of each class "
                                "(more data, or larger splits)", n, show_value=False)

    rng = np.random.default_rng(seed)
    if n_classes is None:
        order = rng.permutation(n)
        test_idx, val_idx, train_idx = np.split(order, [n_test, n_test + n_val])
    else:
        test_idx, val_idx, train_idx = _stratified(y, n_classes, n_test, n_val, rng)

    if test is None:
        x_test, y_test = x[test_idx], y[test_idx]
    else:
        x_test, y_test = test
    return Splits(
        x_train=x[train_idx], y_train=y[train_idx],
        x_val=x[val_idx], y_val=y[val_idx],
        x_test=x_test, y_test=y_test,
        n_classes=n_classes,
    )


def _stratified(
    y: np.ndarray, n_classes: int, n_test: int, n_val: int, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Index arrays (test, validation, train) of exactly the requested sizes, each class
    spread over the splits in proportion to its size and present in every split that can
    have it."""
    counts = np.bincount(y, minlength=n_classes)
    # Which samples of a class land in which split is random; how many is proportional.
    members = [rng.permutation(idx) for idx in np.split(np.argsort(y, kind="stable"),
                                                        np.cumsum(counts)[:-1])]
    test_counts = _allocate(counts, n_test, reserve=2) if n_test else np.zeros_like(counts)
    val_counts = _allocate(counts - test_counts, n_val, reserve=1)
    parts: tuple[list[np.ndarray], list[np.ndarray], list[np.ndarray]] = ([], [], [])
    for idx, t, v in zip(members, test_counts, val_counts, strict=True):
        for part, chunk in zip(parts, np.split(idx, [t, t + v]), strict=True):
            part.append(chunk)
    # Shuffle across classes so that no split is ordered by label.
    test_idx, val_idx, train_idx = (rng.permutation(np.concatenate(p)) for p in parts)
    return test_idx, val_idx, train_idx


def _allocate(available: np.ndarray, k: int, reserve: int) -> np.ndarray:
    """How many samples of each class a split of size ``k`` takes from ``available``.

    Proportional to class size, at least one per class where possible, and leaving
    ``reserve`` samples of each class for the splits still to be filled; the reserve is
    given up only when ``k`` cannot be met otherwise (e.g. many singleton classes).
    """
    soft_cap = np.maximum(available - reserve, 0)
    cap = soft_cap if soft_cap.sum() >= k else available
    ideal = k * available / available.sum()
    alloc = np.minimum(np.floor(ideal).astype(np.int64), cap)
    alloc[(alloc == 0) & (cap >= 1)] = 1
    while alloc.sum() > k:
        # Take back from the most over-served class, keeping each class's one sample
        # for as long as another class has more than one.
        over = ideal - alloc
        candidates = alloc > 1 if np.any(alloc > 1) else alloc > 0
        alloc[np.argmin(np.where(candidates, over, np.inf))] -= 1
    while alloc.sum() < k:
        under = ideal - alloc
        alloc[np.argmax(np.where(alloc < cap, under, -np.inf))] += 1
    return alloc
