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
#: A Keras initializer: its name (``he_normal``), or its name and arguments as sorted
#: pairs (``("variance_scaling", (("mode", "fan_out"), ("scale", 2.0)))``).
Initializer = str | tuple[str, tuple[tuple[str, object], ...]]
#: Zero padding of an image: ((top, bottom), (left, right)).
Padding2D = tuple[tuple[int, int], tuple[int, int]]

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


def _spatial(shape: Shape, kernel, strides, padding, what: str, dilation=1) -> tuple[int, int]:
    (kh, kw), (sh, sw), (dh, dw) = _pair(kernel), _pair(strides), _pair(dilation)
    return (
        window_out(shape[0], (kh - 1) * dh + 1, sh, padding, what, "height"),
        window_out(shape[1], (kw - 1) * dw + 1, sw, padding, what, "width"),
    )


def _bias(on: bool, units: int) -> int:
    return units if on else 0


@node
@dataclass(frozen=True, kw_only=True)
class Input(Node):
    kind: ClassVar[str] = "input"
    shape: Shape

    def infer(self, shapes: list[Shape]) -> Shape:
        return self.shape


@dataclass(frozen=True, kw_only=True)
class _Conv(Node):
    """What every convolution has: a kernel window, strides, dilation, padding, bias."""

    kernel: int | tuple[int, int]
    strides: int | tuple[int, int]
    padding: str
    dilation: int | tuple[int, int] = 1
    bias: bool
    initializer: Initializer
    weight_decay: float  # L2 factor of the kernel; 0: no regularizer

    def _window(self, shapes: list[Shape], what: str) -> tuple[int, int]:
        shape = self._image(shapes)
        return _spatial(shape, self.kernel, self.strides, self.padding, what, self.dilation)

    def _area(self) -> int:
        kh, kw = _pair(self.kernel)
        return kh * kw

    def _strided_dilation(self, what: str) -> None:
        """Keras's Conv2D and Conv2DTranspose refuse strides > 1 with dilation > 1 (on
        any axes); its depthwise and separable convolutions take both."""
        strides, dilation = _pair(self.strides), _pair(self.dilation)
        if max(strides) > 1 and max(dilation) > 1:
            raise ShapeError(
                f"{what} cannot have both strides > 1 and dilation > 1 (Keras does not "
                f"support it); expected strides 1 or dilation 1; received strides "
                f"{list(strides)}, dilation {list(dilation)}"
            )


@node
@dataclass(frozen=True, kw_only=True)
class Conv2D(_Conv):
    kind: ClassVar[str] = "conv2d"
    filters: int
    groups: int = 1

    def infer(self, shapes: list[Shape]) -> Shape:
        cin = self._image(shapes)[2]
        self._strided_dilation("conv")
        for what, n in (("input channels", cin), ("filters", self.filters)):
            if n % self.groups:
                raise ShapeError(
                    f"conv with groups {self.groups} needs {what} divisible by {self.groups}; "
                    f"received {n}"
                )
        return (*self._window(shapes, "conv"), self.filters)

    def params(self, shapes: list[Shape]) -> Params:
        cin = shapes[0][-1] // self.groups
        return Params(self._area() * cin * self.filters + _bias(self.bias, self.filters))

    def macs(self, shapes: list[Shape], out: Shape) -> int:
        return out[0] * out[1] * self._area() * shapes[0][-1] // self.groups * self.filters


@node
@dataclass(frozen=True, kw_only=True)
class DepthwiseConv2D(_Conv):
    kind: ClassVar[str] = "depthwise_conv2d"
    depth_multiplier: int

    def infer(self, shapes: list[Shape]) -> Shape:
        cin = self._image(shapes)[2]
        return (*self._window(shapes, "depthwise conv"), cin * self.depth_multiplier)

    def params(self, shapes: list[Shape]) -> Params:
        out = shapes[0][-1] * self.depth_multiplier
        return Params(self._area() * out + _bias(self.bias, out))

    def macs(self, shapes: list[Shape], out: Shape) -> int:
        return out[0] * out[1] * self._area() * out[2]


@node
@dataclass(frozen=True, kw_only=True)
class SeparableConv2D(_Conv):
    """Depthwise then pointwise (1x1) convolution, one Keras layer."""

    kind: ClassVar[str] = "separable_conv2d"
    filters: int
    depth_multiplier: int

    def infer(self, shapes: list[Shape]) -> Shape:
        return (*self._window(shapes, "separable conv"), self.filters)

    def params(self, shapes: list[Shape]) -> Params:
        mid = shapes[0][-1] * self.depth_multiplier
        return Params(self._area() * mid + mid * self.filters + _bias(self.bias, self.filters))

    def macs(self, shapes: list[Shape], out: Shape) -> int:
        mid = shapes[0][-1] * self.depth_multiplier
        return out[0] * out[1] * (self._area() * mid + mid * self.filters)


@node
@dataclass(frozen=True, kw_only=True)
class Conv2DTranspose(_Conv):
    kind: ClassVar[str] = "conv2d_transpose"
    filters: int

    def infer(self, shapes: list[Shape]) -> Shape:
        h, w, _ = self._image(shapes)
        self._strided_dilation("conv_transpose")
        (kh, kw), (sh, sw), (dh, dw) = _pair(self.kernel), _pair(self.strides), _pair(self.dilation)
        out = []
        for size, k, s, d in ((h, kh, sh, dh), (w, kw, sw, dw)):
            k = (k - 1) * d + 1
            out.append(size * s if self.padding == "same" else size * s + max(k - s, 0))
        return (*out, self.filters)

    def params(self, shapes: list[Shape]) -> Params:
        cin = shapes[0][-1]
        return Params(self._area() * cin * self.filters + _bias(self.bias, self.filters))

    def macs(self, shapes: list[Shape], out: Shape) -> int:
        h, w, cin = shapes[0]
        return h * w * self._area() * cin * self.filters


@node
@dataclass(frozen=True, kw_only=True)
class Dense(Node):
    kind: ClassVar[str] = "dense"
    units: int
    bias: bool
    initializer: Initializer
    weight_decay: float  # L2 factor of the kernel; 0: no regularizer
    pointwise: bool = False  # on the channel axis of an image: (H, W, C) -> (H, W, units)

    def infer(self, shapes: list[Shape]) -> Shape:
        (shape,) = shapes
        if len(shape) != 1 and not self.pointwise:
            raise ShapeError(
                f"dense needs a flat input; received shape {list(shape)}: "
                "add 'flatten' or 'gap' before it, or 'pointwise: true' to act on the channels"
            )
        return (*shape[:-1], self.units)

    def params(self, shapes: list[Shape]) -> Params:
        return Params(shapes[0][-1] * self.units + _bias(self.bias, self.units))

    def macs(self, shapes: list[Shape], out: Shape) -> int:
        return math.prod(shapes[0]) * self.units


@node
@dataclass(frozen=True, kw_only=True)
class BatchNorm(Node):
    kind: ClassVar[str] = "batch_norm"
    epsilon: float = 1e-3
    momentum: float = 0.99
    center: bool = True
    scale: bool = True

    def params(self, shapes: list[Shape]) -> Params:
        c = shapes[0][-1]
        return Params(trainable=(self.center + self.scale) * c, non_trainable=2 * c)


@node
@dataclass(frozen=True, kw_only=True)
class LayerNorm(Node):
    kind: ClassVar[str] = "layer_norm"
    epsilon: float = 1e-3

    def params(self, shapes: list[Shape]) -> Params:
        return Params(trainable=2 * shapes[0][-1])


@node
@dataclass(frozen=True, kw_only=True)
class LayerScale(Node):
    """ConvNeXt's learned per-channel scale: ``x * gamma``, gamma of shape (C,)."""

    kind: ClassVar[str] = "layer_scale"
    init: float

    def params(self, shapes: list[Shape]) -> Params:
        return Params(trainable=shapes[0][-1])


@node
@dataclass(frozen=True, kw_only=True)
class DropPath(Node):
    """Stochastic depth: in training, drops a sample's whole branch with probability
    ``rate`` (the rest scaled by 1/(1-rate)); the identity at inference."""

    kind: ClassVar[str] = "drop_path"
    rate: float
    noise_shape: tuple[int | None, ...] = (None, 1, 1, 1)  # one draw per sample


@node
@dataclass(frozen=True, kw_only=True)
class ZeroPad(Node):
    kind: ClassVar[str] = "zero_pad"
    padding: Padding2D

    def infer(self, shapes: list[Shape]) -> Shape:
        h, w, c = self._image(shapes)
        (t, b), (left, r) = self.padding
        return (h + t + b, w + left + r, c)


@node
@dataclass(frozen=True, kw_only=True)
class UpSample(Node):
    kind: ClassVar[str] = "upsample"
    size: int | tuple[int, int]
    interpolation: str = "nearest"

    def infer(self, shapes: list[Shape]) -> Shape:
        h, w, c = self._image(shapes)
        sh, sw = _pair(self.size)
        return (h * sh, w * sw, c)


@node
@dataclass(frozen=True, kw_only=True)
class Reshape(Node):
    kind: ClassVar[str] = "reshape"
    target: tuple[int, ...]  # one entry may be -1

    def infer(self, shapes: list[Shape]) -> Shape:
        (shape,) = shapes
        size, known = math.prod(shape), math.prod(d for d in self.target if d != -1)
        if -1 in self.target:
            if known == 0 or size % known:
                raise ShapeError(
                    f"reshape to {list(self.target)} cannot hold the {size:,} values of shape "
                    f"{list(shape)}: expected a shape whose known sizes divide {size:,}"
                )
            return tuple(size // known if d == -1 else d for d in self.target)
        if known != size:
            raise ShapeError(
                f"reshape to {list(self.target)} holds {known:,} values but its input "
                f"{list(shape)} has {size:,}: expected sizes whose product is {size:,}"
            )
        return self.target


@node
@dataclass(frozen=True, kw_only=True)
class Rescaling(Node):
    kind: ClassVar[str] = "rescaling"
    scale: float
    offset: float = 0.0


@node
@dataclass(frozen=True, kw_only=True)
class Normalization(Node):
    """``(x - mean) / sqrt(variance)`` per channel: fixed statistics (no weights), or,
    without them, statistics held as non-trainable weights (mean, variance, count)."""

    kind: ClassVar[str] = "normalization"
    mean: tuple[float, ...] | None = None
    variance: tuple[float, ...] | None = None

    def infer(self, shapes: list[Shape]) -> Shape:
        (shape,) = shapes
        for what, values in (("mean", self.mean), ("variance", self.variance)):
            if values is not None and len(values) not in (1, shape[-1]):
                raise ShapeError(
                    f"normalize {what} needs 1 or {shape[-1]} values (one per channel); "
                    f"received {len(values)}"
                )
        return shape

    def params(self, shapes: list[Shape]) -> Params:
        if self.mean is not None:
            return Params()
        return Params(non_trainable=2 * shapes[0][-1] + 1)


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
    keepdims: bool = False

    def infer(self, shapes: list[Shape]) -> Shape:
        c = self._image(shapes)[2]
        return (1, 1, c) if self.keepdims else (c,)


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


def _add_hint(shapes: list[Shape]) -> str:
    """A hint that fits how the shapes of an add differ."""
    if len({len(s) for s in shapes}) > 1:
        return ""
    if (
        len(shapes[0]) == 3
        and any(s[:2] == (1, 1) for s in shapes)
        and len({s[:2] for s in shapes}) > 1
    ):
        return " (a [1, 1, channels] gate scales a map by multiplying: use 'merge: multiply')"
    spatial = len({s[:-1] for s in shapes}) > 1
    channels = len({s[-1] for s in shapes}) > 1
    if spatial and channels:
        return " (a shortcut usually needs a 1x1 projection with the same strides)"
    if channels:
        return " (a shortcut usually needs a 1x1 projection to the same channels)"
    return " (a shortcut needs the same strides as the branch it joins)"


@node
@dataclass(frozen=True, kw_only=True)
class Add(Node):
    kind: ClassVar[str] = "add"

    def infer(self, shapes: list[Shape]) -> Shape:
        if any(s != shapes[0] for s in shapes[1:]):
            raise ShapeError(
                "add needs branches of identical shape; received shapes "
                + ", ".join(str(list(s)) for s in shapes)
                + _add_hint(shapes)
            )
        return shapes[0]


@node
@dataclass(frozen=True, kw_only=True)
class Multiply(Node):
    """Element-wise product; a (1, 1, C) gate broadcasts over an (H, W, C) map
    (squeeze-and-excite)."""

    kind: ClassVar[str] = "multiply"

    def infer(self, shapes: list[Shape]) -> Shape:
        out = list(shapes[0])
        for shape in shapes[1:]:
            if len(shape) != len(out) or any(
                a != b and 1 not in (a, b) for a, b in zip(shape, out, strict=True)
            ):
                raise ShapeError(
                    "multiply needs branches of the same shape, or a gate of size 1 where "
                    "they differ (a squeeze-and-excite gate is [1, 1, channels]); received "
                    "shapes " + ", ".join(str(list(s)) for s in shapes)
                )
            out = [max(a, b) for a, b in zip(out, shape, strict=True)]
        return tuple(out)
