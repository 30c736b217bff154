"""IR graph -> Keras 3 functional model.

One small builder per node kind (``BUILDERS``), each returning a Keras layer.  Only
``keras.*`` APIs are used, so the model builds under any Keras backend
(tensorflow, jax, torch).
"""

from __future__ import annotations

from collections.abc import Callable

from .ir import Graph, Node
from .ir import nodes as n


def _keras():
    from .keras_import import import_keras

    return import_keras()


def _regularizer(weight_decay: float):
    return _keras().regularizers.L2(weight_decay) if weight_decay else None


def _conv2d(node: n.Conv2D):
    return _keras().layers.Conv2D(
        filters=node.filters,
        kernel_size=node.kernel,
        strides=node.strides,
        padding=node.padding,
        use_bias=node.bias,
        kernel_initializer=node.initializer,
        kernel_regularizer=_regularizer(node.weight_decay),
        name=node.name,
    )


def _dense(node: n.Dense):
    return _keras().layers.Dense(
        units=node.units,
        use_bias=node.bias,
        kernel_initializer=node.initializer,
        kernel_regularizer=_regularizer(node.weight_decay),
        name=node.name,
    )


def _batch_norm(node: n.BatchNorm):
    return _keras().layers.BatchNormalization(name=node.name)


def _activation(node: n.Activation):
    return _keras().layers.Activation(node.function, name=node.name)


def _pool2d(node: n.Pool2D):
    layers = _keras().layers
    cls = layers.MaxPooling2D if node.mode == "max" else layers.AveragePooling2D
    return cls(pool_size=node.size, strides=node.strides, padding=node.padding, name=node.name)


def _global_pool(node: n.GlobalPool):
    layers = _keras().layers
    cls = layers.GlobalAveragePooling2D if node.mode == "avg" else layers.GlobalMaxPooling2D
    return cls(name=node.name)


def _flatten(node: n.Flatten):
    return _keras().layers.Flatten(name=node.name)


def _dropout(node: n.Dropout):
    return _keras().layers.Dropout(node.rate, name=node.name)


def _concat(node: n.Concat):
    return _keras().layers.Concatenate(axis=-1, name=node.name)


def _add(node: n.Add):
    return _keras().layers.Add(name=node.name)


#: node kind -> builder of the Keras layer (the input node is handled by build_model)
BUILDERS: dict[str, Callable[[Node], object]] = {
    "input": lambda node: None,
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


def build_model(graph: Graph):
    """The functional ``keras.Model`` for ``graph``; layer names equal IR names."""
    keras = _keras()
    tensors = {}
    inp = graph.input
    tensors[inp.name] = keras.Input(shape=inp.shape, name=inp.name)
    for node in graph.nodes[1:]:
        layer = BUILDERS[node.kind](node)
        args = [tensors[i] for i in node.inputs]
        tensors[node.name] = layer(args if len(args) > 1 else args[0])
    return keras.Model(tensors[inp.name], tensors[graph.output.name], name=graph.name)


def count_params(model) -> dict[str, int]:
    """Keras's own counts: total, trainable, non_trainable."""
    trainable = sum(int(_size(w)) for w in model.trainable_weights)
    non_trainable = sum(int(_size(w)) for w in model.non_trainable_weights)
    return {
        "total": trainable + non_trainable,
        "trainable": trainable,
        "non_trainable": non_trainable,
    }


def _size(weight) -> int:
    size = 1
    for d in weight.shape:
        size *= int(d)
    return size
