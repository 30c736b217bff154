"""A spec -> the text of a standalone Keras module, through the Jinja2 templates in
``templates/``.

The module's ``build_model()`` has one line per layer, in IR order, with the IR's
layer names; a comment heads each top-level stage, and each block call is a call of
a helper function (``def inception(x, ch, strides, name):``) rendered once per block
from the block's symbolic body (:mod:`.trace`).  Before a helper is written, running
it on the arguments of every call in the spec must give exactly the compiled IR's
nodes (names, fields, wiring); a block a helper cannot express (a repeat count given
by a variable, arithmetic on a parameter) is written inline, layer by layer.
"""

from __future__ import annotations

import builtins
import re
import textwrap
from dataclasses import dataclass
from functools import cache

import jinja2

from .. import guard
from ..compiler import Compiled
from ..ir import LAYER_KINDS, Graph
from ..ir import nodes as n
from ..ir.lower import NO_ACTIVATION, Lowerer, with_train_layers
from ..spec import schema as s
from ..spec.load import SpecSource
from ..train.table import OWN_CLASSES, Obj, Ref, table
from .layers import HANDLERS, IMPORTED, OWN_LAYERS, describe
from .pysrc import (
    INDENT,
    LINE_LENGTH,
    Atom,
    Call,
    CodegenError,
    Expr,
    Kw,
    List,
    comment_text,
    doc_lines,
    doc_text,
    identifier,
    layout,
    py_lit,
    py_str,
)
from .trace import (
    NAME,
    Alias,
    Blank,
    CallBlock,
    Cond,
    If,
    Layer,
    Sym,
    SymExpr,
    Trace,
    Unsupported,
    expand,
    plain_node,
    trace_block,
)

# Module-level names of a generated file; block helpers and parameters avoid them.
_MODULE_NAMES = {"keras", "math", *IMPORTED, *OWN_CLASSES, "build_model", "compile_model"}
_LOCAL_NAMES = {
    *("x", "name", "inputs", "model"),
    *("steps_per_epoch", "learning_rate", "optimizer", "loss", "metrics"),  # compile_model
}
# The file whose classes (the learning-rate schedule, ...) compile_model copies.
_SCHEDULE_FILE = "train/schedule.py"
_LOCAL_PATTERN = re.compile(r"(t|branch)\d+_*")


@cache
def environment() -> jinja2.Environment:
    """The template environment: a missing variable is an error; nothing is escaped
    by Jinja, because every value is made safe before it reaches a template."""
    return jinja2.Environment(
        loader=jinja2.PackageLoader("nincompile.codegen", "templates"),
        undefined=jinja2.StrictUndefined,
        autoescape=False,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )


# ------------------------------------------------------------------ recording


@dataclass(frozen=True)
class _Group:
    """The nodes ``[start, end)`` of one stage outside blocks (a leaf of stages/head)."""

    prefix: str
    start: int
    end: int


class _Recorder(Lowerer):
    """The lowering pass, also noting which nodes each top-level stage made."""

    def __init__(self, src: SpecSource):
        super().__init__(src)
        self.groups: list[_Group] = []

    def item(self, item, x, prefix, frame, path):
        if frame.scope or isinstance(item, s.RepeatStage):
            return super().item(item, x, prefix, frame, path)
        start = len(self.graph.nodes)
        out = super().item(item, x, prefix, frame, path)
        if len(self.graph.nodes) > start:
            self.groups.append(_Group(prefix, start, len(self.graph.nodes)))
        return out


# -------------------------------------------------------------------- values


class ConcreteValues:
    """Values of top-level layers: literals."""

    def __init__(self, uses: set[str]):
        self.uses = uses

    def expr(self, value: object) -> str:
        return py_lit(value)

    def name(self, name: str) -> str:
        return py_str(name)

    def is_symbolic(self, value: object) -> bool:
        return False

    def wrapped(self, func: str, value: object) -> str | None:
        """``func(value)``, or None (left out) for a false value."""
        if not value:
            return None
        self.uses.add(func.split(".")[0])
        return f"{func}({py_lit(value)})"


class SymbolicValues(ConcreteValues):
    """Values inside a block helper: parameters by name, names as f-strings."""

    def __init__(self, uses: set[str], params: dict[str, str]):
        super().__init__(uses)
        self.params = params

    def expr(self, value: object) -> str:
        if isinstance(value, SymExpr):
            return self._computed(value)
        if isinstance(value, Sym):
            return self.params[value.name]
        if isinstance(value, s.Var):
            raise CodegenError(f"unresolved variable {value}")
        if isinstance(value, tuple | list) and s.has_vars(value):
            inner = ", ".join(self.expr(v) for v in value)
            return f"({inner})" if isinstance(value, tuple) else f"[{inner}]"
        return py_lit(value)

    def _computed(self, value: SymExpr) -> str:
        """An expression of parameters as Python: ``(f * 4)``."""
        functions = value.expression.expr.functions
        if "divisible" in functions:
            self.uses.add("make_divisible")
        if functions & {"ceil", "floor"}:
            self.uses.add("math")

        def rename(name: str) -> str:
            if name in value.bound:
                return py_lit(value.bound[name])
            return self.params[name]

        return _outer_parens_off(value.expression.expr.python(rename))

    def name(self, name: str) -> str:
        if name == NAME:
            return "name"
        parts, literal = [], True
        for piece in re.split(r"(\x00|\x01[A-Za-z_][A-Za-z0-9_]*\x02)", name):
            if piece == NAME:
                parts.append("{name}")
                literal = False
            elif piece.startswith("\x01"):
                parts.append("{" + self.params[piece[1:-1]] + "}")
                literal = False
            elif re.fullmatch(r"[A-Za-z0-9_]*", piece):
                parts.append(piece)
            else:
                raise CodegenError(f"unexpected characters in layer name {name!r}")
        return py_str("".join(parts)) if literal else 'f"' + "".join(parts) + '"'

    def is_symbolic(self, value: object) -> bool:
        return isinstance(value, s.Var)

    def wrapped(self, func: str, value: object) -> str | None:
        if isinstance(value, Sym):
            self.uses.add(func.split(".")[0])
            p = self.params[value.name]
            return f"{func}({p}) if {p} else None"
        return super().wrapped(func, value)


def _layer_call(node: n.Node, inputs: list[str], values: ConcreteValues) -> Call:
    handler = HANDLERS.get(node.kind)
    if handler is None:
        raise CodegenError(f"no code generator for layer kind '{node.kind}'")
    values.uses.add("layers")
    arg: Expr = Atom(inputs[0]) if len(inputs) == 1 else List(tuple(Atom(i) for i in inputs))
    return Call(handler(node, values), (arg,))


def _comment(text: str, indent: int) -> list[str]:
    pad = INDENT * indent
    width = LINE_LENGTH - len(pad) - 2
    return [f"{pad}# {line}" for line in textwrap.wrap(comment_text(text), width)]


def _docstring(lines: list[str], indent: int) -> list[str]:
    pad = INDENT * indent
    if len(lines) == 1 and len(pad) + len(lines[0]) + 6 <= LINE_LENGTH:
        return [f'{pad}"""{lines[0]}"""']
    return [f'{pad}"""{lines[0]}', *(pad + line if line else "" for line in lines[1:]), pad + '"""']


def _unique(base: str, taken: set[str]) -> str:
    name = base
    while name in taken:
        name += "_"
    return name


def _fmt(value: int) -> str:
    return f"{value:,}"


# -------------------------------------------------------------------- module


@dataclass
class _Unit:
    """One statement of build_model: a layer, or a block helper call."""

    inputs: tuple[str, ...]
    output: str
    node: n.Node | None = None
    scope: n.Scope | None = None


class _Module:
    def __init__(self, src: SpecSource, label: str, sha256: str | None = None):
        self.header_sha256 = sha256 or src.sha256
        self.src = src
        self.spec = src.spec
        self.label = label
        recorder = _Recorder(src)
        self.graph: Graph = with_train_layers(src, recorder.run())
        self.groups = sorted(recorder.groups, key=lambda g: g.start)
        self.consumers: dict[str, list[str]] = {}  # tensor -> the layers that read it
        for node in self.graph.nodes:
            for t in node.inputs:
                self.consumers.setdefault(t, []).append(node.name)
        self.uses: set[str] = set()
        self._plan_helpers()

    # ---------------------------------------------------------------- helpers
    def _plan_helpers(self) -> None:
        self.traces: dict[str, Trace] = {}
        self.inline: dict[str, str] = {}  # block -> why it is written inline
        todo = sorted({node.scope[0].block for node in self.graph.nodes if node.scope})
        while todo:
            block = todo.pop()
            if block in self.traces or block in self.inline:
                continue
            try:
                trace = trace_block(self.src, block)
            except Unsupported as why:
                self.inline[block] = str(why)
                continue
            self.traces[block] = trace
            todo += sorted(trace.calls)
        changed = True
        while changed:  # a helper can only call helpers
            changed = False
            for block, trace in list(self.traces.items()):
                missing = sorted(c for c in trace.calls if c not in self.traces)
                if missing:
                    self.inline[block] = f"it calls block '{missing[0]}', written inline"
                    del self.traces[block]
                    changed = True
        reserved = _MODULE_NAMES | _LOCAL_NAMES | set(dir(builtins))
        self.functions: dict[str, str] = {}
        for block in self.spec.blocks:  # definition order: stable output
            if block in self.traces:
                name = identifier(block, "block name")
                if name in reserved or _LOCAL_PATTERN.fullmatch(name) or name.startswith("__"):
                    name += "_block"
                self.functions[block] = _unique(name, reserved | set(self.functions.values()))
        # `float` too: a non-finite literal is written float("inf").
        taken_globally = _MODULE_NAMES | set(self.functions.values()) | {"x", "name", "float"}
        self.params: dict[str, dict[str, str]] = {}
        self.locals: dict[str, dict[str, str]] = {}
        for block, trace in self.traces.items():
            params: dict[str, str] = {}
            for k in trace.params:
                identifier(k, f"parameter of block '{block}'")
                params[k] = _unique(k, taken_globally | set(params.values()))
            taken = taken_globally | set(params.values())
            local = {"x": "x"}
            for var in trace.branch_vars:
                local[var] = _unique(var, taken | set(local.values()))
            self.params[block], self.locals[block] = params, local

    def _helper(self, block: str) -> dict[str, list[str]]:
        trace, params, local = self.traces[block], self.params[block], self.locals[block]
        fn = self.functions[block]
        signature = layout(
            "def ",
            Call(Atom(fn), (Atom("x"), *(Atom(params[k]) for k in trace.params), Atom("name"))),
            ":",
        )
        width = LINE_LENGTH - 8
        doc = doc_lines(self.spec.blocks[block].description or "", width)
        about = f"Block ``{block}``: every layer name starts with ``name``."
        renamed = [f"``{k}`` as ``{params[k]}``" for k in trace.params if params[k] != k]
        if renamed:
            about += f" Parameters renamed to keep Python names apart: {', '.join(renamed)}."
        doc = [*doc, "", *doc_lines(about, width)] if doc else doc_lines(about, width)
        values = SymbolicValues(self.uses, params)
        body = self._statements(trace.stmts, 1, values, local, block)
        body.append(f"{INDENT}return x")
        return {"signature": signature, "doc": _docstring(doc, 1), "body": body}

    def _statements(
        self, stmts: list, indent: int, values: SymbolicValues, local: dict, block: str
    ) -> list[str]:
        pad = INDENT * indent
        lines: list[str] = []
        for st in stmts:
            if isinstance(st, Layer):
                inputs = [local[i] for i in st.node.inputs]
                call = _layer_call(st.node, inputs, values)
                lines += layout(f"{local[st.target]} = ", call, "", indent)
            elif isinstance(st, Alias):
                lines.append(f"{pad}{local[st.target]} = {local[st.source]}")
            elif isinstance(st, Blank):
                if lines and lines[-1]:
                    lines.append("")
            elif isinstance(st, If):
                lines.append(f"{pad}if {self._condition(st.cond, values, block)}:")
                lines += self._statements(st.body, indent + 1, values, local, block)
            elif isinstance(st, CallBlock):
                callee = self.params[st.block]
                args: list[Expr] = [Atom(local[st.source])]
                args += [Kw(callee[k], Atom(values.expr(v))) for k, v in st.args]
                args.append(Kw("name", Atom(values.name(st.name))))
                call = Call(Atom(self.functions[st.block]), tuple(args))
                lines += layout(f"{local[st.target]} = ", call, "", indent)
            else:  # pragma: no cover - the tracer makes no other statement
                raise CodegenError(f"unknown statement {st!r}")
        return lines

    def _condition(self, cond: Cond, values: SymbolicValues, block: str) -> str:
        p = values.expr(cond.sym)
        if cond.kind == "truthy":
            return p
        # An activation parameter with a default (or type) written as a string holds a
        # string; otherwise keep the lowering's own test.
        if isinstance(self.spec.blocks[block].params.get(cond.sym.name), str):
            (word,) = (v for v in NO_ACTIVATION if v is not None)
            return f"{p} != {py_lit(word)}"
        return f"{p} not in {py_lit(NO_ACTIVATION)}"

    # ---------------------------------------------------------- build_model
    def _units(self) -> list[tuple[list[str], _Unit]]:
        """(comment lines, unit) pairs in order; the comment heads the unit."""
        nodes = self.graph.nodes
        covered = [i for g in self.groups for i in range(g.start, g.end)]
        if covered != list(range(1, len(nodes))):
            raise CodegenError("internal error: stages do not cover the layers in order")
        out: list[tuple[list[str], _Unit]] = []
        for group in self.groups:
            chunk = nodes[group.start : group.end]
            i = 0
            while i < len(chunk):
                if not chunk[i].scope:
                    j = i
                    while j < len(chunk) and not chunk[j].scope:
                        j += 1
                    words = ", ".join(describe(x) for x in chunk[i:j])
                    head = _comment(f"{group.prefix}: {words}", 1)
                    for k, node in enumerate(chunk[i:j]):
                        out.append(
                            (head if k == 0 else [], _Unit(node.inputs, node.name, node=node))
                        )
                else:
                    scope = chunk[i].scope[0]
                    j = i
                    while j < len(chunk) and chunk[j].scope[:1] == (scope,):
                        j += 1
                    out += self._instance(scope, chunk[i:j])
                i = j
        return out

    def _instance(self, scope: n.Scope, nodes: list[n.Node]) -> list[tuple[list[str], _Unit]]:
        block = self.spec.blocks[scope.block]
        args = dict(scope.args)
        shown = ", ".join(f"{k}={py_lit(args[k])}" for k in block.params if k in args)
        title = f"Block: {scope.block}" + (f" ({shown})" if shown else "")
        made = {x.name for x in nodes}
        sources = list(dict.fromkeys(t for x in nodes for t in x.inputs if t not in made))
        leaks = [t for t in self.consumers if t in made and t != nodes[-1].name]
        leaks = [t for t in leaks if any(c not in made for c in self.consumers[t])]
        why = self.inline.get(scope.block)
        if why is None and (len(sources) != 1 or leaks):
            why = "its layers do not form one input, one output"
        if why is None:
            try:
                expanded, output = expand(self.traces, scope.block, args, sources[0], scope.prefix)
                same = [plain_node(x) for x in expanded] == [plain_node(x) for x in nodes]
            except Exception:  # a tracer bug shows here, never as a wrong helper
                same, output = False, None
            if not same or output != nodes[-1].name:
                raise CodegenError(
                    f"internal error: the helper of block '{scope.block}' does not reproduce "
                    f"'{scope.prefix}'; please report this bug"
                )
            return [(_comment(title, 1), _Unit((sources[0],), output, scope=scope))]
        head = _comment(f"{title}, written out layer by layer ({why})", 1)
        return [
            (head if k == 0 else [], _Unit(x.inputs, x.name, node=x)) for k, x in enumerate(nodes)
        ]

    def _build(self) -> list[str]:
        graph = self.graph
        units = self._units()
        # Which unit reads each tensor: "x" carries a tensor read only by the next unit.
        readers: dict[str, list[int]] = {}
        for k, (_, unit) in enumerate(units):
            for t in dict.fromkeys(unit.inputs):
                readers.setdefault(t, []).append(k)
        concrete = ConcreteValues(self.uses)
        inp = graph.input
        var = {inp.name: "inputs"}
        lines = layout("inputs = ", HANDLERS[inp.kind](inp, concrete), "", 1)
        fresh = 0
        for k, (head, unit) in enumerate(units):
            if head:
                lines += ["", *head]
            used_by = readers.get(unit.output, [])
            if used_by in ([k + 1], []):
                target = "x"
            else:
                fresh += 1
                target = f"t{fresh}"
            inputs = [var[t] for t in unit.inputs]
            if unit.node is not None:
                expr = _layer_call(unit.node, inputs, concrete)
            else:
                scope = unit.scope
                args_of = dict(scope.args)
                params = self.params[scope.block]
                args: list[Expr] = [Atom(inputs[0])]
                for p in self.spec.blocks[scope.block].params:
                    args.append(Kw(params[p], Atom(py_lit(args_of[p]))))
                args.append(Kw("name", Atom(py_str(scope.prefix))))
                expr = Call(Atom(self.functions[scope.block]), tuple(args))
            lines += layout(f"{target} = ", expr, "", 1)
            var[unit.output] = target
        model = Call(
            Atom("keras.Model"),
            (
                Atom("inputs"),
                Atom(var[graph.output.name]),
                Kw("name", Atom(py_str(self.spec.name))),
            ),
        )
        frozen = [x.name for x in graph.layers() if x.name in graph.frozen and x.params.total]
        if not frozen:
            lines += ["", *layout("return ", model, "", 1)]
            return lines
        lines += ["", *layout("model = ", model, "", 1)]
        lines += layout("frozen = ", List(tuple(Atom(py_str(n)) for n in frozen)), "", 1)
        lines += [
            "    for name in frozen:  # train.freeze: these weights do not train",
            "        model.get_layer(name).trainable = False",
            "    return model",
        ]
        return lines

    # -------------------------------------------------------- compile_model
    def _compile(self) -> dict | None:
        """``compile_model``: the calls of :func:`nincompile.train.table.table`, which
        ``nincompile train`` makes too, and the source of the recipe classes it names
        (copied from ``nincompile/train/schedule.py``)."""
        phased = self.spec.train
        if phased is None:
            return None
        train = phased.plan()[0]  # with train.phases, the first phase's recipe
        recipe = table(train)
        self.uses.add("math")  # EpochLearningRate's cosine
        lines: list[str] = []
        classes: list[str] = []
        for var, made in recipe.objects():
            objs = made if isinstance(made, tuple) else (made,)
            classes += [o.cls for o in objs if o.cls in OWN_CLASSES and o.cls not in classes]
            exprs = [_recipe_call(o) for o in objs]
            value = List(tuple(exprs)) if isinstance(made, tuple) else exprs[0]
            lines += layout(f"{var} = ", value, "", 1)
        compile_call = Call(
            Atom("model.compile"),
            (
                Kw("optimizer", Atom("optimizer")),
                Kw("loss", Atom("loss")),
                Kw("metrics", Atom("metrics")),
            ),
        )
        lines += [*layout("", compile_call, "", 1), f"{INDENT}return model"]
        epochs, batch = phased.epochs, train.batch_size
        doc = [
            "Compile ``model`` as ``nincompile train`` does with ``train:``: the optimizer "
            "and its learning-rate schedule, the loss and the metrics.",
            "",
            f"The spec trains for {epochs} epochs in batches of {batch}: ``steps_per_epoch`` "
            f"is ``math.ceil(len(x_train) / {batch})``, the optimizer steps of one epoch, "
            "by which the schedule counts epochs.",
        ]
        if phased.phases:
            n = len(phased.phases)
            later = "Phase 2 is" if n == 2 else f"Phases 2-{n} are"
            doc += [
                "",
                f"NOT THE WHOLE RECIPE: the spec trains in {n} phases (train.phases), each with "
                "its own frozen layers, optimizer and schedule, and a new optimizer at each "
                f"phase's start. This module holds phase 1 only: compile_model compiles "
                f"phase 1's optimizer and schedule ({train.epochs} epochs) and build_model "
                f"freezes phase 1's layers. {later} not expressed here; ``nincompile "
                "train`` runs them all.",
            ]
        if recipe.dtype_policy != "float32":
            doc += [
                "",
                "It trains in mixed precision: build the model after "
                f'``keras.config.set_dtype_policy("{recipe.dtype_policy}")``.',
            ]
        width = LINE_LENGTH - 4
        wrapped: list[str] = []
        for para in doc:
            wrapped += textwrap.wrap(para, width, break_on_hyphens=False) if para else [""]
        return {
            "classes": [_class_source(name, _SCHEDULE_FILE) for name in classes],
            "doc": _docstring(wrapped, 1),
            "body": lines,
        }

    def _own_layers(self) -> list[str]:
        """The source of each of our own layer classes the model uses (copied from
        ``nincompile.keras_layers``, so the generated module needs nothing else)."""
        paths = sorted({
            LAYER_KINDS[node.kind].keras_path(node) for node in self.graph.nodes
            if LAYER_KINDS[node.kind].keras_path(node).startswith(OWN_LAYERS)
        })  # fmt: skip
        return [_class_source(path[len(OWN_LAYERS) :]) for path in paths]

    # ----------------------------------------------------------------- text
    def render(self) -> str:
        helpers = [self._helper(b) for b in self.functions]
        build = self._build()
        compile_model = self._compile()
        counts = self.graph.params
        description = doc_lines(self.spec.description or "", LINE_LENGTH - 4)
        context = {
            "name": identifier(self.spec.name, "spec name"),
            "description": description,
            "source": doc_text(self.label),
            "sha256": self.header_sha256,
            "params": _fmt(counts.total),
            "trainable": _fmt(counts.trainable),
            "non_trainable": _fmt(counts.non_trainable),
            "keras_imports": sorted(self.uses & set(IMPORTED)),
            "import_math": "math" in self.uses,
            "make_divisible": "make_divisible" in self.uses,
            "own_layers": self._own_layers(),
            "helpers": helpers,
            "build_body": build,
            "compile_model": compile_model,
        }
        return environment().get_template("module.py.j2").render(context)


def _outer_parens_off(text: str) -> str:
    """``(a * b)`` -> ``a * b``: an argument or condition needs no outer parentheses."""
    if not (text.startswith("(") and text.endswith(")")):
        return text
    depth = 0
    for i, ch in enumerate(text):
        depth += ch == "("
        depth -= ch == ")"
        if depth == 0 and i < len(text) - 1:
            return text  # "(a) + (b)": the first parenthesis closes early
    return text[1:-1]


def _class_source(name: str, file: str = "keras_layers.py") -> str:
    """The text of class ``name`` of ``nincompile/<file>``, read as a file (no import:
    those modules import Keras), without its registration decorator."""
    import ast
    from pathlib import Path

    path = Path(__file__).resolve().parent.parent / file
    text = path.read_text(encoding="utf-8")
    (cls,) = [
        node
        for node in ast.parse(text).body
        if isinstance(node, ast.ClassDef) and node.name == name
    ]
    lines = text.splitlines()[cls.lineno - 1 : cls.end_lineno]
    return "\n".join(lines)


def _recipe_value(key: str | None, value: object) -> Expr:
    """An argument of a recipe call: a name, or a literal.  A step schedule too long for
    one line as a dict is written as a list of pairs (the class takes either)."""
    if isinstance(value, Ref):
        return Atom(value.name)
    text = py_lit(value)
    if isinstance(value, dict) and len(f"{INDENT * 2}{key}={text},") > LINE_LENGTH:
        return List(tuple(Atom(py_lit(pair)) for pair in value.items()))
    return Atom(text)


def _recipe_call(obj: Obj) -> Call:
    args = [_recipe_value(None, v) for v in obj.args]
    args += [Kw(k, _recipe_value(k, v)) for k, v in obj.kwargs]
    return Call(Atom(obj.cls), tuple(args))


def render_source(src: SpecSource, label: str | None = None, sha256: str | None = None) -> str:
    """The generated module for a loaded spec; ``label`` names the spec in the header
    (default: its file name as loaded) and ``sha256`` the hash it shows (default: of the
    spec's text; for a variant, the caller passes the spec file's).  Raises SpecError or
    CodegenError, and :class:`~nincompile.guard.ResourceError` for a model over the
    resource limits build and check apply (no module is written that could not be
    built here)."""
    module = _Module(src, src.file if label is None else label, sha256)
    guard.check(Compiled(src, module.graph))
    return module.render()
