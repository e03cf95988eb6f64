"""sweep/training/images.py (through sweep.training.fit.Batches): image folders streamed
from a per-worker cache file, the bounded shuffle, augmentation on training batches only,
unreadable files, and the cache folders of live and dead workers."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from sweep.errors import SpecError
from sweep.spec import ImageFolderData, TrainSpec
from sweep.training.data import load_data
from sweep.training.fit import Batches
from sweep.training.images import CACHE_PREFIX


def _folder(root: Path, per_class: int = 10) -> Path:
    """Two classes of 8x8 RGB images; image i of a class has every pixel at 10 + 20 i
    (class a) or 250 - 20 i (class b), so each one is recognisable after decoding."""
    for label, name in enumerate(("a", "b")):
        folder = root / name
        folder.mkdir(parents=True)
        for i in range(per_class):
            value = 10 + 20 * i if label == 0 else 250 - 20 * i
            Image.new("RGB", (8, 8), (value, value, value)).save(folder / f"{i:02d}.png")
    return root


def _spec(root: Path, tmp_path: Path, **extra) -> ImageFolderData:
    settings = {"validation_split": 0.2, "test_split": 0.2, **extra}
    return ImageFolderData(source="image_folder", path=root, image_size=(8, 8),
                           cache_dir=tmp_path / "cache", **settings)


def _epochs(batches: Batches, seed: int, first_epoch: int = 0) -> list[np.ndarray]:
    """The training stream cut into epochs, each as the per-image pixel values in order."""
    steps = batches.steps_per_epoch()
    values = [x.numpy().mean(axis=(1, 2, 3)) for x, _ in
              batches.shuffled_training(seed, first_epoch=first_epoch)]
    return [np.concatenate(values[i:i + steps]) for i in range(0, len(values), steps)]


def test_streamed_batches_hold_every_image_once_per_epoch_in_a_seeded_order(
        tmp_path: Path) -> None:
    spec = _spec(_folder(tmp_path / "images"), tmp_path, shuffle_buffer=3)
    splits = load_data(spec, 0)
    train = TrainSpec(epochs=3, batch_size=4)
    batches = Batches(splits, train, spec)

    # Validation in split order, decoded as Splits.head decodes, with its labels.
    x_val = np.concatenate([x.numpy() for x, _ in batches.ordered["val"]])
    y_val = np.concatenate([y.numpy() for _, y in batches.ordered["val"]])
    np.testing.assert_array_equal(x_val, splits.head("val", 4))
    assert y_val.tolist() == splits.y_val.tolist()

    expected = sorted(splits.head("train", 12).mean(axis=(1, 2, 3)).round(4).tolist())
    epochs = _epochs(batches, seed=5)
    assert len(epochs) == 3
    for epoch in epochs:  # a buffer of 3 out of 12 images still loses and repeats none
        assert sorted(epoch.round(4).tolist()) == expected
    assert not np.array_equal(epochs[0], epochs[1])  # each epoch its own order
    again = _epochs(Batches(splits, train, spec), seed=5)
    for epoch, repeated in zip(epochs, again, strict=True):
        np.testing.assert_array_equal(epoch, repeated)
    # A trial resumed at epoch 2 sees what the uninterrupted one saw.
    np.testing.assert_array_equal(_epochs(batches, seed=5, first_epoch=2)[0], epochs[2])


def test_augmentation_changes_training_batches_only_and_repeats_per_seed_and_epoch(
        tmp_path: Path) -> None:
    root = _folder(tmp_path / "images")
    # A left-right gradient that a horizontal flip visibly mirrors.
    for file in (root / "a").iterdir():
        pixels = np.tile(np.linspace(0, 255, 8, dtype=np.uint8), (8, 1))
        Image.fromarray(np.stack([pixels] * 3, axis=-1)).save(file)
    spec = _spec(root, tmp_path, augment={"flip": "horizontal", "contrast": 0.5})
    plain = _spec(root, tmp_path)
    splits = load_data(spec, 0)
    train = TrainSpec(epochs=2, batch_size=12)
    batches = Batches(splits, train, spec)

    def first_batch(source: Batches, first_epoch: int = 0) -> np.ndarray:
        x, _ = next(iter(source.shuffled_training(3, first_epoch=first_epoch)))
        return x.numpy()

    augmented = first_batch(batches)
    unchanged = first_batch(Batches(load_data(plain, 0), train, plain))
    assert augmented.shape == unchanged.shape == (12, 8, 8, 3)
    assert not np.allclose(augmented, unchanged)
    assert augmented.min() >= 0.0 and augmented.max() <= 1.0  # contrast stays in range
    # Same seed and epoch, same changes; the resumed stream's first epoch is epoch 1.
    np.testing.assert_array_equal(augmented, first_batch(Batches(splits, train, spec)))
    second = [x.numpy() for x, _ in batches.shuffled_training(3)][1]
    np.testing.assert_array_equal(first_batch(batches, first_epoch=1), second)
    # Validation and test are never augmented.
    for split in ("val", "test"):
        x = np.concatenate([x.numpy() for x, _ in batches.ordered[split]])
        np.testing.assert_array_equal(x, splits.head(split, len(x)))


def test_an_unreadable_image_is_named_before_any_training(tmp_path: Path) -> None:
    root = _folder(tmp_path / "images")
    bad = root / "b" / "99.jpg"
    bad.write_bytes(b"this is not a jpeg")
    spec = _spec(root, tmp_path, validation_split=0.5, test_split=0.0)
    splits = load_data(spec, 0)  # only lists the files
    with pytest.raises(SpecError) as caught:
        Batches(splits, TrainSpec(epochs=1), spec)
    assert caught.value.field == "data.path"
    assert str(caught.value) == f"data.path: cannot read image (got '{bad}')"


def test_cache_folders_are_per_worker_and_a_dead_workers_folder_is_removed(
        tmp_path: Path) -> None:
    import socket

    spec = _spec(_folder(tmp_path / "images"), tmp_path)
    cache = tmp_path / "cache"
    cache.mkdir()
    # A folder left by a worker that was killed (its pid is gone) and one by a live one.
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True).stdout.strip()
    host = socket.gethostname()
    orphan = cache / f"{CACHE_PREFIX}{host}-{dead}-x1"
    alive = cache / f"{CACHE_PREFIX}{host}-{os.getppid()}-x2"
    other_host = cache / f"{CACHE_PREFIX}elsewhere-{dead}-x3"
    for folder in (orphan, alive, other_host):
        folder.mkdir()
    Batches(load_data(spec, 0), TrainSpec(epochs=1), spec)
    mine = list(cache.glob(f"{CACHE_PREFIX}{host}-{os.getpid()}-*"))
    assert len(mine) == 1
    assert sorted(p.name for p in mine[0].iterdir() if p.name.endswith(".index")) == \
        ["test.index", "train.index", "val.index"]
    assert not orphan.exists()
    assert alive.exists() and other_host.exists()


def test_a_cache_dir_that_cannot_be_created_is_named(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    spec = _spec(_folder(tmp_path / "images"), tmp_path).model_copy(
        update={"cache_dir": blocker / "cache"})
    with pytest.raises(SpecError) as caught:
        Batches(load_data(spec, 0), TrainSpec(epochs=1), spec)
    assert caught.value.field == "data.cache_dir"
    assert str(blocker / "cache") in str(caught.value)


def test_an_image_folder_study_trains_and_its_workers_leave_no_cache_behind(
        workdir: Path, storage_url: str, tracking_uri: str) -> None:
    import optuna
    from conftest import tiny_study, write_study

    root = _folder(workdir / "images")
    cache = workdir / "cache"
    study = tiny_study(
        name="images",
        data={"source": "image_folder", "path": str(root), "image_size": [8, 8],
              "validation_split": 0.2, "test_split": 0.2, "cache_dir": str(cache),
              "augment": {"flip": "horizontal", "rotation": 0.1, "zoom": 0.1}},
        model={"layers": [{"Flatten": {}}, {"Dense": {"units": 8, "activation": "relu"}},
                          {"Dense": {"units": 2, "activation": "softmax"}}]},
        budget={"n_trials": 2})
    path = write_study(workdir / "images.yaml", study)
    done = subprocess.run(
        [sys.executable, "-m", "sweep", "run", str(path), "--storage", storage_url,
         "--tracking-uri", tracking_uri, "--no-progress"],
        capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout + done.stderr
    trials = optuna.load_study(study_name="images", storage=storage_url).trials
    assert [t.state.name for t in trials] == ["COMPLETE", "COMPLETE"]
    assert all(0.0 <= t.user_attrs["final/test_accuracy"] <= 1.0 for t in trials)
    assert list(cache.iterdir()) == []  # the worker removed its decoded copy on exit
