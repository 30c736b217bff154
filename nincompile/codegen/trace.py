"""Block bodies traced symbolically, for rendering blocks as helper functions.

The lowering pass (:class:`nincompile.ir.lower.Lowerer`) expands every block call
with concrete arguments.  Here the same pass walks a block's body once with each
parameter bound to a :class:`Sym`, a ``$variable`` that stays a variable, and the
prefix bound to a marker for the helper's ``name`` argument.  The lowering code
names the layers, applies defaults and checks each stage's order exactly as it does
for the compiled model; the :class:`Lowerer` hooks overridden below (``emit``,
``condition`` and ``guard``, ``branch``, ``repeat_count``, ``per_repeat``,
``enter_block``) only record statements instead of adding nodes:

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
from ..ir.lower import NO_ACTIVATION, Frame, Lowerer
from ..spec import schema as s
from ..spec.load import SpecSource

#: Stands for the helper's ``name`` argument inside traced layer names.
NAME = "\x00"


class Sym(s.Var):
    """A block parameter while tracing.  ``str()`` marks it inside layer names."""

    def __str__(self) -> str:
        return f"\x01{self.name}\x02"


class SymExpr(Sym):
    """An expression of block parameters while tracing (``$f * 4``): written as Python
    in the helper, computed from the call's arguments when it runs.  ``bound`` holds
    the values of its other variables (the spec's own ``params``)."""

    __slots__ = ("bound", "expression")

    def __init__(self, expression: s.Expression, bound: dict[str, Any]):
        super().__init__(expression.name)
        self.expression = expression
        self.bound = bound

    def evaluate(self, args: dict[str, Any]) -> Any:
        return self.expression.expr.evaluate({**self.bound, **args})

    def __str__(self) -> str:  # inside a layer name: not expressible in a helper
        raise Unsupported(f"a layer name computed by '{self.name}'")


class Unsupported(Exception):
    """The block uses something a helper function cannot express (rendered inline)."""


@dataclass(frozen=True)
class Cond:
    """``if <param>:`` (``truthy``) or ``if <param> != "linear":`` (``active``)."""

    kind: str
    sym: Sym

    def test(self, args: dict[str, Any]) -> bool:
        value = _value(self.sym, args)
        if self.kind == "truthy":
            return bool(value)
        return value not in NO_ACTIVATION


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
    """The lowering pass over one block body, recording statements through the
    :class:`Lowerer` hooks."""

    def __init__(self, src: SpecSource, block: str):
        super().__init__(src)
        self.block_name = block
        self.block = self.spec.blocks[block]
        self.stmts: list = []
        self.target = "x"
        self.calls: set[str] = set()

    def trace(self) -> Trace:
        env: dict[str, Any] = {**self.globals}
        types = self.block.param_types()
        for k in self.block.params:
            # A parameter whose default is null only ever holds null (type check).
            env[k] = None if types[k] == "none" else Sym(k)
        frame = Frame(env, (), ())
        try:
            out = self.block_body(self.block, "x", NAME, frame, ("blocks", self.block_name))
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

    # ------------------------------------------------------------------ hooks
    def emit(self, node: n.Node, frame: Frame) -> str:
        if isinstance(node, n.Concat | n.Add):
            self.stmts.append(Blank())
        self.stmts.append(Layer(self.target, node))
        return self.target

    def branch(self, b, items, x, prefix, frame, path):
        """A branch writes to its own variable."""
        if b > 0:
            self.stmts.append(Blank())
        saved, self.target = self.target, _branch_var(b)
        try:
            return super().branch(b, items, x, prefix, frame, path)
        finally:
            self.target = saved

    def condition(self, value, test, frame, path):
        """A condition on a parameter becomes ``if``; on a concrete value, the pass's own."""
        if isinstance(value, Sym):
            return Cond("active" if test == "active" else "truthy", value)
        if isinstance(value, s.Var):
            raise Unsupported(f"unresolved variable {value}")
        return super().condition(value, test, frame, path)

    def guard(self, on, make, x):
        """Record ``make(x)`` under ``if cond:``; the tensor stays in ``self.target``."""
        if not isinstance(on, Cond):
            return super().guard(on, make, x)
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
        self.stmts.append(If(on, body))
        return self.target

    def resolve(self, value, frame, path):
        """An expression of parameters stays symbolic (:class:`SymExpr`); its other
        variables are bound to their values."""
        if isinstance(value, SymExpr):
            return value  # resolved already
        if isinstance(value, s.Expression):
            names = value.expr.names
            if any(isinstance(frame.env.get(name), SymExpr) for name in names):
                raise Unsupported(f"it computes '{value}' from a computed value")
            if any(isinstance(frame.env.get(name), Sym) for name in names):
                bound = {
                    k: frame.env[k]
                    for k in names
                    if k in frame.env and not isinstance(frame.env[k], Sym)
                }
                return SymExpr(value, bound)
        return super().resolve(value, frame, path)

    def repeat_count(self, count):
        if not isinstance(count, int):
            raise Unsupported(f"its repeat count is the parameter ${count.name}")
        return super().repeat_count(count)

    def fits(self, value, type_name):
        return isinstance(value, s.Var) or super().fits(value, type_name)

    def per_repeat(self, value, r, count, path, frame):
        if isinstance(value, dict) and any(isinstance(v, s.Var) for v in value.values()):
            if set(value) not in ({"each"}, {"first", "rest"}, {"last", "rest"}):
                raise Unsupported("a per-repeat value computed from a parameter")
        return super().per_repeat(value, r, count, path, frame)

    def enter_block(self, call, block, given, x, prefix, frame, path):
        """A call of the block's helper, every parameter given, in definition order."""
        defaults = block.default_params()
        args = tuple((k, given[k] if k in given else defaults.get(k)) for k in block.params)
        self.stmts.append(CallBlock(self.target, call.block, args, prefix, x))
        self.calls.add(call.block)
        return self.target


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
    if isinstance(value, SymExpr):
        return value.evaluate(args)
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
