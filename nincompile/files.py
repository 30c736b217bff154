"""File helpers every command shares: atomic writes, safe names and content hashes.

Two promises rest on these (see SECURITY.md):

* nothing is half-written: :func:`atomic_write` writes a temporary file beside the
  target, flushes it to disk and renames it into place, so a crash or ``kill -9`` at
  any moment leaves the old complete file or the new complete one (at worst a hidden
  ``.<name>.*`` temporary file is left beside it);
* nothing is written outside the output folder: a name that comes from a spec or the
  command line (run folders, sweep members) becomes a path only through
  :func:`safe_child`, which refuses ``..``, absolute paths, separators, NUL and other
  control characters, and a symbolic link planted where the child would be.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from pathlib import Path

from .errors import NincompileError


def atomic_write(target: Path, write) -> None:
    """Call ``write(tmp_path)`` then rename onto ``target``; no partial file is left."""
    target = Path(target)
    parent = target.parent
    if not parent.is_dir():
        raise NincompileError(f"cannot write '{target}': folder '{parent}' does not exist")
    if target.is_symlink():
        raise NincompileError(f"refusing to write '{target}': it is a symbolic link")
    fd, tmp = tempfile.mkstemp(prefix=f".{target.stem}.", suffix=target.suffix, dir=target.parent)
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
    """A name from a spec or the command line that would leave its output folder."""


def safe_child(parent: str | os.PathLike, name: str, what: str = "name") -> Path:
    """``parent / name``, for a ``name`` that is one plain path component.

    Refuses (with :class:`UnsafePathError`) an empty name, ``.`` and ``..``, absolute
    paths, any path separator (``/``, and ``\\`` as well, so a name means the same on
    every platform), NUL and other control characters, and a symbolic link already at
    ``parent / name`` (planted to redirect a write).  ``what`` names the thing in the
    message (``"run name"``, ``"sweep member"``).
    """
    parent = Path(parent)
    why = None
    if not isinstance(name, str):
        why = f"expected a string, not {type(name).__name__}"
    elif name in ("", ".", ".."):
        why = {"": "it is empty", ".": "it names the folder itself"}.get(
            name, "it would leave the folder"
        )
    elif "\x00" in name:
        why = "it holds a NUL byte"
    elif any(ord(c) < 0x20 or ord(c) == 0x7F for c in name):
        why = "it holds a control character"
    elif os.path.isabs(name) or name.startswith(("/", "\\")):
        why = "it is an absolute path"
    elif any(sep in name for sep in {"/", "\\", os.sep, os.altsep} - {None}):
        why = "it holds a path separator"
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
