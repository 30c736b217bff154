"""File helpers every command shares: atomic writes, safe names and content hashes.

Two promises rest on these (see SECURITY.md):

* nothing is half-written: :func:`atomic_write` writes a temporary file beside the
  target, flushes it to disk and renames it into place, so a crash or ``kill -9`` at
  any moment leaves the old complete file or the new complete one (at worst a hidden
  ``.<name>.*`` temporary file is left beside it);
* nothing is written outside the output folder: a name that comes from a spec or the
  command line (run folders, sweep members) becomes a path only through
  :func:`safe_child`, which refuses ``..``, absolute paths, separators, NUL and other
  control characters, and a symbolic link planted where the child would be;
* nothing read or written inside a folder someone else may have made (a run folder)
  goes through a link: :func:`inside` checks every component below the folder with
  ``lstat``, and :func:`open_regular` opens only a regular file, without following a
  link and without blocking on a FIFO.
"""

from __future__ import annotations

import hashlib
import os
import re
import stat
import tempfile
from pathlib import Path, PurePosixPath
from typing import BinaryIO

from .errors import NincompileError


def atomic_write(target: Path, write) -> None:
    """Call ``write(tmp_path)`` then rename onto ``target``; no partial file is left."""
    target = Path(target)
    parent = target.parent
    if not parent.is_dir():
        raise NincompileError(f"cannot write '{target}': folder '{parent}' does not exist")
    if target.is_symlink():
        raise NincompileError(f"refusing to write '{target}': it is a symbolic link")
    fd, tmp = tempfile.mkstemp(prefix=f".{target.stem}.", suffix=target.suffix, dir=parent)
    os.close(fd)
    try:
        write(Path(tmp))
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; give the usual mode
        _fsync(tmp)  # the data is on disk before the rename makes it the target
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    _fsync_dir(parent)


#: What :func:`tempfile.mkstemp` puts between :func:`atomic_write`'s prefix and suffix.
_TEMP_RANDOM = r"[a-z0-9_]{8}"


def temporary_name_regex(stem: str, suffix: str) -> str:
    """A regular expression for the names of :func:`atomic_write`'s temporary files for
    a target ``<stem><suffix>`` (``stem`` is itself a regular expression, so one
    pattern can stand for ``ckpt-<N>``): ``.<stem>.<8 random characters><suffix>``."""
    return rf"\.{stem}\.{_TEMP_RANDOM}{re.escape(suffix)}"


def _fsync(path) -> None:
    with open(path, "rb") as f:
        os.fsync(f.fileno())


def _fsync_dir(folder: Path) -> None:
    """Make the rename itself durable (best effort: not every platform can)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


class UnsafePathError(NincompileError):
    """A name from a spec or the command line that would leave its output folder, or a
    link or special file where nincompile reads or writes."""


def _why_not_plain(name) -> str | None:
    """Why ``name`` is not one plain path component, or None when it is."""
    if not isinstance(name, str):
        return f"expected a string, not {type(name).__name__}"
    if name in ("", ".", ".."):
        return {"": "it is empty", ".": "it names the folder itself"}.get(
            name, "it would leave the folder"
        )
    if "\x00" in name:
        return "it holds a NUL byte"
    if any(ord(c) < 0x20 or ord(c) == 0x7F for c in name):
        return "it holds a control character"
    if os.path.isabs(name) or name.startswith(("/", "\\")):
        return "it is an absolute path"
    if any(sep in name for sep in {"/", "\\", os.sep, os.altsep} - {None}):
        return "it holds a path separator"
    return None


def safe_child(parent: str | os.PathLike, name: str, what: str = "name") -> Path:
    """``parent / name``, for a ``name`` that is one plain path component.

    Refuses (with :class:`UnsafePathError`) an empty name, ``.`` and ``..``, absolute
    paths, any path separator (``/``, and ``\\`` as well, so a name means the same on
    every platform), NUL and other control characters, and a symbolic link already at
    ``parent / name`` (planted to redirect a write).  ``what`` names the thing in the
    message (``"run name"``, ``"sweep member"``).
    """
    parent = Path(parent)
    why = _why_not_plain(name)
    if why is not None:
        raise UnsafePathError(
            f"refusing {what} {name!r}: {why}; expected a plain name inside '{parent}'"
        )
    target = parent / name
    if target.is_symlink():
        raise UnsafePathError(
            f"refusing to write '{target}': it is a symbolic link (to "
            f"'{os.readlink(target)}'), not something nincompile made; remove it"
        )
    return target


def file_kind(mode: int) -> str:
    """What a ``st_mode`` is, in words: ``a regular file``, ``a FIFO (named pipe)``, ..."""
    for test, kind in (
        (stat.S_ISREG, "a regular file"),
        (stat.S_ISDIR, "a folder"),
        (stat.S_ISFIFO, "a FIFO (named pipe)"),
        (stat.S_ISCHR, "a character device"),
        (stat.S_ISBLK, "a block device"),
        (stat.S_ISSOCK, "a socket"),
        (stat.S_ISLNK, "a symbolic link"),
    ):
        if test(mode):
            return kind
    return "a special file"


def _link_error(path: Path, root: Path, what: str) -> UnsafePathError:
    try:
        to = f" (to '{os.readlink(path)}')"
    except OSError:
        to = ""
    return UnsafePathError(
        f"refusing '{path}': it is a symbolic link{to} in the {what} '{root}'; nincompile "
        "never reads or writes through one (it could lead out of the folder); remove it"
    )


def inside(root: str | os.PathLike, relative: str, what: str = "folder") -> Path:
    """``root / relative`` (``relative`` uses ``/``), after checking with ``lstat`` that
    no component below ``root`` is a symbolic link and that every existing component
    but the last is a real folder.  ``root`` itself is the user's choice and may be a
    link.  Raises :class:`UnsafePathError`, naming the component."""
    root = Path(root)
    parts = PurePosixPath(relative).parts
    for part in parts:
        why = _why_not_plain(part)
        if why is not None:
            raise UnsafePathError(
                f"refusing {relative!r}: {why}; expected a path inside the {what} '{root}'"
            )
    path = root
    for i, part in enumerate(parts):
        path = path / part
        try:
            mode = os.lstat(path).st_mode
        except (FileNotFoundError, NotADirectoryError):
            break  # nothing below exists: nothing there to follow
        if stat.S_ISLNK(mode):
            raise _link_error(path, root, what)
        if i < len(parts) - 1 and not stat.S_ISDIR(mode):
            raise UnsafePathError(
                f"refusing '{path}': expected a folder in the {what} '{root}', "
                f"found {file_kind(mode)}"
            )
    return root.joinpath(*parts)


def regular_or_missing(path: str | os.PathLike, what: str = "folder") -> bool:
    """True when ``path`` is a regular file, False when nothing is there; refuses (with
    :class:`UnsafePathError`) a link, a FIFO, a device or a folder, without opening it."""
    path = Path(path)
    try:
        mode = os.lstat(path).st_mode
    except (FileNotFoundError, NotADirectoryError):
        return False
    if stat.S_ISLNK(mode):
        raise _link_error(path, path.parent, what)
    if not stat.S_ISREG(mode):
        raise UnsafePathError(
            f"refusing '{path}': it is not a regular file ({file_kind(mode)}); nincompile only "
            "reads files it wrote itself there"
        )
    return True


def open_regular(path: str | os.PathLike, what: str = "folder") -> BinaryIO:
    """Open ``path`` for reading in binary, only if it is a regular file: checked with
    ``lstat`` before opening (a FIFO is never opened, so nothing hangs), then opened
    with ``O_NOFOLLOW | O_NONBLOCK`` and checked again (a file swapped in between is
    refused too).  Raises :class:`UnsafePathError`, or ``FileNotFoundError``."""
    path = Path(path)
    if not regular_or_missing(path, what):
        raise FileNotFoundError(2, "No such file or directory", str(path))
    flags = os.O_NOFOLLOW if hasattr(os, "O_NOFOLLOW") else 0
    try:
        return open_checked(path, flags, lambda mode: UnsafePathError(
            f"refusing '{path}': it is not a regular file ({file_kind(mode)})"
        ))  # fmt: skip
    except UnsafePathError:
        raise
    except OSError:
        if os.path.islink(path):
            raise _link_error(path, path.parent, what) from None
        raise


def open_checked(path, extra_flags: int, refuse) -> BinaryIO:
    """Open ``path`` for binary reading, non-blocking (a FIFO does not hang the open),
    then check with ``fstat`` that what was opened is a regular file: else close it
    and raise ``refuse(st_mode)``.  The one opening of files of unknown kind, for run
    folders (:func:`open_regular`) and for the user's inputs
    (``guard.open_regular``)."""
    flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0)
    fd = os.open(path, flags | extra_flags)
    try:
        mode = os.fstat(fd).st_mode
        if not stat.S_ISREG(mode):
            raise refuse(mode)
        os.set_blocking(fd, True)
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def write_text(target: Path, text: str) -> None:
    """Write ``text`` (UTF-8) to ``target`` atomically."""
    atomic_write(target, lambda tmp: tmp.write_text(text, encoding="utf-8"))


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def sha256_text(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def sha256_arrays(*arrays) -> str:
    """sha256 of NumPy arrays: each one's dtype, shape and bytes, in order."""
    import numpy as np

    h = hashlib.sha256()
    for a in arrays:
        h.update(f"{a.dtype.str}{a.shape}".encode())
        h.update(memoryview(np.ascontiguousarray(a)).cast("B"))
    return h.hexdigest()
