"""Compile, fit and evaluate one trial's model.

Keras' ``loss``/``val_loss`` include the regularization penalty (a model with L2(10) shows a
loss of 43.7 where its data loss is 0.67), so a regularized and an unregularized model
cannot be compared on them. Every model is therefore also compiled with ``data_loss``: the
same loss function as a metric, which sees predictions and labels only.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from sweep.keys import FINAL
from sweep.spec import TrainSpec
from sweep.training.data import Splits
from sweep.training.runtime import import_keras

_OPTIMIZERS = {
    "adam": "Adam", "adamw": "AdamW", "sgd": "SGD", "rmsprop": "RMSprop",
    "nadam": "Nadam", "adagrad": "Adagrad",
}
_ACCURACY = {
    "sparse_categorical_crossentropy": "SparseCategoricalAccuracy",
    "categorical_crossentropy": "CategoricalAccuracy",
    "binary_crossentropy": "BinaryAccuracy",
}
SPLITS = ("train", "val", "test")


def metric_names(train: TrainSpec) -> tuple[str, ...]:
    """The per-epoch metrics Keras will log for this training spec (without ``val_``)."""
    return ("loss", "data_loss", "accuracy") if train.is_classification else ("loss", "data_loss")


# `steps_per_execution: auto` runs a whole epoch per compiled call up to this many batches.
AUTO_STEPS = 64


def execution_steps(setting: int | str, steps_per_epoch: int) -> int:
    """Batches per compiled call: ``setting`` (``auto``: AUTO_STEPS), lowered to the largest
    divisor of the epoch's batches. Keras runs a call's batches across an epoch's end when
    the training data is one stream over all epochs (as here, for resumable shuffling): a
    call that does not divide the epoch would shift every later epoch's boundary (its
    validation, pruning report and checkpoint) and end training early."""
    limit = AUTO_STEPS if setting == "auto" else int(setting)
    return max(n for n in range(1, min(limit, steps_per_epoch) + 1) if steps_per_epoch % n == 0)


def compile_model(model: Any, train: TrainSpec, steps_per_execution: int = 1) -> None:
    """Compile with ``train``'s optimizer, loss and metrics. The learning rate and the
    weight decay are variables of the optimizer (``set_rates`` changes them without a new
    trace): a trial of a searched learning rate or weight decay reuses the compiled model
    of another (sweep.training.cache)."""
    keras = import_keras()
    optimizer = getattr(keras.optimizers, _OPTIMIZERS[train.optimizer])(
        learning_rate=train.learning_rate)
    decay = weight_decay(train)
    if decay is not None:
        # Keras reads the attribute inside the traced step: a variable is read per step.
        optimizer.weight_decay = keras.Variable(decay, trainable=False, dtype="float32",
                                                name="weight_decay")
    metrics = [keras.metrics.MeanMetricWrapper(keras.losses.get(train.loss), name="data_loss")]
    if train.loss in _ACCURACY:
        metrics.append(getattr(keras.metrics, _ACCURACY[train.loss])(name="accuracy"))
    model.compile(optimizer=optimizer, loss=train.loss, metrics=metrics,
                  steps_per_execution=steps_per_execution, jit_compile=train.jit_compile)


def weight_decay(train: TrainSpec) -> float | None:
    """The decoupled weight decay ``train`` asks for: its own, else the optimizer's default
    (Keras' AdamW decays by 0.004; the others not at all)."""
    if train.weight_decay is not None:
        return float(train.weight_decay)
    return 0.004 if train.optimizer == "adamw" else None


def set_rates(model: Any, train: TrainSpec) -> None:
    """``train``'s learning rate and weight decay into a compiled model's optimizer."""
    optimizer = model.optimizer
    optimizer.learning_rate.assign(float(train.learning_rate))
    decay = weight_decay(train)
    if decay is not None:
        optimizer.weight_decay.assign(decay)


def prepare_targets(y: np.ndarray, train: TrainSpec, n_classes: int | None) -> np.ndarray:
    """Labels in the form the loss expects (one-hot for categorical, a column for binary)."""
    if train.loss == "categorical_crossentropy" and y.ndim == 1:
        return np.eye(n_classes or int(y.max()) + 1, dtype="float32")[y]
    if train.loss == "binary_crossentropy" and y.ndim == 1:
        return y.astype("float32")[:, None]
    return y


class Batches:
    """The worker's data as tf.data pipelines, built once and shared by its trials.

    Handing Keras numpy arrays makes it build (and trace) a fresh input pipeline on every
    fit and evaluate call; these pipelines are built once. Only the training order is new
    per trial: shuffled from the trial's seed, so a trial is reproducible on its own.
    Arrays are held in memory and shuffled whole; an image folder is streamed from the
    worker's cache file through ``data.shuffle_buffer`` (sweep.training.images)."""

    def __init__(self, splits: Splits, train: TrainSpec, data: Any = None):
        import tensorflow as tf

        self.train = train
        self._tf = tf
        targets = {
            split: prepare_targets(getattr(splits, f"y_{split}"), train, splits.n_classes)
            for split in SPLITS if len(getattr(splits, f"y_{split}"))
        }
        self.sizes = {split: len(target) for split, target in targets.items()}
        self._augment = None
        if splits.image_shape is None:
            self.elements = {
                split: tf.data.Dataset.from_tensor_slices(
                    (tf.constant(getattr(splits, f"x_{split}")), tf.constant(target)))
                for split, target in targets.items()
            }
            self._finish: Any = None
            self._buffer = self.sizes["train"]
            cache = True  # batches of tensors already in memory: keep them as they are
        else:
            from sweep.training import images

            self.elements = images.ImageStream(splits, data, targets).elements
            self._finish = images.to_float
            self._buffer = min(self.sizes["train"], data.shuffle_buffer)
            self._augment = data.augment
            cache = False  # the decoded images are in the cache file, not in memory
        self.ordered = {}
        for split, elements in self.elements.items():
            batches = elements.batch(train.batch_size)
            if self._finish is not None:
                batches = batches.map(self._finish, num_parallel_calls=tf.data.AUTOTUNE)
            if cache:
                batches = batches.cache()
            self.ordered[split] = batches.prefetch(tf.data.AUTOTUNE)

    def steps_per_epoch(self) -> int:
        return -(-self.sizes["train"] // self.train.batch_size)

    def shuffled_training(self, seed: int, *, first_epoch: int = 0):
        """The training batches of epochs ``first_epoch`` … ``epochs - 1`` as one stream,
        each epoch shuffled (and augmented) from (``seed``, epoch) alone. A resumed trial
        thus sees the same batches as one never stopped; a reshuffling dataset would
        restart its sequence of orders with every new pipeline."""
        tf = self._tf
        elements = self.elements["train"]
        buffer, batch_size, finish = self._buffer, self.train.batch_size, self._finish

        def epoch(number):
            batches = elements.shuffle(buffer, seed=number + seed * 1_000_003).batch(batch_size)
            return batches if finish is None else \
                batches.map(finish, num_parallel_calls=tf.data.AUTOTUNE)

        if self._augment is None:
            stream = tf.data.Dataset.range(first_epoch, self.train.epochs).flat_map(epoch)
        else:
            from sweep.training.images import augmenter

            # Fresh layers per epoch (their random state is Python-side), so one epoch's
            # changes depend on (seed, epoch) only; hence one dataset per epoch, chained.
            stream = tf.data.Dataset.range(0).flat_map(epoch)  # empty: nothing left to train
            for number in range(first_epoch, self.train.epochs):
                layer_seed = (seed * 1_000_003 + number) % 2**30  # Keras keeps seeds 32-bit
                stream = stream.concatenate(epoch(number).map(augmenter(self._augment,
                                                                        layer_seed)))
        return stream.prefetch(tf.data.AUTOTUNE)


def fit(model: Any, batches: Batches, callbacks: Sequence[Any], *, seed: int,
        initial_epoch: int = 0) -> None:
    # With steps_per_epoch Keras reads one iterator across epochs: the stream above.
    model.fit(batches.shuffled_training(seed, first_epoch=initial_epoch),
              validation_data=batches.ordered["val"], epochs=batches.train.epochs,
              steps_per_epoch=batches.steps_per_epoch(), initial_epoch=initial_epoch,
              shuffle=False, verbose=0, callbacks=list(callbacks))


def evaluate(model: Any, batches: Batches) -> dict[str, float]:
    """Final figures on every split: ``final/<split>_<metric>``. The test split is touched
    here only, after the trial's training is over, never to choose anything."""
    results: dict[str, float] = {}
    for split, dataset in batches.ordered.items():
        scores = model.evaluate(dataset, verbose=0, return_dict=True)
        for name, value in scores.items():
            results[f"{FINAL}{split}_{name}"] = float(value)
    return results
