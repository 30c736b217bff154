"""The IR graph: nodes in topological order with inferred shapes and counts."""

from __future__ import annotations

from dataclasses import dataclass, field

from .nodes import Node, Params, Shape


@dataclass(frozen=True)
class LayerInfo:
    name: str
    kind: str
    output_shape: Shape
    params: Params
    macs: int


@dataclass
class Graph:
    name: str
    nodes: list[Node] = field(default_factory=list)
    shapes: dict[str, Shape] = field(default_factory=dict)
    _params: dict[str, Params] = field(default_factory=dict)
    _macs: dict[str, int] = field(default_factory=dict)
    #: layers whose weights do not train (``train.freeze``): all their parameters count
    #: as non-trainable, as Keras counts a layer with ``trainable = False``
    frozen: frozenset[str] = frozenset()
    #: with ``train.phases``: the layers each phase freezes (``frozen`` is the first's)
    phase_frozen: tuple[frozenset[str], ...] = ()

    def add(self, node: Node) -> Shape:
        """Append ``node``; infer its shape, params and MACs (may raise ShapeError)."""
        in_shapes = [self.shapes[i] for i in node.inputs]
        out = node.infer(in_shapes)
        self.nodes.append(node)
        self.shapes[node.name] = out
        self._params[node.name] = node.params(in_shapes)
        self._macs[node.name] = node.macs(in_shapes, out)
        return out

    @property
    def input(self) -> Node:
        return self.nodes[0]

    @property
    def output(self) -> Node:
        return self.nodes[-1]

    def layer_params(self, name: str, frozen: frozenset[str] | None = None) -> Params:
        """The parameters of layer ``name``, all non-trainable when it is frozen (in
        ``frozen``, default :attr:`frozen`)."""
        p = self._params[name]
        return Params(0, p.total) if name in (self.frozen if frozen is None else frozen) else p

    def layers(self, frozen: frozenset[str] | None = None) -> list[LayerInfo]:
        """Every layer, its parameters counted with the layers ``frozen`` (default
        :attr:`frozen`) frozen."""
        return [
            LayerInfo(
                n.name,
                n.kind,
                self.shapes[n.name],
                self.layer_params(n.name, frozen),
                self._macs[n.name],
            )  # fmt: skip
            for n in self.nodes
        ]

    def params_frozen(self, frozen: frozenset[str] | None = None) -> Params:
        """The totals with the layers ``frozen`` (default :attr:`frozen`) frozen."""
        total = Params()
        for name in self._params:
            total = total + self.layer_params(name, frozen)
        return total

    @property
    def params(self) -> Params:
        return self.params_frozen()

    @property
    def macs(self) -> int:
        return sum(self._macs.values())

    def kinds(self) -> set[str]:
        return {n.kind for n in self.nodes}
