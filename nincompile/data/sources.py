"""Find and decode images into uint8 NHWC arrays.

``read_source(PATH)`` reads the forms ``--data PATH`` accepts (see :data:`ACCEPTED`):

* ``folder``: a folder of class sub-folders holding image files
  (``train/airplane/0001.jpg``), decoded with Pillow on a thread pool and cached
  (:mod:`nincompile.data.cache`);
* ``cifar10-batches``: a ``cifar-10-batches-py`` folder (or a folder holding one);
* ``cifar10-tar``: the ``cifar-10-python.tar.gz`` archive, read without extracting;
* ``idx``: a folder of MNIST / Fashion-MNIST idx files (``train-images-idx3-ubyte``,
  ``train-labels-idx1-ubyte``, ``t10k-...``; each optionally gzipped).

``load_keras_dataset`` goes through ``keras.datasets`` (needs a network), and
``synthetic`` makes learnable random images for smoke tests.  ``list_image_files``
and ``read_images`` decode the loose files given to ``predict`` and ``export``;
``sample_class_images`` and ``read_images_float32`` pick and read the sample of a
class folder that an export's parity check runs on.

Every problem with the input is a :class:`~nincompile.errors.DataError` naming the
file or folder, what was expected and what was found.  Nothing here imports
TensorFlow or Keras at module level (Keras only inside ``load_keras_dataset``).
"""

from __future__ import annotations

import bz2
import contextlib
import gzip
import io
import lzma
import math
import os
import pickle
import re
import stat
import struct
import tarfile
import threading
import unicodedata
import zlib
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .. import guard
from ..errors import DataError, DataTooLarge
from . import cache as _cache

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp")

KERAS_DATASETS = ("cifar10", "fashion_mnist", "mnist")

SPLITS = ("train", "test")

ACCEPTED = (
    "a folder of class sub-folders holding image files (e.g. train/airplane/0001.jpg; "
    + ", ".join(IMAGE_SUFFIXES)
    + ")",
    "a cifar-10-batches-py folder (or a folder holding one)",
    "the cifar-10-python.tar.gz archive",
    "a folder of MNIST / Fashion-MNIST idx files (train-images-idx3-ubyte, "
    "train-labels-idx1-ubyte, t10k-..., optionally .gz)",
)

CIFAR_DIR = "cifar-10-batches-py"
CIFAR_TRAIN = tuple(f"data_batch_{i}" for i in range(1, 6))
CIFAR_TEST = ("test_batch",)
CIFAR_META = "batches.meta"
#: What the format allows: a batch pickles 10,000 images of 3,072 bytes, their labels
#: and file names (the originals are 31,035,5xx bytes; a batch pickled again by Python 3
#: with protocol 2 writes the pixels as latin-1 text, up to 2 bytes each);
#: batches.meta is 158 bytes.
CIFAR_BATCH_IMAGES = 10_000
CIFAR_BATCH_MAX_BYTES = CIFAR_BATCH_IMAGES * (2 * 3072 + 1) + (4 << 20)
CIFAR_META_MAX_BYTES = 64 << 10
#: The whole archive, decompressed (the real one: 184 MB).
CIFAR_ARCHIVE_MAX_BYTES = 8 * CIFAR_BATCH_MAX_BYTES

_MODES = {1: "L", 3: "RGB", 4: "RGBA"}

_PATH_KINDS = ("folder", "cifar10-batches", "cifar10-tar", "idx")

Progress = Callable[[int, int], None]


def _accepted_forms() -> str:
    return "--data accepts:\n" + "\n".join(f"  - {form}" for form in ACCEPTED)


def _first_line(err: BaseException) -> str:
    text = str(err).strip()
    return text.splitlines()[0] if text else type(err).__name__


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


def _plural(n: int, word: str) -> str:
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
        if self.kind in _PATH_KINDS:
            where += f" '{printable(self.location)}'"
        return f"{where}: {_plural(n, 'image')}, {_plural(len(self.classes), 'class')}, {h}x{w}x{c}"

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
    if channels not in _MODES:
        raise DataError(f"channels must be 1, 3 or 4; received {channels!r}")
    images = np.asarray(images)
    if images.ndim < 3:
        raise DataError(f"expected images with a channel axis (..., H, W, C); got {images.shape}")
    have = images.shape[-1]
    if have == channels:
        return images
    if have not in _MODES:
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


def _check_channels(channels: int) -> str:
    if isinstance(channels, bool) or channels not in _MODES:
        raise DataError(f"channels must be 1, 3 or 4; received {channels!r}")
    return _MODES[channels]


def _check_size(size) -> tuple[int, int] | None:
    if size is None:
        return None
    try:
        h, w = (int(s) for s in size)
    except (TypeError, ValueError):
        raise DataError(f"size must be (height, width); received {size!r}") from None
    if h < 1 or w < 1:
        raise DataError(f"size must be positive (height, width); received {size!r}")
    return h, w


def _check_split(split: str) -> str:
    if split not in SPLITS:
        raise DataError(f"split must be 'train' or 'test'; received {split!r}")
    return split


# ---------------------------------------------------------------------- decoding

#: Pixels (width x height) an image may have; larger ones are refused before they are
#: decoded.  Pillow's own default; raise with NINCOMPILE_MAX_IMAGE_PIXELS.
DEFAULT_MAX_IMAGE_PIXELS = 89_478_485
MAX_IMAGE_PIXELS_ENV = "NINCOMPILE_MAX_IMAGE_PIXELS"
#: ``data.resize`` modes: how an image of another shape reaches the model's input.
RESIZE_MODES = ("pad", "stretch", "crop")
#: Images decoded at a time by evaluate and predict (and read_images).
DECODE_BATCH = 256


def max_image_pixels() -> int:
    """The pixel limit: ``$NINCOMPILE_MAX_IMAGE_PIXELS``, else Pillow's default."""
    raw = os.environ.get(MAX_IMAGE_PIXELS_ENV, "").strip()
    if not raw:
        return DEFAULT_MAX_IMAGE_PIXELS
    try:
        value = int(float(raw.replace("_", "").replace(",", "")))
    except (ValueError, OverflowError):
        value = 0
    if value < 1:
        raise DataError(
            f"environment variable {MAX_IMAGE_PIXELS_ENV}: expected a positive number of "
            f"pixels, e.g. 200000000; received {raw!r}"
        )
    return value


def _pil():
    try:
        from PIL import Image
    except ImportError:  # pragma: no cover - Pillow is a dependency
        raise DataError(
            "decoding image files needs Pillow, which is not installed: pip install pillow"
        ) from None
    return Image


def _check_resize(resize: str) -> str:
    if resize not in RESIZE_MODES:
        raise DataError(f"resize must be one of {', '.join(RESIZE_MODES)}; received {resize!r}")
    return resize


def _too_many_pixels(path, w: int, h: int, limit: int) -> DataTooLarge:
    return DataTooLarge(
        f"image '{printable(path)}' is {w:,}x{h:,} = {w * h:,} pixels, over the limit of "
        f"{limit:,} pixels; it was not decoded. If such images are expected, raise the "
        f"limit with the environment variable {MAX_IMAGE_PIXELS_ENV}, or resize the file."
    )


def _fit(im, size: tuple[int, int], resize: str):
    """Pillow image ``im`` at ``size`` = (h, w): stretched, centre-cropped to the
    aspect ratio, or resized keeping the aspect ratio and padded with black (as
    :class:`nincompile.data.pipeline.Preprocess` does on the device)."""
    Image = _pil()
    th, tw = size
    w, h = im.size
    if (h, w) == (th, tw):
        return im
    bilinear = Image.Resampling.BILINEAR
    if resize == "crop":
        ch = min(h, max(1, round(w * th / tw)))
        cw = min(w, max(1, round(h * tw / th)))
        top, left = (h - ch) // 2, (w - cw) // 2
        return im.resize((tw, th), bilinear, box=(left, top, left + cw, top + ch))
    if resize == "pad":
        scale = min(tw / w, th / h)
        nw, nh = max(1, min(tw, round(w * scale))), max(1, min(th, round(h * scale)))
        canvas = Image.new(im.mode, (tw, th))
        canvas.paste(im.resize((nw, nh), bilinear), ((tw - nw) // 2, (th - nh) // 2))
        return canvas
    return im.resize((tw, th), bilinear)


def _draft_size(w: int, h: int, size: tuple[int, int], resize: str) -> tuple[int, int]:
    """The (width, height) a JPEG must at least be decoded at to give ``size``."""
    th, tw = size
    if resize == "stretch":
        return tw, th
    scale = max(tw / w, th / h) if resize == "crop" else min(tw / w, th / h)
    return max(1, math.ceil(w * scale)), max(1, math.ceil(h * scale))


_SMALL_IMAGE_BYTES = 1 << 20


class _Budget:
    """Bytes of full-size decoded pixels the decoding threads may hold at once, so
    memory depends on the budget, not on the number of threads times the largest
    image; an image larger than the whole budget is decoded alone."""

    def __init__(self, total: int):
        self.total = max(int(total), 1)
        self.free = self.total
        self.cond = threading.Condition()

    @contextlib.contextmanager
    def hold(self, need: int):
        if need <= _SMALL_IMAGE_BYTES:  # thumbnails (CIFAR's 3 KB): not worth the lock
            yield
            return
        need = min(int(need), self.total)
        with self.cond:
            self.cond.wait_for(lambda: self.free >= need)
            self.free -= need
        try:
            yield
        finally:
            with self.cond:
                self.free += need
                self.cond.notify_all()


def _decode_budget() -> _Budget:
    try:
        memory = guard.Limits.from_env().max_memory
    except guard.LimitError:
        memory = guard.DEFAULT_MAX_MEMORY
    return _Budget(min(max(memory // 8, 256 << 20), 2 << 30))


_NO_BUDGET = _Budget(1 << 62)


def _open_image_file(path):
    try:
        return guard.open_regular(path)
    except guard.NotRegularFile as err:
        raise DataError(
            f"image file '{printable(path)}' is not a regular file ({err.kind}); expected a "
            f"{'/'.join(IMAGE_SUFFIXES)} image"
        ) from None
    except FileNotFoundError:
        raise DataError(f"image file '{printable(path)}' does not exist") from None


def _decode_one(
    path: str | os.PathLike,
    mode: str,
    size: tuple[int, int] | None = None,
    resize: str = "stretch",
    *,
    only_larger: bool = False,
    max_pixels: int | None = None,
    budget: _Budget | None = None,
) -> np.ndarray:
    """One image file as a uint8 (H, W, C) array in Pillow ``mode``.

    The file must be a regular file (a FIFO is refused, never opened blocking) of at
    most ``max_pixels`` pixels (default :func:`max_image_pixels`), checked from its
    header before any pixel is decoded.  With ``size`` = (h, w) the image is brought
    to it as it is decoded (``resize``: stretch, crop or pad; a JPEG is decoded at a
    reduced scale when that still covers ``size``); with ``only_larger``, only images
    of more pixels than ``size`` are.
    """
    Image = _pil()
    limit = max_pixels or max_image_pixels()
    budget = budget or _NO_BUDGET
    f = _open_image_file(path)
    try:
        with f:
            try:
                im = Image.open(f)
            except Image.DecompressionBombError as err:
                m = re.search(r"\((\d+) pixels\)", str(err))
                shown = f"{int(m.group(1)):,} pixels" if m else "too many pixels"
                raise DataTooLarge(
                    f"image '{printable(path)}' is {shown}, over the limit of {limit:,} pixels; "
                    f"it was not decoded. If such images are expected, raise the limit with "
                    f"the environment variable {MAX_IMAGE_PIXELS_ENV}, or resize the file."
                ) from None
            with im:
                w, h = im.size
                if w * h > limit:
                    raise _too_many_pixels(path, w, h, limit)
                fit = size is not None and (not only_larger or w * h > size[0] * size[1])
                if fit and im.format == "JPEG":
                    im.draft(None, _draft_size(w, h, size, resize))
                dw, dh = im.size
                with budget.hold(dw * dh * 4):
                    im.load()
                    if im.mode == "P" and "transparency" in im.info:
                        im = im.convert("RGBA")
                    if im.mode != mode:
                        im = im.convert(mode)
                    if fit:
                        im = _fit(im, size, resize)
                    arr = np.asarray(im, dtype=np.uint8)
    except DataError:
        raise
    except Exception as err:  # PIL.UnidentifiedImageError, OSError, truncated data
        try:
            empty = os.path.getsize(path) == 0
        except OSError:
            empty = False
        if empty:
            raise DataError(
                f"image file '{printable(path)}' is empty (0 bytes); expected a "
                f"{'/'.join(IMAGE_SUFFIXES)} image. Remove or replace the file."
            ) from None
        raise DataError(
            f"cannot read image '{printable(path)}': {_first_line(err)}. Expected a readable "
            f"{'/'.join(IMAGE_SUFFIXES)} image; remove or replace the file."
        ) from None
    if arr.ndim == 2:
        arr = arr[:, :, None]
    return arr


def _resize(arr: np.ndarray, size: tuple[int, int], resize: str = "stretch") -> np.ndarray:
    """One uint8 (H, W, C) image brought to ``size`` = (h, w) with Pillow (bilinear;
    ``resize``: stretch, crop or pad)."""
    if arr.shape[:2] == size:
        return arr
    Image = _pil()
    c = arr.shape[2]
    im = Image.fromarray(arr[:, :, 0] if c == 1 else arr)
    out = np.asarray(_fit(im, size, resize), dtype=np.uint8)
    return out[:, :, None] if out.ndim == 2 else out


def _workers() -> int:
    try:
        n = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        n = os.cpu_count() or 1
    return max(1, min(32, n))


def _decode_files(
    files: Sequence[str | os.PathLike],
    mode: str,
    *,
    resize_to: tuple[int, int] | None = None,
    resize: str = "stretch",
    only_larger: bool = False,
    progress: Progress | None = None,
    pool: ThreadPoolExecutor | None = None,
    budget: _Budget | None = None,
    done: int = 0,
    total: int | None = None,
) -> list[np.ndarray]:
    """Decode ``files`` in order on a thread pool, each brought to ``resize_to`` as it
    is decoded (see :func:`_decode_one`).  Pillow releases the GIL while decoding
    pixels, which is where large images spend their time; tiny ones (CIFAR's 32x32)
    are bound by Pillow's Python header parsing instead, about 0.17 ms a file (50,000
    files: ~8 s).  The threads together hold at most ``budget`` bytes of full-size
    pixels; each image is reduced before the next is decoded."""
    n = len(files)
    total = n if total is None else total
    if n:
        _pil().preinit()  # register the common plugins once, not racing in the threads
        _raise_pillow_limit()
    limit = max_image_pixels()
    budget = budget or _decode_budget()
    chunk = max(1, min(512, n // (_workers() * 8) or 1))
    chunks = [files[i : i + chunk] for i in range(0, n, chunk)]

    def work(part: Sequence[str | os.PathLike]) -> list[np.ndarray]:
        if resize_to is None:  # the two-argument call keeps _decode_one easy to stand in for
            return [_decode_one(p, mode) for p in part]
        return [
            _decode_one(p, mode, resize_to, resize, only_larger=only_larger, max_pixels=limit,
                        budget=budget)
            for p in part
        ]  # fmt: skip

    results: list[np.ndarray] = []
    if progress is not None and done == 0:
        progress(0, total)
    if len(chunks) <= 1:
        for part in chunks:
            results.extend(work(part))
        if progress is not None and n:
            progress(done + n, total)
        return results
    own = pool is None
    pool = pool or ThreadPoolExecutor(max_workers=_workers(), thread_name_prefix="decode")
    try:
        futures = [pool.submit(work, part) for part in chunks]
        try:
            for fut in futures:
                results.extend(fut.result())
                if progress is not None:
                    progress(done + len(results), total)
        except BaseException:
            for fut in futures:
                fut.cancel()
            raise
    finally:
        if own:
            pool.shutdown(wait=True, cancel_futures=True)
    return results


def _raise_pillow_limit() -> None:
    """Pillow refuses images over twice its ``MAX_IMAGE_PIXELS``; when ours is raised
    above that, Pillow's follows (ours is checked first, for every image)."""
    Image = _pil()
    limit = max_image_pixels()
    if Image.MAX_IMAGE_PIXELS is not None and Image.MAX_IMAGE_PIXELS < limit:
        Image.MAX_IMAGE_PIXELS = limit


def _stack_sized(
    arrays: list[np.ndarray],
    files: Sequence[str | os.PathLike],
    size: tuple[int, int] | None,
    where: str,
    root: Path | None = None,
    resize: str = "stretch",
) -> np.ndarray:
    """Stack decoded images: all one size -> kept; mixed sizes -> resized to ``size``
    (or a DataError saying which sizes were found when there is no ``size``)."""
    sizes: dict[tuple[int, int], str | os.PathLike] = {}
    counts: dict[tuple[int, int], int] = {}
    for a, f in zip(arrays, files, strict=True):
        hw = a.shape[:2]
        sizes.setdefault(hw, f)
        counts[hw] = counts.get(hw, 0) + 1
    if len(sizes) > 1:
        if size is None:
            shown = sorted(counts.items(), key=lambda kv: -kv[1])
            parts = []
            for hw, n in shown[:4]:
                f = sizes[hw]
                name = os.path.relpath(f, root) if root is not None else str(f)
                parts.append(f"{hw[0]}x{hw[1]} ({_plural(n, 'file')}, e.g. '{printable(name)}')")
            more = f" and {len(shown) - 4} more sizes" if len(shown) > 4 else ""
            raise DataError(
                f"{where} holds images of {len(sizes)} different sizes: "
                f"{', '.join(parts)}{more}. Give a target size (height, width), e.g. the "
                "model's input size, to resize them to, or make all images one size."
            )
        arrays = [_resize(a, size, resize) for a in arrays]
    if not arrays:
        raise DataError(f"{where} holds no images")
    return np.stack(arrays).astype(np.uint8, copy=False)


# ------------------------------------------------------------------ loose files


def _is_image(p: Path) -> bool:
    return p.suffix.lower() in IMAGE_SUFFIXES and not p.name.startswith(".")


def list_image_files(paths: str | os.PathLike | Iterable[str | os.PathLike]) -> list[Path]:
    """Image files among ``paths``: files as given, folders searched recursively
    (sorted, hidden files and folders skipped).  Duplicates are dropped."""
    if isinstance(paths, (str, os.PathLike)):
        paths = [paths]
    out: list[Path] = []
    seen: set[Path] = set()

    def add(p: Path) -> None:
        key = p.resolve()
        if key not in seen:
            seen.add(key)
            out.append(p)

    given = [Path(p) for p in paths]
    if not given:
        raise DataError("no image files or folders were given")
    for p in given:
        if p.is_dir():
            found = []
            for dirpath, dirnames, filenames in os.walk(p):
                dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
                found.extend(Path(dirpath) / f for f in filenames if _is_image(Path(f)))
            if not found:
                raise DataError(
                    f"folder '{printable(p)}' holds no image files; expected "
                    f"{', '.join(IMAGE_SUFFIXES)} files in it or its sub-folders"
                )
            for f in sorted(found):
                if f.is_file():  # a FIFO or a device named like an image is not one
                    add(f)
        elif p.is_file():
            if p.suffix.lower() not in IMAGE_SUFFIXES:
                raise DataError(
                    f"'{printable(p)}' is not an image file: expected a name ending in "
                    f"{', '.join(IMAGE_SUFFIXES)}"
                )
            add(p)
        elif p.exists():
            raise DataError(
                f"'{printable(p)}' is neither an image file nor a folder "
                f"({guard.file_kind(p.stat().st_mode)})"
            )
        else:
            raise DataError(
                f"'{printable(p)}' does not exist; expected an image file or a folder of images"
            )
    return out


def iter_image_batches(
    paths: Sequence[str | os.PathLike],
    *,
    channels: int,
    size: tuple[int, int],
    resize: str = "stretch",
    batch: int = DECODE_BATCH,
    progress: Progress | None = None,
) -> Iterator[np.ndarray]:
    """The given image files as uint8 ``(n, h, w, channels)`` arrays of at most
    ``batch`` images each, in order, every image brought to ``size`` = (h, w) as it
    is decoded (``resize``: stretch, crop or pad).  Memory depends on ``batch`` and on
    the decoding budget, never on how many files there are."""
    mode = _check_channels(channels)
    size = _check_size(size)
    _check_resize(resize)
    if size is None:
        raise DataError("iter_image_batches needs a size (height, width)")
    batch = max(1, int(batch))
    files = list(paths)
    budget = _decode_budget()
    with ThreadPoolExecutor(max_workers=_workers(), thread_name_prefix="decode") as pool:
        for i in range(0, len(files), batch):
            part = files[i : i + batch]
            arrays = _decode_files(part, mode, resize_to=size, resize=resize, pool=pool,
                                   budget=budget, progress=progress, done=i,
                                   total=len(files))  # fmt: skip
            yield np.stack(arrays).astype(np.uint8, copy=False)


def read_images(
    paths: Sequence[str | os.PathLike],
    *,
    channels: int,
    size: tuple[int, int] | None = None,
    resize: str = "stretch",
    progress: Progress | None = None,
) -> np.ndarray:
    """Decode the given image files into one uint8 ``(N, H, W, channels)`` array.

    With ``size`` = (h, w) every image is brought to it (Pillow bilinear; ``resize``:
    stretch, crop or pad) as it is decoded, in batches of :data:`DECODE_BATCH`;
    without, the images must all have one size.
    """
    mode = _check_channels(channels)
    size = _check_size(size)
    files = [Path(p) for p in paths]
    if not files:
        raise DataError("no image files were given to read")
    for f in files:
        if not f.exists():
            raise DataError(f"image file '{printable(f)}' does not exist")
    if size is not None:
        parts = iter_image_batches(
            files, channels=channels, size=size, resize=resize, progress=progress
        )
        return np.concatenate(list(parts))
    arrays = _decode_files(files, mode, progress=progress)
    where = f"'{printable(files[0])}'" if len(files) == 1 else "the images given"
    return _stack_sized(arrays, files, size, where)


def read_images_float32(paths: Sequence[str | os.PathLike], shape: tuple[int, int, int]):
    """Images as float32 pixels 0..255, resized (bilinear) to ``shape`` = (height,
    width, channels): what a model taking ``shape`` is compared on."""
    h, w, c = shape
    if c not in _MODES:
        raise DataError(f"images are read for models with 1, 3 or 4 input channels, not {c}")
    return read_images(paths, channels=c, size=(h, w)).astype(np.float32)


# ----------------------------------------------------------------- class folders


def _is_image_name(name: str) -> bool:
    return name.lower().endswith(IMAGE_SUFFIXES) and not name.startswith(".")


def _class_folders(root: Path) -> tuple[dict[str, list[str]], int]:
    """``{class name: sorted image file names}`` of the sub-folders holding images,
    and how many image files lie directly in ``root``.  Plain strings: pathlib costs
    seconds on a folder of 50,000 files."""
    found: dict[str, list[Path]] = {}
    loose = 0
    try:
        entries = sorted(os.scandir(root), key=lambda e: e.name)
    except OSError as err:
        raise DataError(f"cannot list folder '{printable(root)}': {_first_line(err)}") from None
    for entry in entries:
        if entry.name.startswith("."):
            continue
        if entry.is_dir():
            try:
                with os.scandir(entry.path) as it:
                    files = sorted(e.name for e in it if _is_image_name(e.name) and e.is_file())
            except OSError as err:
                raise DataError(
                    f"cannot list folder '{printable(entry.path)}': {_first_line(err)}"
                ) from None
            if files:
                found[entry.name] = files
        elif _is_image_name(entry.name) and entry.is_file():
            loose += 1
    return found, loose


def sample_class_images(folder: str | os.PathLike, limit: int) -> list[Path]:
    """Up to ``limit`` images of a folder of class sub-folders, taken round-robin over
    the classes in sorted order so every class is represented."""
    root = Path(folder)
    if not root.is_dir():
        raise DataError(f"'{printable(root)}' is not a folder of class sub-folders")
    found, _ = _class_folders(root)
    if not found:
        raise DataError(
            f"'{printable(root)}' holds no images: expected class sub-folders of "
            f"{', '.join(IMAGE_SUFFIXES)} files"
        )
    per_class = [[root / name / f for f in files] for name, files in found.items()]
    picked: list[Path] = []
    i = 0
    while len(picked) < limit and any(i < len(files) for files in per_class):
        picked.extend(files[i] for files in per_class if i < len(files))
        i += 1
    return picked[:limit]


def _has_class_folder(root: Path) -> bool:
    try:
        for entry in os.scandir(root):
            if entry.name.startswith(".") or not entry.is_dir():
                continue
            with os.scandir(entry.path) as it:
                if any(_is_image_name(e.name) and e.is_file() for e in it):
                    return True
    except OSError:
        return False
    return False


def _names(names: Iterable[str]) -> str:
    return ", ".join(printable(n) for n in names)


def _match_classes(found: Sequence[str], classes: Sequence[str] | None, where: str) -> list[str]:
    """The class list to label with: ``classes`` if given (it must hold exactly the
    classes ``found``), else ``found`` sorted."""
    if classes is None:
        return sorted(found)
    classes = [str(c) for c in classes]
    if len(set(classes)) != len(classes):
        dup = sorted({c for c in classes if classes.count(c) > 1})
        raise DataError(
            f"the class list names {', '.join(repr(printable(d)) for d in dup)} more than once"
        )
    missing = [c for c in classes if c not in set(found)]
    extra = sorted(set(found) - set(classes))
    if missing or extra:
        detail = []
        if missing:
            detail.append(f"missing: {_names(missing)}")
        if extra:
            detail.append(f"not in the class list: {_names(extra)}")
        raise DataError(
            f"{where} does not match the class list. Expected classes "
            f"[{_names(classes)}]; found [{_names(sorted(found))}] ({'; '.join(detail)})."
        )
    return classes


def _folder_files(
    root: Path, classes: Sequence[str] | None
) -> tuple[list[str], list[str], np.ndarray]:
    """``(class names, relative files "class/file.jpg", int32 labels)`` of a folder of
    class sub-folders."""
    found, loose = _class_folders(root)
    if not found:
        hint = (
            f" It holds {_plural(loose, 'image file')} directly; move them into one "
            "sub-folder per class."
            if loose
            else ""
        )
        raise DataError(f"folder '{printable(root)}' holds no class sub-folders with images.{hint}")
    names = _match_classes(list(found), classes, f"the class sub-folders of '{printable(root)}'")
    rel: list[str] = []  # "class/file.jpg"
    labels: list[int] = []
    for i, name in enumerate(names):
        rel.extend(f"{name}/{f}" for f in found[name])
        labels.extend([i] * len(found[name]))
    return names, rel, np.asarray(labels, dtype=np.int32)


def _read_folder(
    root: Path,
    *,
    classes: Sequence[str] | None,
    channels: int,
    size: tuple[int, int] | None,
    resize: str,
    cache_dir,
    progress: Progress | None,
) -> RawData:
    """Decode a class folder.  Images of more pixels than ``size`` are brought to it as
    they are decoded (``resize``), so the folder costs at most its image count times
    the model's input; smaller ones are kept as they are when all share one size (the
    device resizes them per batch), else brought to ``size`` too.  The decode cache
    stores what is returned, never the originals."""
    mode = _check_channels(channels)
    names, rel, label_arr = _folder_files(root, classes)
    base = str(root)
    files = [os.path.join(base, r) for r in rel]

    cdir = _cache.resolve_cache_dir(cache_dir)
    key = None
    if cdir is not None:
        try:
            key = _cache.folder_key(
                root, rel, channels=channels, size=size, classes=names, resize=resize
            )
        except OSError:
            key = None
        hit = _cache.load(cdir, key) if key is not None else None
        if hit is not None:
            images, cached_labels, cached_classes = hit
            if cached_classes == names and np.array_equal(cached_labels, label_arr):
                if progress is not None:
                    progress(len(files), len(files))
                return RawData(images, cached_labels, names, "folder", str(root))

    arrays = _decode_files(
        files, mode, resize_to=size, resize=resize, only_larger=True, progress=progress
    )
    images = _stack_sized(arrays, files, size, f"folder '{printable(root)}'", root, resize)
    del arrays
    if key is not None:
        _cache.store(cdir, key, images, label_arr, names)
    return RawData(images, label_arr, names, "folder", str(root))


def folder_batches(
    path: str | os.PathLike,
    *,
    classes: Sequence[str] | None = None,
    channels: int = 3,
    size: tuple[int, int],
    resize: str = "stretch",
    batch: int = DECODE_BATCH,
    cache_dir: str | os.PathLike | bool | None = None,
    progress: Progress | None = None,
) -> tuple[RawData, Iterator[np.ndarray]]:
    """A class folder for evaluation, read in batches: ``(data, batches)`` where
    ``data`` holds the labels and classes (its ``images`` an empty ``(0, h, w, c)``
    array) and ``batches`` yields uint8 ``(n, h, w, channels)`` arrays of at most
    ``batch`` images, in label order, every image brought to ``size`` (``resize``) as
    it is decoded.  Memory depends on ``batch``, not on the folder: the decoded
    images are kept (for the decode cache) only while all of them take at most
    :data:`CACHE_FRACTION` of the memory limit."""
    _check_channels(channels)
    size = _check_size(size)
    _check_resize(resize)
    root = Path(path)
    names, rel, labels = _folder_files(root, classes)
    files = [os.path.join(str(root), r) for r in rel]
    h, w = size
    empty = np.zeros((0, h, w, channels), np.uint8)
    data = RawData(empty, labels, names, "folder", str(root), count=len(files))
    cdir = _cache.resolve_cache_dir(cache_dir)
    key = None
    if cdir is not None:
        try:
            key = _cache.folder_key(root, rel, channels=channels, size=size, classes=names,
                                    resize=resize, exact=True)  # fmt: skip
        except OSError:
            key = None
    hit = _cache.load(cdir, key) if key is not None else None
    if hit is not None and (hit[2] != names or not np.array_equal(hit[1], labels)):
        hit = None
    if hit is not None and hit[0].shape[1:] != (h, w, channels):
        hit = None

    def cached() -> Iterator[np.ndarray]:
        images = hit[0]
        if progress is not None:
            progress(len(images), len(images))
        for i in range(0, len(images), batch):
            yield images[i : i + batch]

    def decoded() -> Iterator[np.ndarray]:
        keep = key is not None and len(files) * h * w * channels <= _cache_budget()
        kept = []
        for part in iter_image_batches(files, channels=channels, size=size, resize=resize,
                                       batch=batch, progress=progress):  # fmt: skip
            if keep:
                kept.append(part)
            yield part
        if keep and kept:
            _cache.store(cdir, key, np.concatenate(kept), labels, names)

    return data, (cached() if hit is not None else decoded())


#: The decoded images of an evaluation are kept for the cache only while they take at
#: most this fraction of the memory limit.
CACHE_FRACTION = 0.125


def _cache_budget() -> int:
    try:
        return int(guard.Limits.from_env().max_memory * CACHE_FRACTION)
    except guard.LimitError:
        return int(guard.DEFAULT_MAX_MEMORY * CACHE_FRACTION)


# ---------------------------------------------------------------------- CIFAR-10


class _Refused(Exception):
    def __init__(self, what: str):
        super().__init__(what)
        self.what = what


class _CifarUnpickler(pickle.Unpickler):
    """Loads the dicts of bytes, lists and numpy arrays in CIFAR-10 batches, and
    nothing else: any other global a pickle names is refused before it is loaded."""

    ALLOWED = frozenset(
        {
            ("numpy.core.multiarray", "_reconstruct"),
            ("numpy._core.multiarray", "_reconstruct"),
            ("numpy.core.numeric", "_frombuffer"),
            ("numpy._core.numeric", "_frombuffer"),
            ("numpy", "ndarray"),
            ("numpy", "dtype"),
            ("_codecs", "encode"),  # bytes in protocol-2 pickles written by Python 3
        }
    )

    def find_class(self, module: str, name: str):
        if (module, name) not in self.ALLOWED:
            raise _Refused(f"{module}.{name}")
        return super().find_class(module, name)

    def persistent_load(self, pid):
        raise _Refused(f"persistent id {pid!r}")


class _BufferReader:
    """A read-only binary file over a buffer, for the unpickler: each read copies only
    what it returns (``io.BytesIO`` of a ``bytearray`` copies the whole buffer first)."""

    def __init__(self, buffer):
        self.buffer, self.view, self.pos = buffer, memoryview(buffer), 0

    def read(self, n: int = -1) -> bytes:
        end = len(self.view) if n is None or n < 0 else min(self.pos + n, len(self.view))
        data = self.view[self.pos : end].tobytes()
        self.pos = end
        return data

    def readinto(self, b) -> int:
        data = self.read(len(b))
        b[: len(data)] = data
        return len(data)

    def readline(self) -> bytes:
        end = self.buffer.find(b"\n", self.pos)
        return self.read(-1 if end < 0 else end + 1 - self.pos)


def _read_upto(f, size: int) -> bytearray:
    """The first ``size`` bytes of ``f`` (fewer at its end), read in 1 MiB pieces into
    one buffer of ``size``: no other copy of them is made on the way."""
    buffer = bytearray(size)
    view, got = memoryview(buffer), 0
    while got < size:
        n = f.readinto(view[got : got + (1 << 20)])
        if not n:
            break
        got += n
    view.release()
    del buffer[got:]
    return buffer


def _unpickle(data: bytes | bytearray, where: str):
    try:
        return _CifarUnpickler(_BufferReader(data), encoding="bytes").load()
    except _Refused as err:
        raise DataError(
            f"refusing to unpickle {where}: the pickle wants to load {err.what}, which a "
            "CIFAR-10 batch never holds (it may be malicious). Use the original files from "
            "https://www.cs.toronto.edu/~kriz/cifar.html."
        ) from None
    except Exception as err:
        raise DataError(
            f"cannot unpickle {where}: {_first_line(err)}. Expected a CIFAR-10 python batch."
        ) from None


def _cifar_batch(data: bytes, where: str) -> tuple[np.ndarray, np.ndarray]:
    obj = _unpickle(data, where)
    if not isinstance(obj, dict):
        raise DataError(f"{where} is not a CIFAR-10 batch: expected a dict, found {type(obj)}")
    x = obj.get(b"data", obj.get("data"))
    y = obj.get(b"labels", obj.get("labels"))
    if not isinstance(x, np.ndarray) or x.ndim != 2 or x.shape[1] != 3072:
        found = f"shape {x.shape}" if isinstance(x, np.ndarray) else type(x).__name__
        raise DataError(
            f"{where} is not a CIFAR-10 batch: expected b'data' to be an (N, 3072) uint8 "
            f"array, found {found}"
        )
    if x.dtype != np.uint8:
        raise DataError(f"{where}: expected b'data' of dtype uint8, found {x.dtype}")
    try:
        labels = np.asarray(y, dtype=np.int64).reshape(-1)
    except (TypeError, ValueError):
        labels = None
    if labels is None or y is None or labels.shape[0] != x.shape[0]:
        n = "none" if y is None else (len(y) if hasattr(y, "__len__") else type(y).__name__)
        raise DataError(
            f"{where} is not a CIFAR-10 batch: expected b'labels' with one integer per image "
            f"({x.shape[0]:,}), found {n}"
        )
    return x, labels  # (N, 3072), channels first: _cifar_result lays them out


def _cifar_names(data: bytes, where: str) -> list[str]:
    obj = _unpickle(data, where)
    names = obj.get(b"label_names", obj.get("label_names")) if isinstance(obj, dict) else None
    if not isinstance(names, list) or not names:
        raise DataError(f"{where} is not CIFAR-10 metadata: expected a b'label_names' list")
    return [n.decode("utf-8", "replace") if isinstance(n, bytes) else str(n) for n in names]


def _cifar_result(
    batches: list[tuple[np.ndarray, np.ndarray]],
    names: list[str],
    classes: Sequence[str] | None,
    where: str,
    kind: str,
    location: str,
) -> RawData:
    if classes is not None and [str(c) for c in classes] != names:
        given = [str(c) for c in classes]
        how = "in a different order" if sorted(given) == sorted(names) else "different names"
        raise DataError(
            f"the class list does not match {where} ({how}). Expected classes "
            f"[{_names(given)}]; the data set's label_names are [{_names(names)}]."
        )
    labels = np.concatenate([b[1] for b in batches])
    images = _cifar_images(batches)
    if labels.size and (labels.min() < 0 or labels.max() >= len(names)):
        raise DataError(
            f"{where} holds labels outside 0..{len(names) - 1} "
            f"(found {labels.min()}..{labels.max()}) for {len(names)} label_names"
        )
    return RawData(images, labels.astype(np.int32), list(names), kind, location)


def _cifar_images(batches: list[tuple[np.ndarray, np.ndarray]]) -> np.ndarray:
    """The batches' (N, 3072) channels-first rows as one (N, 32, 32, 3) array, each
    batch dropped from ``batches`` once copied: the data set is held once, plus the
    batch being copied (no concatenation of transposed copies)."""
    out = np.empty((sum(len(b[0]) for b in batches), 32, 32, 3), np.uint8)
    start = 0
    while batches:
        x = batches.pop(0)[0]
        out[start : start + len(x)] = x.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)
        start += len(x)
        del x
    return out


def _cifar_dir(path: Path) -> Path | None:
    """The ``cifar-10-batches-py`` folder at or directly under ``path``, if any."""
    markers = (CIFAR_META, CIFAR_TRAIN[0], CIFAR_TEST[0])
    if path.name == CIFAR_DIR or any((path / m).is_file() for m in markers):
        return path
    sub = path / CIFAR_DIR
    return sub if sub.is_dir() else None


def _cifar_cap(name: str) -> int:
    return CIFAR_META_MAX_BYTES if name == CIFAR_META else CIFAR_BATCH_MAX_BYTES


def _cifar_too_large(where: str, name: str, size: int, base: str | None = None) -> DataTooLarge:
    if (base or name) == CIFAR_META:
        what = f"CIFAR-10's {CIFAR_META} is at most {CIFAR_META_MAX_BYTES:,} bytes"
    else:
        what = (
            f"a CIFAR-10 batch is at most {CIFAR_BATCH_MAX_BYTES:,} bytes "
            f"({CIFAR_BATCH_IMAGES:,} images of 3,072 pixel bytes, at most 2 bytes each in "
            "a pickle, a label each and the pickle's file names)"
        )
    return DataTooLarge(
        f"{where}: {name} is {size:,} bytes; {what}. It was not read; use the original "
        "files from https://www.cs.toronto.edu/~kriz/cifar.html."
    )


def _read_cifar_dir(path: Path, split: str, classes) -> RawData:
    folder = _cifar_dir(path) or path
    wanted = CIFAR_TRAIN if split == "train" else CIFAR_TEST
    shown = printable(folder)
    missing = [m for m in (*wanted, CIFAR_META) if not (folder / m).exists()]
    if missing:
        raise DataError(
            f"CIFAR-10 folder '{shown}' lacks {', '.join(missing)}: the {split} split needs "
            f"{', '.join(wanted)} and {CIFAR_META}"
        )

    def read(name: str) -> bytearray:
        cap = _cifar_cap(name)
        try:
            with guard.open_regular(folder / name) as f:
                size = os.fstat(f.fileno()).st_size
                if size > cap:
                    raise _cifar_too_large(f"CIFAR-10 folder '{shown}'", name, size)
                return _read_upto(f, size)  # what fstat said: a file growing is cut
        except guard.NotRegularFile as err:
            raise DataError(
                f"CIFAR-10 folder '{shown}': {name} is not a regular file ({err.kind})"
            ) from None
        except OSError as err:
            raise DataError(
                f"cannot read '{printable(folder / name)}': {_first_line(err)}"
            ) from None

    names = _cifar_names(read(CIFAR_META), f"'{printable(folder / CIFAR_META)}'")
    batches = [_cifar_batch(read(m), f"'{printable(folder / m)}'") for m in wanted]
    return _cifar_result(
        batches, names, classes, f"CIFAR-10 folder '{shown}'", "cifar10-batches", str(folder)
    )


class _CappedStream(io.RawIOBase):
    """A decompressed stream that raises once more than ``cap`` bytes came out of it:
    tarfile reads whole headers (pax, long names) into memory, so the archive as a
    whole is capped, not only the members we keep."""

    def __init__(self, raw, cap: int, where: str):
        self.raw, self.cap, self.where, self.count = raw, cap, where, 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        n = self.raw.readinto(buffer)
        self.count += n or 0
        if self.count > self.cap:
            raise DataTooLarge(
                f"{self.where} decompresses to more than {self.cap:,} bytes; the "
                "cifar-10-python.tar.gz archive decompresses to about 185 MB. It was not "
                "read further; use the original archive from "
                "https://www.cs.toronto.edu/~kriz/cifar.html."
            )
        return n


def _decompressed(f):
    """``f`` (a binary file) decompressed by what its first bytes say it is."""
    head = f.read(6)
    f.seek(0)
    if head.startswith(b"\x1f\x8b"):
        return gzip.GzipFile(fileobj=f, mode="rb")
    if head.startswith(b"BZh"):
        return bz2.BZ2File(f)
    if head.startswith(b"\xfd7zXZ\x00"):
        return lzma.LZMAFile(f)
    return f


def _read_cifar_tar(path: Path, split: str, classes) -> RawData:
    wanted = CIFAR_TRAIN if split == "train" else CIFAR_TEST
    shown = printable(path)
    where = f"archive '{shown}'"
    members: dict[str, object] = {}  # parsed as read: a member's bytes never outlive it
    try:
        with guard.open_regular(path) as raw:
            stream = io.BufferedReader(
                _CappedStream(_decompressed(raw), CIFAR_ARCHIVE_MAX_BYTES, where), 1 << 16
            )
            with tarfile.open(fileobj=stream, mode="r|") as tar:  # one pass, nothing on disk
                for m in tar:
                    base = m.name.rsplit("/", 1)[-1]
                    if m.isfile() and base in (*wanted, CIFAR_META) and base not in members:
                        cap = _cifar_cap(base)
                        if m.size > cap:  # what the tar header declares, before reading
                            raise _cifar_too_large(
                                where, f"member {printable(m.name)}", m.size, base
                            )
                        f = tar.extractfile(m)
                        if f is not None:
                            parse = _cifar_names if base == CIFAR_META else _cifar_batch
                            data = _read_upto(f, m.size)  # what the header said (<= cap)
                            members[base] = parse(data, f"'{shown}' member {base}")
                            del data
    except DataError:
        raise
    except guard.NotRegularFile as err:
        raise DataError(f"--data '{shown}' is not a regular file ({err.kind})") from None
    except (tarfile.TarError, OSError, EOFError, zlib.error, lzma.LZMAError) as err:
        raise DataError(
            f"cannot read archive '{shown}': {_first_line(err)}. Expected the "
            "cifar-10-python.tar.gz archive."
        ) from None
    missing = [m for m in (*wanted, CIFAR_META) if m not in members]
    if missing:
        raise DataError(
            f"archive '{shown}' lacks {', '.join(f'{CIFAR_DIR}/{m}' for m in missing)}: "
            f"expected the cifar-10-python.tar.gz archive"
        )
    names = members.pop(CIFAR_META)
    batches = [members.pop(m) for m in wanted]
    return _cifar_result(
        batches, names, classes, f"CIFAR-10 archive '{shown}'", "cifar10-tar", str(path)
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


def _has_idx(folder: Path) -> bool:
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
        raise DataError(f"cannot read idx file '{shown}': {_first_line(err)}") from None
    return data.reshape(dims)


def _numbered_classes(labels: np.ndarray, classes, where: str) -> list[str]:
    """Class names for integer labels that carry no names (idx files, Keras's loaders):
    the given ``classes``, which must cover every label, or ``"0"``, ``"1"``, ..."""
    top = int(labels.max()) if labels.size else -1
    if classes is None:
        return [str(i) for i in range(max(10, top + 1))]
    names = [str(c) for c in classes]
    if len(names) <= top:
        raise DataError(
            f"{where} labels up to {top}, but the class list names only "
            f"{len(names)} classes [{_names(names)}]"
        )
    return names


def _read_idx(folder: Path, split: str, classes) -> RawData:
    prefix = "train" if split == "train" else "t10k"
    img_path = _idx_file(folder, prefix, "images")
    lbl_path = _idx_file(folder, prefix, "labels")
    if img_path is None or lbl_path is None:
        need = f"{prefix}-images-idx3-ubyte and {prefix}-labels-idx1-ubyte (optionally .gz)"
        present = sorted(p.name for p in folder.iterdir() if "ubyte" in p.name)
        raise DataError(
            f"idx folder '{printable(folder)}' has no {split} split: expected {need}; "
            f"found {_names(present) or 'no idx files'}"
        )
    images = _parse_idx(img_path, _IDX_IMAGES)
    labels = _parse_idx(lbl_path, _IDX_LABELS).astype(np.int32)
    if images.shape[0] != labels.shape[0]:
        raise DataError(
            f"idx files '{printable(img_path)}' and '{printable(lbl_path)}' disagree: "
            f"{images.shape[0]:,} images "
            f"but {labels.shape[0]:,} labels"
        )
    names = _numbered_classes(labels, classes, f"'{printable(lbl_path)}' holds")
    return RawData(np.ascontiguousarray(images[..., None]), labels, names, "idx", str(folder))


# ----------------------------------------------------------------------- dispatch


def detect(path: str | os.PathLike) -> str:
    """The kind of a ``--data PATH``: ``folder``, ``cifar10-batches``, ``cifar10-tar``
    or ``idx``; a DataError listing the accepted forms otherwise.  Anything that is not
    a regular file or a folder (a FIFO, a device, a socket) is refused without being
    opened."""
    p = Path(path)
    shown = printable(p)
    try:
        mode = p.stat().st_mode
    except FileNotFoundError:
        raise DataError(f"--data '{shown}' does not exist. {_accepted_forms()}") from None
    except OSError as err:
        raise DataError(f"--data '{shown}': {_first_line(err)}") from None
    if stat.S_ISREG(mode):
        name = p.name.lower()
        if name.endswith((".tar.gz", ".tgz", ".tar")):
            return "cifar10-tar"
        raise DataError(
            f"--data '{shown}' is a file that is not a CIFAR-10 archive (.tar.gz). "
            f"{_accepted_forms()}"
        )
    if not stat.S_ISDIR(mode):
        raise DataError(
            f"--data '{shown}' is not a regular file or folder ({guard.file_kind(mode)}). "
            f"{_accepted_forms()}"
        )
    if _cifar_dir(p) is not None:
        return "cifar10-batches"
    if _has_idx(p):
        return "idx"
    if _has_class_folder(p):
        return "folder"
    try:
        entries = [e for e in p.iterdir() if not e.name.startswith(".")]
    except OSError as err:
        raise DataError(f"cannot list folder '{shown}': {_first_line(err)}") from None
    if not entries:
        found = "it is empty"
    else:
        subs = sum(e.is_dir() for e in entries)
        loose = sum(e.is_file() and _is_image(e) for e in entries)
        found = f"it holds {_plural(subs, 'sub-folder')} with no image files"
        if loose:
            found += f" and {_plural(loose, 'image file')} not sorted into class sub-folders"
        elif len(entries) > subs:
            found += f" and {_plural(len(entries) - subs, 'other file')}"
    raise DataError(f"--data '{shown}' is not a data set folder: {found}. {_accepted_forms()}")


def read_source(
    path: str | os.PathLike,
    *,
    split: str = "train",
    classes: Sequence[str] | None = None,
    channels: int = 3,
    size: tuple[int, int] | None = None,
    resize: str = "stretch",
    cache_dir: str | os.PathLike | bool | None = None,
    progress: Progress | None = None,
) -> RawData:
    """Read a ``--data PATH`` (any form :func:`detect` accepts).

    ``split`` picks train / test batches of CIFAR-10 and idx data (class folders
    ignore it).  ``classes`` is the spec's class list: folders must hold exactly these
    classes (labels follow its order); CIFAR-10's label_names must equal it.
    ``size`` = (h, w), the model's input, is used for folders: images of more pixels
    are brought to it as they are decoded (``resize``: stretch, crop or pad, as the
    spec's ``data.resize``), and so are all when their sizes differ.
    ``cache_dir``: the folder decode cache (None: default, False: off).
    ``progress(done, total)`` is called while decoding folders.
    """
    _check_split(split)
    _check_channels(channels)
    size = _check_size(size)
    _check_resize(resize)
    p = Path(path)
    kind = detect(p)
    if kind == "folder":
        return _read_folder(
            p, classes=classes, channels=channels, size=size, resize=resize,
            cache_dir=cache_dir, progress=progress,
        )  # fmt: skip
    if kind == "cifar10-batches":
        raw = _read_cifar_dir(p, split, classes)
    elif kind == "cifar10-tar":
        raw = _read_cifar_tar(p, split, classes)
    else:
        raw = _read_idx(p, split, classes)
    raw.images = convert_channels(raw.images, channels)
    return raw


# ------------------------------------------------------------------------- keras


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
    _check_split(split)
    _check_channels(channels)
    if name not in KERAS_DATASETS:
        raise DataError(
            f"unknown Keras data set '{name}'; expected one of {', '.join(KERAS_DATASETS)}"
        )
    try:
        import keras

        (x_train, y_train), (x_test, y_test) = getattr(keras.datasets, name).load_data()
    except Exception as err:
        raise DataError(
            f"could not load {name} through keras.datasets (no network?): {_first_line(err)}. "
            "Pass local files with --data PATH: a folder of class sub-folders, a "
            "cifar-10-batches-py folder or cifar-10-python.tar.gz, or a folder of MNIST idx "
            "files."
        ) from None
    x, y = (x_train, y_train) if split == "train" else (x_test, y_test)
    images = np.asarray(x, dtype=np.uint8)
    if images.ndim == 3:
        images = images[..., None]
    labels = np.asarray(y).reshape(-1).astype(np.int32)
    names = _numbered_classes(labels, classes, f"keras.datasets.{name} has")
    images = convert_channels(np.ascontiguousarray(images), channels)
    return RawData(images, labels, names, f"keras:{name}", f"keras.datasets.{name}")


# --------------------------------------------------------------------- synthetic


def synthetic(
    n: int,
    shape: Sequence[int],
    classes: int | Sequence[str],
    seed: int = 0,
) -> RawData:
    """``n`` seeded images of ``shape`` = (h, w, c) whose labels a small conv net learns
    in an epoch or two, even through global pooling and flips or shifts: each class
    has a colour (brightness levels spread evenly over the classes in channel 0,
    random in the others) and a fixed random low-frequency texture;
    image = clip(128 + colour + 40 * texture + 20 * noise).  Labels are balanced
    (``i % k``, shuffled).  The same arguments give the same data."""
    try:
        h, w, c = (int(s) for s in shape)
    except (TypeError, ValueError):
        raise DataError(
            f"synthetic shape must be (height, width, channels); got {shape!r}"
        ) from None
    if h < 1 or w < 1 or c not in _MODES:
        raise DataError(
            f"synthetic shape must be positive (height, width, channels) with 1, 3 or 4 "
            f"channels; got {tuple(shape)!r}"
        )
    if isinstance(classes, int) and not isinstance(classes, bool):
        names = [str(i) for i in range(classes)]
    else:
        names = [str(x) for x in classes]
    k = len(names)
    if k < 1:
        raise DataError("synthetic data needs at least one class")
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1:
        raise DataError(f"synthetic data needs a positive number of images; got {n!r}")

    rng = np.random.default_rng(seed)
    # Templates: a few random low-frequency waves per class and channel, unit std.
    yy = np.linspace(0.0, 1.0, h, dtype=np.float32)[:, None]
    xx = np.linspace(0.0, 1.0, w, dtype=np.float32)[None, :]
    templates = np.zeros((k, h, w, c), dtype=np.float32)
    for j in range(k):
        for ch in range(c):
            t = np.zeros((h, w), dtype=np.float32)
            for _ in range(4):
                fy, fx = rng.uniform(0.0, 2.0, 2)
                phase = rng.uniform(0.0, 2 * np.pi)
                amp = rng.normal()
                t += amp * np.sin(2 * np.pi * (fy * yy + fx * xx) + phase).astype(np.float32)
            t -= t.mean()
            t /= t.std() + 1e-6
            templates[j, :, :, ch] = t
    colours = rng.uniform(-40.0, 40.0, (k, c)).astype(np.float32)
    colours[:, 0] = rng.permutation(np.linspace(-60.0, 60.0, k, dtype=np.float32))
    labels = (np.arange(n) % k).astype(np.int32)
    rng.shuffle(labels)
    images = np.empty((n, h, w, c), dtype=np.uint8)
    step = max(1, (1 << 22) // (h * w * c))  # ~4M values (16 MB of float32) at a time
    for i in range(0, n, step):
        lab = labels[i : i + step]
        noise = rng.standard_normal((len(lab), h, w, c), dtype=np.float32)
        x = 128.0 + colours[lab][:, None, None, :] + 40.0 * templates[lab] + 20.0 * noise
        images[i : i + step] = np.clip(np.rint(x), 0, 255).astype(np.uint8)
    return RawData(images, labels, names, "synthetic", f"synthetic, seed {seed}")
