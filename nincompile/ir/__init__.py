"""Intermediate representation: nodes, graph, lowering from specs. No TensorFlow."""

from .graph import Graph, LayerInfo
from .kinds import LAYER_KINDS, REQUIRED, Arg, LayerKind
from .lower import Frame, Lowerer, lower
from .nodes import NODE_KINDS, Node, Params

__all__ = [
    "LAYER_KINDS",
    "NODE_KINDS",
    "REQUIRED",
    "Arg",
    "Frame",
    "Graph",
    "LayerInfo",
    "LayerKind",
    "Lowerer",
    "Node",
    "Params",
    "lower",
]
