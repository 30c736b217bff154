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
from typing import Any

from pydantic import BaseModel, ValidationError

from ..errors import Path, ShapeError, SpecError, SpecProblem, did_you_mean, format_path
from ..spec import schema as s
from ..spec.load import SpecSource
from . import nodes as n
from .graph import Graph

_NO_ACTIVATION = (None, "linear")
MAX_LAYERS = 20_000
MAX_BLOCK_DEPTH = 32
_PROGRESSION_KEYS = ({"each"}, {"first", "rest"}, {"start", "mul"}, {"start", "add"})


class _Frame:
    """Where we are: variables in scope and the block calls that led here."""

    def __init__(self, env: dict[str, Any], scope: tuple[n.Scope, ...], callers: tuple[str, ...]):
        self.env = env
        self.scope = scope
        self.callers = callers

    def with_vars(self, env: dict[str, Any]) -> _Frame:
        return _Frame({**self.env, **env}, self.scope, self.callers)


class Lowerer:
    def __init__(self, src: SpecSource):
        self.src = src
        self.spec = src.spec
        self.graph = Graph(self.spec.name)
        self.problems: list[SpecProblem] = []

    # ----------------------------------------------------------------- errors
    def fail(
        self, message: str, path: Path, frame: _Frame | None = None, shape: bool = False
    ) -> SpecError:
        if frame and frame.callers:
            sites = [f"called from {c}" for c in reversed(frame.callers)]
            if len(sites) > 4:
                sites = [*sites[:2], f"... {len(sites) - 3} more calls", sites[-1]]
            message += " (" + "; ".join(sites) + ")"
        err = SpecError([self.src.problem(message, path)])
        err.is_shape_error = shape
        return err

    # -------------------------------------------------------------- variables
    def resolve(self, value: Any, frame: _Frame, path: Path) -> Any:
        """Replace every Var in ``value`` (recursively) by its value in scope."""
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

    def concrete(self, item: BaseModel, frame: _Frame, path: Path) -> BaseModel:
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
    def emit(self, node: n.Node, frame: _Frame) -> str:
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
    def items(self, items, x: str, prefix: str, frame: _Frame, path: Path, fmt="{k}") -> str:
        """A sequence of items; a lone item takes ``prefix`` itself."""
        for k, item in enumerate(items):
            if len(items) == 1 and item.name is None:
                sub = prefix
            else:
                local = item.name or fmt.format(k=k + 1)
                sub = f"{prefix}_{local}" if prefix else local
            x = self.item(item, x, sub, frame, (*path, k))
        return x

    def item(self, item: BaseModel, x: str, prefix: str, frame: _Frame, path: Path) -> str:
        item = self.concrete(item, frame, path)
        if item.when is not None:
            if not isinstance(item.when, bool):
                raise self.fail(
                    f"'when' must be true or false; received {item.when!r}", (*path, "when"), frame
                )
            if not item.when:
                return x
        handler = getattr(self, f"_item_{type(item).__name__}")
        return handler(item, x, prefix, frame, path)

    def _item_ConvStage(self, st: s.ConvStage, x, prefix, frame, path) -> str:
        d = self.spec.defaults
        get = lambda f: getattr(st, f) if f in st.model_fields_set else getattr(d, f)  # noqa: E731
        defaults = self.resolve(
            {f: get(f) for f in ("strides", "padding", "bias", "initializer", "weight_decay",
                                 "batch_norm", "activation", "order")},
            frame, path,
        )  # fmt: skip
        x = self.emit(
            n.Conv2D(
                name=f"{prefix}_conv",
                inputs=(x,),
                source=(*path, "conv"),
                filters=st.conv.filters,
                kernel=st.conv.kernel,
                strides=defaults["strides"],
                padding=defaults["padding"],
                bias=defaults["bias"],
                initializer=defaults["initializer"],
                weight_decay=defaults["weight_decay"],
            ),
            frame,
        )
        return self._tail(st, defaults, x, prefix, frame, path)

    def _item_DenseStage(self, st: s.DenseStage, x, prefix, frame, path) -> str:
        x = self.emit(
            n.Dense(
                name=f"{prefix}_dense",
                inputs=(x,),
                source=(*path, "dense"),
                units=st.dense,
                bias=st.bias,
                initializer=st.initializer,
                weight_decay=st.weight_decay,
            ),
            frame,
        )
        opts = {"batch_norm": st.batch_norm, "activation": st.activation, "order": st.order}
        return self._tail(st, opts, x, prefix, frame, path)

    def _tail(self, st, opts: dict, x: str, prefix: str, frame: _Frame, path: Path) -> str:
        """The B, A, P, D parts of a stage, in the stage's order."""
        pool = getattr(st, "pool", None)
        present = {
            "b": bool(opts["batch_norm"]),
            "a": opts["activation"] not in _NO_ACTIVATION,
            "p": pool is not None,
            "d": st.dropout is not None,
        }
        order = opts["order"]
        missing = [c for c, on in present.items() if on and c not in order]
        if missing:
            what = ", ".join(f"'{c}' ({s.ORDER_LETTERS[c]})" for c in missing)
            raise self.fail(
                f"order '{order}' leaves out {what}, which this stage has: expected an order "
                f"with every part present, e.g. '{''.join(c for c in 'bapd' if present[c])}'",
                (*path, "order") if "order" in st.model_fields_set else path,
                frame,
            )
        for letter in order:
            if present[letter]:
                x = self.emit(self._part(letter, st, opts, x, prefix, path), frame)
        return x

    def _part(self, letter: str, st, opts: dict, x: str, prefix: str, path: Path) -> n.Node:
        """The layer for one letter of a stage's order."""
        if letter == "b":
            return n.BatchNorm(name=f"{prefix}_bn", inputs=(x,), source=path)
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
            padding=pool.padding or "valid",
        )

    def _item_PoolStage(self, st: s.PoolStage, x, prefix, frame, path) -> str:
        return self.emit(self._pool(st.pool, x, prefix, (*path, "pool")), frame)

    def _item_DropoutStage(self, st: s.DropoutStage, x, prefix, frame, path) -> str:
        node = n.Dropout(name=f"{prefix}_dropout", inputs=(x,), source=path, rate=st.dropout)
        return self.emit(node, frame)

    def _item_ActivationStage(self, st: s.ActivationStage, x, prefix, frame, path) -> str:
        node = n.Activation(
            name=f"{prefix}_{st.activation}", inputs=(x,), source=path, function=st.activation
        )
        return self.emit(node, frame)

    def _item_LayerStage(self, st: s.LayerStage, x, prefix, frame, path) -> str:
        name = f"{prefix}_{st.layer}"
        node = {
            "flatten": lambda: n.Flatten(name=name, inputs=(x,), source=path),
            "gap": lambda: n.GlobalPool(name=name, inputs=(x,), source=path, mode="avg"),
            "gmp": lambda: n.GlobalPool(name=name, inputs=(x,), source=path, mode="max"),
            "bn": lambda: n.BatchNorm(name=name, inputs=(x,), source=path),
        }[st.layer]()
        return self.emit(node, frame)

    # ------------------------------------------------------- repeats & blocks
    def _per_repeat(self, value: Any, r: int, count: int, path: Path, frame: _Frame) -> Any:
        if not (isinstance(value, dict) and set(value) in _PROGRESSION_KEYS):
            if isinstance(value, dict):
                raise self.fail(
                    "expected a value, or a per-repeat value written {each: [...]}, "
                    "{first: a, rest: b}, {start: a, mul: m} or {start: a, add: d}; "
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
        start = value["start"]
        if "mul" in value:
            return start * value["mul"] ** r
        return start + value["add"] * r

    def _item_RepeatStage(self, st: s.RepeatStage, x, prefix, frame, path) -> str:
        for r in range(st.repeat):
            env = {
                k: self._per_repeat(v, r, st.repeat, (*path, "with", k), frame)
                for k, v in st.with_.items()
            }
            sub = f"{prefix}_{r + 1}" if st.repeat > 1 else prefix
            x = self.items(st.stages, x, sub, frame.with_vars(env), (*path, "stages"))
        return x

    def _item_BlockCall(self, call: s.BlockCall, x, prefix, frame, path) -> str:
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
        required = block.required_params()
        unknown = [k for k in call.with_ if k not in block.params]
        if unknown:
            raise self.fail(
                f"block '{call.block}' has no parameter '{unknown[0]}'"
                f"{did_you_mean(unknown[0], block.params)}; parameters: "
                + (", ".join(block.params) or "none"),
                (*path, "with", unknown[0]),
                frame,
            )
        missing = [k for k in required if k not in call.with_]
        if missing:
            raise self.fail(
                f"block '{call.block}' needs {', '.join(repr(m) for m in missing)} in 'with'",
                (*path, "with") if call.with_ else path,
                frame,
            )
        site = format_path(path)
        for r in range(call.repeat):
            args = {**block.default_params()}
            for k, v in call.with_.items():
                value = self._per_repeat(v, r, call.repeat, (*path, "with", k), frame)
                want = required.get(k) or type(block.params[k])
                if not _is_type(value, want):
                    raise self.fail(
                        f"block '{call.block}' parameter '{k}' expects {want.__name__}; "
                        f"received {value!r}",
                        (*path, "with", k),
                        frame,
                    )
                args[k] = value
            sub = f"{prefix}_{r + 1}" if call.repeat > 1 else prefix
            scope = n.Scope(call.block, sub, tuple(sorted(args.items())))
            # Block bodies see only their own parameters (lexical scope).
            inner = _Frame(args, frame.scope + (scope,), frame.callers + (site,))
            x = self._block_body(block, x, sub, inner, ("blocks", call.block))
        return x

    def _block_body(self, block: s.BlockDef, x: str, prefix: str, frame: _Frame, path: Path):
        if block.stages is not None:
            x = self.items(block.stages, x, prefix, frame, (*path, "stages"))
        else:
            outs = []
            for b, branch in enumerate(block.branches):
                bpath = (*path, "branches", b)
                outs.append(self.items(branch, x, f"{prefix}_b{b + 1}", frame, bpath))
            kind = n.Concat if block.merge == "concat" else n.Add
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
        frame = _Frame({}, (), ())
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
                if getattr(err, "is_shape_error", False):
                    break
        if self.problems:
            raise SpecError(self.problems)
        return self.graph


def _is_type(value: Any, want: type) -> bool:
    if want is float:
        return isinstance(value, int | float) and not isinstance(value, bool)
    if want is int:
        return isinstance(value, int) and not isinstance(value, bool)
    return isinstance(value, want)


def lower(src: SpecSource) -> Graph:
    """Compile a validated spec into its IR graph (raises SpecError)."""
    return Lowerer(src).run()
