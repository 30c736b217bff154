"""A spec compiled: validated and lowered to the IR (:class:`Compiled`), checked
against its ``expect:`` figures and the resource limits (:class:`CheckResult`), and
built into the Keras model whose counts are proven equal to the IR's
(:func:`build_checked`).  The steps that the library (:mod:`nincompile.api`),
training and the loader of trained models share; nothing here imports TensorFlow or
Keras but :func:`build_checked`, inside it.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from . import guard
from .errors import KerasMismatch, NincompileError, SpecError, format_path
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

    def counts(self, frozen: frozenset[str] | None = None) -> dict[str, int]:
        """Total, trainable and non-trainable parameters, the layers of ``train.freeze``
        frozen (with ``train.phases``, the first phase's; ``frozen``: these instead)."""
        p = self.graph.params_frozen(frozen)
        return {"total": p.total, "trainable": p.trainable, "non_trainable": p.non_trainable}

    def phase_counts(self) -> list[dict]:
        """With ``train.phases``: each phase's ``phase`` (0-based), ``epochs`` and
        ``params`` (:meth:`counts` with its freeze); empty without phases."""
        train = self.spec.train
        if train is None or not train.phases:
            return []
        return [
            {"phase": k, "epochs": phase.epochs, "params": self.counts(frozen)}
            for k, (phase, frozen) in enumerate(zip(train.phases, self.graph.phase_frozen,
                                                    strict=True))
        ]  # fmt: skip

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
            **({"phases": self.phase_counts()} if self.phase_counts() else {}),
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


@dataclass
class CheckResult:
    """A compiled model checked against its ``expect:`` figures and the resource
    limits: ``estimate`` is the guard's (None when it is over the limits, and ``error``
    says why)."""

    compiled: Compiled
    limits: guard.Limits
    estimate: guard.Estimate | None
    error: NincompileError | None = None

    @property
    def name(self) -> str:
        return self.compiled.name

    @property
    def counts(self) -> dict[str, int]:
        return self.compiled.counts()

    @property
    def macs(self) -> int:
        return self.compiled.graph.macs

    @property
    def mismatches(self) -> list[tuple[str, int, int]]:
        """``(category, expected, actual)`` for each ``expect:`` figure that differs."""
        return self.compiled.expect_mismatches()

    @property
    def problems(self) -> list[dict]:
        """Every problem as a :func:`problem_dicts` entry: ``expect:`` figures that
        differ, then what the resource guard refused."""
        out = self.compiled.expect_problems()
        if self.error is not None:
            out += problem_dicts(self.error, self.compiled.source.file)
        return out

    @property
    def ok(self) -> bool:
        return self.error is None and not self.mismatches

    def summary(self) -> dict:
        """What ``check --json`` prints for this model."""
        out = self.compiled.summary()
        if self.error is not None:
            out["ok"] = False
            out["problems"].extend(problem_dicts(self.error, self.compiled.source.file))
        return out


def limits_of(max_params: int | None = None, max_memory: int | None = None) -> guard.Limits:
    """The resource limits: these where given, else the environment's, else the
    defaults (see :meth:`nincompile.guard.Limits.from_env`)."""
    return guard.Limits.from_env(max_params, max_memory)


def check_compiled(compiled: Compiled, limits: guard.Limits | None = None) -> CheckResult:
    """:class:`CheckResult` of a compiled model (the resource guard runs once)."""
    limits = limits or guard.Limits.from_env()
    try:
        return CheckResult(compiled, limits, guard.check(compiled, limits))
    except guard.ResourceError as err:
        return CheckResult(compiled, limits, None, err)


def build_checked(compiled: Compiled, limits: guard.Limits | None = None, *,
                  estimated: bool = False):  # fmt: skip
    """The Keras model of ``compiled``, its counts proven equal to the IR's.  Unless
    ``estimated`` (the caller's :class:`CheckResult` holds the estimate), the resource
    guard first refuses a model over ``limits`` (default: the environment's) with
    :class:`guard.ResourceError`, before Keras allocates anything."""
    if not estimated:
        guard.check(compiled, limits or guard.Limits.from_env())
    from .keras_builder import build_model, count_params

    model = build_model(compiled.graph)
    actual = count_params(model)
    if actual != compiled.counts():
        raise KerasMismatch(
            f"{compiled.name}: Keras built {actual} but the IR counted {compiled.counts()}; "
            "please report this bug"
        )
    return model
