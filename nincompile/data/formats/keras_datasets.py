"""Keras's own loaders (``keras.datasets``; they download on first use)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ...errors import DataError, first_line
from ..raw import RawData, check_channels, check_split, convert_channels, numbered_classes

#: The data sets ``data.dataset`` may name that Keras downloads.
KERAS_DATASETS = ("cifar10", "fashion_mnist", "mnist")


def load_keras_dataset(
    name: str,
    *,
    split: str = "train",
    classes: Sequence[str] | None = None,
    channels: int = 3,
) -> RawData:
    """``keras.datasets.<name>.load_data()`` (cifar10, fashion_mnist, mnist) as RawData.

    Keras downloads the data on first use; without a network this fails with a
    DataError pointing at ``--data PATH``.
    """
    check_split(split)
    check_channels(channels)
    if name not in KERAS_DATASETS:
        raise DataError(
            f"unknown Keras data set '{name}'; expected one of {', '.join(KERAS_DATASETS)}"
        )
    try:
        import keras

        (x_train, y_train), (x_test, y_test) = getattr(keras.datasets, name).load_data()
    except Exception as err:
        raise DataError(
            f"could not load {name} through keras.datasets (no network?): {first_line(err)}. "
            "Pass local files with --data PATH: a folder of class sub-folders, a "
            "cifar-10-batches-py folder or cifar-10-python.tar.gz, or a folder of MNIST idx "
            "files."
        ) from None
    x, y = (x_train, y_train) if split == "train" else (x_test, y_test)
    images = np.asarray(x, dtype=np.uint8)
    if images.ndim == 3:
        images = images[..., None]
    labels = np.asarray(y).reshape(-1).astype(np.int32)
    names = numbered_classes(labels, classes, f"keras.datasets.{name} has")
    images = convert_channels(np.ascontiguousarray(images), channels)
    return RawData(images, labels, names, f"keras:{name}", f"keras.datasets.{name}")
