"""One handler per IR node kind: the Keras call that makes the layer, as an expression.

A handler gets the node and a :class:`Values` that turns field values into Python
expressions: a literal (``py_lit``) for a concrete value, the parameter's name inside
a block helper, and the layer name as a literal or an f-string on the helper's
``name`` argument.  Keyword arguments equal to Keras's own defaults are left out, as a
person would write them (``layers.Conv2D(64, 3, padding="same", name=...)``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

from ..ir import nodes as n
from .pysrc import Atom, Call, Expr, Kw


class Values(Protocol):
    """How a handler writes values (see :class:`render.Scope`)."""

    def expr(self, value: object) -> str: ...

    def name(self, name: str) -> str: ...

    def is_symbolic(self, value: object) -> bool: ...

    def regularizer(self, weight_decay: object) -> str | None: ...


def _kw(v: Values, args: list[Expr], key: str, value: object, default: object) -> None:
    """Append ``key=value`` unless ``value`` is concretely Keras's default."""
    if v.is_symbolic(value) or value != default or type(value) is not type(default):
        args.append(Kw(key, Atom(v.expr(value))))


def _layer(cls: str, args: list[Expr], v: Values, node: n.Node) -> Call:
    return Call(Atom(f"layers.{cls}"), (*args, Kw("name", Atom(v.name(node.name)))))


def _conv2d(node: n.Conv2D, v: Values) -> Call:
    args: list[Expr] = [Atom(v.expr(node.filters)), Atom(v.expr(node.kernel))]
    _kw(v, args, "strides", node.strides, 1)
    _kw(v, args, "padding", node.padding, "valid")
    _kw(v, args, "use_bias", node.bias, True)
    _kw(v, args, "kernel_initializer", node.initializer, "glorot_uniform")
    if (reg := v.regularizer(node.weight_decay)) is not None:
        args.append(Kw("kernel_regularizer", Atom(reg)))
    return _layer("Conv2D", args, v, node)


def _dense(node: n.Dense, v: Values) -> Call:
    args: list[Expr] = [Atom(v.expr(node.units))]
    _kw(v, args, "use_bias", node.bias, True)
    _kw(v, args, "kernel_initializer", node.initializer, "glorot_uniform")
    if (reg := v.regularizer(node.weight_decay)) is not None:
        args.append(Kw("kernel_regularizer", Atom(reg)))
    return _layer("Dense", args, v, node)


def _batch_norm(node: n.BatchNorm, v: Values) -> Call:
    return _layer("BatchNormalization", [], v, node)


def _activation(node: n.Activation, v: Values) -> Call:
    return _layer("Activation", [Atom(v.expr(node.function))], v, node)


def _pool2d(node: n.Pool2D, v: Values) -> Call:
    args: list[Expr] = [Atom(v.expr(node.size))]
    if node.strides is not None:
        args.append(Kw("strides", Atom(v.expr(node.strides))))
    _kw(v, args, "padding", node.padding, "valid")
    cls = "MaxPooling2D" if node.mode == "max" else "AveragePooling2D"
    return _layer(cls, args, v, node)


def _global_pool(node: n.GlobalPool, v: Values) -> Call:
    cls = "GlobalAveragePooling2D" if node.mode == "avg" else "GlobalMaxPooling2D"
    return _layer(cls, [], v, node)


def _flatten(node: n.Flatten, v: Values) -> Call:
    return _layer("Flatten", [], v, node)


def _dropout(node: n.Dropout, v: Values) -> Call:
    return _layer("Dropout", [Atom(v.expr(node.rate))], v, node)


def _concat(node: n.Concat, v: Values) -> Call:
    return _layer("Concatenate", [], v, node)  # axis=-1, Keras's default


def _add(node: n.Add, v: Values) -> Call:
    return _layer("Add", [], v, node)


#: node kind -> the Keras layer constructor call (the input node is ``keras.Input``)
HANDLERS: dict[str, Callable[[n.Node, Values], Call]] = {
    "conv2d": _conv2d,
    "dense": _dense,
    "batch_norm": _batch_norm,
    "activation": _activation,
    "pool2d": _pool2d,
    "global_pool": _global_pool,
    "flatten": _flatten,
    "dropout": _dropout,
    "concat": _concat,
    "add": _add,
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
    if isinstance(node, n.Conv2D):
        kernel = _size(node.kernel)
        kernel = f"({kernel})" if "x" in kernel else kernel
        text = f"conv {node.filters}x{kernel}"
        return text if node.strides in (1, (1, 1)) else f"{text}/{_size(node.strides)}"
    if isinstance(node, n.Dense):
        return f"dense {node.units}"
    if isinstance(node, n.BatchNorm):
        return "BN"
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
