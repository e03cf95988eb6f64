"""Where a stopped trial's training state lives, and the Keras side that saves it."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from sweep.training import checkpoint


def test_default_root_is_next_to_a_sqlite_storage(tmp_path: Path, monkeypatch) -> None:
    assert checkpoint.default_root(f"sqlite:///{tmp_path}/sub/sweep.db") == \
        tmp_path / "sub" / "sweep-checkpoints"
    monkeypatch.chdir(tmp_path)
    assert checkpoint.default_root("postgresql://u@h/db") == tmp_path / "sweep-checkpoints"
    assert checkpoint.default_root(None) == tmp_path / "sweep-checkpoints"


def test_state_points_at_the_newest_weights_and_drops_older_ones(tmp_path: Path) -> None:
    folder = checkpoint.folder(tmp_path, "0123456789abcdef", 7)
    assert folder == tmp_path / "study-0123456789ab" / "trial-7"
    folder.mkdir(parents=True)
    assert checkpoint.read_state(folder) is None
    (folder / "epoch-0001.npz").write_bytes(b"1")
    checkpoint.write_state(folder, {"epoch": 1, "weights": "epoch-0001.npz",
                                    "trial": 7})
    (folder / "epoch-0002.npz").write_bytes(b"2")
    # Killed between the weights and the state: the state still names epoch 1.
    assert checkpoint.read_state(folder)["epoch"] == 1
    checkpoint.write_state(folder, {"epoch": 2, "weights": "epoch-0002.npz",
                                    "trial": 9})
    assert checkpoint.read_state(folder) == {"epoch": 2, "weights": "epoch-0002.npz",
                                             "trial": 9}
    assert sorted(p.name for p in folder.iterdir()) == ["epoch-0002.npz",
                                                        "state.json"]


def test_a_state_without_its_weights_is_no_checkpoint(tmp_path: Path) -> None:
    (tmp_path / "state.json").write_text(json.dumps({"epoch": 3, "weights": "gone.h5"}))
    assert checkpoint.read_state(tmp_path) is None
    (tmp_path / "state.json").write_text("{not json")
    assert checkpoint.read_state(tmp_path) is None


def test_remove_deletes_the_trial_and_an_empty_study_folder(tmp_path: Path) -> None:
    a = checkpoint.folder(tmp_path, "uid", 1)
    b = checkpoint.folder(tmp_path, "uid", 2)
    for folder in (a, b):
        folder.mkdir(parents=True)
        (folder / "state.json").write_text("{}")
    checkpoint.remove(a)
    assert not a.exists() and b.exists()
    checkpoint.remove(b)
    assert not b.parent.exists()
    checkpoint.remove(None)  # nothing to remove is fine


class _Saved:
    """A checkpoint writer that records the epochs handed to it."""

    def __init__(self) -> None:
        self.epochs: list[int] = []

    def submit(self, epoch: int, arrays: list) -> None:
        self.epochs.append(epoch)


def _saved_epochs(every: int | str, seconds_per_epoch: float, epochs: int) -> list[int]:
    """The epochs a TrainingCheckpoint saves in a real ``fit`` whose epochs each take
    ``seconds_per_epoch`` on its clock."""
    import keras

    from sweep.training.callbacks import TrainingCheckpoint

    now = [0.0]

    class Tick(keras.callbacks.Callback):  # before the checkpoint: the epoch's time passes
        def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
            now[0] += seconds_per_epoch

    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])
    model.compile(optimizer="adam", loss="mse")
    writer = _Saved()
    saver = TrainingCheckpoint(writer, every=every, clock=lambda: now[0])
    model.fit(np.zeros((8, 3)), np.zeros((8, 2)), epochs=epochs, verbose=0,
              callbacks=[Tick(), saver])
    return writer.epochs


def test_auto_saves_once_thirty_seconds_have_passed_and_never_the_last_epoch() -> None:
    assert _saved_epochs("auto", 12.0, 10) == [3, 6, 9]  # 36 s, 36 s, 36 s
    assert _saved_epochs("auto", 0.5, 10) == []  # 5 s of training: nothing worth saving
    assert _saved_epochs("auto", 45.0, 4) == [1, 2, 3]  # long epochs: each one
    assert _saved_epochs(2, 0.5, 7) == [2, 4, 6]  # a number: every that many epochs
