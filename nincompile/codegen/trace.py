"""Block bodies traced symbolically, for rendering blocks as helper functions.

The lowering pass (:class:`nincompile.ir.lower.Lowerer`) expands every block call
with concrete arguments.  Here the same pass walks a block's body once with each
parameter bound to a :class:`Sym`, a ``$variable`` that stays a variable, and the
prefix bound to a marker for the helper's ``name`` argument.  The lowering code
names the layers and applies defaults exactly as it does for the compiled model; the
overrides below only record statements instead of adding nodes:

* a layer -> ``target = layers.X(...)(source)`` with symbolic fields;
* ``when: $flag`` -> ``if flag:`` around the item's statements;
* a conv/dense stage's batch norm or activation given by a parameter -> ``if``;
* a nested block call -> a call of that block's helper.

:func:`expand` runs the recorded statements with concrete arguments and returns the
nodes the helper makes; the renderer checks them against the compiled IR, node for
node, for every block call of the spec before it writes a helper.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from ..errors import SpecError
from ..ir import nodes as n
from ..ir.lower import _NO_ACTIVATION, Lowerer, _Frame
from ..spec import schema as s
from ..spec.load import SpecSource

#: Stands for the helper's ``name`` argument inside traced layer names.
NAME = "\x00"


class Sym(s.Var):
    """A block parameter while tracing.  ``str()`` marks it inside layer names."""

    def __str__(self) -> str:
        return f"\x01{self.name}\x02"


class Unsupported(Exception):
    """The block uses something a helper function cannot express (rendered inline)."""


@dataclass(frozen=True)
class Cond:
    """``if <param>:`` (``truthy``) or ``if <param> != "linear":`` (``active``)."""

    kind: str
    sym: Sym

    def test(self, args: dict[str, Any]) -> bool:
        value = args[self.sym.name]
        if self.kind == "truthy":
            return bool(value)
        return value not in _NO_ACTIVATION


@dataclass
class Layer:
    target: str
    node: n.Node  # inputs are variable names; fields may hold Sym


@dataclass
class Alias:
    target: str
    source: str


@dataclass
class Blank:
    """An empty line between branches, and before their merge."""


@dataclass
class If:
    cond: Cond
    body: list


@dataclass
class CallBlock:
    target: str
    block: str
    args: tuple[tuple[str, Any], ...]  # every parameter, in definition order
    name: str  # may hold NAME and Sym markers
    source: str


@dataclass
class Trace:
    block: str
    params: tuple[str, ...]
    stmts: list = field(default_factory=list)
    branch_vars: tuple[str, ...] = ()
    calls: set[str] = field(default_factory=set)


def _branch_var(b: int) -> str:
    return f"branch{b + 1}"


class _Tracer(Lowerer):
    def __init__(self, src: SpecSource, block: str):
        super().__init__(src)
        self.block_name = block
        self.block = self.spec.blocks[block]
        self.stmts: list = []
        self.target = "x"
        self.calls: set[str] = set()

    def trace(self) -> Trace:
        required = self.block.required_params()
        env: dict[str, Any] = {}
        for k, default in self.block.params.items():
            # A parameter whose default is null only ever holds null (type check).
            env[k] = None if k not in required and default is None else Sym(k)
        frame = _Frame(env, (), ())
        try:
            out = self._block_body(self.block, "x", NAME, frame, ("blocks", self.block_name))
        except SpecError as err:
            raise Unsupported(err.problems[0].message if err.problems else str(err)) from None
        except Unsupported:
            raise
        except Exception:  # e.g. arithmetic on a Sym; the block is then written inline
            raise Unsupported("it computes with a parameter's value") from None
        if out != "x":
            self.stmts.append(Alias("x", out))
        branches = len(self.block.branches or ())
        return Trace(
            self.block_name,
            tuple(self.block.params),
            self.stmts,
            tuple(_branch_var(b) for b in range(branches)),
            self.calls,
        )

    # --------------------------------------------------------------- recording
    def emit(self, node: n.Node, frame: _Frame) -> str:
        if isinstance(node, n.Concat | n.Add):
            self.stmts.append(Blank())
        self.stmts.append(Layer(self.target, node))
        return self.target

    def items(self, items, x, prefix, frame, path, fmt="{k}"):
        if len(path) >= 2 and path[-2] == "branches":  # a branch: its own variable
            if path[-1] > 0:
                self.stmts.append(Blank())
            saved, self.target = self.target, _branch_var(path[-1])
            try:
                return super().items(items, x, prefix, frame, path, fmt)
            finally:
                self.target = saved
        return super().items(items, x, prefix, frame, path, fmt)

    def _conditional(self, cond: Cond, make, x: str) -> str:
        """Record ``make(x)`` under ``if cond:``; the tensor stays in ``self.target``."""
        before, original = len(self.stmts), x
        if x != self.target:
            self.stmts.append(Alias(self.target, x))
            x = self.target
        outer, self.stmts = self.stmts, []
        try:
            out = make(x)
        finally:
            body, self.stmts = self.stmts, outer
        if not body:  # nothing inside (e.g. a nested `when: false`): no `if` at all
            del self.stmts[before:]
            return original
        if out != self.target:
            raise Unsupported("a conditional item that does not end in its own variable")
        self.stmts.append(If(cond, body))
        return self.target

    @staticmethod
    def _flag(value: Any, kind: str) -> bool | Cond:
        if isinstance(value, Sym):
            return Cond(kind, value)
        if isinstance(value, s.Var):
            raise Unsupported(f"unresolved variable {value}")
        return bool(value) if kind == "truthy" else value not in _NO_ACTIVATION

    # ------------------------------------------------------------------ items
    def item(self, item, x, prefix, frame, path):
        item = self.concrete(item, frame, path)
        handler = getattr(self, f"_item_{type(item).__name__}")
        when = item.when
        if when is None or when is True:
            return handler(item, x, prefix, frame, path)
        if when is False:
            return x
        if isinstance(when, Sym):
            return self._conditional(
                Cond("truthy", when), lambda x: handler(item, x, prefix, frame, path), x
            )
        raise Unsupported(f"'when' is {when!r}")

    def _tail(self, st, opts, x, prefix, frame, path):
        """As Lowerer._tail, with batch norm and activation possibly given by a parameter."""
        pool = getattr(st, "pool", None)
        present = {
            "b": self._flag(opts["batch_norm"], "truthy"),
            "a": self._flag(opts["activation"], "active"),
            "p": pool is not None,
            "d": st.dropout is not None,
        }
        if isinstance(st.dropout, s.Var) and not isinstance(st.dropout, Sym):
            raise Unsupported(f"unresolved variable {st.dropout}")

        def part(letter: str, x: str) -> str:
            return self.emit(self._part(letter, st, opts, x, prefix, path), frame)

        for letter in opts["order"]:
            on = present[letter]
            if on is True:
                x = part(letter, x)
            elif on is not False:
                x = self._conditional(on, lambda x, letter=letter: part(letter, x), x)
        return x

    def _per_repeat(self, value, r, count, path, frame):
        if isinstance(value, dict) and any(isinstance(v, s.Var) for v in value.values()):
            if not ({"each"} == set(value) or {"first", "rest"} == set(value)):
                raise Unsupported("a per-repeat value computed from a parameter")
        return super()._per_repeat(value, r, count, path, frame)

    def _item_RepeatStage(self, st, x, prefix, frame, path):
        if not isinstance(st.repeat, int):
            raise Unsupported(f"its repeat count is the parameter ${st.repeat.name}")
        return super()._item_RepeatStage(st, x, prefix, frame, path)

    def _item_BlockCall(self, call, x, prefix, frame, path):
        block = self.spec.blocks.get(call.block)
        if block is None:
            raise Unsupported(f"unknown block '{call.block}'")
        if not isinstance(call.repeat, int):
            raise Unsupported(f"its repeat count is the parameter ${call.repeat.name}")
        required = block.required_params()
        if any(k not in block.params for k in call.with_) or any(
            k not in call.with_ for k in required
        ):
            raise Unsupported(f"a call of block '{call.block}' with wrong parameters")
        for r in range(call.repeat):
            args = []
            for k, default in block.params.items():
                if k in call.with_:
                    value = self._per_repeat(
                        call.with_[k], r, call.repeat, (*path, "with", k), frame
                    )
                else:
                    value = default
                args.append((k, value))
            sub = f"{prefix}_{r + 1}" if call.repeat > 1 else prefix
            self.stmts.append(CallBlock(self.target, call.block, tuple(args), sub, x))
            self.calls.add(call.block)
            x = self.target
        return x


def trace_block(src: SpecSource, block: str) -> Trace:
    """The statements of ``block``'s helper (raises :class:`Unsupported`)."""
    return _Tracer(src, block).trace()


# ------------------------------------------------------------------ expansion


def _plain(value: Any) -> Any:
    """Lists as tuples, as the schema stores them (for comparing nodes)."""
    if isinstance(value, list | tuple):
        return tuple(_plain(v) for v in value)
    return value


def _value(value: Any, args: dict[str, Any]) -> Any:
    if isinstance(value, Sym):
        return args[value.name]
    if isinstance(value, list | tuple):
        return type(value)(_value(v, args) for v in value)
    return value


def _name(text: str, args: dict[str, Any], name: str) -> str:
    out = text.replace(NAME, name)
    while "\x01" in out:
        start = out.index("\x01")
        end = out.index("\x02", start)
        out = out[:start] + str(args[out[start + 1 : end]]) + out[end + 1 :]
    return out


_SKIP_FIELDS = {"name", "inputs", "source", "scope"}


def expand(
    traces: dict[str, Trace], block: str, args: dict[str, Any], source: str, name: str, depth=0
) -> tuple[list[n.Node], str]:
    """Run ``block``'s helper on concrete ``args``: the nodes it makes and its output."""
    if depth > 64:
        raise RecursionError(f"block '{block}' calls itself too deeply")
    env = {"x": source}
    made: list[n.Node] = []

    def run(stmts: list) -> None:
        for st in stmts:
            if isinstance(st, Layer):
                node = st.node
                values = {
                    f.name: _plain(_value(getattr(node, f.name), args))
                    for f in dataclasses.fields(node)
                    if f.name not in _SKIP_FIELDS
                }
                node = dataclasses.replace(
                    node,
                    name=_name(node.name, args, name),
                    inputs=tuple(env[v] for v in node.inputs),
                    **values,
                )
                made.append(node)
                env[st.target] = node.name
            elif isinstance(st, Alias):
                env[st.target] = env[st.source]
            elif isinstance(st, Blank):
                continue
            elif isinstance(st, If):
                if st.cond.test(args):
                    run(st.body)
            else:
                call_args = {k: _value(v, args) for k, v in st.args}
                nodes, out = expand(
                    traces,
                    st.block,
                    call_args,
                    env[st.source],
                    _name(st.name, args, name),
                    depth + 1,
                )
                made.extend(nodes)
                env[st.target] = out

    run(traces[block].stmts)
    return made, env["x"]


def plain_node(node: n.Node) -> n.Node:
    """``node`` with list values as tuples (for comparing with :func:`expand`)."""
    values = {
        f.name: _plain(getattr(node, f.name))
        for f in dataclasses.fields(node)
        if f.name not in _SKIP_FIELDS
    }
    return dataclasses.replace(node, **values)
