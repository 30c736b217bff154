"""Resource guard: refuse a model that cannot fit before anything is allocated.

From the IR alone (no TensorFlow, no Keras) it estimates what a model needs in
float32: its weights (``params * 4`` bytes) and the largest activation of one batch
(the largest layer output, ``prod(shape) * batch * 4`` bytes; the batch is the spec's
``train.batch_size``, or 1 for a spec without ``train:``).  ``check`` and ``build``
refuse a model over either limit with the estimate, the limit, the layer responsible
(located in the spec) and how to raise the limit; :func:`nincompile.api.build` applies
the same guard, so ``train`` and ``export`` never hand Keras a model that cannot fit.

The estimate is a floor, not a forecast: training also holds gradients, optimiser
slots and every activation of the batch.  The limits are there to turn "filters in
the billions" or "a Dense layer of 10^12 weights" into a clear message instead of an
out-of-memory crash inside TensorFlow; their defaults (2 billion parameters, 16 GiB)
pass every spec in ``specs/`` with room to spare (VGG16 at 224x224 needs ~0.9 GiB).

Limits, in order of precedence: ``--max-params``/``--max-memory`` (``build``,
``check``), the environment variables ``NINCOMPILE_MAX_PARAMS`` and
``NINCOMPILE_MAX_MEMORY`` (every command), the defaults.
"""

from __future__ import annotations

import math
import os
import re
from dataclasses import dataclass

from .errors import NincompileError, SpecError, SpecProblem

BYTES_PER_VALUE = 4  # float32
DEFAULT_MAX_PARAMS = 2_000_000_000
DEFAULT_MAX_MEMORY = 16 * 2**30
PARAMS_ENV = "NINCOMPILE_MAX_PARAMS"
MEMORY_ENV = "NINCOMPILE_MAX_MEMORY"


class ResourceError(SpecError):
    """A model too large to allocate: its estimate, the limit and how to raise it."""


class LimitError(NincompileError):
    """A limit given on the command line or in the environment that cannot be read."""


# ------------------------------------------------------------------ quantities

_SIZE_UNITS = {
    "": 1,
    "b": 1,
    "k": 2**10,
    "kib": 2**10,
    "kb": 10**3,
    "m": 2**20,
    "mib": 2**20,
    "mb": 10**6,
    "g": 2**30,
    "gib": 2**30,
    "gb": 10**9,
    "t": 2**40,
    "tib": 2**40,
    "tb": 10**12,
}
_COUNT_UNITS = {"": 1, "k": 10**3, "m": 10**6, "g": 10**9, "b": 10**9, "t": 10**12}
_NUMBER = re.compile(r"\s*([0-9][0-9_,]*(?:\.[0-9]*)?(?:e[+-]?[0-9]+)?)\s*([a-z]*)\s*", re.I)


def _parse(text: str, units: dict[str, int], what: str, example: str) -> int:
    m = _NUMBER.fullmatch(str(text))
    unit = m.group(2).lower() if m else ""
    if not m or unit not in units:
        raise LimitError(f"cannot read {text!r} as {what}; expected e.g. {example}")
    number = float(m.group(1).replace("_", "").replace(",", ""))
    value = number * units[unit]
    if not math.isfinite(value):
        raise LimitError(f"{what} {text!r} is too large to be a limit")
    if value < 1:
        raise LimitError(f"{what} must be at least 1; received {text!r}")
    return int(value)


def parse_size(text: str) -> int:
    """Bytes in ``"16GiB"``, ``"500 MB"``, ``"2g"`` (K/M/G/T alone are binary), ``"1e9"``."""
    return _parse(text, _SIZE_UNITS, "a memory size", "16GiB, 512MiB, 20GB or 2e10")


def parse_count(text: str) -> int:
    """A count in ``"2000000000"``, ``"2_000_000_000"``, ``"3e9"``, ``"3G"``, ``"500M"``."""
    return _parse(text, _COUNT_UNITS, "a parameter count", "3000000000, 3e9 or 3G")


def format_bytes(n: int) -> str:
    for unit, size in (("TiB", 2**40), ("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if n >= size:
            if n >= 10_000 * size:  # exact integers: a float would overflow past 1e308
                return f"{n // size:,} {unit}"
            return f"{n / size:.1f} {unit}"
    return f"{n} bytes"


# ---------------------------------------------------------------------- limits


@dataclass(frozen=True)
class Limits:
    max_params: int = DEFAULT_MAX_PARAMS
    max_memory: int = DEFAULT_MAX_MEMORY

    @classmethod
    def from_env(cls, max_params: int | None = None, max_memory: int | None = None) -> Limits:
        """The limits: the arguments where given, else the environment, else defaults."""
        if max_params is None:
            raw = os.environ.get(PARAMS_ENV, "").strip()
            max_params = _env(raw, parse_count, PARAMS_ENV) if raw else DEFAULT_MAX_PARAMS
        if max_memory is None:
            raw = os.environ.get(MEMORY_ENV, "").strip()
            max_memory = _env(raw, parse_size, MEMORY_ENV) if raw else DEFAULT_MAX_MEMORY
        return cls(max_params, max_memory)


def _env(raw: str, parse, var: str) -> int:
    try:
        return parse(raw)
    except LimitError as err:
        raise LimitError(f"environment variable {var}: {err}") from None


# -------------------------------------------------------------------- estimate


@dataclass(frozen=True)
class Estimate:
    """What a model needs, in float32, for one batch."""

    params: int
    batch: int
    weights_bytes: int
    activation_bytes: int  # the largest layer output of one batch
    activation_layer: str  # the layer that gives it
    params_layer: str  # the layer with the most parameters

    @property
    def total_bytes(self) -> int:
        return self.weights_bytes + self.activation_bytes

    def describe(self) -> str:
        return (
            f"weights {format_bytes(self.weights_bytes)} ({self.params:,} parameters) + "
            f"largest activation {format_bytes(self.activation_bytes)} "
            f"('{self.activation_layer}', batch {self.batch}) = {format_bytes(self.total_bytes)}"
        )


def batch_of(spec) -> int:
    return spec.train.batch_size if spec.train is not None else 1


def estimate(graph, batch: int = 1) -> Estimate:
    """The estimate for an IR graph (:class:`nincompile.ir.Graph`)."""
    params = 0
    act, act_layer = -1, ""
    most, most_layer = -1, ""
    for layer in graph.layers():
        n = layer.params.total
        params += n
        if n > most:
            most, most_layer = n, layer.name
        size = math.prod(layer.output_shape) * batch * BYTES_PER_VALUE
        if size > act:
            act, act_layer = size, layer.name
    return Estimate(
        params=params,
        batch=batch,
        weights_bytes=params * BYTES_PER_VALUE,
        activation_bytes=max(act, 0),
        activation_layer=act_layer,
        params_layer=most_layer,
    )


def check(compiled, limits: Limits | None = None) -> Estimate:
    """The estimate of a compiled spec (:class:`nincompile.api.Compiled`); raise
    :class:`ResourceError` if it is over ``limits`` (default :meth:`Limits.from_env`)."""
    limits = limits or Limits.from_env()
    est = estimate(compiled.graph, batch_of(compiled.spec))
    nodes = {n.name: n for n in compiled.graph.nodes}
    source = compiled.source

    def problem(message: str, layer: str) -> SpecProblem:
        node = nodes.get(layer)
        path = tuple(node.source) if node is not None else ()
        line, col = source.locate(path)
        return SpecProblem(message, path, source.file, line, col)

    name = compiled.name
    problems = []
    if est.params > limits.max_params:
        problems.append(
            problem(
                f"{name} is too large: {est.params:,} parameters, over the limit of "
                f"{limits.max_params:,} (the largest layer, '{est.params_layer}', here). "
                f"If the model is meant to be this large, raise the limit with --max-params "
                f"(build, check) or the environment variable {PARAMS_ENV}.",
                est.params_layer,
            )
        )
    if est.total_bytes > limits.max_memory:
        layer = (
            est.activation_layer if est.activation_bytes > est.weights_bytes else est.params_layer
        )
        problems.append(
            problem(
                f"{name} does not fit in memory: {est.describe()} (float32), over the limit "
                f"of {format_bytes(limits.max_memory)}. If the model is meant to be this "
                f"large, raise the limit with --max-memory (build, check) or the environment "
                f"variable {MEMORY_ENV}"
                + (", or lower train.batch_size." if layer == est.activation_layer else "."),
                layer,
            )
        )
    if problems:
        raise ResourceError(problems)
    return est
