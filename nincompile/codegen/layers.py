"""The Keras call that makes a node's layer, as an expression, from the node kind's
entry in ``ir.kinds.LAYER_KINDS``; ``HANDLERS`` is that table turned into functions.

A handler gets the node and a :class:`Values` that turns field values into Python
expressions: a literal (``py_lit``) for a concrete value, the parameter's name inside
a block helper, and the layer name as a literal or an f-string on the helper's
``name`` argument.  Keyword arguments equal to Keras's own defaults (as the table
gives them) are left out, as a person would write them
(``layers.Conv2D(64, 3, padding="same", name=...)``).
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import Protocol

from ..ir import LAYER_KINDS, LayerKind
from ..ir import nodes as n
from .pysrc import Atom, Call, Expr, Kw

#: Keras modules the generated file imports by name (``from keras import layers``)
IMPORTED = ("layers", "regularizers")


class Values(Protocol):
    """How a handler writes values (see :class:`render.ConcreteValues`)."""

    def expr(self, value: object) -> str: ...

    def name(self, name: str) -> str: ...

    def is_symbolic(self, value: object) -> bool: ...

    def wrapped(self, func: str, value: object) -> str | None: ...


#: Where our own layers live; the generated module holds a copy of each it uses.
OWN_LAYERS = "nincompile.keras_layers."


def source_name(path: str) -> str:
    """A Keras path as the generated file writes it: ``keras.layers.Conv2D`` ->
    ``layers.Conv2D`` (imported by name), ``keras.Input`` stays, one of our own layers
    is its class name (defined in the generated module)."""
    if path.startswith(OWN_LAYERS):
        return path[len(OWN_LAYERS) :]
    parts = path.split(".")
    return ".".join(parts[1:]) if len(parts) > 2 and parts[1] in IMPORTED else path


def initializer_source(value: object, v: Values) -> Expr:
    """An initializer with arguments as Keras code:
    ``keras.initializers.VarianceScaling(scale=2.0, mode="fan_out")``."""
    if not isinstance(value, tuple) or v.is_symbolic(value):
        return Atom(v.expr(value))
    name, args = value
    cls = "".join(part[:1].upper() + part[1:] for part in name.split("_"))
    return Call(Atom(f"keras.initializers.{cls}"), tuple(Kw(k, Atom(v.expr(a))) for k, a in args))


def _is_default(v: Values, value: object, default: object) -> bool:
    """Whether ``value`` is concretely Keras's default (then it is left out)."""
    return not v.is_symbolic(value) and value == default and type(value) is type(default)


def keras_call(spec: LayerKind, node: n.Node, v: Values) -> Call:
    """``layers.X(positional..., keyword=value..., name=...)`` for ``node``."""
    args: list[Expr] = []
    for arg in spec.args:
        value = arg.of(node)
        if arg.initializer and not _is_default(v, value, arg.default):
            args.append(Kw(arg.keras, initializer_source(value, v)))
        elif arg.initializer:
            continue
        elif arg.wrap is not None:
            text = v.wrapped(source_name(arg.wrap), value)
            if text is not None:
                args.append(Kw(arg.keras, Atom(text)))
        elif arg.positional:
            args.append(Atom(v.expr(value)))
        elif not _is_default(v, value, arg.default):
            args.append(Kw(arg.keras, Atom(v.expr(value))))
    args.append(Kw("name", Atom(v.name(node.name))))
    return Call(Atom(source_name(spec.keras_path(node))), tuple(args))


#: node kind -> the Keras call that makes its layer, derived from ``LAYER_KINDS``
HANDLERS: dict[str, Callable[[n.Node, Values], Call]] = {
    kind: partial(keras_call, spec) for kind, spec in LAYER_KINDS.items()
}

# ------------------------------------------------------------------ comments

_ACTIVATION_WORDS = {
    "relu": "ReLU",
    "relu6": "ReLU6",
    "leaky_relu": "leaky ReLU",
    "elu": "ELU",
    "selu": "SELU",
    "gelu": "GELU",
    "silu": "SiLU",
}


def _size(value: object) -> str:
    if isinstance(value, tuple | list):
        return "x".join(str(v) for v in value)
    return str(value)


def describe(node: n.Node) -> str:
    """A few words for a comment: ``conv 96x1``, ``BN``, ``max pool 3/2``."""
    if isinstance(node, n.Conv2D | n.DepthwiseConv2D | n.SeparableConv2D | n.Conv2DTranspose):
        kernel = _size(node.kernel)
        kernel = f"({kernel})" if "x" in kernel else kernel
        word = {
            "conv2d": "conv",
            "depthwise_conv2d": "depthwise conv",
            "separable_conv2d": "separable conv",
            "conv2d_transpose": "transposed conv",
        }
        filters = getattr(node, "filters", None)
        text = f"{word[node.kind]} {filters}x{kernel}" if filters else f"{word[node.kind]} {kernel}"
        if getattr(node, "groups", 1) != 1:
            text += f" in {node.groups} groups"
        return text if node.strides in (1, (1, 1)) else f"{text}/{_size(node.strides)}"
    if isinstance(node, n.Dense):
        return f"dense {node.units}"
    if isinstance(node, n.BatchNorm):
        return "BN"
    if isinstance(node, n.LayerNorm):
        return "layer norm"
    if isinstance(node, n.ZeroPad):
        return f"zero padding {[list(p) for p in node.padding]}"
    if isinstance(node, n.Activation):
        return _ACTIVATION_WORDS.get(node.function, node.function)
    if isinstance(node, n.Pool2D):
        text = f"{node.mode} pool {_size(node.size)}"
        return text if node.strides is None else f"{text}/{_size(node.strides)}"
    if isinstance(node, n.GlobalPool):
        return f"global {'average' if node.mode == 'avg' else 'max'} pool"
    if isinstance(node, n.Dropout):
        return f"dropout {node.rate}"
    return node.kind
