"""The library API behind the CLI.

``compile_spec`` validates and lowers a spec to the IR and counts parameters without
importing TensorFlow or Keras; ``build`` also makes the Keras model (after the resource
guard, :mod:`nincompile.guard`, has estimated that it fits) and proves its counts equal
the IR's; ``load_weights`` fills it with trained weights (:mod:`nincompile.weights`);
``save_model`` writes a ``.keras`` file atomically.
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass
from pathlib import Path

from . import guard
from .errors import KerasMismatch, NincompileError, SpecError, format_path
from .files import atomic_write
from .ir import Graph, lower
from .spec import SpecSource, load_spec

CATEGORIES = (("params", "total"), ("trainable", "trainable"), ("non_trainable", "non_trainable"))


@dataclass
class Compiled:
    """A validated spec and its IR graph."""

    source: SpecSource
    graph: Graph

    @property
    def spec(self):
        return self.source.spec

    @property
    def name(self) -> str:
        return self.spec.name

    def counts(self) -> dict[str, int]:
        p = self.graph.params
        return {"total": p.total, "trainable": p.trainable, "non_trainable": p.non_trainable}

    def expect_mismatches(self, counts: dict[str, int] | None = None) -> list[tuple[str, int, int]]:
        """``(category, expected, actual)`` for each ``expect:`` figure that differs."""
        counts = counts or self.counts()
        expect = self.spec.expect
        if expect is None:
            return []
        out = []
        for field, key in CATEGORIES:
            want = getattr(expect, field)
            if want is not None and want != counts[key]:
                out.append((field, want, counts[key]))
        return out

    def expect_problems(self, counts: dict[str, int] | None = None) -> list[dict]:
        """:func:`problem_dicts` for each ``expect:`` figure that differs."""
        out = []
        for field, want, got in self.expect_mismatches(counts):
            path = ("expect", field)
            line, column = self.source.locate(path)
            out.append(
                {
                    "file": self.source.file,
                    "line": line,
                    "column": column,
                    "path": format_path(path),
                    "message": f"expected {want:,}, actual {got:,} ({got - want:+,})",
                }
            )
        return out

    def summary(self) -> dict:
        """Machine-readable summary (the ``--json`` output); ``ok`` is False and
        ``problems`` lists them when counts differ from ``expect:``."""
        problems = self.expect_problems()
        return {
            "name": self.name,
            "spec": self.source.file,
            "ok": not problems,
            "problems": problems,
            "sha256": self.source.sha256,
            "input_shape": list(self.spec.input),
            "params": self.counts(),
            "macs": self.graph.macs,
            "expect": self.spec.expect.model_dump(exclude_none=True) if self.spec.expect else None,
            "expect_ok": not self.expect_mismatches(),
            "layers": [
                {
                    "name": layer.name,
                    "kind": layer.kind,
                    "output_shape": list(layer.output_shape),
                    "params": layer.params.total,
                    "trainable": layer.params.trainable,
                    "non_trainable": layer.params.non_trainable,
                    "macs": layer.macs,
                }
                for layer in self.graph.layers()
            ],
        }


def problem_dicts(err: Exception, file: str | None = None) -> list[dict]:
    """``err`` as JSON-ready problems: one per :class:`SpecProblem` of a
    :class:`SpecError`, else one with the message (``file`` is where it belongs)."""
    if isinstance(err, SpecError):
        return [
            {
                "file": p.file,
                "line": p.line,
                "column": p.column,
                "path": format_path(p.path) if p.path else None,
                "message": p.message,
            }
            for p in err.problems
        ]
    return [{"file": file, "line": None, "column": None, "path": None, "message": str(err)}]


def compile_source(source: SpecSource) -> Compiled:
    return Compiled(source, lower(source))


def compile_spec(path: str | os.PathLike) -> Compiled:
    """Validate and lower a spec file (no TensorFlow, no Keras); a spec with
    ``variants:`` compiles as written, without them (see :func:`compile_all`)."""
    return compile_source(load_spec(path))


def compile_all(path: str | os.PathLike, variant: str | None = None) -> list[Compiled]:
    """Every model of a spec file: one, or one per member of its ``family:`` or
    combination of its ``variants:``; with ``variant``, only the one of that name (or
    name suffix after ``<spec name>_``)."""
    from .spec.variants import expand, select

    source = load_spec(path)
    members = [select(source, variant)] if variant is not None else expand(source)
    if len(members) == 1 and members[0] is source:
        return [compile_source(source)]
    out = []
    for member in members:
        try:
            out.append(compile_source(member))
        except SpecError as err:  # say which model of the file it is
            raise type(err)(
                [dataclasses.replace(p, message=f"{p.message} (in {member.spec.name})")
                 for p in err.problems]
            ) from None  # fmt: skip
    return out


def build(compiled: Compiled, limits: guard.Limits | None = None):
    """The Keras model of a compiled spec, its counts checked against the IR.  A model
    over the resource ``limits`` (default :meth:`guard.Limits.from_env`) is refused
    with :class:`guard.ResourceError` before TensorFlow allocates anything."""
    guard.check(compiled, limits)
    from .keras_builder import build_model, count_params

    model = build_model(compiled.graph)
    actual = count_params(model)
    if actual != compiled.counts():
        raise KerasMismatch(
            f"{compiled.name}: Keras built {actual} but the IR counted {compiled.counts()}; "
            "please report this bug"
        )
    return model


def build_spec(path: str | os.PathLike):
    """``(compiled, keras_model)`` for a spec file."""
    compiled = compile_spec(path)
    return compiled, build(compiled)


def read_weights(source: str | os.PathLike):
    """The weights of a ``.keras`` / ``.weights.h5`` file or ``keras:NAME``, read once
    to load into several models (see :func:`nincompile.weights.read_weights`)."""
    from .weights import read_weights as read

    return read(source)


def load_weights(model, source, skip=()):
    """Load weights into a built model, layer by layer in order, after checking that
    every shape fits (the layers named in ``skip`` are left as they are); returns a
    :class:`nincompile.weights.WeightsReport` (see
    :func:`nincompile.weights.load_weights`).  Raises
    :class:`~nincompile.errors.WeightsError`, assigning nothing, if they do not fit."""
    from .weights import load_weights as load

    return load(model, source, skip)


def save_model(model, out_dir: str | os.PathLike, name: str) -> Path:
    """Write ``out_dir/<name>.keras`` atomically; returns the path."""
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise NincompileError(f"output '{out}' exists and is not a directory")
    out.mkdir(parents=True, exist_ok=True)
    target = out / f"{name}.keras"
    atomic_write(target, lambda tmp: model.save(tmp))
    return target
