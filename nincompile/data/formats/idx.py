"""``idx``: a folder of MNIST / Fashion-MNIST idx files (``train-images-idx3-ubyte``,
``train-labels-idx1-ubyte``, ``t10k-...``; each optionally gzipped)."""

from __future__ import annotations

import gzip
import math
import os
import struct
import zlib
from pathlib import Path

import numpy as np

from ... import guard
from ...errors import DataError, DataTooLarge, first_line
from ..raw import RawData, join_names, numbered_classes, printable

KIND = "idx"
ACCEPTS = (
    "a folder of MNIST / Fashion-MNIST idx files (train-images-idx3-ubyte, "
    "train-labels-idx1-ubyte, t10k-..., optionally .gz)"
)

# --------------------------------------------------------------------------- idx

_IDX_IMAGES = 0x00000803
_IDX_LABELS = 0x00000801


def _idx_file(folder: Path, prefix: str, what: str) -> Path | None:
    """``train-images-idx3-ubyte`` (or ``.gz``, or ``train-images.idx3-ubyte``)."""
    dims = "idx3" if what == "images" else "idx1"
    for sep in ("-", "."):
        for gz in ("", ".gz"):
            p = folder / f"{prefix}-{what}{sep}{dims}-ubyte{gz}"
            if p.is_file():
                return p
    return None


def has_idx(folder: Path) -> bool:
    return any(_idx_file(folder, prefix, "images") for prefix in ("train", "t10k"))


def _open_idx(path: Path):
    try:
        f = guard.open_regular(path)
    except guard.NotRegularFile as err:
        raise DataError(
            f"idx file '{printable(path)}' is not a regular file ({err.kind})"
        ) from None
    return gzip.GzipFile(fileobj=f, mode="rb") if path.suffix == ".gz" else f


def _parse_idx(path: Path, magic: int) -> np.ndarray:
    """An idx file's array, read against its header: the dimensions' product (exact,
    never overflowing) must fit the memory limit before anything is allocated, and the
    data must be exactly that long (a gzipped file is read no further than one byte
    past it)."""
    ndim = magic & 0xFF
    header = 4 + 4 * ndim
    kind = "images" if magic == _IDX_IMAGES else "labels"
    shown = printable(path)
    try:
        with _open_idx(path) as f:
            head = f.read(header)
            if len(head) < header:
                raise DataError(
                    f"idx file '{shown}' is too short ({len(head)} bytes) to hold an idx "
                    f"header; expected an MNIST {kind} file"
                )
            (found,) = struct.unpack(">I", head[:4])
            if found != magic:
                raise DataError(
                    f"idx file '{shown}' has magic number 0x{found:08X}; expected 0x{magic:08X} "
                    f"(MNIST {kind}, uint8, {ndim} dimensions)"
                )
            dims = struct.unpack(f">{ndim}I", head[4:header])
            expected = math.prod(dims)  # Python ints: no overflow
            said = " x ".join(map(str, dims))
            limits = guard.Limits.from_env()
            if expected > limits.max_memory:
                raise DataTooLarge(
                    f"idx file '{shown}' declares {said} = {expected:,} bytes, over the "
                    f"memory limit of {limits.memory_text()}; it was not read. If the data "
                    f"really is this large, {guard.RAISE_MEMORY}."
                )
            if path.suffix != ".gz":
                have = os.fstat(f.fileno()).st_size - header
                if have != expected:
                    raise DataError(
                        f"idx file '{shown}' holds {have:,} data bytes; its header ({said}) "
                        f"says {expected:,}"
                    )
            data = np.empty(expected, dtype=np.uint8)
            view = memoryview(data)
            got = 0
            while got < expected:
                n = f.readinto(view[got : got + (1 << 24)])
                if not n:
                    break
                got += n
            if got < expected:
                raise DataError(
                    f"idx file '{shown}' holds {got:,} data bytes; its header ({said}) says "
                    f"{expected:,}"
                )
            if f.read(1):
                raise DataError(
                    f"idx file '{shown}' holds more data than its header ({said}) declares "
                    f"({expected:,} bytes); it was not read further"
                )
    except DataError:
        raise
    except (OSError, EOFError, zlib.error) as err:
        raise DataError(f"cannot read idx file '{shown}': {first_line(err)}") from None
    return data.reshape(dims)


def read(folder: Path, *, split: str, classes, **_options) -> RawData:
    prefix = "train" if split == "train" else "t10k"
    img_path = _idx_file(folder, prefix, "images")
    lbl_path = _idx_file(folder, prefix, "labels")
    if img_path is None or lbl_path is None:
        need = f"{prefix}-images-idx3-ubyte and {prefix}-labels-idx1-ubyte (optionally .gz)"
        present = sorted(p.name for p in folder.iterdir() if "ubyte" in p.name)
        raise DataError(
            f"idx folder '{printable(folder)}' has no {split} split: expected {need}; "
            f"found {join_names(present) or 'no idx files'}"
        )
    images = _parse_idx(img_path, _IDX_IMAGES)
    labels = _parse_idx(lbl_path, _IDX_LABELS).astype(np.int32)
    if images.shape[0] != labels.shape[0]:
        raise DataError(
            f"idx files '{printable(img_path)}' and '{printable(lbl_path)}' disagree: "
            f"{images.shape[0]:,} images "
            f"but {labels.shape[0]:,} labels"
        )
    names = numbered_classes(labels, classes, f"'{printable(lbl_path)}' holds")
    return RawData(np.ascontiguousarray(images[..., None]), labels, names, "idx", str(folder))
