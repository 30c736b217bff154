"""Decoding image files into uint8 NHWC arrays: Pillow on a thread pool, within a
memory budget, each image refused before it is decoded when it has more pixels than
the limit and brought to the model's input (``resize``: stretch, crop or pad) as it is
decoded.  ``list_image_files`` and ``read_images`` decode the loose files given to
``predict`` and ``export``; ``iter_image_batches`` decodes them a batch at a time."""

from __future__ import annotations

import contextlib
import math
import os
import re
import threading
from collections.abc import Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from .. import guard
from ..errors import DataError, DataTooLarge, first_line
from .raw import MODES, Progress, check_channels, check_size, plural, printable

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp")

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


def check_resize(resize: str) -> str:
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


def decode_budget() -> _Budget:
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


def _grey_to_8_bits(im):
    """A grey image of more than 8 bits (Pillow's ``I;16*`` modes, a 16-bit PNG; or
    ``I``) as 8-bit ``L``, each value scaled by 255 / 65535 and rounded: Pillow's
    ``convert`` clips such values at 255, so a 16-bit image came out almost white.
    An ``I`` image whose values all fit in 8 bits is taken as it is."""
    from PIL import Image

    arr = np.asarray(im).astype(np.int64)
    if im.mode.startswith("I;16") or (arr.size and arr.max() > 255):
        arr = (np.clip(arr, 0, 65535) + 128) // 257
    return Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8), "L")


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
                    if im.mode.startswith("I"):  # 16- or 32-bit grey: convert() would clip
                        im = _grey_to_8_bits(im)
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
        from PIL import UnidentifiedImageError

        why = ("its contents are no image format Pillow knows"  # its text names a Python object
               if isinstance(err, UnidentifiedImageError) else first_line(err))  # fmt: skip
        raise DataError(
            f"cannot read image '{printable(path)}': {why}. Expected a readable "
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


def workers() -> int:
    try:
        n = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        n = os.cpu_count() or 1
    return max(1, min(32, n))


def decode_files(
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
    budget = budget or decode_budget()
    chunk = max(1, min(512, n // (workers() * 8) or 1))
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
    pool = pool or ThreadPoolExecutor(max_workers=workers(), thread_name_prefix="decode")
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


def stack_sized(
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
                parts.append(f"{hw[0]}x{hw[1]} ({plural(n, 'file')}, e.g. '{printable(name)}')")
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


def is_image(p: Path) -> bool:
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
                found.extend(Path(dirpath) / f for f in filenames if is_image(Path(f)))
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
    mode = check_channels(channels)
    size = check_size(size)
    check_resize(resize)
    if size is None:
        raise DataError("iter_image_batches needs a size (height, width)")
    batch = max(1, int(batch))
    files = list(paths)
    budget = decode_budget()
    with ThreadPoolExecutor(max_workers=workers(), thread_name_prefix="decode") as pool:
        for i in range(0, len(files), batch):
            part = files[i : i + batch]
            arrays = decode_files(part, mode, resize_to=size, resize=resize, pool=pool,
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
    mode = check_channels(channels)
    size = check_size(size)
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
    arrays = decode_files(files, mode, progress=progress)
    where = f"'{printable(files[0])}'" if len(files) == 1 else "the images given"
    return stack_sized(arrays, files, size, where)


def read_images_float32(paths: Sequence[str | os.PathLike], shape: tuple[int, int, int]):
    """Images as float32 pixels 0..255, resized (bilinear) to ``shape`` = (height,
    width, channels): what a model taking ``shape`` is compared on."""
    h, w, c = shape
    if c not in MODES:
        raise DataError(f"images are read for models with 1, 3 or 4 input channels, not {c}")
    return read_images(paths, channels=c, size=(h, w)).astype(np.float32)
