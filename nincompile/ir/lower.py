"""Lowering: a validated spec -> an IR :class:`Graph`.

Expands blocks and repeats, substitutes ``$variables``, applies ``defaults``, turns
each CBAPD stage into its layers in the stage's order, names every layer and infers
shapes as it goes, so a shape error points at the stage that caused it.

Layer names are paths: a top-level item is ``stage<i>`` (``head<j>`` in the head) or
its ``name``; a repeat's iterations and a block's items add ``_<k>`` (or ``_<name>``),
branches add ``_b<k>``; a single-item body adds nothing.  The layer's role ends the
name: ``_conv``, ``_bn``, ``_relu`` (the activation), ``_maxpool``, ``_dropout``,
``_dense``, ``_flatten``, ``_gap``, ``_concat``, ``_add``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from functools import partial
from typing import Any

from pydantic import BaseModel, ValidationError

from ..errors import (
    Path,
    ShapeError,
    SpecError,
    SpecProblem,
    SpecShapeError,
    did_you_mean,
    format_path,
)
from ..spec import schema as s
from ..spec.expr import ExprError
from ..spec.load import SpecSource
from . import nodes as n
from . import select
from .graph import Graph
from .kinds import LAYER_KINDS

#: Activation values that make no activation layer.
NO_ACTIVATION = (None, "linear")
MAX_LAYERS = 20_000
MAX_BLOCK_DEPTH = 32
#: items lowered plus repeat iterations, layers made or not (nested repeats of items
#: that make no layer would otherwise run unbounded below MAX_LAYERS)
MAX_STEPS = 100_000
_PROGRESSION_KEYS = (
    {"each"}, {"first", "rest"}, {"last", "rest"}, {"start", "mul"}, {"start", "add"}
)  # fmt: skip

#: An item's handler: (item, input tensor, name prefix, frame, path) -> output tensor.
ItemHandler = Callable[[Any, str, str, "Frame", Path], str]


class Frame:
    """Where we are: variables in scope and the block calls that led here."""

    def __init__(self, env: dict[str, Any], scope: tuple[n.Scope, ...], callers: tuple[str, ...]):
        self.env = env
        self.scope = scope
        self.callers = callers

    def with_vars(self, env: dict[str, Any]) -> Frame:
        return Frame({**self.env, **env}, self.scope, self.callers)


class Lowerer:
    """One lowering pass over a spec.

    The code generator's tracer (``codegen/trace.py``) walks a block body with this same
    pass, parameters left symbolic; it overrides these hooks and nothing else:

    * :meth:`emit` -- a layer (here: added to the graph);
    * :meth:`condition` and :meth:`guard` -- whether an optional layer or item is made
      (``when``, a stage's batch norm or activation) and making it;
    * :meth:`branch` -- one branch of a block;
    * :meth:`repeat_count` and :meth:`per_repeat` -- a repeat's count and values;
    * :meth:`enter_block` -- a block call with its arguments (here: the block's body).

    Items are lowered by the handler for their schema class in :attr:`item_handlers`.
    """

    def __init__(self, src: SpecSource):
        self.src = src
        self.spec = src.spec
        self.graph = Graph(self.spec.name)
        self.problems: list[SpecProblem] = []
        #: schema item class -> its handler (bound, so a subclass's overrides apply),
        #: from the item registry
        self.item_handlers: dict[type[BaseModel], ItemHandler] = {
            kind.model: getattr(self, kind.lower) for kind in s.ITEMS.values()
        }
        #: the spec's own variables (``params:``), seen by every item and block body
        self.globals: dict[str, Any] = dict(self.spec.params)
        self.steps = 0

    def step(self, path: Path, frame: Frame) -> None:
        """Count one item or repeat iteration; refuse a spec past :data:`MAX_STEPS`."""
        self.steps += 1
        if self.steps > MAX_STEPS:
            raise self.fail(
                f"the spec expands past {MAX_STEPS:,} items and repeat iterations here "
                "(those that make no layer count too); expected smaller repeat counts",
                path,
                frame,
                shape=True,
            )

    # ----------------------------------------------------------------- errors
    def fail(
        self, message: str, path: Path, frame: Frame | None = None, shape: bool = False
    ) -> SpecError:
        """The error to raise for a problem at ``path``; ``shape``: a problem with the
        model's shapes or size (a :class:`SpecShapeError`), after which lowering stops."""
        if frame and frame.callers:
            sites = [f"called from {c}" for c in reversed(frame.callers)]
            if len(sites) > 4:
                sites = [*sites[:2], f"... {len(sites) - 3} more calls", sites[-1]]
            message += " (" + "; ".join(sites) + ")"
        kind = SpecShapeError if shape else SpecError
        return kind([self.src.problem(message, path)])

    # -------------------------------------------------------------- variables
    def resolve(self, value: Any, frame: Frame, path: Path) -> Any:
        """Replace every Var in ``value`` (recursively) by its value in scope, and
        compute every expression."""
        if isinstance(value, s.Expression):
            try:
                return value.expr.evaluate(frame.env)
            except ExprError as err:
                where = f" (column {err.column} of '{value}')" if err.column else f" in '{value}'"
                raise self.fail(f"{err}{where}", path, frame) from None
        if isinstance(value, s.Var):
            if value.name not in frame.env:
                known = ", ".join(f"${k}" for k in sorted(frame.env)) or "none"
                raise self.fail(
                    f"unknown variable '{value}'{did_you_mean(value.name, frame.env)}; "
                    f"variables in scope: {known}",
                    path,
                    frame,
                )
            return frame.env[value.name]
        if isinstance(value, dict):
            return {k: self.resolve(v, frame, (*path, k)) for k, v in value.items()}
        if isinstance(value, list | tuple):
            return type(value)(self.resolve(v, frame, (*path, i)) for i, v in enumerate(value))
        return value

    def concrete(self, item: BaseModel, frame: Frame, path: Path) -> BaseModel:
        """The item with its variables substituted, validated again."""
        raw = item.model_dump(by_alias=True, exclude_unset=True, exclude={"stages"})
        raw = self.resolve(raw, frame, path)
        if isinstance(item, s.RepeatStage):
            raw["stages"] = item.stages
        try:
            return type(item).model_validate(raw)
        except ValidationError as err:
            e = err.errors(include_url=False)[0]
            loc = tuple(p for p in e["loc"] if not str(p).startswith("function-"))
            msg = e["msg"].replace("Input should be ", "expected ")
            raise self.fail(msg, (*path, *loc), frame) from None

    # ------------------------------------------------------------------ nodes
    def emit(self, node: n.Node, frame: Frame) -> str:
        if len(self.graph.nodes) >= MAX_LAYERS:
            raise self.fail(
                f"the model grows past {MAX_LAYERS:,} layers here; expected a smaller repeat count",
                node.source,
                frame,
                shape=True,
            )
        if node.name in self.graph.shapes:
            raise self.fail(
                f"layer name '{node.name}' is used twice; give the stage another 'name'",
                node.source,
                frame,
            )
        node = dataclasses.replace(node, scope=frame.scope)
        try:
            self.graph.add(node)
        except ShapeError as err:
            raise self.fail(str(err), node.source, frame, shape=True) from None
        return node.name

    # ------------------------------------------------------------------ items
    def items(self, items, x: str, prefix: str, frame: Frame, path: Path, fmt="{k}") -> str:
        """A sequence of items; a lone item takes ``prefix`` itself."""
        for k, item in enumerate(items):
            if len(items) == 1 and item.name is None:
                sub = prefix
            else:
                local = item.name or fmt.format(k=k + 1)
                sub = f"{prefix}_{local}" if prefix else local
            x = self.item(item, x, sub, frame, (*path, k))
        return x

    def item(self, item: BaseModel, x: str, prefix: str, frame: Frame, path: Path) -> str:
        self.step(path, frame)
        item = self.concrete(item, frame, path)
        handler = self.item_handlers[type(item)]
        on = self.condition(item.when, "when", frame, (*path, "when"))
        return self.guard(on, lambda x: handler(item, x, prefix, frame, path), x)

    # ------------------------------------------------------------- conditions
    def condition(self, value: Any, test: str, frame: Frame, path: Path) -> Any:
        """Whether an optional layer or item is made: ``test`` is ``"when"`` (an item's
        ``when``: unset, true or false), ``"truthy"`` (a stage's batch norm) or
        ``"active"`` (a stage's activation: not none or linear).  Here a bool; the
        tracer returns a condition on a parameter."""
        if test == "when":
            if value is None:
                return True
            if not isinstance(value, bool):
                raise self.fail(f"'when' must be true or false; received {value!r}", path, frame)
            return value
        if test == "active":
            return value not in NO_ACTIVATION
        return bool(value)

    def guard(self, on: Any, make: Callable[[str], str], x: str) -> str:
        """``make(x)`` if ``on`` (from :meth:`condition`), else ``x`` unchanged."""
        return make(x) if on else x

    # ----------------------------------------------------------------- stages
    _CONV_OPTIONS = ("strides", "padding", "bias", "initializer", "weight_decay",
                     "batch_norm", "activation", "order")  # fmt: skip

    def _conv_options(self, st: s._ConvLike, frame: Frame, path: Path) -> dict[str, Any]:
        """A convolution stage's options: its own, else the spec's ``defaults``."""
        d = self.spec.defaults
        get = lambda f: getattr(st, f) if f in st.model_fields_set else getattr(d, f)  # noqa: E731
        opts = self.resolve({f: get(f) for f in self._CONV_OPTIONS}, frame, path)
        for f in ("strides", "padding", "bias", "initializer"):  # a variable holding null
            if opts[f] is None:  # means unset, as if the key were not written
                opts[f] = self.resolve(getattr(d, f), frame, path)
        opts["dilation"] = 1 if st.dilation is None else st.dilation
        return opts

    def _conv_like(self, st: s._ConvLike, make, role: str, x, prefix, frame, path) -> str:
        """A convolution stage: its zero padding (``pad``), the convolution that
        ``make(common fields)`` returns, then B, A, P, D in order."""
        opts = self._conv_options(st, frame, path)
        if st.pad is not None:
            x = self.emit(self._zero_pad(st.pad, x, f"{prefix}_pad", (*path, "pad")), frame)
        common = {
            "name": f"{prefix}_{role}",
            "inputs": (x,),
            "source": (*path, s.stage_kind(st)),
            **{f: opts[f] for f in ("strides", "padding", "bias", "initializer",
                                    "weight_decay", "dilation")},
        }  # fmt: skip
        x = self.emit(make(common), frame)
        return self._tail(st, opts, x, prefix, frame, path)

    def conv_stage(self, st: s.ConvStage, x, prefix, frame, path) -> str:
        def make(common):
            groups = 1 if st.groups is None else st.groups
            c = st.conv
            return n.Conv2D(filters=c.filters, kernel=c.kernel, groups=groups, **common)

        return self._conv_like(st, make, "conv", x, prefix, frame, path)

    def depthwise_stage(self, st: s.DepthwiseStage, x, prefix, frame, path) -> str:
        def make(common):
            mult = 1 if st.depth_multiplier is None else st.depth_multiplier
            return n.DepthwiseConv2D(kernel=st.depthwise, depth_multiplier=mult, **common)

        return self._conv_like(st, make, "dwconv", x, prefix, frame, path)

    def separable_stage(self, st: s.SeparableStage, x, prefix, frame, path) -> str:
        def make(common):
            mult = 1 if st.depth_multiplier is None else st.depth_multiplier
            c = st.separable
            return n.SeparableConv2D(
                filters=c.filters, kernel=c.kernel, depth_multiplier=mult, **common
            )

        return self._conv_like(st, make, "sepconv", x, prefix, frame, path)

    def conv_transpose_stage(self, st: s.ConvTransposeStage, x, prefix, frame, path) -> str:
        def make(common):
            c = st.conv_transpose
            return n.Conv2DTranspose(filters=c.filters, kernel=c.kernel, **common)

        return self._conv_like(st, make, "deconv", x, prefix, frame, path)

    def dense_stage(self, st: s.DenseStage, x, prefix, frame, path) -> str:
        x = self.emit(
            n.Dense(
                name=f"{prefix}_dense",
                inputs=(x,),
                source=(*path, "dense"),
                units=st.dense,
                bias=st.bias,
                initializer=st.initializer,
                weight_decay=st.weight_decay,
                pointwise=st.pointwise,
            ),
            frame,
        )
        opts = {"batch_norm": st.batch_norm, "activation": st.activation, "order": st.order}
        return self._tail(st, opts, x, prefix, frame, path)

    # ------------------------------------------------------------ batch norm
    def bn_options(self, given: Any, frame: Frame, path: Path) -> dict[str, Any]:
        """Batch norm options: Keras's defaults <- ``defaults.batch_norm``'s mapping
        <- ``given`` (a stage's ``batch_norm`` mapping, or a ``bn`` item's)."""
        table = LAYER_KINDS[n.BatchNorm.kind]
        opts = {f: table.default(f) for f in ("epsilon", "momentum", "center", "scale")}
        for layer in (self.spec.defaults.batch_norm, given):
            if isinstance(layer, s.BatchNormOptions):
                for f in layer.model_fields_set:
                    value = self.resolve(getattr(layer, f), frame, path)
                    if value is not None:
                        opts[f] = value
        return opts

    def _batch_norm(self, name: str, x: str, given: Any, frame: Frame, path: Path) -> n.BatchNorm:
        opts = self.bn_options(given, frame, path)
        return n.BatchNorm(name=name, inputs=(x,), source=path, **opts)

    def _tail(self, st, opts: dict, x: str, prefix: str, frame: Frame, path: Path) -> str:
        """The B, A, P, D parts of a stage, in the stage's order."""
        present = {
            "b": self.condition(opts["batch_norm"], "truthy", frame, path),
            "a": self.condition(opts["activation"], "active", frame, path),
            "p": getattr(st, "pool", None) is not None,
            "d": st.dropout is not None,
        }
        order = opts["order"]
        missing = [c for c, on in present.items() if on is not False and c not in order]
        if missing:
            what = ", ".join(f"'{c}' ({s.ORDER_LETTERS[c]})" for c in missing)
            raise self.fail(
                f"order '{order}' leaves out {what}, which this stage has: expected an order "
                f"with every part present, e.g. '{''.join(c for c in 'bapd' if present[c])}'",
                (*path, "order") if "order" in st.model_fields_set else path,
                frame,
            )

        def make(letter: str, x: str) -> str:
            return self.emit(self._part(letter, st, opts, x, prefix, frame, path), frame)

        for letter in order:
            if present[letter] is not False:
                x = self.guard(present[letter], partial(make, letter), x)
        return x

    def _part(self, letter: str, st, opts: dict, x: str, prefix: str, frame, path) -> n.Node:
        """The layer for one letter of a stage's order."""
        if letter == "b":
            return self._batch_norm(f"{prefix}_bn", x, opts["batch_norm"], frame, path)
        if letter == "a":
            act = opts["activation"]
            return n.Activation(name=f"{prefix}_{act}", inputs=(x,), source=path, function=act)
        if letter == "p":
            return self._pool(st.pool, x, prefix, (*path, "pool"))
        return n.Dropout(
            name=f"{prefix}_dropout", inputs=(x,), source=(*path, "dropout"), rate=st.dropout
        )

    def _pool(self, pool: s.PoolArgs, x: str, prefix: str, path: Path) -> n.Pool2D:
        return n.Pool2D(
            name=f"{prefix}_{pool.mode}pool",
            inputs=(x,),
            source=path,
            mode=pool.mode,
            size=pool.size,
            strides=pool.strides,
            padding=pool.padding or LAYER_KINDS[n.Pool2D.kind].default("padding"),
        )

    def pool_stage(self, st: s.PoolStage, x, prefix, frame, path) -> str:
        return self.emit(self._pool(st.pool, x, prefix, (*path, "pool")), frame)

    def global_pool_stage(self, st: s.GlobalPoolStage, x, prefix, frame, path) -> str:
        name = f"{prefix}_g{st.global_pool[0]}p"  # _gap, _gmp
        node = n.GlobalPool(
            name=name, inputs=(x,), source=path, mode=st.global_pool, keepdims=st.keepdims
        )
        return self.emit(node, frame)

    def _zero_pad(self, pad: Any, x: str, name: str, path: Path) -> n.ZeroPad:
        if isinstance(pad, int):
            pad = ((pad, pad), (pad, pad))
        elif isinstance(pad[0], int):
            pad = ((pad[0], pad[0]), (pad[1], pad[1]))
        return n.ZeroPad(name=name, inputs=(x,), source=path, padding=tuple(map(tuple, pad)))

    def pad_stage(self, st: s.PadStage, x, prefix, frame, path) -> str:
        return self.emit(self._zero_pad(st.pad, x, f"{prefix}_pad", path), frame)

    def bn_stage(self, st: s.BatchNormStage, x, prefix, frame, path) -> str:
        return self.emit(self._batch_norm(f"{prefix}_bn", x, st.bn, frame, path), frame)

    def _layer_norm(self, name: str, x: str, epsilon: Any, path: Path) -> n.LayerNorm:
        if epsilon is None:
            epsilon = LAYER_KINDS[n.LayerNorm.kind].default("epsilon")
        return n.LayerNorm(name=name, inputs=(x,), source=path, epsilon=epsilon)

    def layer_norm_stage(self, st: s.LayerNormStage, x, prefix, frame, path) -> str:
        node = self._layer_norm(f"{prefix}_ln", x, st.layer_norm.epsilon, path)
        return self.emit(node, frame)

    def layer_scale_stage(self, st: s.LayerScaleStage, x, prefix, frame, path) -> str:
        node = n.LayerScale(name=f"{prefix}_scale", inputs=(x,), source=path, init=st.layer_scale)
        return self.emit(node, frame)

    def drop_path_stage(self, st: s.DropPathStage, x, prefix, frame, path) -> str:
        rank = len(self.graph.shapes[x]) if x in self.graph.shapes else 3
        node = n.DropPath(
            name=f"{prefix}_drop_path", inputs=(x,), source=path, rate=st.drop_path,
            noise_shape=(None,) + (1,) * rank,
        )  # fmt: skip
        return self.emit(node, frame)

    def dropout_stage(self, st: s.DropoutStage, x, prefix, frame, path) -> str:
        node = n.Dropout(name=f"{prefix}_dropout", inputs=(x,), source=path, rate=st.dropout)
        return self.emit(node, frame)

    def activation_stage(self, st: s.ActivationStage, x, prefix, frame, path) -> str:
        node = n.Activation(
            name=f"{prefix}_{st.activation}", inputs=(x,), source=path, function=st.activation
        )
        return self.emit(node, frame)

    def reshape_stage(self, st: s.ReshapeStage, x, prefix, frame, path) -> str:
        if list(st.reshape).count(-1) > 1:
            raise self.fail(f"reshape has at most one -1; received {list(st.reshape)}", path, frame)
        node = n.Reshape(name=f"{prefix}_reshape", inputs=(x,), source=path, target=st.reshape)
        return self.emit(node, frame)

    def upsample_stage(self, st: s.UpsampleStage, x, prefix, frame, path) -> str:
        size = st.upsample if isinstance(st.upsample, tuple) else (st.upsample, st.upsample)
        node = n.UpSample(
            name=f"{prefix}_upsample", inputs=(x,), source=path, size=size,
            interpolation=st.interpolation,
        )  # fmt: skip
        return self.emit(node, frame)

    def rescale_stage(self, st: s.RescaleStage, x, prefix, frame, path) -> str:
        node = n.Rescaling(
            name=f"{prefix}_rescale", inputs=(x,), source=path, scale=st.rescale, offset=st.offset
        )
        return self.emit(node, frame)

    def normalize_stage(self, st: s.NormalizeStage, x, prefix, frame, path) -> str:
        opts = st.normalize
        node = n.Normalization(
            name=f"{prefix}_normalize", inputs=(x,), source=path, mean=opts.mean,
            variance=opts.variance,
        )  # fmt: skip
        return self.emit(node, frame)

    def layer_stage(self, st: s.LayerStage, x, prefix, frame, path) -> str:
        name = f"{prefix}_{st.layer}"
        node = {
            "flatten": lambda: n.Flatten(name=name, inputs=(x,), source=path),
            "gap": lambda: n.GlobalPool(name=name, inputs=(x,), source=path, mode="avg"),
            "gmp": lambda: n.GlobalPool(name=name, inputs=(x,), source=path, mode="max"),
            "bn": lambda: self._batch_norm(name, x, None, frame, path),
            "ln": lambda: self._layer_norm(name, x, None, path),
        }[st.layer]()
        return self.emit(node, frame)

    # ------------------------------------------------------- repeats & blocks
    def repeat_count(self, count: Any) -> int:
        """A repeat's count (the tracer refuses one given by a parameter)."""
        return count

    def per_repeat(self, value: Any, r: int, count: int, path: Path, frame: Frame) -> Any:
        """``value`` for iteration ``r`` of ``count``: a plain value, or a progression."""
        if not (isinstance(value, dict) and set(value) in _PROGRESSION_KEYS):
            if isinstance(value, dict):
                raise self.fail(
                    "expected a value, or a per-repeat value written {each: [...]}, "
                    "{first: a, rest: b}, {last: a, rest: b}, {start: a, mul: m} or "
                    "{start: a, add: d}; "
                    f"received keys {sorted(value)}",
                    path,
                    frame,
                )
            return value
        if "each" in value:
            each = value["each"]
            if not isinstance(each, list) or len(each) != count:
                got = len(each) if isinstance(each, list) else repr(each)
                raise self.fail(
                    f"'each' needs one value per repeat: expected {count} values; received {got}",
                    path,
                    frame,
                )
            return each[r]
        if "first" in value:
            return value["first"] if r == 0 else value["rest"]
        if "last" in value:
            return value["last"] if r == count - 1 else value["rest"]
        start = value["start"]
        step = value["mul"] if "mul" in value else value["add"]
        for key, v in (("start", start), ("mul" if "mul" in value else "add", step)):
            if isinstance(v, bool) or not isinstance(v, int | float):
                raise self.fail(f"'{key}' of a per-repeat value must be a number; received {v!r}",
                                path, frame)  # fmt: skip
        if "mul" in value:
            return start * step**r
        return start + step * r

    def _iterations(self, count: Any, with_: dict[str, Any], prefix: str, frame, path):
        """(name prefix, values of ``with_``) for each iteration of a repeat."""
        count = self.repeat_count(count)
        for r in range(count):
            self.step(path, frame)
            values = {
                k: self.per_repeat(v, r, count, (*path, "with", k), frame) for k, v in with_.items()
            }
            yield (f"{prefix}_{r + 1}" if count > 1 else prefix), values

    def repeat_stage(self, st: s.RepeatStage, x, prefix, frame, path) -> str:
        for sub, env in self._iterations(st.repeat, st.with_, prefix, frame, path):
            x = self.items(st.stages, x, sub, frame.with_vars(env), (*path, "stages"))
        return x

    def block_call(self, call: s.BlockCall, x, prefix, frame, path) -> str:
        block = self.spec.blocks.get(call.block)
        if block is None:
            known = ", ".join(self.spec.blocks) or "none defined"
            raise self.fail(
                f"unknown block '{call.block}'{did_you_mean(call.block, self.spec.blocks)}; "
                f"blocks: {known}",
                (*path, "block"),
                frame,
            )
        chain = [sc.block for sc in frame.scope]
        if len(chain) >= MAX_BLOCK_DEPTH:
            cycle = " -> ".join([*chain[:3], "...", call.block])
            raise self.fail(
                f"blocks nest deeper than {MAX_BLOCK_DEPTH} calls ({cycle}); a block that "
                "calls itself needs a 'when:' that ends the recursion",
                (*path, "block"),
                frame,
            )
        unknown = [k for k in call.with_ if k not in block.params]
        if unknown:
            raise self.fail(
                f"block '{call.block}' has no parameter '{unknown[0]}'"
                f"{did_you_mean(unknown[0], block.params)}; parameters: "
                + (", ".join(block.params) or "none"),
                (*path, "with", unknown[0]),
                frame,
            )
        missing = [k for k in block.required_params() if k not in call.with_]
        if missing:
            raise self.fail(
                f"block '{call.block}' needs {', '.join(repr(m) for m in missing)} in 'with'",
                (*path, "with") if call.with_ else path,
                frame,
            )
        for sub, given in self._iterations(call.repeat, call.with_, prefix, frame, path):
            x = self.enter_block(call, block, given, x, sub, frame, path)
        return x

    def enter_block(
        self,
        call: s.BlockCall,
        block: s.BlockDef,
        given: dict[str, Any],
        x: str,
        prefix: str,
        frame: Frame,
        path: Path,
    ) -> str:
        """One call of ``block`` with the arguments ``given`` (every required one):
        type-checked, the block's body lowered in their scope."""
        types = block.param_types()
        args = {**block.default_params()}
        for k, value in given.items():
            if not self.fits(value, types[k]):
                raise self.fail(
                    f"block '{call.block}' parameter '{k}' expects {s.PARAM_TYPES[types[k]]} "
                    f"(type {types[k]}); received {value!r}",
                    (*path, "with", k),
                    frame,
                )
            args[k] = value
        scope = n.Scope(call.block, prefix, tuple(sorted(args.items())))
        # Block bodies see the spec's params and their own parameters (lexical scope).
        inner = Frame(
            {**self.globals, **args}, frame.scope + (scope,), frame.callers + (format_path(path),)
        )
        return self.block_body(block, x, prefix, inner, ("blocks", call.block))

    def fits(self, value: Any, type_name: str) -> bool:
        """Whether a block argument is of its parameter's type (the tracer lets a
        symbolic value through)."""
        return s.value_fits(value, type_name)

    def branch(self, b: int, items, x: str, prefix: str, frame: Frame, path: Path) -> str:
        """Branch ``b`` (from 0) of a block: its items on the block's input ``x``."""
        return self.items(items, x, prefix, frame, path)

    def block_body(self, block: s.BlockDef, x: str, prefix: str, frame: Frame, path: Path):
        if block.stages is not None:
            x = self.items(block.stages, x, prefix, frame, (*path, "stages"))
        else:
            outs = []
            for b, branch in enumerate(block.branches):
                bpath = (*path, "branches", b)
                outs.append(self.branch(b, branch, x, f"{prefix}_b{b + 1}", frame, bpath))
            kind = {"concat": n.Concat, "add": n.Add, "multiply": n.Multiply}[block.merge]
            x = self.emit(
                kind(name=f"{prefix}_{block.merge}", inputs=tuple(outs), source=(*path, "merge")),
                frame,
            )
        if block.then:
            x = self.items(block.then, x, prefix, frame, (*path, "then"), fmt="post{k}")
        return x

    # ------------------------------------------------------------------- main
    def run(self) -> Graph:
        spec = self.spec
        frame = Frame(dict(self.globals), (), ())
        x = self.emit(n.Input(name="input", source=("input",), shape=spec.input), frame)
        top = [("stages", k, item, "stage") for k, item in enumerate(spec.stages)]
        top += [("head", k, item, "head") for k, item in enumerate(spec.head)]
        for section, k, item, word in top:
            try:
                x = self.item(item, x, item.name or f"{word}{k + 1}", frame, (section, k))
            except SpecError as err:
                # Reference errors do not disturb later shapes: keep going and report
                # them all. After a shape error later shapes are guesses: stop.
                self.problems.extend(err.problems)
                if isinstance(err, SpecShapeError):
                    break
        if self.problems:
            raise SpecError(self.problems)
        return self.graph


def item_names(spec) -> list[str]:
    """The names of the spec's top-level items, in order: ``stage<i>``, ``head<j>`` or
    their ``name``."""
    return [item.name or f"stage{k + 1}" for k, item in enumerate(spec.stages)] + [
        item.name or f"head{k + 1}" for k, item in enumerate(spec.head)
    ]


def lower(src: SpecSource) -> Graph:
    """Compile a validated spec into its IR graph (raises SpecError), its
    ``train.freeze`` applied and its ``train.init_skip`` checked."""
    return with_train_layers(src, Lowerer(src).run())


def with_train_layers(src: SpecSource, graph: Graph) -> Graph:
    """``graph`` with the layers of ``train.freeze`` marked frozen (the first phase's
    with ``train.phases``, each phase's in ``graph.phase_frozen``), after checking that
    every name in ``train.freeze``, each phase's ``freeze`` and ``train.init_skip``
    names a layer."""
    train = src.spec.train
    if train is not None:
        names = [node.name for node in graph.nodes]
        items = item_names(src.spec)
        problems = []  # every field's problems at once
        freezes = [(train.freeze, ("train", "freeze"))]
        freezes += [(p.freeze, ("train", "phases", k, "freeze"))
                    for k, p in enumerate(train.phases or ()) if p.freeze is not None]  # fmt: skip
        frozen = {}
        for value, path in freezes:
            try:
                frozen[path] = select.frozen(src, value, names, items, path)
            except SpecError as err:
                problems.extend(err.problems)
        try:
            select.select(src, ("train", "init_skip"), train.init_skip, names, items)
        except SpecError as err:
            problems.extend(err.problems)
        if problems:
            raise SpecError(problems)
        phases = [
            frozen[
                ("train", "phases", k, "freeze") if p.freeze is not None else ("train", "freeze")
            ]
            for k, p in enumerate(train.phases or ())
        ]
        graph.phase_frozen = tuple(phases)
        graph.frozen = phases[0] if phases else frozen[("train", "freeze")]
    return graph
