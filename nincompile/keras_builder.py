"""IR graph -> Keras 3 functional model.

Each node's layer comes from its kind's entry in ``ir.kinds.LAYER_KINDS`` (the Keras
class and its arguments); ``BUILDERS`` is that table turned into functions.  Only
``keras.*`` APIs are used, so the model builds under any Keras backend
(tensorflow, jax, torch).
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import Any

from .ir import LAYER_KINDS, Graph, LayerKind, Node


def _keras():
    from .keras_import import import_keras

    return import_keras()


def keras_object(path: str) -> Any:
    """The Keras object at a dotted path: ``keras.layers.Conv2D``, or one of our own
    layers, ``nincompile.keras_layers.LayerScale``."""
    head, *names = path.split(".")
    if head == "nincompile" and names[:1] == ["keras_layers"]:
        from . import keras_layers

        obj, names = keras_layers, names[1:]
    elif head == "keras":
        obj = _keras()
    else:
        raise ValueError(f"not a Keras path: {path!r}")
    for name in names:
        obj = getattr(obj, name)
    return obj


def keras_initializer(value: Any) -> Any:
    """An initializer for Keras: a name as it is; ``(name, arguments)`` as the Keras
    initializer object (``("variance_scaling", (("scale", 2.0),))`` ->
    ``keras.initializers.VarianceScaling(scale=2.0)``)."""
    if isinstance(value, str):
        return value
    name, args = value
    return _keras().initializers.get({"class_name": camel_case(name), "config": dict(args)})


def camel_case(name: str) -> str:
    """``variance_scaling`` -> ``VarianceScaling`` (Keras's class names)."""
    return "".join(part[:1].upper() + part[1:] for part in name.split("_"))


def build_layer(spec: LayerKind, node: Node) -> Any:
    """The Keras layer for ``node`` (``keras.Input`` for the input node), every
    argument given, Keras's defaults included."""
    kwargs = {}
    for arg in spec.args:
        value = arg.of(node)
        if arg.initializer:
            value = keras_initializer(value)
        elif arg.wrap is not None:
            value = keras_object(arg.wrap)(value) if value else None
        kwargs[arg.keras] = value
    return keras_object(spec.keras_path(node))(**kwargs, name=node.name)


#: node kind -> builder of its Keras layer, derived from ``LAYER_KINDS``
BUILDERS: dict[str, Callable[[Node], Any]] = {
    kind: partial(build_layer, spec) for kind, spec in LAYER_KINDS.items()
}


def build_model(graph: Graph):
    """The functional ``keras.Model`` for ``graph``; layer names equal IR names."""
    keras = _keras()
    inp = graph.input
    tensors = {inp.name: BUILDERS[inp.kind](inp)}
    for node in graph.nodes[1:]:
        layer = BUILDERS[node.kind](node)
        args = [tensors[i] for i in node.inputs]
        tensors[node.name] = layer(args if len(args) > 1 else args[0])
    model = keras.Model(tensors[inp.name], tensors[graph.output.name], name=graph.name)
    freeze(model, graph.frozen)
    return model


def freeze(model, names) -> None:
    """Set ``trainable`` of the layers ``names`` (``train.freeze``) to False and of every
    other layer to True: a frozen layer's weights do not train, and a frozen batch norm
    runs in inference mode (Keras's rule)."""
    names = set(names)
    for layer in model.layers:
        layer.trainable = layer.name not in names


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
