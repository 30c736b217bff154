"""CIFAR-10 as it is downloaded: ``cifar10-batches``, a ``cifar-10-batches-py``
folder (or a folder holding one), and ``cifar10-tar``, the ``cifar-10-python.tar.gz``
archive, read without extracting it.  The pickled batches are read by an unpickler
that loads plain data only, each member within the size the format allows."""

from __future__ import annotations

import bz2
import gzip
import io
import lzma
import os
import pickle
import tarfile
import zlib
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from ... import guard
from ...errors import DataError, DataTooLarge, first_line
from ..raw import RawData, join_names, printable

BATCHES_KIND = "cifar10-batches"
BATCHES_ACCEPTS = "a cifar-10-batches-py folder (or a folder holding one)"
ARCHIVE_KIND = "cifar10-tar"
ARCHIVE_ACCEPTS = "the cifar-10-python.tar.gz archive"
ARCHIVE_SUFFIXES = (".tar.gz", ".tgz", ".tar")

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
            f"cannot unpickle {where}: {first_line(err)}. Expected a CIFAR-10 python batch."
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
            f"[{join_names(given)}]; the data set's label_names are [{join_names(names)}]."
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


def batches_folder(path: Path) -> Path | None:
    """The ``cifar-10-batches-py`` folder at or directly under ``path``, if any."""
    markers = (CIFAR_META, CIFAR_TRAIN[0], CIFAR_TEST[0])
    if path.name == CIFAR_DIR or any((path / m).is_file() for m in markers):
        return path
    sub = path / CIFAR_DIR
    return sub if sub.is_dir() else None


def is_batches(path: Path) -> bool:
    """Whether ``path``, a folder, is or holds a ``cifar-10-batches-py`` folder."""
    return batches_folder(path) is not None


def is_archive(path: Path) -> bool:
    """Whether ``path``, a regular file, is named as the CIFAR-10 archive is."""
    return path.name.lower().endswith(ARCHIVE_SUFFIXES)


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


def read_batches(path: Path, *, split: str, classes, **_options) -> RawData:
    folder = batches_folder(path) or path
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
                f"cannot read '{printable(folder / name)}': {first_line(err)}"
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


def read_archive(path: Path, *, split: str, classes, **_options) -> RawData:
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
            f"cannot read archive '{shown}': {first_line(err)}. Expected the "
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
