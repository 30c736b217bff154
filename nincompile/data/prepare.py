"""Which images a command uses: the spec's ``data:`` section and ``--data``/``--val``
resolved to training, validation or evaluation arrays (uint8, NHWC)."""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass

from ..errors import DataError
from . import sources
from .raw import join_names
from .split import stratified_split, stratified_subset

SYNTHETIC_DEFAULT = 2048
HOW_TO_PASS = (
    "pass --data PATH: a folder of class sub-folders (as train/ in the CIFAR-10 JPEG "
    "archive), a cifar-10-batches-py folder or cifar-10-python.tar.gz, or a folder of "
    "MNIST/Fashion-MNIST idx files"
)


@dataclass
class Datasets:
    train: sources.RawData
    val: sources.RawData | None
    notes: list[str]


def normalisation(data, channels: int) -> tuple[list[float], list[float]]:
    """``(mean, std)`` per channel in pixel units (0..255): the spec's ``data.mean`` and
    ``data.std``, or ``x / 255`` when it gives none (what training, evaluation and the
    int8 export all feed)."""
    if data is not None and data.mean is not None:
        return list(data.mean), list(data.std)
    return [0.0] * channels, [255.0] * channels


def normalise(x, mean, std):
    """``(x - mean) / std`` as float32 (``x`` unchanged when ``mean`` is None): what the
    model sees of pixels ``x`` (0..255) given :func:`normalisation`'s figures."""
    import numpy as np

    if mean is None:
        return x
    return ((x - np.asarray(mean, np.float32)) / np.asarray(std, np.float32)).astype(np.float32)


def subset(raw: sources.RawData, idx, what: str) -> sources.RawData:
    return dataclasses.replace(
        raw, images=raw.images[idx], labels=raw.labels[idx], location=f"{raw.location} ({what})"
    )


def _check_outputs(raw: sources.RawData, n_outputs: int | None, where: str) -> None:
    if n_outputs is not None and len(raw.classes) > n_outputs:
        raise DataError(
            f"{sources.printable(where)}: {len(raw.classes)} classes but the model has "
            f"{n_outputs} outputs; "
            "make the last layer as wide as the number of classes"
        )


def resize_mode(spec) -> str:
    """How images of another size reach the model's input: the spec's ``data.resize``,
    or ``pad`` (what :func:`nincompile.data.pipeline.wrap` does without a spec)."""
    data = getattr(spec, "data", None)
    return data.resize if data is not None else "pad"


def _classes(spec):
    data = spec.data
    return list(data.classes) if data is not None and data.classes else None


def _read(spec, path, split: str, cache_dir, progress) -> sources.RawData:
    h, w, c = spec.input
    return sources.read_source(
        path, split=split, classes=_classes(spec), channels=c, size=(h, w),
        resize=resize_mode(spec), cache_dir=cache_dir, progress=progress,
    )  # fmt: skip


def training_data(
    spec, data_path=None, val_path=None, *, n_outputs=None, cache_dir=None, progress=None
) -> Datasets:
    """Training and validation images for ``spec`` (``--data``/``--val`` win over the
    spec's ``data.path``/``data.dataset``)."""
    data = spec.data
    h, w, c = spec.input
    seed = data.split_seed if data is not None else 0  # the same split for every train.seed
    path = data_path or (data.path if data is not None else None)
    dataset = data.dataset if data is not None else None
    classes = list(data.classes) if data is not None and data.classes else None
    notes = []
    if path is not None:
        raw = _read(spec, path, "train", cache_dir, progress)
    elif dataset == "synthetic":
        n = (data.limit if data.limit else None) or SYNTHETIC_DEFAULT
        k = len(classes) if classes else (n_outputs or 10)
        raw = sources.synthetic(n, (h, w, c), classes or [f"class_{i}" for i in range(k)], seed)
        # synthetic images follow the split seed too: one data set for every train.seed
    elif dataset in sources.KERAS_DATASETS:
        raw = sources.load_keras_dataset(dataset, split="train", classes=classes, channels=c)
    elif dataset == "folder":
        raise DataError(f"data.dataset is 'folder' but no folder was given: {HOW_TO_PASS}")
    else:
        raise DataError(f"{spec.name}: the spec names no data set (data.dataset); {HOW_TO_PASS}")
    _check_outputs(raw, n_outputs, raw.location)
    if len(raw.classes) < 2:  # every prediction right by construction: nothing learnt
        raise DataError(
            f"{sources.printable(raw.location)}: {len(raw.classes)} class "
            f"({join_names(raw.classes)}); a classifier needs at least 2 classes to train on"
        )
    notes.append(f"found {raw.describe()}")
    if data is not None and data.limit and len(raw.labels) > data.limit:
        raw = subset(raw, stratified_subset(raw.labels, data.limit, seed), f"{data.limit} images")
        notes.append(f"using {len(raw.labels):,} of them (data.limit)")
    val = None
    if val_path is not None:
        val = _read(spec, val_path, "test", cache_dir, progress)
        if val.classes != raw.classes:
            raise DataError(
                f"--val {sources.printable(val_path)} has classes "
                f"[{join_names(val.classes)}], the training data "
                f"[{join_names(raw.classes)}]"
            )
        notes.append(f"validation: {val.describe()}")
        if path is not None and os.path.realpath(val_path) == os.path.realpath(path):
            notes.append("warning: --val is the training data itself; its accuracy says "
                         "nothing about images the model has not seen")  # fmt: skip
    else:
        fraction = data.validation_split if data is not None else 0.1
        if fraction > 0:
            tr, va = stratified_split(raw.labels, fraction, seed)
            if len(va) == 0 or len(tr) == 0:
                raise DataError(
                    f"data.validation_split={fraction} leaves no images for "
                    f"{'validation' if len(va) == 0 else 'training'} out of {len(raw.labels)}"
                )
            val = subset(raw, va, f"validation split {fraction:g}")
            raw = subset(raw, tr, "training split")
            notes.append(
                f"held out {len(va):,} images for validation (seeded, stratified); "
                f"training on {len(tr):,}"
            )
        else:
            notes.append("no validation split (data.validation_split = 0)")
    if raw.images.shape[-1] != c:
        raise DataError(f"images have {raw.images.shape[-1]} channels; the model takes {c}")
    return Datasets(raw, val, notes)


def evaluation_data(spec, path, *, n_outputs=None, cache_dir=None, progress=None):
    """The images of ``--data PATH`` for ``evaluate`` (the test split of a CIFAR or
    MNIST download; a class folder as it is)."""
    raw = _read(spec, path, "test", cache_dir, progress)
    _check_outputs(raw, n_outputs, str(path))
    return raw


def evaluation_batches(
    spec, path, *, batch: int = sources.DECODE_BATCH, n_outputs=None, cache_dir=None,
    progress=None,
):  # fmt: skip
    """``(data, batches)`` of ``--data PATH`` for ``evaluate``: ``data`` holds the
    labels and classes, ``batches`` yields uint8 image arrays of at most ``batch``
    images in label order.  A class folder is decoded batch by batch, every image
    brought to the model's input (``data.resize``) as it is decoded, so memory depends
    on the batch, not on the folder; a CIFAR or MNIST download (at most 10,000 test
    images) is read whole and sliced."""
    h, w, c = spec.input
    if sources.detect(path) == "folder":
        raw, batches = sources.folder_batches(
            path, classes=_classes(spec), channels=c, size=(h, w), resize=resize_mode(spec),
            batch=batch, cache_dir=cache_dir, progress=progress,
        )  # fmt: skip
        _check_outputs(raw, n_outputs, str(path))
        return raw, batches
    raw = evaluation_data(spec, path, n_outputs=n_outputs, cache_dir=cache_dir, progress=progress)
    images = raw.images
    return raw, (images[i : i + batch] for i in range(0, len(images), batch))
