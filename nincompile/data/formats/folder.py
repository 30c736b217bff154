"""``folder``: a folder of class sub-folders holding image files
(``train/airplane/0001.jpg``), decoded with Pillow on a thread pool
(:mod:`nincompile.data.images`) and cached (:mod:`nincompile.data.cache`)."""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np

from ... import guard
from ...errors import DataError, first_line
from .. import cache as _cache
from ..images import (
    DECODE_BATCH,
    IMAGE_SUFFIXES,
    check_resize,
    decode_files,
    iter_image_batches,  # fmt: skip
    stack_sized,
)
from ..raw import Progress, RawData, check_channels, check_size, join_names, plural, printable

KIND = "folder"
ACCEPTS = (
    "a folder of class sub-folders holding image files (e.g. train/airplane/0001.jpg; "
    + ", ".join(IMAGE_SUFFIXES)
    + ")"
)

# ----------------------------------------------------------------- class folders


def is_image_name(name: str) -> bool:
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
        raise DataError(f"cannot list folder '{printable(root)}': {first_line(err)}") from None
    for entry in entries:
        if entry.name.startswith("."):
            continue
        if entry.is_dir():
            try:
                with os.scandir(entry.path) as it:
                    files = sorted(e.name for e in it if is_image_name(e.name) and e.is_file())
            except OSError as err:
                raise DataError(
                    f"cannot list folder '{printable(entry.path)}': {first_line(err)}"
                ) from None
            if files:
                found[entry.name] = files
        elif is_image_name(entry.name) and entry.is_file():
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


def has_class_folder(root: Path) -> bool:
    try:
        for entry in os.scandir(root):
            if entry.name.startswith(".") or not entry.is_dir():
                continue
            with os.scandir(entry.path) as it:
                if any(is_image_name(e.name) and e.is_file() for e in it):
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
        raise DataError(
            f"the class list names {', '.join(repr(printable(d)) for d in dup)} more than once"
        )
    missing = [c for c in classes if c not in set(found)]
    extra = sorted(set(found) - set(classes))
    if missing or extra:
        detail = []
        if missing:
            detail.append(f"missing: {join_names(missing)}")
        if extra:
            detail.append(f"not in the class list: {join_names(extra)}")
        raise DataError(
            f"{where} does not match the class list. Expected classes "
            f"[{join_names(classes)}]; found [{join_names(sorted(found))}] ({'; '.join(detail)})."
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
            f" It holds {plural(loose, 'image file')} directly; move them into one "
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


def read(
    root: Path,
    *,
    classes: Sequence[str] | None,
    channels: int,
    size: tuple[int, int] | None,
    resize: str,
    cache_dir,
    progress: Progress | None,
    **_options,
) -> RawData:
    """Decode a class folder.  Images of more pixels than ``size`` are brought to it as
    they are decoded (``resize``), so the folder costs at most its image count times
    the model's input; smaller ones are kept as they are when all share one size (the
    device resizes them per batch), else brought to ``size`` too.  The decode cache
    stores what is returned, never the originals."""
    mode = check_channels(channels)
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

    arrays = decode_files(
        files, mode, resize_to=size, resize=resize, only_larger=True, progress=progress
    )
    images = stack_sized(arrays, files, size, f"folder '{printable(root)}'", root, resize)
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
    check_channels(channels)
    size = check_size(size)
    check_resize(resize)
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
