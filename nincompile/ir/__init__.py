"""Intermediate representation: nodes, graph, lowering from specs. No TensorFlow."""

from .graph import Graph, LayerInfo
from .lower import lower
from .nodes import NODE_KINDS, Node, Params

__all__ = ["NODE_KINDS", "Graph", "LayerInfo", "Node", "Params", "lower"]
