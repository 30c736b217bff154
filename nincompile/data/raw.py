"""What every reader of images returns (:class:`RawData`) and what they share:
checking the channels, size and split asked for, converting channels, class names
for numbered labels, and printing a path safely."""

from __future__ import annotations

import unicodedata
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import numpy as np

from ..errors import DataError

SPLITS = ("train", "test")
MODES = {1: "L", 3: "RGB", 4: "RGBA"}

#: The kinds of data read from a ``--data PATH`` (the others: ``keras:<name>``, ``synthetic``).
PATH_KINDS = ("folder", "cifar10-batches", "cifar10-tar", "idx")

Progress = Callable[[int, int], None]

_BIDI = frozenset("\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")


def printable(text) -> str:
    """``text`` safe to print on a terminal: control characters (escape sequences,
    bells, carriage returns), bidirectional overrides and bytes that are not UTF-8
    (kept by the file system as surrogates) are written as ``\\xNN``/``\\uNNNN``;
    everything else, accented letters included, is kept."""
    text = str(text)
    out = []
    for ch in text:
        code = ord(ch)
        if 0xDC80 <= code <= 0xDCFF:  # a byte that is not UTF-8, from os.fsdecode
            out.append(f"\\x{code - 0xDC00:02x}")
        elif ch in _BIDI or unicodedata.category(ch) in ("Cc", "Cs"):
            out.append(f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}")
        else:
            out.append(ch)
    return "".join(out)


def plural(n: int, word: str) -> str:
    many = word + ("es" if word.endswith("s") else "s")
    return f"{n:,} {word if n == 1 else many}"


# ------------------------------------------------------------------------ result


@dataclass
class RawData:
    """Decoded images and integer labels, straight from a source."""

    images: np.ndarray  # uint8, (N, H, W, C), C == channels requested
    labels: np.ndarray  # int32, (N,), values in [0, len(classes))
    classes: list[str]
    kind: str  # "folder" | "cifar10-batches" | "cifar10-tar" | "idx" | "keras:<name>" | "synthetic"
    location: str  # the path (or dataset name) read
    count: int | None = None  # images, when they are read in batches (``images`` empty)

    def describe(self) -> str:
        """``folder 'data/train': 50,000 images, 10 classes, 32x32x3``."""
        n, h, w, c = self.images.shape
        n = n if self.count is None else self.count
        where = self.kind
        if self.kind in PATH_KINDS:
            where += f" '{printable(self.location)}'"
        return f"{where}: {plural(n, 'image')}, {plural(len(self.classes), 'class')}, {h}x{w}x{c}"

    def __repr__(self) -> str:
        return f"RawData({self.describe()})"


# --------------------------------------------------------------------- channels


def convert_channels(images: np.ndarray, channels: int) -> np.ndarray:
    """Images ``(..., H, W, C)`` uint8 with ``channels`` channels.

    1 -> 3 repeats the gray channel; 3 -> 1 is the ITU-R 601-2 luminance with the same
    integer rounding as Pillow's ``convert("L")``; 4 -> 3 drops alpha; -> 4 adds an
    opaque alpha channel.  Returns the input unchanged when it already has
    ``channels`` channels.
    """
    if channels not in MODES:
        raise DataError(f"channels must be 1, 3 or 4; received {channels!r}")
    images = np.asarray(images)
    if images.ndim < 3:
        raise DataError(f"expected images with a channel axis (..., H, W, C); got {images.shape}")
    have = images.shape[-1]
    if have == channels:
        return images
    if have not in MODES:
        raise DataError(f"cannot convert images with {have} channels to {channels} channels")
    if have == 4:
        images = images[..., :3]
        have = 3
        if channels == 3:
            return np.ascontiguousarray(images)
    if channels == 1:  # have == 3
        rgb = images.astype(np.uint32)
        lum = (rgb[..., 0] * 19595 + rgb[..., 1] * 38470 + rgb[..., 2] * 7471 + 0x8000) >> 16
        return lum.astype(np.uint8)[..., None]
    if have == 1:
        images = np.repeat(images, 3, axis=-1)
    if channels == 4:
        alpha = np.full(images.shape[:-1] + (1,), 255, dtype=images.dtype)
        images = np.concatenate([images, alpha], axis=-1)
    return np.ascontiguousarray(images)


def check_channels(channels: int) -> str:
    if isinstance(channels, bool) or channels not in MODES:
        raise DataError(f"channels must be 1, 3 or 4; received {channels!r}")
    return MODES[channels]


def check_size(size) -> tuple[int, int] | None:
    if size is None:
        return None
    try:
        h, w = (int(s) for s in size)
    except (TypeError, ValueError):
        raise DataError(f"size must be (height, width); received {size!r}") from None
    if h < 1 or w < 1:
        raise DataError(f"size must be positive (height, width); received {size!r}")
    return h, w


def check_split(split: str) -> str:
    if split not in SPLITS:
        raise DataError(f"split must be 'train' or 'test'; received {split!r}")
    return split


def join_names(names: Iterable[str]) -> str:
    return ", ".join(printable(n) for n in names)


def numbered_classes(labels: np.ndarray, classes, where: str) -> list[str]:
    """Class names for integer labels that carry no names (idx files, Keras's loaders):
    the given ``classes``, which must cover every label, or ``"0"``, ``"1"``, ..."""
    top = int(labels.max()) if labels.size else -1
    if classes is None:
        return [str(i) for i in range(max(10, top + 1))]
    names = [str(c) for c in classes]
    if len(names) <= top:
        raise DataError(
            f"{where} labels up to {top}, but the class list names only "
            f"{len(names)} classes [{join_names(names)}]"
        )
    return names
