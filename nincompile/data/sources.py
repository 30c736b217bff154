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

import gzip
import io
import os
import pickle
import struct
import tarfile
import zlib
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import DataError
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

_MODES = {1: "L", 3: "RGB", 4: "RGBA"}

_PATH_KINDS = ("folder", "cifar10-batches", "cifar10-tar", "idx")

Progress = Callable[[int, int], None]


def _accepted_forms() -> str:
    return "--data accepts:\n" + "\n".join(f"  - {form}" for form in ACCEPTED)


def _first_line(err: BaseException) -> str:
    text = str(err).strip()
    return text.splitlines()[0] if text else type(err).__name__


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

    def describe(self) -> str:
        """``folder 'data/train': 50,000 images, 10 classes, 32x32x3``."""
        n, h, w, c = self.images.shape
        where = self.kind
        if self.kind in _PATH_KINDS:
            where += f" '{self.location}'"
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


def _pil():
    try:
        from PIL import Image
    except ImportError:  # pragma: no cover - Pillow is a dependency
        raise DataError(
            "decoding image files needs Pillow, which is not installed: pip install pillow"
        ) from None
    return Image


def _decode_one(path: str | os.PathLike, mode: str) -> np.ndarray:
    """One image file as a uint8 (H, W, C) array in Pillow ``mode``."""
    Image = _pil()
    try:
        with Image.open(path) as im:
            im.load()
            if im.mode == "P" and "transparency" in im.info:
                im = im.convert("RGBA")
            if im.mode != mode:
                im = im.convert(mode)
            arr = np.asarray(im, dtype=np.uint8)
    except Exception as err:  # PIL.UnidentifiedImageError, OSError, truncated data, bombs
        try:
            empty = os.path.getsize(path) == 0
        except OSError:
            empty = False
        if empty:
            raise DataError(
                f"image file '{path}' is empty (0 bytes); expected a "
                f"{'/'.join(IMAGE_SUFFIXES)} image. Remove or replace the file."
            ) from None
        raise DataError(
            f"cannot read image '{path}': {_first_line(err)}. Expected a readable "
            f"{'/'.join(IMAGE_SUFFIXES)} image; remove or replace the file."
        ) from None
    if arr.ndim == 2:
        arr = arr[:, :, None]
    return arr


def _resize(arr: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Bilinear resize of one uint8 (H, W, C) image to ``size`` = (h, w) with Pillow."""
    if arr.shape[:2] == size:
        return arr
    Image = _pil()
    h, w = size
    c = arr.shape[2]
    im = Image.fromarray(arr[:, :, 0] if c == 1 else arr)
    out = np.asarray(im.resize((w, h), Image.Resampling.BILINEAR), dtype=np.uint8)
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
    progress: Progress | None = None,
) -> list[np.ndarray]:
    """Decode ``files`` in order on a thread pool, each resized to ``resize_to`` when
    given.  Pillow releases the GIL while decoding pixels, which is where large images
    spend their time; tiny ones (CIFAR's 32x32) are bound by Pillow's Python header
    parsing instead, about 0.17 ms a file (50,000 files: ~8 s)."""
    total = len(files)
    if total:
        _pil().preinit()  # register the common plugins once, not racing in the threads
    chunk = max(1, min(512, total // (_workers() * 8) or 1))
    chunks = [files[i : i + chunk] for i in range(0, total, chunk)]

    def work(part: Sequence[str | os.PathLike]) -> list[np.ndarray]:
        out = [_decode_one(p, mode) for p in part]
        if resize_to is not None:
            out = [_resize(a, resize_to) for a in out]
        return out

    results: list[np.ndarray] = []
    if progress is not None:
        progress(0, total)
    if len(chunks) <= 1:
        for part in chunks:
            results.extend(work(part))
        if progress is not None and total:
            progress(total, total)
        return results
    with ThreadPoolExecutor(max_workers=_workers(), thread_name_prefix="decode") as pool:
        futures = [pool.submit(work, part) for part in chunks]
        try:
            for fut in futures:
                results.extend(fut.result())
                if progress is not None:
                    progress(len(results), total)
        except BaseException:
            for fut in futures:
                fut.cancel()
            raise
    return results


def _stack_sized(
    arrays: list[np.ndarray],
    files: Sequence[str | os.PathLike],
    size: tuple[int, int] | None,
    where: str,
    root: Path | None = None,
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
                parts.append(f"{hw[0]}x{hw[1]} ({_plural(n, 'file')}, e.g. '{name}')")
            more = f" and {len(shown) - 4} more sizes" if len(shown) > 4 else ""
            raise DataError(
                f"{where} holds images of {len(sizes)} different sizes: "
                f"{', '.join(parts)}{more}. Give a target size (height, width), e.g. the "
                "model's input size, to resize them to, or make all images one size."
            )
        arrays = [_resize(a, size) for a in arrays]
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
                    f"folder '{p}' holds no image files; expected "
                    f"{', '.join(IMAGE_SUFFIXES)} files in it or its sub-folders"
                )
            for f in sorted(found):
                add(f)
        elif p.is_file():
            if p.suffix.lower() not in IMAGE_SUFFIXES:
                raise DataError(
                    f"'{p}' is not an image file: expected a name ending in "
                    f"{', '.join(IMAGE_SUFFIXES)}"
                )
            add(p)
        elif p.exists():
            raise DataError(f"'{p}' is neither an image file nor a folder")
        else:
            raise DataError(f"'{p}' does not exist; expected an image file or a folder of images")
    return out


def read_images(
    paths: Sequence[str | os.PathLike],
    *,
    channels: int,
    size: tuple[int, int] | None = None,
    progress: Progress | None = None,
) -> np.ndarray:
    """Decode the given image files into one uint8 ``(N, H, W, channels)`` array.

    With ``size`` = (h, w) every image is resized (Pillow bilinear) to it; without,
    the images must all have one size.
    """
    mode = _check_channels(channels)
    size = _check_size(size)
    files = [Path(p) for p in paths]
    if not files:
        raise DataError("no image files were given to read")
    for f in files:
        if not f.is_file():
            raise DataError(f"image file '{f}' does not exist")
    arrays = _decode_files(files, mode, resize_to=size, progress=progress)
    where = f"'{files[0]}'" if len(files) == 1 else "the images given"
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
        raise DataError(f"cannot list folder '{root}': {_first_line(err)}") from None
    for entry in entries:
        if entry.name.startswith("."):
            continue
        if entry.is_dir():
            try:
                with os.scandir(entry.path) as it:
                    files = sorted(e.name for e in it if _is_image_name(e.name) and e.is_file())
            except OSError as err:
                raise DataError(f"cannot list folder '{entry.path}': {_first_line(err)}") from None
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
        raise DataError(f"'{root}' is not a folder of class sub-folders")
    found, _ = _class_folders(root)
    if not found:
        raise DataError(
            f"'{root}' holds no images: expected class sub-folders of "
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


def _match_classes(found: Sequence[str], classes: Sequence[str] | None, where: str) -> list[str]:
    """The class list to label with: ``classes`` if given (it must hold exactly the
    classes ``found``), else ``found`` sorted."""
    if classes is None:
        return sorted(found)
    classes = [str(c) for c in classes]
    if len(set(classes)) != len(classes):
        dup = sorted({c for c in classes if classes.count(c) > 1})
        raise DataError(f"the class list names {', '.join(map(repr, dup))} more than once")
    missing = [c for c in classes if c not in set(found)]
    extra = sorted(set(found) - set(classes))
    if missing or extra:
        detail = []
        if missing:
            detail.append(f"missing: {', '.join(missing)}")
        if extra:
            detail.append(f"not in the class list: {', '.join(extra)}")
        raise DataError(
            f"{where} does not match the class list. Expected classes "
            f"[{', '.join(classes)}]; found [{', '.join(sorted(found))}] ({'; '.join(detail)})."
        )
    return classes


def _read_folder(
    root: Path,
    *,
    classes: Sequence[str] | None,
    channels: int,
    size: tuple[int, int] | None,
    cache_dir,
    progress: Progress | None,
) -> RawData:
    mode = _check_channels(channels)
    found, loose = _class_folders(root)
    if not found:
        hint = (
            f" It holds {_plural(loose, 'image file')} directly; move them into one "
            "sub-folder per class."
            if loose
            else ""
        )
        raise DataError(f"folder '{root}' holds no class sub-folders with images.{hint}")
    names = _match_classes(list(found), classes, f"the class sub-folders of '{root}'")
    rel: list[str] = []  # "class/file.jpg"
    labels: list[int] = []
    for i, name in enumerate(names):
        rel.extend(f"{name}/{f}" for f in found[name])
        labels.extend([i] * len(found[name]))
    label_arr = np.asarray(labels, dtype=np.int32)
    base = str(root)
    files = [os.path.join(base, r) for r in rel]

    cdir = _cache.resolve_cache_dir(cache_dir)
    key = None
    if cdir is not None:
        try:
            key = _cache.folder_key(root, rel, channels=channels, size=size, classes=names)
        except OSError:
            key = None
        hit = _cache.load(cdir, key) if key is not None else None
        if hit is not None:
            images, cached_labels, cached_classes = hit
            if cached_classes == names and np.array_equal(cached_labels, label_arr):
                if progress is not None:
                    progress(len(files), len(files))
                return RawData(images, cached_labels, names, "folder", str(root))

    arrays = _decode_files(files, mode, progress=progress)
    images = _stack_sized(arrays, files, size, f"folder '{root}'", root)
    del arrays
    if key is not None:
        _cache.store(cdir, key, images, label_arr, names)
    return RawData(images, label_arr, names, "folder", str(root))


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


def _unpickle(data: bytes, where: str):
    try:
        return _CifarUnpickler(io.BytesIO(data), encoding="bytes").load()
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
    images = x.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)
    return np.ascontiguousarray(images), labels


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
            f"[{', '.join(given)}]; the data set's label_names are [{', '.join(names)}]."
        )
    images = np.concatenate([b[0] for b in batches])
    labels = np.concatenate([b[1] for b in batches])
    if labels.size and (labels.min() < 0 or labels.max() >= len(names)):
        raise DataError(
            f"{where} holds labels outside 0..{len(names) - 1} "
            f"(found {labels.min()}..{labels.max()}) for {len(names)} label_names"
        )
    return RawData(images, labels.astype(np.int32), list(names), kind, location)


def _cifar_dir(path: Path) -> Path | None:
    """The ``cifar-10-batches-py`` folder at or directly under ``path``, if any."""
    markers = (CIFAR_META, CIFAR_TRAIN[0], CIFAR_TEST[0])
    if path.name == CIFAR_DIR or any((path / m).is_file() for m in markers):
        return path
    sub = path / CIFAR_DIR
    return sub if sub.is_dir() else None


def _read_cifar_dir(path: Path, split: str, classes) -> RawData:
    folder = _cifar_dir(path) or path
    wanted = CIFAR_TRAIN if split == "train" else CIFAR_TEST
    missing = [m for m in (*wanted, CIFAR_META) if not (folder / m).is_file()]
    if missing:
        raise DataError(
            f"CIFAR-10 folder '{folder}' lacks {', '.join(missing)}: the {split} split needs "
            f"{', '.join(wanted)} and {CIFAR_META}"
        )

    def read(name: str) -> bytes:
        try:
            return (folder / name).read_bytes()
        except OSError as err:
            raise DataError(f"cannot read '{folder / name}': {_first_line(err)}") from None

    names = _cifar_names(read(CIFAR_META), f"'{folder / CIFAR_META}'")
    batches = [_cifar_batch(read(m), f"'{folder / m}'") for m in wanted]
    return _cifar_result(
        batches, names, classes, f"CIFAR-10 folder '{folder}'", "cifar10-batches", str(folder)
    )


def _read_cifar_tar(path: Path, split: str, classes) -> RawData:
    wanted = CIFAR_TRAIN if split == "train" else CIFAR_TEST
    members: dict[str, bytes] = {}
    try:
        with tarfile.open(path, "r|*") as tar:  # one streaming pass, nothing on disk
            for m in tar:
                base = m.name.rsplit("/", 1)[-1]
                if m.isfile() and base in (*wanted, CIFAR_META) and base not in members:
                    f = tar.extractfile(m)
                    if f is not None:
                        members[base] = f.read()
    except (tarfile.TarError, OSError, EOFError, zlib.error) as err:
        raise DataError(
            f"cannot read archive '{path}': {_first_line(err)}. Expected the "
            "cifar-10-python.tar.gz archive."
        ) from None
    missing = [m for m in (*wanted, CIFAR_META) if m not in members]
    if missing:
        raise DataError(
            f"archive '{path}' lacks {', '.join(f'{CIFAR_DIR}/{m}' for m in missing)}: "
            f"expected the cifar-10-python.tar.gz archive"
        )
    names = _cifar_names(members[CIFAR_META], f"'{path}' member {CIFAR_META}")
    batches = [_cifar_batch(members[m], f"'{path}' member {m}") for m in wanted]
    return _cifar_result(
        batches, names, classes, f"CIFAR-10 archive '{path}'", "cifar10-tar", str(path)
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


def _read_idx_bytes(path: Path) -> bytes:
    try:
        if path.suffix == ".gz":
            with gzip.open(path, "rb") as f:
                return f.read()
        return path.read_bytes()
    except (OSError, EOFError, zlib.error) as err:
        raise DataError(f"cannot read idx file '{path}': {_first_line(err)}") from None


def _parse_idx(path: Path, magic: int) -> np.ndarray:
    data = _read_idx_bytes(path)
    ndim = magic & 0xFF
    header = 4 + 4 * ndim
    kind = "images" if magic == _IDX_IMAGES else "labels"
    if len(data) < header:
        raise DataError(
            f"idx file '{path}' is too short ({len(data)} bytes) to hold an idx header; "
            f"expected an MNIST {kind} file"
        )
    (found,) = struct.unpack(">I", data[:4])
    if found != magic:
        raise DataError(
            f"idx file '{path}' has magic number 0x{found:08X}; expected 0x{magic:08X} "
            f"(MNIST {kind}, uint8, {ndim} dimensions)"
        )
    dims = struct.unpack(f">{ndim}I", data[4:header])
    expected = int(np.prod(dims, dtype=np.int64))
    if len(data) - header != expected:
        raise DataError(
            f"idx file '{path}' holds {len(data) - header:,} data bytes; its header "
            f"({' x '.join(map(str, dims))}) says {expected:,}"
        )
    return np.frombuffer(data, dtype=np.uint8, offset=header).reshape(dims)


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
            f"{len(names)} classes [{', '.join(names)}]"
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
            f"idx folder '{folder}' has no {split} split: expected {need}; "
            f"found {', '.join(present) or 'no idx files'}"
        )
    images = _parse_idx(img_path, _IDX_IMAGES)
    labels = _parse_idx(lbl_path, _IDX_LABELS).astype(np.int32)
    if images.shape[0] != labels.shape[0]:
        raise DataError(
            f"idx files '{img_path}' and '{lbl_path}' disagree: {images.shape[0]:,} images "
            f"but {labels.shape[0]:,} labels"
        )
    names = _numbered_classes(labels, classes, f"'{lbl_path}' holds")
    return RawData(np.ascontiguousarray(images[..., None]), labels, names, "idx", str(folder))


# ----------------------------------------------------------------------- dispatch


def detect(path: str | os.PathLike) -> str:
    """The kind of a ``--data PATH``: ``folder``, ``cifar10-batches``, ``cifar10-tar``
    or ``idx``; a DataError listing the accepted forms otherwise."""
    p = Path(path)
    if not p.exists():
        raise DataError(f"--data '{p}' does not exist. {_accepted_forms()}")
    if p.is_file():
        name = p.name.lower()
        if name.endswith((".tar.gz", ".tgz", ".tar")):
            return "cifar10-tar"
        raise DataError(
            f"--data '{p}' is a file that is not a CIFAR-10 archive (.tar.gz). {_accepted_forms()}"
        )
    if not p.is_dir():
        raise DataError(f"--data '{p}' is neither a file nor a folder. {_accepted_forms()}")
    if _cifar_dir(p) is not None:
        return "cifar10-batches"
    if _has_idx(p):
        return "idx"
    if _has_class_folder(p):
        return "folder"
    try:
        entries = [e for e in p.iterdir() if not e.name.startswith(".")]
    except OSError as err:
        raise DataError(f"cannot list folder '{p}': {_first_line(err)}") from None
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
    raise DataError(f"--data '{p}' is not a data set folder: {found}. {_accepted_forms()}")


def read_source(
    path: str | os.PathLike,
    *,
    split: str = "train",
    classes: Sequence[str] | None = None,
    channels: int = 3,
    size: tuple[int, int] | None = None,
    cache_dir: str | os.PathLike | bool | None = None,
    progress: Progress | None = None,
) -> RawData:
    """Read a ``--data PATH`` (any form :func:`detect` accepts).

    ``split`` picks train / test batches of CIFAR-10 and idx data (class folders
    ignore it).  ``classes`` is the spec's class list: folders must hold exactly these
    classes (labels follow its order); CIFAR-10's label_names must equal it.
    ``size`` = (h, w) is only used for folders whose images differ in size.
    ``cache_dir``: the folder decode cache (None: default, False: off).
    ``progress(done, total)`` is called while decoding folders.
    """
    _check_split(split)
    _check_channels(channels)
    size = _check_size(size)
    p = Path(path)
    kind = detect(p)
    if kind == "folder":
        return _read_folder(
            p, classes=classes, channels=channels, size=size, cache_dir=cache_dir, progress=progress
        )
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
