"""The built-in specs: the repository's ``specs/`` (and ``specs/applications/``),
reachable by name (``nin_badm``, ``resnet18``, ``resnet50``, ``applications/vgg16``).

There is one copy of them, in ``specs/`` at the repository root.  The wheel carries
it as ``nincompile/specs/`` (``setup.py`` maps that package folder to ``specs/``), so
an installed package finds them beside its modules and a checkout (editable install or
``PYTHONPATH``) finds them in the repository.  A path that exists always wins over a
built-in name: :func:`find` is asked only when no file of that name is there.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from ..errors import close_matches

APPLICATIONS = "applications"
SUFFIXES = (".yaml", ".yml")
_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]*(/[A-Za-z0-9_][A-Za-z0-9_.-]*)?")


def root() -> Path | None:
    """The folder of the built-in specs: ``nincompile/specs`` in an installed wheel,
    else ``specs/`` of the checkout this package is imported from; None when neither
    is there."""
    package = Path(__file__).resolve().parent.parent
    installed = package / "specs"
    if installed.is_dir():
        return installed
    checkout = package.parent
    if (checkout / "pyproject.toml").is_file() and (checkout / "specs").is_dir():
        return checkout / "specs"
    return None


@dataclass(frozen=True)
class Builtin:
    name: str  # what to type: nin_badm, resnet50, applications/vgg16
    path: Path


def builtins() -> list[Builtin]:
    """Every built-in spec, the repository's own first, then Keras's applications (a
    name that both have is ``applications/<name>`` for the application)."""
    base = root()
    if base is None:
        return []
    own = sorted(p for p in base.glob("*.yaml") if p.is_file())
    apps = sorted(p for p in (base / APPLICATIONS).glob("*.yaml") if p.is_file())
    taken = {p.stem for p in own}
    out = [Builtin(p.stem, p) for p in own]
    for p in apps:
        name = p.stem if p.stem not in taken else f"{APPLICATIONS}/{p.stem}"
        out.append(Builtin(name, p))
    return out


def find(name: str) -> Path | None:
    """The built-in spec called ``name`` (a name from :func:`builtins`, or its path in
    the folder: ``applications/resnet50``; optionally with ``.yaml``), or None."""
    text = str(name)
    for suffix in SUFFIXES:
        text = text.removesuffix(suffix)
    if not _NAME.fullmatch(text) or ".." in text:
        return None
    base = root()
    for b in builtins():
        if text in (b.name, b.path.relative_to(base).with_suffix("").as_posix()):
            return b.path
    return None


def suggestion(name: str) -> str:
    """What a missing spec's message adds when ``name`` looks like a built-in name: the
    closest one, and where to see them all."""
    text = str(name)
    if "/" in text.replace(f"{APPLICATIONS}/", "", 1) or "\\" in text:
        return ""
    names = [b.name for b in builtins()]
    if not names:
        return ""
    match = close_matches(Path(text).stem, names)
    hint = f" (did you mean '{match[0]}'?)" if match else ""
    return f", nor a built-in spec of that name{hint}; `nincompile list` shows them"
