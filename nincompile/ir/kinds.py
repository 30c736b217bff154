"""The Keras side of every IR node kind, in one table: :data:`LAYER_KINDS`.

Each entry names the Keras class that makes the layer and its constructor arguments:
which node field gives each value, and Keras's own default for it.  The Keras
builder (``keras_builder.BUILDERS``) and the code generator
(``codegen.layers.HANDLERS``) are both derived from this table, and Keras's default
values are written here only: the builder passes every argument, the generated code
leaves out an argument whose value equals Keras's default, as a person would write it
(``layers.Conv2D(64, 3, padding="same", name=...)``).

Adding a layer kind means: a node class in ``nodes.py``, its entry here, a schema item
in ``spec/schema.py`` and its lowering in ``lower.py``;
``tests/test_layer_kinds.py`` fails if the table, or a table derived from it, misses
a kind.  Strings only: no TensorFlow, no Keras.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from .nodes import Node


class _Required:
    def __repr__(self) -> str:
        return "REQUIRED"


#: The default of an argument Keras has no default for (or that is always written).
REQUIRED: Any = _Required()


@dataclass(frozen=True)
class Arg:
    """One argument of a Keras layer constructor.

    ``keras`` is Keras's keyword; the value is the node's ``field``, or ``value`` for a
    constant.  ``default`` is Keras's default: generated code leaves out a concrete
    value equal to it (``REQUIRED``: always written).  A ``positional`` argument is
    written first, without its keyword, and always.  With ``wrap`` (a Keras callable,
    ``keras.regularizers.L2``) a true value ``v`` becomes ``wrap(v)`` and a false one
    Keras's default ``None``.
    """

    keras: str
    field: str | None = None
    default: Any = REQUIRED
    positional: bool = False
    value: Any = None
    wrap: str | None = None
    initializer: bool = False  # a name, or (name, arguments): see nodes.Initializer

    def of(self, node: Node) -> Any:
        """The argument's value for ``node`` (before ``wrap``)."""
        return self.value if self.field is None else getattr(node, self.field)


@dataclass(frozen=True)
class LayerKind:
    """How Keras makes the layer of one node kind.

    ``keras`` is the dotted path of the Keras callable (``keras.layers.Conv2D``; a
    layer Keras lacks is ours, in ``nincompile.keras_layers``), or,
    for a kind with a ``mode`` field, a mapping from the mode to that path.  Every
    layer also gets ``name=node.name``.
    """

    kind: str
    keras: str | Mapping[str, str]
    args: tuple[Arg, ...] = ()

    def keras_path(self, node: Node) -> str:
        if isinstance(self.keras, str):
            return self.keras
        return self.keras[node.mode]

    def default(self, field: str) -> Any:
        """Keras's default for the argument given by node field ``field``."""
        (arg,) = [a for a in self.args if a.field == field]
        return arg.default


def _bias_and_kernel(kernel: str = "kernel") -> tuple[Arg, ...]:
    """A weight layer's bias, kernel initializer and L2 weight decay (``kernel``: the
    Keras name of its kernel, ``depthwise`` for DepthwiseConv2D)."""
    return (
        Arg("use_bias", "bias", default=True),
        Arg(f"{kernel}_initializer", "initializer", default="glorot_uniform", initializer=True),
        Arg(f"{kernel}_regularizer", "weight_decay", default=None, wrap="keras.regularizers.L2"),
    )  # fmt: skip


def _window(kernel: str = "kernel") -> tuple[Arg, ...]:
    """Strides, padding, dilation, then bias and kernel (every convolution)."""
    return (
        Arg("strides", "strides", default=1),
        Arg("padding", "padding", default="valid"),
        Arg("dilation_rate", "dilation", default=1),
        *_bias_and_kernel(kernel),
    )


def _table(*kinds: LayerKind) -> dict[str, LayerKind]:
    return {k.kind: k for k in kinds}


#: node kind -> how Keras makes its layer (the input node's "layer" is ``keras.Input``)
LAYER_KINDS: dict[str, LayerKind] = _table(
    LayerKind("input", "keras.Input", (Arg("shape", "shape"),)),
    LayerKind(
        "conv2d",
        "keras.layers.Conv2D",
        (
            Arg("filters", "filters", positional=True),
            Arg("kernel_size", "kernel", positional=True),
            Arg("groups", "groups", default=1),
            *_window(),
        ),
    ),
    LayerKind(
        "depthwise_conv2d",
        "keras.layers.DepthwiseConv2D",
        (
            Arg("kernel_size", "kernel", positional=True),
            Arg("depth_multiplier", "depth_multiplier", default=1),
            *_window("depthwise"),
        ),
    ),
    LayerKind(
        "separable_conv2d",
        "keras.layers.SeparableConv2D",
        (
            Arg("filters", "filters", positional=True),
            Arg("kernel_size", "kernel", positional=True),
            Arg("depth_multiplier", "depth_multiplier", default=1),
            *_window("depthwise"),
            Arg("pointwise_initializer", "initializer", default="glorot_uniform", initializer=True),
            Arg(
                "pointwise_regularizer", "weight_decay", default=None, wrap="keras.regularizers.L2"
            ),
        ),
    ),
    LayerKind(
        "conv2d_transpose",
        "keras.layers.Conv2DTranspose",
        (
            Arg("filters", "filters", positional=True),
            Arg("kernel_size", "kernel", positional=True),
            *_window(),
        ),
    ),
    LayerKind(
        "dense", "keras.layers.Dense", (Arg("units", "units", positional=True), *_bias_and_kernel())
    ),
    LayerKind(
        "batch_norm",
        "keras.layers.BatchNormalization",
        (
            Arg("momentum", "momentum", default=0.99),
            Arg("epsilon", "epsilon", default=1e-3),
            Arg("center", "center", default=True),
            Arg("scale", "scale", default=True),
        ),
    ),
    LayerKind(
        "layer_norm", "keras.layers.LayerNormalization", (Arg("epsilon", "epsilon", default=1e-3),)
    ),
    LayerKind(
        "layer_scale", "nincompile.keras_layers.LayerScale", (Arg("init", "init", positional=True),)
    ),
    LayerKind(
        "drop_path",
        "keras.layers.Dropout",
        (Arg("rate", "rate", positional=True), Arg("noise_shape", "noise_shape", default=None)),
    ),
    LayerKind(
        "activation", "keras.layers.Activation", (Arg("activation", "function", positional=True),)
    ),
    LayerKind("zero_pad", "keras.layers.ZeroPadding2D", (Arg("padding", "padding", default=1),)),
    LayerKind(
        "upsample",
        "keras.layers.UpSampling2D",
        (
            Arg("size", "size", default=(2, 2)),
            Arg("interpolation", "interpolation", default="nearest"),
        ),
    ),
    LayerKind("reshape", "keras.layers.Reshape", (Arg("target_shape", "target", positional=True),)),
    LayerKind(
        "rescaling",
        "keras.layers.Rescaling",
        (Arg("scale", "scale", positional=True), Arg("offset", "offset", default=0.0)),
    ),
    LayerKind(
        "normalization",
        "keras.layers.Normalization",
        (Arg("mean", "mean", default=None), Arg("variance", "variance", default=None)),
    ),
    LayerKind(
        "pool2d",
        {"max": "keras.layers.MaxPooling2D", "avg": "keras.layers.AveragePooling2D"},
        (
            Arg("pool_size", "size", positional=True),
            Arg("strides", "strides", default=None),  # None: the pool size
            Arg("padding", "padding", default="valid"),
        ),
    ),
    LayerKind(
        "global_pool",
        {"avg": "keras.layers.GlobalAveragePooling2D", "max": "keras.layers.GlobalMaxPooling2D"},
        (Arg("keepdims", "keepdims", default=False),),
    ),
    LayerKind("flatten", "keras.layers.Flatten"),
    LayerKind("dropout", "keras.layers.Dropout", (Arg("rate", "rate", positional=True),)),
    LayerKind("concat", "keras.layers.Concatenate", (Arg("axis", value=-1, default=-1),)),
    LayerKind("add", "keras.layers.Add"),
    LayerKind("multiply", "keras.layers.Multiply"),
)
