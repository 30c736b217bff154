"""IR nodes: one class per layer kind, each knowing its own shape rule, parameter
count and multiply-accumulates.  No TensorFlow, no Keras.

Shapes exclude the batch axis and are channels-last: ``(H, W, C)`` or ``(F,)``.

Counting rule (Keras's own): a Conv2D or Dense layer has its kernel plus one bias
per output unit unless ``bias`` is off; a BatchNormalization layer has 4 numbers per
channel, gamma and beta trainable, moving mean and variance non-trainable; every
other layer has none; optimiser variables are never counted.  MACs count the
multiply-accumulates of Conv2D and Dense for one image.

Fields hold what the Keras layer gets, always given by the lowering: Keras's own
defaults are written once, in ``kinds.LAYER_KINDS``, the table of how Keras makes each
kind's layer.  Adding a layer kind means: a node class here (registered with
``@node``), its entry in that table, a schema item in ``spec/schema.py`` that lowers
to it; ``tests/test_layer_kinds.py`` fails if one is missing.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import ClassVar

from ..errors import Path, ShapeError

Shape = tuple[int, ...]

#: kind -> node class
NODE_KINDS: dict[str, type[Node]] = {}


def node(cls):
    NODE_KINDS[cls.kind] = cls
    return cls


@dataclass(frozen=True)
class Params:
    trainable: int = 0
    non_trainable: int = 0

    @property
    def total(self) -> int:
        return self.trainable + self.non_trainable

    def __add__(self, other: Params) -> Params:
        return Params(self.trainable + other.trainable, self.non_trainable + other.non_trainable)


@dataclass(frozen=True)
class Scope:
    """A block instance a node was expanded from (for code generation)."""

    block: str
    prefix: str
    args: tuple[tuple[str, object], ...]


@dataclass(frozen=True, kw_only=True)
class Node:
    kind: ClassVar[str]
    name: str
    inputs: tuple[str, ...] = ()
    source: Path = field(default=(), compare=False)
    scope: tuple[Scope, ...] = field(default=(), compare=False)

    def infer(self, shapes: list[Shape]) -> Shape:
        return self._one(shapes)

    def params(self, shapes: list[Shape]) -> Params:
        return Params()

    def macs(self, shapes: list[Shape], out: Shape) -> int:
        return 0

    def _one(self, shapes: list[Shape]) -> Shape:
        (shape,) = shapes
        return shape

    def _image(self, shapes: list[Shape]) -> Shape:
        (shape,) = shapes
        if len(shape) != 3:
            raise ShapeError(
                f"{self.kind} needs an image input (height, width, channels); received "
                f"shape {list(shape)}: a flatten or global pooling came before it"
            )
        return shape


def _pair(value: int | tuple[int, int]) -> tuple[int, int]:
    return (value, value) if isinstance(value, int) else tuple(value)


def window_out(size: int, k: int, s: int, padding: str, what: str, axis: str) -> int:
    """Output length of a convolution or pooling window along one axis."""
    if padding == "same":
        return math.ceil(size / s)
    if k > size:
        raise ShapeError(
            f"{what} window {k} is larger than the input {axis} {size} with padding 'valid', "
            f"so the output would have no pixels: expected a window <= {size}, or padding 'same'"
        )
    return (size - k) // s + 1


def _spatial(shape: Shape, kernel, strides, padding, what: str) -> tuple[int, int]:
    (kh, kw), (sh, sw) = _pair(kernel), _pair(strides)
    return (
        window_out(shape[0], kh, sh, padding, what, "height"),
        window_out(shape[1], kw, sw, padding, what, "width"),
    )


@node
@dataclass(frozen=True, kw_only=True)
class Input(Node):
    kind: ClassVar[str] = "input"
    shape: Shape

    def infer(self, shapes: list[Shape]) -> Shape:
        return self.shape


@node
@dataclass(frozen=True, kw_only=True)
class Conv2D(Node):
    kind: ClassVar[str] = "conv2d"
    filters: int
    kernel: int | tuple[int, int]
    strides: int | tuple[int, int]
    padding: str
    bias: bool
    initializer: str
    weight_decay: float  # L2 factor of the kernel; 0: no regularizer

    def infer(self, shapes: list[Shape]) -> Shape:
        shape = self._image(shapes)
        return (*_spatial(shape, self.kernel, self.strides, self.padding, "conv"), self.filters)

    def params(self, shapes: list[Shape]) -> Params:
        kh, kw = _pair(self.kernel)
        cin = shapes[0][-1]
        return Params(kh * kw * cin * self.filters + (self.filters if self.bias else 0))

    def macs(self, shapes: list[Shape], out: Shape) -> int:
        kh, kw = _pair(self.kernel)
        return out[0] * out[1] * kh * kw * shapes[0][-1] * self.filters


@node
@dataclass(frozen=True, kw_only=True)
class Dense(Node):
    kind: ClassVar[str] = "dense"
    units: int
    bias: bool
    initializer: str
    weight_decay: float  # L2 factor of the kernel; 0: no regularizer

    def infer(self, shapes: list[Shape]) -> Shape:
        (shape,) = shapes
        if len(shape) != 1:
            raise ShapeError(
                f"dense needs a flat input; received shape {list(shape)}: "
                "add 'flatten' or 'gap' before it"
            )
        return (self.units,)

    def params(self, shapes: list[Shape]) -> Params:
        return Params(shapes[0][0] * self.units + (self.units if self.bias else 0))

    def macs(self, shapes: list[Shape], out: Shape) -> int:
        return shapes[0][0] * self.units


@node
@dataclass(frozen=True, kw_only=True)
class BatchNorm(Node):
    kind: ClassVar[str] = "batch_norm"

    def params(self, shapes: list[Shape]) -> Params:
        c = shapes[0][-1]
        return Params(trainable=2 * c, non_trainable=2 * c)


@node
@dataclass(frozen=True, kw_only=True)
class Activation(Node):
    kind: ClassVar[str] = "activation"
    function: str


@node
@dataclass(frozen=True, kw_only=True)
class Pool2D(Node):
    kind: ClassVar[str] = "pool2d"
    mode: str  # "max" | "avg"
    size: int | tuple[int, int]
    strides: int | tuple[int, int] | None  # None: the pool size, as in Keras
    padding: str

    def infer(self, shapes: list[Shape]) -> Shape:
        shape = self._image(shapes)
        strides = self.size if self.strides is None else self.strides
        return (*_spatial(shape, self.size, strides, self.padding, f"{self.mode} pool"), shape[2])


@node
@dataclass(frozen=True, kw_only=True)
class GlobalPool(Node):
    kind: ClassVar[str] = "global_pool"
    mode: str  # "avg" | "max"

    def infer(self, shapes: list[Shape]) -> Shape:
        return (self._image(shapes)[2],)


@node
@dataclass(frozen=True, kw_only=True)
class Flatten(Node):
    kind: ClassVar[str] = "flatten"

    def infer(self, shapes: list[Shape]) -> Shape:
        return (math.prod(self._one(shapes)),)


@node
@dataclass(frozen=True, kw_only=True)
class Dropout(Node):
    kind: ClassVar[str] = "dropout"
    rate: float


@node
@dataclass(frozen=True, kw_only=True)
class Concat(Node):
    kind: ClassVar[str] = "concat"

    def infer(self, shapes: list[Shape]) -> Shape:
        first = shapes[0]
        for other in shapes[1:]:
            if len(other) != len(first) or other[:-1] != first[:-1]:
                raise ShapeError(
                    "concat needs branches of equal spatial size; received shapes "
                    + ", ".join(str(list(s)) for s in shapes)
                )
        return (*first[:-1], sum(s[-1] for s in shapes))


@node
@dataclass(frozen=True, kw_only=True)
class Add(Node):
    kind: ClassVar[str] = "add"

    def infer(self, shapes: list[Shape]) -> Shape:
        if any(s != shapes[0] for s in shapes[1:]):
            raise ShapeError(
                "add needs branches of identical shape; received shapes "
                + ", ".join(str(list(s)) for s in shapes)
                + " (a shortcut usually needs a 1x1 projection with the same strides)"
            )
        return shapes[0]
