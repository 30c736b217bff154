"""Generated files: render specs, write ``<out>/<name>.py`` atomically, or check them.

Rendering needs neither TensorFlow nor Keras, so ``nincompile emit --check`` is fast.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from ..errors import NincompileError
from ..spec import load_spec
from ..spec.variants import expand
from .render import render_source

DEFAULT_OUT = "generated"
DEFAULT_SPECS = "specs"


@dataclass(frozen=True)
class Generated:
    """One rendered module and where it belongs."""

    spec: str
    name: str
    target: Path
    text: str


def default_specs() -> list[str]:
    """``specs/*.yaml`` under the current folder, sorted."""
    return [str(p) for p in sorted(Path(DEFAULT_SPECS).glob("*.yaml"))]


def source_label(spec: str | os.PathLike, out_dir: str | os.PathLike) -> str:
    """How a generated file names its spec: relative to the folder that holds the
    output folder (the repository root for ``generated/``), else to the current
    folder, so the text does not depend on how the spec path was spelled."""
    path = Path(spec).resolve()
    for base in (Path(out_dir).resolve().parent, Path.cwd().resolve()):
        try:
            return path.relative_to(base).as_posix()
        except ValueError:
            continue
    return path.as_posix()


def render_specs(
    specs: list[str], out_dir: str | os.PathLike
) -> tuple[list[Generated], list[NincompileError]]:
    """Render every spec; a spec that fails (a model over the resource limits too, see
    :func:`render_source`) is reported and the others still render."""
    done: list[Generated] = []
    errors: list[NincompileError] = []
    by_name: dict[str, str] = {}
    for spec in specs:
        try:
            loaded = load_spec(spec)
            expansions = expand(loaded)  # a spec with variants: one per variant
        except NincompileError as err:
            errors.append(err)
            continue
        for source in expansions:
            try:
                name = source.spec.name
                if name in by_name:
                    raise NincompileError(
                        f"{spec}: model name '{name}' is also the name in {by_name[name]}; "
                        f"both would be written to {Path(out_dir) / (name + '.py')}"
                    )
                text = render_source(source, source_label(spec, out_dir), loaded.sha256)
            except NincompileError as err:
                errors.append(err)
                continue
            by_name[name] = spec
            done.append(Generated(spec, name, Path(out_dir) / f"{name}.py", text))
    return done, errors


def prepare_out_dir(out: str | os.PathLike | None) -> Path:
    """The output folder: ``generated/`` is created when missing; a folder named with
    ``-o`` must exist."""
    path = Path(DEFAULT_OUT if out is None else out)
    if path.exists() and not path.is_dir():
        raise NincompileError(f"output '{path}' exists and is not a folder")
    if not path.exists():
        if out is not None:
            raise NincompileError(
                f"output folder '{path}' does not exist: create it, or leave out -o "
                f"to write to {DEFAULT_OUT}/"
            )
        path.mkdir(parents=True)
    return path


def write(generated: Generated) -> bool:
    """Write one module atomically; False when the file already holds this text."""
    from ..files import atomic_write

    if current(generated) == generated.text:
        return False
    atomic_write(generated.target, lambda tmp: tmp.write_text(generated.text, encoding="utf-8"))
    return True


def current(generated: Generated) -> str | None:
    """The text now in the target file, or None when there is none."""
    try:
        return generated.target.read_text(encoding="utf-8")
    except (FileNotFoundError, IsADirectoryError, NotADirectoryError, UnicodeDecodeError):
        return None


def problem(generated: Generated) -> str | None:
    """``"missing"`` or ``"stale"`` when the file does not hold the rendered text."""
    if not generated.target.is_file():
        return "missing"
    if current(generated) != generated.text:
        return "stale"
    return None
