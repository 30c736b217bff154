"""Reading images: the front door of :mod:`nincompile.data`.

``read_source(PATH)`` reads the forms ``--data PATH`` accepts, each a row of the one
table :data:`FORMATS` (its kind, how it is listed, how it is recognised, its reader in
:mod:`nincompile.data.formats`) that :func:`detect` and :func:`read_source` go
through:

* ``folder``: a folder of class sub-folders holding image files
  (``train/airplane/0001.jpg``), decoded with Pillow on a thread pool
  (:mod:`nincompile.data.images`) and cached (:mod:`nincompile.data.cache`);
* ``cifar10-batches``: a ``cifar-10-batches-py`` folder (or a folder holding one);
* ``cifar10-tar``: the ``cifar-10-python.tar.gz`` archive, read without extracting;
* ``idx``: a folder of MNIST / Fashion-MNIST idx files (``train-images-idx3-ubyte``,
  ``train-labels-idx1-ubyte``, ``t10k-...``; each optionally gzipped).

``load_keras_dataset`` goes through ``keras.datasets`` (needs a network), and
``synthetic`` makes learnable random images for smoke tests.  ``list_image_files``
and ``read_images`` decode the loose files given to ``predict`` and ``export``;
``sample_class_images`` and ``read_images_float32`` pick and read the sample of a
class folder that an export's parity check runs on.  All of them are importable from
here.

Every problem with the input is a :class:`~nincompile.errors.DataError` naming the
file or folder, what was expected and what was found.  Nothing here imports
TensorFlow or Keras at module level (Keras only inside ``load_keras_dataset``).
"""

from __future__ import annotations

import os
import stat
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from .. import guard
from ..errors import DataError, first_line
from .formats import cifar, idx
from .formats import folder as class_folder
from .formats.folder import folder_batches, sample_class_images
from .formats.keras_datasets import KERAS_DATASETS, load_keras_dataset
from .formats.synthetic import synthetic
from .images import (
    DECODE_BATCH,
    IMAGE_SUFFIXES,
    RESIZE_MODES,
    check_resize,
    is_image,
    iter_image_batches,
    list_image_files,
    max_image_pixels,
    read_images,
    read_images_float32,
)
from .raw import (
    SPLITS,
    Progress,
    RawData,
    check_channels,
    check_size,
    check_split,
    convert_channels,
    plural,
    printable,
)

__all__ = [
    "ACCEPTED", "DECODE_BATCH", "FORMATS", "IMAGE_SUFFIXES", "KERAS_DATASETS", "RESIZE_MODES",
    "SPLITS", "Format", "RawData", "convert_channels", "detect", "folder_batches",
    "iter_image_batches", "list_image_files", "load_keras_dataset", "max_image_pixels",
    "printable", "read_images", "read_images_float32", "read_source", "sample_class_images",
    "synthetic",
]  # fmt: skip


@dataclass(frozen=True)
class Format:
    """One form of ``--data PATH``: its ``kind`` (``RawData.kind``), how the accepted
    forms list it, whether it is a file (else a folder), how to recognise it and how
    to read it."""

    kind: str
    accepts: str
    is_file: bool
    matches: Callable[[Path], bool]
    read: Callable[..., RawData]


#: Every form ``--data PATH`` takes, in the order the accepted forms are listed.
#: :func:`detect` tries class folders last: a folder holding a CIFAR-10 or idx data set
#: is that data set.
FORMATS = (
    Format(class_folder.KIND, class_folder.ACCEPTS, False, class_folder.has_class_folder,
           class_folder.read),
    Format(cifar.BATCHES_KIND, cifar.BATCHES_ACCEPTS, False, cifar.is_batches,
           cifar.read_batches),
    Format(cifar.ARCHIVE_KIND, cifar.ARCHIVE_ACCEPTS, True, cifar.is_archive,
           cifar.read_archive),
    Format(idx.KIND, idx.ACCEPTS, False, idx.has_idx, idx.read),
)  # fmt: skip
FORMAT = {f.kind: f for f in FORMATS}
ACCEPTED = tuple(f.accepts for f in FORMATS)


def accepted_forms() -> str:
    return "--data accepts:\n" + "\n".join(f"  - {form}" for form in ACCEPTED)


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
        raise DataError(f"--data '{shown}' does not exist. {accepted_forms()}") from None
    except OSError as err:
        raise DataError(f"--data '{shown}': {first_line(err)}") from None
    if stat.S_ISREG(mode):
        for f in FORMATS:
            if f.is_file and f.matches(p):
                return f.kind
        raise DataError(
            f"--data '{shown}' is a file that is not a CIFAR-10 archive (.tar.gz). "
            f"{accepted_forms()}"
        )
    if not stat.S_ISDIR(mode):
        raise DataError(
            f"--data '{shown}' is not a regular file or folder ({guard.file_kind(mode)}). "
            f"{accepted_forms()}"
        )
    for f in sorted(FORMATS, key=lambda f: f.kind == class_folder.KIND):  # folders last
        if not f.is_file and f.matches(p):
            return f.kind
    try:
        entries = [e for e in p.iterdir() if not e.name.startswith(".")]
    except OSError as err:
        raise DataError(f"cannot list folder '{shown}': {first_line(err)}") from None
    if not entries:
        found = "it is empty"
    else:
        subs = sum(e.is_dir() for e in entries)
        loose = sum(e.is_file() and is_image(e) for e in entries)
        found = f"it holds {plural(subs, 'sub-folder')} with no image files"
        if loose:
            found += f" and {plural(loose, 'image file')} not sorted into class sub-folders"
        elif len(entries) > subs:
            found += f" and {plural(len(entries) - subs, 'other file')}"
    raise DataError(f"--data '{shown}' is not a data set folder: {found}. {accepted_forms()}")


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
    check_split(split)
    check_channels(channels)
    size = check_size(size)
    check_resize(resize)
    p = Path(path)
    raw = FORMAT[detect(p)].read(
        p, split=split, classes=classes, channels=channels, size=size, resize=resize,
        cache_dir=cache_dir, progress=progress,
    )  # fmt: skip
    raw.images = convert_channels(raw.images, channels)
    return raw
