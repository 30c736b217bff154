"""A decode cache for image folders.

Decoding a folder of 50,000 JPEG files takes seconds; reading the decoded arrays back
from one ``.npz`` file takes a fraction of that.  Entries live in a cache folder
(``cache_dir``, default: the ``NINCOMPILE_CACHE`` environment variable, else
``~/.cache/nincompile``), one ``.npz`` file per decoded folder, named by a key that
changes whenever anything the decoded arrays depend on changes: the format version,
the folder's absolute path, every image file's relative path, size and modification
time, the channels, target size and resize mode asked for, whether every image was
brought to the target size (evaluation) or only the larger ones (training), and the
class list.  Entries hold the images as they were decoded for the model, already
resized, never the originals: a folder of photos costs its image count times the
model's input, not its megapixels.

The cache never makes a read fail: an unreadable or corrupt entry is ignored (and
rewritten after decoding), and a cache folder that cannot be written only skips
caching.  Entries are written atomically (:func:`nincompile.files.atomic_write`: a
temporary file in the cache folder, then a rename), so a reader never sees half a
file.
"""

from __future__ import annotations

import hashlib
import logging
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from ..files import atomic_write

log = logging.getLogger(__name__)

#: Bump when the decoded arrays or the key's inputs change meaning.
FORMAT_VERSION = 2  # 2: images resized as they are decoded

ENV_VAR = "NINCOMPILE_CACHE"


def default_cache_dir() -> Path:
    """``$NINCOMPILE_CACHE`` if set (and not empty), else ``~/.cache/nincompile``."""
    env = os.environ.get(ENV_VAR)
    if env:
        return Path(env).expanduser()
    return Path.home() / ".cache" / "nincompile"


def resolve_cache_dir(cache_dir: str | os.PathLike | bool | None) -> Path | None:
    """The cache folder to use: ``None`` -> the default, ``False`` -> no cache."""
    if cache_dir is False:
        return None
    if cache_dir is None or cache_dir is True:
        return default_cache_dir()
    return Path(cache_dir).expanduser()


def folder_key(
    root: str | os.PathLike,
    files: Sequence[str],
    *,
    channels: int,
    size: tuple[int, int] | None,
    classes: Sequence[str],
    resize: str = "stretch",
    exact: bool = False,
) -> str:
    """The sha256 hex key of one decoded folder (see the module docstring).

    ``files`` are the image files' paths relative to ``root`` ("cat/0001.jpg").
    Raises ``OSError`` if a file vanished since it was listed; callers treat that
    as "do not cache".
    """
    root = os.path.abspath(root)
    h = hashlib.sha256()

    def add(*parts: object) -> None:
        for part in parts:
            h.update(str(part).encode("utf-8", "surrogateescape"))
            h.update(b"\0")

    add("nincompile-folder-cache", FORMAT_VERSION, root, channels, size, resize, exact)
    add(len(classes), *classes)
    add(len(files))
    for rel in files:
        st = os.stat(os.path.join(root, rel))
        add(rel.replace(os.sep, "/"), st.st_size, st.st_mtime_ns)
    return h.hexdigest()


def entry_path(cache_dir: Path, key: str) -> Path:
    return Path(cache_dir) / f"folder-{key}.npz"


def load(cache_dir: Path | None, key: str) -> tuple[np.ndarray, np.ndarray, list[str]] | None:
    """``(images, labels, classes)`` of a cached folder, or ``None`` on a miss.

    A missing, unreadable or malformed entry is a miss (never an error).
    """
    if cache_dir is None:
        return None
    path = entry_path(cache_dir, key)
    if not path.is_file():
        return None
    try:
        with np.load(path, allow_pickle=False) as z:
            images = z["images"]
            labels = z["labels"]
            classes = [str(c) for c in z["classes"].tolist()]
            version = int(z["version"])
    except Exception as err:  # corrupt, truncated, wrong format, unreadable
        log.warning("ignoring unreadable cache entry %s: %s", path, err)
        return None
    ok = (
        version == FORMAT_VERSION
        and images.dtype == np.uint8
        and images.ndim == 4
        and labels.dtype == np.int32
        and labels.shape == (images.shape[0],)
        and (labels.size == 0 or (labels.min() >= 0 and labels.max() < len(classes)))
    )
    if not ok:
        log.warning("ignoring malformed cache entry %s", path)
        return None
    return images, labels, classes


def store(
    cache_dir: Path | None,
    key: str,
    images: np.ndarray,
    labels: np.ndarray,
    classes: Sequence[str],
) -> Path | None:
    """Write one entry atomically; returns its path, or ``None`` if it could not be
    written (the reason is logged, nothing is raised)."""
    if cache_dir is None:
        return None
    cache_dir = Path(cache_dir)

    def save(tmp: Path) -> None:
        with open(tmp, "wb") as f:
            np.savez(
                f,
                images=np.ascontiguousarray(images, dtype=np.uint8),
                labels=np.asarray(labels, dtype=np.int32),
                classes=np.array([str(c) for c in classes], dtype=str),
                version=np.array(FORMAT_VERSION),
            )

    try:
        cache_dir.mkdir(parents=True, exist_ok=True)
        target = entry_path(cache_dir, key)
        atomic_write(target, save)
        return target
    except Exception as err:  # read-only folder, full disk, ...: caching is optional
        log.warning("not caching decoded images in %s: %s", cache_dir, err)
        return None
