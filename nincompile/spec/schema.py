"""The spec language as Pydantic v2 models.

A spec is a YAML mapping::

    name: nin_badm
    input: [32, 32, 3]                 # height, width, channels
    defaults: {padding: same, activation: relu, batch_norm: true, order: bamd}
    blocks: {...}                      # reusable, parameterised groups of stages
    stages: [...]                      # the feature extractor
    head: [...]                        # the classifier (same item grammar as stages)
    expect: {params: 972658, trainable: 969822, non_trainable: 2836}
    train: {...}                       # optimiser, loss, schedule (consumed by `train`)
    data: {...}                        # dataset, classes, normalisation

Every item of ``stages``/``head``/block bodies is one of:

* a **CBAPD stage** ``{conv: [filters, kernel], ...}``: Conv, then BatchNorm,
  Activation, Pooling and Dropout in the stage's ``order`` (letters ``b a p d``;
  ``m`` is accepted for max pooling, as in ``bamd``);
* a **dense stage** ``{dense: units, ...}``: Dense, then ``b a d`` in order;
* a single layer: ``{pool: {max: 3, strides: 2}}``, ``{dropout: 0.5}``,
  ``{activation: softmax}`` or a bare word: ``flatten``, ``gap``, ``gmp``, ``bn`` or an
  activation name such as ``softmax``;
* a **block** call ``{block: inception, with: {ch: 16}, repeat: 2}``;
* a **repeat** ``{repeat: 4, with: {ch: {each: [64, 128, 256, 512]}}, stages: [...]}``.

Inside blocks and repeats a value may be a variable, written ``$name``.  Values
given per repeat are written ``{each: [...]}``, ``{first: a, rest: b}`` or
``{start: a, mul: m}`` (``add:`` for arithmetic steps).  Any item may carry
``when: $flag`` to be included only when the flag is true.

Nothing in this module imports TensorFlow or Keras.
"""

from __future__ import annotations

import keyword
import math
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated, Any, Literal, Union

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Discriminator,
    Field,
    PlainValidator,
    StrictBool,
    Tag,
    TypeAdapter,
    ValidationError,
    ValidationInfo,
    WithJsonSchema,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError

from ..errors import did_you_mean
from . import expr

# --------------------------------------------------------------------------- names

IDENT_PATTERN = r"^[A-Za-z_][A-Za-z0-9_]{0,63}$"
_IDENT_RE = re.compile(IDENT_PATTERN)
VAR_PATTERN = r"^\$[A-Za-z_][A-Za-z0-9_]*$"
_VAR_RE = re.compile(VAR_PATTERN)


def is_identifier(value: object) -> bool:
    """True for names safe as Python identifiers and Keras layer names."""
    return (
        isinstance(value, str)
        and _IDENT_RE.match(value) is not None
        and not keyword.iskeyword(value)
        and not keyword.issoftkeyword(value)
    )


def _check_identifier(value: Any) -> str:
    if not is_identifier(value):
        raise PydanticCustomError(
            "identifier",
            "expected a name of letters, digits and '_' that does not start with a digit, "
            "is not a Python keyword and has at most 64 characters; received {received}",
            {"received": repr(value)},
        )
    return value


Identifier = Annotated[
    str,
    PlainValidator(_check_identifier),
    WithJsonSchema({"type": "string", "pattern": IDENT_PATTERN}),
]


class Var:
    """A reference to a block parameter or repeat variable, written ``$name``.

    A plain class (not a dataclass) so ``model_dump`` passes it through unchanged."""

    __slots__ = ("name",)

    def __init__(self, name: str):
        self.name = name

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Var) and other.name == self.name

    def __hash__(self) -> int:
        return hash(("Var", self.name))

    def __repr__(self) -> str:
        return f"Var({self.name!r})"

    def __str__(self) -> str:
        return f"${self.name}"


class Expression(Var):
    """A computed value, written ``$f * 4`` or ``divisible($f * $alpha, 8)``: see
    :mod:`.expr`.  Evaluated where its variables have values (in the lowering)."""

    __slots__ = ("expr",)

    def __init__(self, parsed: expr.Expr):
        super().__init__(parsed.text)
        self.expr = parsed

    def __repr__(self) -> str:
        return f"Expression({self.name!r})"

    def __str__(self) -> str:
        return self.name


def _as_var(value: Any) -> Var | None:
    """``"$name"`` -> ``Var("name")``; ``"$f * 4"`` -> an :class:`Expression`; a
    malformed one is an error; anything else None."""
    if isinstance(value, Var):
        return value
    if isinstance(value, str) and _VAR_RE.match(value):
        return Var(value[1:])
    # a '$' anywhere means an expression was meant: its parse error is the problem
    if isinstance(value, str) and ("$" in value or expr.is_expression(value)):
        try:
            return Expression(expr.parse(value))
        except expr.ExprError as err:
            where = f" at column {err.column}" if err.column else ""
            raise PydanticCustomError(
                "variable",
                "expected a variable like '$ch' or an expression like '$ch * 2'; received "
                "{received}: {problem}{where}",
                {"received": repr(value), "problem": str(err), "where": where},
            ) from None
    return None


def has_vars(value: Any) -> bool:
    """Whether ``value`` holds a variable or expression anywhere (lists included)."""
    if isinstance(value, Var):
        return True
    if isinstance(value, list | tuple):
        return any(has_vars(v) for v in value)
    return False


def _vars_deep(value: Any) -> Any:
    """Lists as tuples, ``$`` strings as variables, at any depth."""
    if (var := _as_var(value)) is not None:
        return var
    if isinstance(value, list | tuple):
        return tuple(_vars_deep(v) for v in value)
    return value


def _maybe_var(inner: Any, expected: str):
    """A type that accepts ``inner`` or a ``$variable`` with a one-line error."""
    adapter = TypeAdapter(inner)

    def validate(value: Any) -> Any:
        if (var := _as_var(value)) is not None:
            return var
        if isinstance(value, list | tuple):
            value = _vars_deep(value)  # YAML lists are [height, width] pairs here
            if has_vars(value):
                return value  # checked again once its variables have values
        try:
            return adapter.validate_python(value, strict=True)
        except ValidationError:
            raise PydanticCustomError(
                "value",
                "expected {expected}; received {received}",
                {"expected": expected, "received": repr(value)},
            ) from None

    schema = adapter.json_schema()
    return Annotated[
        Any,
        PlainValidator(validate),
        WithJsonSchema({"anyOf": [schema, {"type": "string", "pattern": VAR_PATTERN}]}),
    ]


def _closed_choice(choices: tuple[str, ...], what: str):
    """A string from a fixed set (or a variable), with a 'did you mean' on typos."""
    validate = _choice_validator(choices, what)
    return Annotated[
        Any,
        PlainValidator(validate),
        WithJsonSchema(
            {"anyOf": [{"enum": list(choices)}, {"type": "string", "pattern": VAR_PATTERN}]}
        ),
    ]


def _choice_validator(choices: tuple[str, ...], what: str):
    def validate(value: Any) -> Any:
        if (var := _as_var(value)) is not None:
            return var
        if value in choices:
            return value
        raise PydanticCustomError(
            "choice",
            "expected {what}: one of {choices}; received {received}{hint}",
            {
                "what": what,
                "choices": ", ".join(choices),
                "received": repr(value),
                "hint": did_you_mean(str(value), choices),
            },
        )

    return validate


# ------------------------------------------------------------------- value types

Int1 = Annotated[int, Field(ge=1)]
PosInt = _maybe_var(Int1, "a positive integer")
Size = _maybe_var(Int1 | tuple[Int1, Int1], "a positive integer or [height, width]")
Rate = _maybe_var(Annotated[float, Field(ge=0.0, lt=1.0)], "a rate in [0, 1)")
# finite: a bound such as ge=0 lets inf through, and no field means anything at inf
NonNegFloat = _maybe_var(
    Annotated[float, Field(ge=0.0, allow_inf_nan=False)], "a finite number >= 0"
)
Flag = _maybe_var(bool, "true or false")
PosFloat = _maybe_var(Annotated[float, Field(gt=0.0, allow_inf_nan=False)], "a finite number > 0")
Number = _maybe_var(Annotated[float, Field(allow_inf_nan=False)], "a finite number")
MAX_REPEAT = 1000
RepeatCount = _maybe_var(
    Annotated[int, Field(ge=0, le=MAX_REPEAT)], f"a count from 0 to {MAX_REPEAT}"
)
Int0 = Annotated[int, Field(ge=0)]
Pad2D = _maybe_var(
    Int0 | tuple[Int0, Int0] | tuple[tuple[Int0, Int0], tuple[Int0, Int0]],
    "a padding: N, [height, width] or [[top, bottom], [left, right]]",
)
TargetShape = _maybe_var(
    tuple[Annotated[int, Field(ge=-1)], ...], "a shape such as [1, 1, -1] (one -1 at most)"
)
Floats = _maybe_var(
    tuple[Annotated[float, Field(allow_inf_nan=False)], ...],
    "a list of finite numbers, one per channel",
)
NonNegFloats = _maybe_var(
    tuple[Annotated[float, Field(ge=0.0, allow_inf_nan=False)], ...],
    "a list of finite numbers >= 0, one per channel",
)

#: Every name ``keras.activations.get`` accepts, but ``threshold`` (it needs arguments)
#: and ``glu`` (Keras's Activation layer reports its input shape for it, though glu
#: halves the channels, so a model using it is built wrong).
ACTIVATIONS = (
    "relu", "relu6", "leaky_relu", "elu", "celu", "selu", "gelu", "silu", "swish",
    "hard_silu", "hard_swish", "mish", "sigmoid", "hard_sigmoid", "log_sigmoid",
    "sparse_sigmoid", "tanh", "hard_tanh", "tanh_shrink", "hard_shrink", "soft_shrink",
    "softmax", "log_softmax", "sparsemax", "softplus", "sparse_plus", "squareplus",
    "softsign", "exponential", "linear",
)  # fmt: skip
INITIALIZERS = (
    "glorot_uniform", "glorot_normal", "he_uniform", "he_normal", "lecun_uniform",
    "lecun_normal", "random_uniform", "random_normal", "truncated_normal", "orthogonal",
    "zeros", "ones",
)  # fmt: skip
PADDINGS = ("same", "valid")

Padding = _closed_choice(PADDINGS, "a padding")
_initializer_name = _choice_validator(INITIALIZERS, "a Keras initializer name")
#: Initializers that take arguments, with the arguments they accept (Keras's names).
INITIALIZER_ARGS = {
    "variance_scaling": ("scale", "mode", "distribution", "seed"),
    "truncated_normal": ("mean", "stddev", "seed"),
    "random_normal": ("mean", "stddev", "seed"),
    "random_uniform": ("minval", "maxval", "seed"),
    "constant": ("value",),
    "orthogonal": ("gain", "seed"),
    "glorot_uniform": ("seed",), "glorot_normal": ("seed",), "he_uniform": ("seed",),
    "he_normal": ("seed",), "lecun_uniform": ("seed",), "lecun_normal": ("seed",),
}  # fmt: skip


def _finite(v: Any) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v)


#: each initializer argument: (what is expected, the test of a value); the values
#: Keras's initializers accept (a seed: a non-negative 32-bit integer)
INITIALIZER_ARG_VALUES: dict[str, tuple[str, Callable[[Any], bool]]] = {
    "seed": ("an integer from 0 to 2147483647",
             lambda v: isinstance(v, int) and not isinstance(v, bool) and 0 <= v < 2**31),
    "scale": ("a finite number > 0", lambda v: _finite(v) and v > 0),
    "mode": ("one of fan_in, fan_out, fan_avg", lambda v: v in ("fan_in", "fan_out", "fan_avg")),
    "distribution": ("one of truncated_normal, untruncated_normal, normal, uniform",
                     lambda v: v in ("truncated_normal", "untruncated_normal", "normal",
                                     "uniform")),
    "mean": ("a finite number", _finite),
    "stddev": ("a finite number > 0", lambda v: _finite(v) and v > 0),
    "minval": ("a finite number", _finite),
    "maxval": ("a finite number", _finite),
    "value": ("a finite number", _finite),
    "gain": ("a finite number", _finite),
}  # fmt: skip


def _initializer(value: Any) -> Any:
    """A name (``he_normal``), or one name with its arguments:
    ``{variance_scaling: {scale: 2.0, mode: fan_out}}`` -> ``("variance_scaling",
    (("mode", "fan_out"), ("scale", 2.0)))`` (see ``ir.nodes.Initializer``)."""
    if isinstance(value, tuple) and len(value) == 2 and isinstance(value[1], tuple):
        return value  # already in its stored form (validated again after substitution)
    if not isinstance(value, dict):
        return _initializer_name(value)
    if len(value) != 1:
        raise PydanticCustomError(
            "initializer",
            "expected one initializer name with its arguments, e.g. {variance_scaling: "
            "{scale: 2.0, mode: fan_out}}; received {n} keys",
            {"n": len(value)},
        )
    ((name, args),) = value.items()
    if name not in INITIALIZER_ARGS:
        raise PydanticCustomError(
            "initializer",
            "expected an initializer that takes arguments: one of {names}; received "
            "{received}{hint}",
            {"names": ", ".join(INITIALIZER_ARGS), "received": repr(name),
             "hint": did_you_mean(str(name), INITIALIZER_ARGS)},
        )  # fmt: skip
    if not isinstance(args, dict):
        raise PydanticCustomError(
            "initializer",
            "expected the arguments of {name} as a mapping; received {received}",
            {"name": name, "received": repr(args)},
        )
    for key, v in args.items():
        if key not in INITIALIZER_ARGS[name]:
            raise PydanticCustomError(
                "initializer",
                "{name} has no argument {key}{hint}; expected one of {keys}",
                {"name": name, "key": repr(key), "keys": ", ".join(INITIALIZER_ARGS[name]),
                 "hint": did_you_mean(str(key), INITIALIZER_ARGS[name])},
            )  # fmt: skip
        expected, ok = INITIALIZER_ARG_VALUES[key]
        if not ok(v):
            raise PydanticCustomError(
                "initializer",
                "expected {expected} for {name}.{key}; received {received}",
                {"expected": expected, "name": name, "key": key, "received": repr(v)},
            )
    if name == "random_uniform" and args.get("minval", -0.05) >= args.get("maxval", 0.05):
        raise PydanticCustomError(
            "initializer",
            "expected random_uniform's minval below its maxval (defaults -0.05 and 0.05); "
            "received minval {lo}, maxval {hi}",
            {"lo": args.get("minval", -0.05), "hi": args.get("maxval", 0.05)},
        )
    return (name, tuple(sorted(args.items())))


Initializer = Annotated[
    Any,
    PlainValidator(_initializer),
    WithJsonSchema(
        {"anyOf": [{"enum": list(INITIALIZERS)}, {"type": "object", "maxProperties": 1}]}
    ),
]
_ActivationName = _closed_choice(ACTIVATIONS, "an activation")
Activation = _ActivationName | None

ORDER_LETTERS = {
    "b": "batch norm",
    "a": "activation",
    "p": "pooling",
    "m": "pooling",
    "d": "dropout",
}


def check_order(order: str, allowed: str = "bapd") -> str:
    """Validate a CBAPD order string; ``m`` is a synonym of ``p``. Returns it normalised."""
    if not isinstance(order, str) or not order:
        raise PydanticCustomError(
            "order",
            "expected an order string of the letters b, a, p (or m), d; received {received}",
            {"received": repr(order)},
        )
    norm = order.lower().replace("m", "p")
    unknown = sorted({c for c in norm if c not in "bapd"})
    if unknown:
        raise PydanticCustomError(
            "order",
            "unknown letter(s) {letters} in order {received}: expected b (batch norm), "
            "a (activation), p or m (pooling), d (dropout)",
            {"letters": ", ".join(repr(c) for c in unknown), "received": repr(order)},
        )
    repeated = sorted({c for c in norm if norm.count(c) > 1})
    if repeated:
        raise PydanticCustomError(
            "order",
            "repeated letter(s) {letters} in order {received}: each of b, a, p/m, d "
            "may appear once",
            {"letters": ", ".join(repr(c) for c in repeated), "received": repr(order)},
        )
    bad = [c for c in norm if c not in allowed]
    if bad:
        raise PydanticCustomError(
            "order",
            "letter(s) {letters} are not allowed here: expected letters from {allowed}",
            {"letters": ", ".join(repr(c) for c in bad), "allowed": repr(allowed)},
        )
    return norm


Order = Annotated[
    str,
    PlainValidator(check_order),
    WithJsonSchema({"type": "string", "pattern": "^[bapdmBAPDM]{1,4}$"}),
]


class _Model(BaseModel):
    # allow_inf_nan: no float field means anything at inf or nan (a bound such as
    # ge=0 lets inf through)
    model_config = ConfigDict(
        extra="forbid", populate_by_name=True, frozen=True, allow_inf_nan=False
    )


# ------------------------------------------------------------------------ stages


def _conv_list_form(schema: dict) -> None:
    """JSON Schema: ``conv`` is also written ``[filters, kernel]``."""
    obj = dict(schema)
    schema.clear()
    props = obj["properties"]
    schema["anyOf"] = [
        {
            "type": "array",
            "prefixItems": [props["filters"], props["kernel"]],
            "minItems": 2,
            "maxItems": 2,
        },
        obj,
    ]


class ConvArgs(_Model):
    model_config = ConfigDict(json_schema_extra=_conv_list_form)

    filters: PosInt
    kernel: Size

    @model_validator(mode="before")
    @classmethod
    def _from_list(cls, value: Any) -> Any:
        if isinstance(value, list | tuple):
            if len(value) != 2:
                raise PydanticCustomError(
                    "conv",
                    "expected [filters, kernel], e.g. [64, 3]; received a list of {n} items",
                    {"n": len(value)},
                )
            return {"filters": value[0], "kernel": value[1]}
        return value


class PoolArgs(_Model):
    """``{max: 3, strides: 2, padding: same}`` or ``{avg: 2}``. Strides default to the
    pool size and padding to ``valid``, as in Keras."""

    max: Size | None = None
    avg: Size | None = None
    strides: Size | None = None
    padding: Padding | None = None

    @model_validator(mode="after")
    def _one_kind(self) -> PoolArgs:
        if (self.max is None) == (self.avg is None):
            raise PydanticCustomError(
                "pool",
                "expected exactly one of 'max: SIZE' or 'avg: SIZE'; received {received}",
                {"received": "both" if self.max is not None else "neither"},
            )
        return self

    @property
    def mode(self) -> str:
        return "max" if self.max is not None else "avg"

    @property
    def size(self) -> Any:
        return self.max if self.max is not None else self.avg


class _Item(_Model):
    name: Identifier | None = Field(
        None, description="Prefix of the stage's layer names (default: its position)."
    )
    when: Flag | None = Field(None, description="Include this item only when true.")


class BatchNormOptions(_Model):
    """Options of a batch norm layer; unset: the spec's ``defaults.batch_norm``
    options, else Keras's own (epsilon 0.001, momentum 0.99, center and scale on)."""

    epsilon: PosFloat | None = None
    momentum: Rate | None = None
    center: Flag | None = None
    scale: Flag | None = None


#: ``batch_norm:`` of a stage: on/off, or a mapping of options (which means on).
BatchNormSetting = Flag | BatchNormOptions


class _ConvLike(_Item):
    """What every convolution stage takes besides its own first key.  Unset fields
    take the spec's ``defaults``."""

    strides: Size | None = None
    padding: Padding | None = None
    dilation: Size | None = None
    pad: Pad2D | None = Field(
        None, description="Zero padding before the convolution: N, [h, w] or [[t, b], [l, r]]."
    )
    bias: Flag | None = None
    initializer: Initializer | None = None
    weight_decay: NonNegFloat | None = None
    batch_norm: BatchNormSetting | None = None
    activation: Activation = None
    pool: PoolArgs | None = None
    dropout: Rate | None = None
    order: Order | None = None


class ConvStage(_ConvLike):
    """C then B, A, P, D in ``order``. Unset fields take the spec's ``defaults``."""

    conv: ConvArgs
    groups: PosInt | None = None


class DepthwiseStage(_ConvLike):
    """A depthwise convolution (one filter per input channel), then B, A, P, D."""

    depthwise: Size
    depth_multiplier: PosInt | None = None


class SeparableStage(_ConvLike):
    """A separable convolution (depthwise, then 1x1 to ``filters``), then B, A, P, D."""

    separable: ConvArgs
    depth_multiplier: PosInt | None = None


class ConvTransposeStage(_ConvLike):
    """A transposed convolution (upsampling by its strides), then B, A, P, D."""

    conv_transpose: ConvArgs


class DenseStage(_Item):
    """Dense then B, A, D in ``order`` (default ``bad``). Defaults do not apply."""

    dense: PosInt
    pointwise: Flag = Field(
        False, description="Act on the channel axis of an image: (H, W, C) -> (H, W, units)."
    )
    bias: Flag = True
    initializer: Initializer = "glorot_uniform"
    weight_decay: NonNegFloat = 0.0
    batch_norm: BatchNormSetting = False
    activation: Activation = None
    dropout: Rate | None = None
    order: Order = "bad"

    @field_validator("order")
    @classmethod
    def _no_pool(cls, order: str) -> str:
        return check_order(order, allowed="bad")


class PoolStage(_Item):
    pool: PoolArgs


class GlobalPoolStage(_Item):
    """Global average or max pooling; ``keepdims`` keeps a 1x1 map (squeeze-excite)."""

    global_pool: _closed_choice(("avg", "max"), "a global pooling")
    keepdims: Flag = False


class PadStage(_Item):
    pad: Pad2D


class BatchNormStage(_Item):
    bn: BatchNormOptions


class LayerNormOptions(_Model):
    epsilon: PosFloat | None = None


class LayerNormStage(_Item):
    layer_norm: LayerNormOptions


class ReshapeStage(_Item):
    reshape: TargetShape


class UpsampleStage(_Item):
    upsample: Size
    interpolation: _closed_choice(("nearest", "bilinear"), "an interpolation") = "nearest"


class RescaleStage(_Item):
    """``x * rescale + offset``."""

    rescale: Number
    offset: Number = 0.0


class NormalizeOptions(_Model):
    mean: Floats | None = None
    variance: NonNegFloats | None = None

    @model_validator(mode="after")
    def _both(self) -> NormalizeOptions:
        if (self.mean is None) != (self.variance is None):
            raise PydanticCustomError(
                "normalize",
                "expected both 'mean' and 'variance' (fixed statistics) or neither "
                "(statistics held as weights)",
            )
        return self


class NormalizeStage(_Item):
    normalize: NormalizeOptions


class LayerScaleStage(_Item):
    layer_scale: PosFloat


class DropPathStage(_Item):
    drop_path: Rate


class DropoutStage(_Item):
    dropout: Rate


class ActivationStage(_Item):
    activation: _ActivationName


#: Bare words for parameterless layers (``flatten``) and what they are.
BARE_LAYERS = {
    "flatten": "Flatten",
    "gap": "global average pooling",
    "gmp": "global max pooling",
    "bn": "batch normalisation",
    "ln": "layer normalisation",
}


class LayerStage(_Item):
    """A parameterless layer, usually written as a bare word: ``flatten``."""

    layer: Literal[tuple(BARE_LAYERS)]


def _vars_in(value: Any) -> Any:
    """Turn ``"$name"`` strings inside free-form ``with`` values into :class:`Var`."""
    if (var := _as_var(value)) is not None:
        return var
    if isinstance(value, dict):
        return {k: _vars_in(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_vars_in(v) for v in value]
    return value


With = Annotated[
    dict[Identifier, Any],
    AfterValidator(_vars_in),
    Field(
        description="Arguments (block) or variables (repeat). A per-repeat value is "
        "{each: [...]}, {first: a, rest: b}, {last: a, rest: b}, {start: a, mul: m} or "
        "{start: a, add: d}."
    ),
]


class BlockCall(_Item):
    block: Identifier
    with_: With = Field(default_factory=dict, alias="with")
    repeat: RepeatCount = 1


class RepeatStage(_Item):
    repeat: RepeatCount
    with_: With = Field(default_factory=dict, alias="with")
    stages: list[Stage] = Field(min_length=1)


# ------------------------------------------------------------------ the registry


@dataclass(frozen=True)
class ItemKind:
    """One kind of item of ``stages``/``head``/block bodies.

    ``key`` is the mapping key that says an item is of this kind (``conv``); an item
    is of the first kind in :data:`ITEMS` whose key it has, so a stage kind comes
    before the single layers whose keys it takes as options (``conv`` has ``pool``
    and ``dropout``).  ``model`` validates it, ``lower`` names the
    ``ir.lower.Lowerer`` method that lowers it, ``also`` lists other keys that mark
    it (a repeat's ``stages``), and ``about`` is its line in the README's table."""

    key: str
    model: type[_Item]
    lower: str
    about: str
    also: tuple[str, ...] = ()


def _registry(*kinds: ItemKind) -> dict[str, ItemKind]:
    return {k.key: k for k in kinds}


#: Every item kind: the schema union, the key dispatch, the did-you-mean lists, the
#: lowering dispatch and the README's table all come from this one table.
ITEMS: dict[str, ItemKind] = _registry(
    ItemKind(
        "block",
        BlockCall,
        "block_call",
        "a call of a block: `{block: NAME, with: {...}, repeat: N}`",
    ),
    ItemKind(
        "repeat",
        RepeatStage,
        "repeat_stage",
        "a repeated group: `{repeat: N, with: {...}, stages: [...]}`",
        also=("stages",),
    ),
    ItemKind("conv", ConvStage, "conv_stage", "`{conv: [F, K]}`: Conv2D, then B/A/P/D in `order`"),
    ItemKind(
        "depthwise",
        DepthwiseStage,
        "depthwise_stage",
        "`{depthwise: K}`: DepthwiseConv2D, then B/A/P/D",
    ),
    ItemKind(
        "separable",
        SeparableStage,
        "separable_stage",
        "`{separable: [F, K]}`: SeparableConv2D, then B/A/P/D",
    ),
    ItemKind(
        "conv_transpose",
        ConvTransposeStage,
        "conv_transpose_stage",
        "`{conv_transpose: [F, K]}`: Conv2DTranspose, then B/A/P/D",
    ),
    ItemKind("dense", DenseStage, "dense_stage", "`{dense: U}`: Dense, then B/A/D in `order`"),
    ItemKind(
        "pool",
        PoolStage,
        "pool_stage",
        "`{pool: {max: 3, strides: 2}}`: MaxPooling2D / AveragePooling2D",
    ),
    ItemKind(
        "global_pool",
        GlobalPoolStage,
        "global_pool_stage",
        "`{global_pool: avg, keepdims: true}`: global pooling (bare `gap`, `gmp`)",
    ),
    ItemKind("pad", PadStage, "pad_stage", "`{pad: [[0, 1], [0, 1]]}`: ZeroPadding2D"),
    ItemKind(
        "bn",
        BatchNormStage,
        "bn_stage",
        "`{bn: {epsilon: 1.001e-5}}`: BatchNormalization (bare `bn`)",
    ),
    ItemKind(
        "layer_norm",
        LayerNormStage,
        "layer_norm_stage",
        "`{layer_norm: {epsilon: 1e-6}}`: LayerNormalization (bare `ln`)",
    ),
    ItemKind(
        "layer_scale",
        LayerScaleStage,
        "layer_scale_stage",
        "`{layer_scale: 1e-6}`: a learned per-channel scale (ConvNeXt)",
    ),
    ItemKind(
        "drop_path",
        DropPathStage,
        "drop_path_stage",
        "`{drop_path: 0.1}`: stochastic depth (Dropout of whole samples)",
    ),
    ItemKind("dropout", DropoutStage, "dropout_stage", "`{dropout: 0.5}`: Dropout"),
    ItemKind(
        "activation",
        ActivationStage,
        "activation_stage",
        "`{activation: softmax}` or `softmax`: Activation",
    ),
    ItemKind("reshape", ReshapeStage, "reshape_stage", "`{reshape: [1, 1, -1]}`: Reshape"),
    ItemKind("upsample", UpsampleStage, "upsample_stage", "`{upsample: 2}`: UpSampling2D"),
    ItemKind(
        "rescale", RescaleStage, "rescale_stage", "`{rescale: 0.00392, offset: 0}`: Rescaling"
    ),
    ItemKind(
        "normalize",
        NormalizeStage,
        "normalize_stage",
        "`{normalize: {mean: [...], variance: [...]}}`: Normalization",
    ),
    ItemKind(
        "layer",
        LayerStage,
        "layer_stage",
        "`flatten`, `gap`, `gmp`, `bn`, `ln`: parameterless layers",
    ),
)

#: item key -> its schema class (derived from :data:`ITEMS`)
ITEM_KINDS: dict[str, type[_Item]] = {k.key: k.model for k in ITEMS.values()}
#: item schema class -> its key
ITEM_KEYS: dict[type[_Item], str] = {kind.model: key for key, kind in ITEMS.items()}


def _bare_to_item(value: str) -> dict:
    if value in BARE_LAYERS:
        return {"layer": value}
    if value in ACTIVATIONS:
        return {"activation": value}
    raise PydanticCustomError(
        "stage",
        "unknown layer {received}: expected one of {bare} or an activation name{hint}",
        {
            "received": repr(value),
            "bare": ", ".join(BARE_LAYERS),
            "hint": did_you_mean(value, (*BARE_LAYERS, *ACTIVATIONS)),
        },
    )


def stage_kind(value: Any) -> str | None:
    """The registry key of an item (``"bare"`` for a word, ``"unknown"``)."""
    if isinstance(value, _Item):
        return ITEM_KEYS[type(value)]
    if isinstance(value, dict):
        for kind in ITEMS.values():
            if kind.key in value or any(k in value for k in kind.also):
                return kind.key
        return "unknown"
    if isinstance(value, str):
        return "bare"
    return "unknown"


def _unknown_stage(value: Any) -> Any:
    keys = [k for k in ITEMS if k != "layer"]
    if isinstance(value, dict):
        given = ", ".join(repr(k) for k in value) or "no keys"
        hints = "".join(did_you_mean(str(k), keys) for k in value)
        raise PydanticCustomError(
            "stage",
            "expected a stage with one of the keys {keys}; received {given}{hint}",
            {"keys": ", ".join(keys), "given": given, "hint": hints},
        )
    raise PydanticCustomError(
        "stage",
        "expected a stage mapping such as {conv: [64, 3]} or a word such as 'flatten'; "
        "received {received}",
        {"received": repr(value)},
    )


def _validate_bare(value: Any) -> Any:
    item = _bare_to_item(value)
    return (LayerStage if "layer" in item else ActivationStage).model_validate(item)


Stage = Annotated[
    Union[  # noqa: UP007  (built from the registry)
        tuple(Annotated[k.model, Tag(k.key)] for k in ITEMS.values())
        + (
            Annotated[
                Any,
                PlainValidator(_validate_bare),
                WithJsonSchema({"enum": [*BARE_LAYERS, *ACTIVATIONS]}),
                Tag("bare"),
            ],
            Annotated[Any, PlainValidator(_unknown_stage), WithJsonSchema({}), Tag("unknown")],
        )
    ],
    Discriminator(stage_kind),
]

#: Tags pydantic inserts into error locations; the error formatter drops them.
STAGE_TAGS = frozenset({*ITEMS, "bare", "unknown"})

RepeatStage.model_rebuild()


# ------------------------------------------------------------------------ blocks

#: Types a block parameter may declare: the name, and what it accepts.
PARAM_TYPES = {
    "int": "an integer",
    "float": "a number",
    "bool": "true or false",
    "str": "a string",
    "size": "an integer or [height, width]",
    "list": "a list",
    "any": "any value",
    "none": "null",  # a parameter whose default is null, with no declared type
}


def value_fits(value: Any, type_name: str) -> bool:
    """Whether ``value`` is of the declared parameter type ``type_name``."""
    if type_name == "any":
        return True
    if type_name == "none":
        return value is None
    if type_name == "float":
        return isinstance(value, int | float) and not isinstance(value, bool)
    if type_name == "int":
        return isinstance(value, int) and not isinstance(value, bool)
    if type_name == "bool":
        return isinstance(value, bool)
    if type_name == "str":
        return isinstance(value, str)
    if type_name == "list":
        return isinstance(value, list | tuple)
    if type_name == "size":
        if isinstance(value, list | tuple):
            return len(value) == 2 and all(value_fits(v, "int") for v in value)
        return value_fits(value, "int")
    return False


def _type_of(value: Any) -> str:
    """The parameter type a default value gives: ``1`` -> int, ``[1, 7]`` -> size."""
    if isinstance(value, bool):
        return "bool"
    for name in ("int", "float", "str", "size", "list"):
        if value_fits(value, name):
            return name
    return "any"


class ParamDecl(_Model):
    """A block parameter declared with its type: ``{type: size, default: 1}``."""

    type: Literal[tuple(PARAM_TYPES)]
    default: Any = None
    required: bool = Field(False, description="Set when the declaration has no default.")

    @model_validator(mode="before")
    @classmethod
    def _required(cls, value: Any) -> Any:
        if isinstance(value, dict) and "default" not in value:
            return {**value, "required": True}
        return value

    @model_validator(mode="after")
    def _default_fits(self) -> ParamDecl:
        if not self.required and self.default is not None:
            if not value_fits(self.default, self.type):
                raise PydanticCustomError(
                    "param",
                    "the default {default} is not {what} (type {type})",
                    {"default": repr(self.default), "what": PARAM_TYPES[self.type],
                     "type": self.type},
                )  # fmt: skip
        return self


class BlockDef(_Model):
    """A reusable group of stages: a plain sequence (``stages``) or parallel
    ``branches`` joined by ``merge`` (``concat``, ``add`` or ``multiply``), then
    ``then`` stages.

    ``params`` maps each parameter to a default value (its type is the default's),
    to a type name (``int``, ``float``, ``bool``, ``str``, ``size``, ``list``,
    ``any``) when the caller must give it, or to ``{type: T, default: V}``.  An empty
    branch is the identity (a residual shortcut)."""

    description: str | None = None
    params: dict[Identifier, Any] = Field(default_factory=dict)
    stages: list[Stage] | None = None
    branches: list[list[Stage]] | None = Field(None, min_length=2)
    merge: Literal["concat", "add", "multiply"] | None = None
    then: list[Stage] = Field(default_factory=list)

    @field_validator("params")
    @classmethod
    def _declarations(cls, params: dict[str, Any]) -> dict[str, Any]:
        return {
            k: ParamDecl.model_validate(v) if isinstance(v, dict) and "type" in v else v
            for k, v in params.items()
        }

    @model_validator(mode="after")
    def _shape(self) -> BlockDef:
        if (self.stages is None) == (self.branches is None):
            raise PydanticCustomError(
                "block",
                "expected exactly one of 'stages' (a sequence) or 'branches' (parallel paths)",
            )
        if self.branches is not None and self.merge is None:
            raise PydanticCustomError(
                "block", "a block with branches needs 'merge: concat' or 'merge: add'"
            )
        if self.branches is None and self.merge is not None:
            raise PydanticCustomError("block", "'merge' is only meaningful with 'branches'")
        return self

    def param_types(self) -> dict[str, str]:
        """Each parameter's type name (declared, or its default's)."""
        out = {}
        for k, v in self.params.items():
            if isinstance(v, ParamDecl):
                out[k] = v.type
            elif isinstance(v, str) and v in PARAM_TYPES:
                out[k] = v
            else:
                out[k] = "none" if v is None else _type_of(v)
        return out

    def required_params(self) -> dict[str, str]:
        """The parameters a call must give, with their type names."""
        return {
            k: v.type if isinstance(v, ParamDecl) else v
            for k, v in self.params.items()
            if (isinstance(v, ParamDecl) and v.required)
            or (isinstance(v, str) and v in PARAM_TYPES)
        }

    def default_params(self) -> dict[str, Any]:
        required = self.required_params()
        return {
            k: v.default if isinstance(v, ParamDecl) else v
            for k, v in self.params.items()
            if k not in required
        }


# ------------------------------------------------------------------ spec sections


def _evaluated(value: Any, params: dict[str, Any]) -> Any:
    """``value`` with a ``$`` variable or expression computed from the spec's
    ``params`` (for fields read before lowering, such as ``input``)."""
    var = _as_var(value)
    if var is None:
        return value
    parsed = var.expr if isinstance(var, Expression) else expr.parse(f"${var.name}")
    try:
        return parsed.evaluate(params)
    except expr.ExprError as err:
        raise PydanticCustomError(
            "expression", "{problem} in {text}", {"problem": str(err), "text": repr(value)}
        ) from None


class Defaults(_Model):
    """Defaults for every conv stage (Keras's own defaults where unset)."""

    strides: Size = 1
    padding: Padding = "valid"
    bias: Flag = True
    initializer: Initializer = "glorot_uniform"
    weight_decay: NonNegFloat = 0.0
    batch_norm: BatchNormSetting = Field(
        False,
        description="On for every conv stage (true, or a mapping of options); its options "
        "(epsilon, momentum, center, scale) apply to every batch norm of the model.",
    )
    activation: Activation = None
    order: Order = "bapd"


class Expect(_Model):
    """Published parameter counts the compiled model must equal exactly."""

    params: Annotated[int, Field(ge=0, strict=True)] | None = None
    trainable: Annotated[int, Field(ge=0, strict=True)] | None = None
    non_trainable: Annotated[int, Field(ge=0, strict=True)] | None = None

    @model_validator(mode="after")
    def _something(self) -> Expect:
        if self.params is None and self.trainable is None and self.non_trainable is None:
            raise PydanticCustomError(
                "expect", "expected at least one of params, trainable, non_trainable"
            )
        return self


#: Optimiser and loss names of ``train:`` and the Keras classes they stand for: the one
#: table the schema, the code generator and the training loop read.
OPTIMIZERS = {
    "sgd": "SGD",
    "adam": "Adam",
    "adamw": "AdamW",
    "rmsprop": "RMSprop",
    "nadam": "Nadam",
}
LOSSES = {
    "sparse_categorical_crossentropy": "SparseCategoricalCrossentropy",
    "categorical_crossentropy": "CategoricalCrossentropy",
    "binary_crossentropy": "BinaryCrossentropy",
    "mean_squared_error": "MeanSquaredError",
}


#: Layers named by a layer name or an item name: ``stage1`` stands for ``stage1`` and
#: every layer whose name starts with ``stage1_`` (``stage1_conv``, ``stage1_bn``).
LayerSelector = Identifier


class FreezeAllBut(_Model):
    """``freeze: {all_but: [head]}``: every layer but those named."""

    all_but: list[LayerSelector] = Field(
        min_length=1, description="Layer or item names that stay trainable."
    )


#: ``train.freeze``: layer or item names, or every layer but some.
FreezeSetting = list[LayerSelector] | FreezeAllBut


#: The fields of ``train:`` a phase may set (the optimiser and its schedule); what a
#: phase leaves out is ``train:``'s.
PHASE_FIELDS = (
    "optimizer",
    "learning_rate",
    "momentum",
    "nesterov",
    "weight_decay",
    "lr_schedule",
    "warmup_epochs",
    "min_learning_rate",
    "freeze",
)
#: The optimiser's own options: a phase that names another optimiser does not inherit them.
OPTIMIZER_OPTIONS = ("momentum", "nesterov", "weight_decay")
LrSchedule = (
    dict[Annotated[int, Field(ge=0)], Annotated[float, Field(gt=0)]]
    | Literal["constant", "cosine", "onecycle"]
    | None
)


class Phase(_Model):
    """One phase of ``train.phases``: its epochs, and what it trains with differently
    from ``train:`` (its freeze, its optimiser and its schedule, counted from the
    phase's first epoch).  A field left out is ``train:``'s; the options of the
    optimiser (momentum, nesterov, weight_decay) only while the phase keeps
    ``train.optimizer``."""

    epochs: Annotated[int, Field(ge=1)]
    freeze: FreezeSetting | None = Field(
        None, description="The layers frozen in this phase (train.freeze when left out; [] "
        "for none).",
    )  # fmt: skip
    optimizer: Literal[tuple(OPTIMIZERS)] | None = None
    learning_rate: Annotated[float, Field(gt=0)] | None = None
    momentum: Annotated[float, Field(ge=0, lt=1)] | None = None
    nesterov: bool | None = None
    weight_decay: Annotated[float, Field(ge=0)] | None = None
    lr_schedule: LrSchedule = Field(
        None, description="As train.lr_schedule, its epochs counted from the phase's first."
    )
    warmup_epochs: Annotated[float, Field(ge=0)] | None = None
    min_learning_rate: Annotated[float, Field(ge=0)] | None = None


class _PhasedEpochs:
    """``train.epochs`` of a ``train:`` with phases, before its field is checked: the
    value given (None when left out) and the sum of the phases' epochs."""

    def __init__(self, given, total: int):
        self.given, self.total = given, total


def _phase_update(phase: Phase, optimizer) -> dict[str, Any]:
    """The fields of ``train:`` (whose optimiser is ``optimizer``) that ``phase``
    changes, as :meth:`Train.phase` applies them."""
    given = phase.model_fields_set
    update: dict[str, Any] = {"epochs": phase.epochs, "phases": None}
    if "optimizer" in given and phase.optimizer != optimizer:
        update.update(dict.fromkeys(OPTIMIZER_OPTIONS))  # another optimiser's options
    for name in PHASE_FIELDS:
        if name in given:
            update[name] = getattr(phase, name)
    return update


class Train(_Model):
    """How ``nincompile train`` fits the model (also used by generated code)."""

    optimizer: Literal[tuple(OPTIMIZERS)] = "adam"
    learning_rate: Annotated[float, Field(gt=0)] = 1e-3
    momentum: Annotated[float, Field(ge=0, lt=1)] | None = None
    nesterov: bool | None = None
    weight_decay: Annotated[float, Field(ge=0)] | None = Field(
        None, description="Decoupled weight decay of the optimiser (adamw, sgd)."
    )
    loss: Literal[tuple(LOSSES)] = "sparse_categorical_crossentropy"
    from_logits: bool = False
    label_smoothing: Annotated[float, Field(ge=0, lt=1)] = Field(
        0.0, description="Label smoothing of the cross-entropy loss (0 for none)."
    )
    metrics: list[Literal["accuracy", "top_5_accuracy"]] = Field(
        default_factory=lambda: ["accuracy"]
    )
    batch_size: Annotated[int, Field(ge=1)] = 128
    epochs: Annotated[int, Field(ge=1)] = 10
    lr_schedule: LrSchedule = Field(
        None,
        description="Step schedule {first_epoch: learning_rate, ...} (0-based epochs), or "
        "'constant', 'cosine' (decay to min_learning_rate) or 'onecycle' (linear warm-up to "
        "learning_rate, then linear decay to min_learning_rate).",
    )
    warmup_epochs: Annotated[float, Field(ge=0)] | None = Field(
        None,
        description="Linear warm-up from learning_rate/25 over this many epochs "
        "(default: 0, or 30% of the epochs for onecycle).",
    )
    min_learning_rate: Annotated[float, Field(ge=0)] = Field(
        0.0, description="Where cosine and onecycle end."
    )
    mixed_precision: bool | Literal["float16", "bfloat16"] = Field(
        False, description="Mixed precision: true (float16), 'float16' or 'bfloat16'."
    )
    jit_compile: bool | Literal["auto"] = Field(
        "auto",
        description="XLA/jit compilation of the training step; 'auto': on for JAX and for "
        "TensorFlow on a GPU, off otherwise (it is slower on CPU).",
    )
    seed: int = 0
    init_weights: Annotated[str, Field(min_length=1)] | None = Field(
        None,
        description="Start from these weights (as train --weights): a .keras or .weights.h5 "
        "file, a run folder (its best.keras, else model.keras) or keras:NAME; loaded by "
        "graph position with every shape checked, as build --weights.",
    )
    init_skip: list[LayerSelector] = Field(
        default_factory=list,
        description="Layer or item names not loaded from init_weights (they keep their "
        "initial values), e.g. a head with another number of classes.",
    )
    freeze: FreezeSetting | None = Field(
        None,
        description="Layer or item names whose weights do not train ([stage1, stage2]), or "
        "{all_but: [head3]}; a frozen batch norm runs in inference mode.",
    )
    phases: Annotated[list[Phase], Field(min_length=1)] | None = Field(
        None,
        description="Train in phases, one after the other in one run: each its epochs, and "
        "its own freeze, optimiser and schedule (what it leaves out is train:'s); "
        "train.epochs is their sum.",
    )

    @model_validator(mode="before")
    @classmethod
    def _phased_epochs(cls, data: Any) -> Any:
        if not isinstance(data, dict) or not isinstance(data.get("phases"), list):
            return data
        if not data["phases"]:
            return data  # refused as an empty list
        epochs = [p.get("epochs") if isinstance(p, dict) else None for p in data["phases"]]
        if not all(type(e) is int for e in epochs):
            return data  # the phases' own errors say what is wrong
        return {**data, "epochs": _PhasedEpochs(data.get("epochs"), sum(epochs))}

    @field_validator("epochs", mode="before")
    @classmethod
    def _epochs_of_phases(cls, value: Any) -> Any:
        if not isinstance(value, _PhasedEpochs):
            return value
        if value.given is not None and value.given != value.total:
            raise PydanticCustomError(
                "phases",
                "with train.phases, train.epochs is the sum of the phases' epochs, {total}; "
                "received {received}: change the phases' epochs instead "
                "(--set train.phases.0.epochs=N), or leave train.epochs out "
                "(--set train.epochs=null)",
                {"total": value.total, "received": repr(value.given)},
            )
        return value.total

    @model_validator(mode="after")
    def _sgd_only(self) -> Train:
        if self.optimizer != "sgd" and (self.momentum is not None or self.nesterov is not None):
            raise PydanticCustomError(
                "train", "'momentum' and 'nesterov' apply to optimizer sgd only"
            )
        return self

    @field_validator("phases")
    @classmethod
    def _phase_optimizers(cls, phases: Any, info: ValidationInfo) -> Any:
        for k, phase in enumerate(phases or ()):
            merged = {**info.data, **_phase_update(phase, info.data.get("optimizer"))}
            if merged.get("optimizer") != "sgd" and (
                merged.get("momentum") is not None or merged.get("nesterov") is not None
            ):
                raise PydanticCustomError(
                    "phases",
                    "phase {n} (train.phases[{k}]) trains with optimizer {opt}, but "
                    "'momentum' and 'nesterov' apply to optimizer sgd only (a phase that names "
                    "another optimizer does not keep train's momentum and nesterov)",
                    {"n": k + 1, "k": k, "opt": merged.get("optimizer")},
                )
        return phases

    def phase(self, k: int) -> Train:
        """Phase ``k`` as a ``train:`` of its own: its epochs, freeze, optimiser and
        schedule, the rest this section's; no phases."""
        return self.model_copy(update=_phase_update(self.phases[k], self.optimizer))

    def plan(self) -> list[Train]:
        """The phases of training, each as :meth:`phase` gives it; one for a ``train:``
        without phases (this section)."""
        if not self.phases:
            return [self]
        return [self.phase(k) for k in range(len(self.phases))]

    def phase_of(self, epoch: int) -> int:
        """The phase (0-based) epoch ``epoch`` (0-based) is in (the last one past the end)."""
        first = 0
        for k, phase in enumerate(self.plan()):
            first += phase.epochs
            if epoch < first:
                return k
        return len(self.plan()) - 1

    def phase_start(self, k: int) -> int:
        """The first epoch (0-based) of phase ``k``."""
        return sum(p.epochs for p in self.plan()[:k])


class Augment(_Model):
    """Random augmentation during training only (never in the exported model)."""

    flip: Literal["horizontal", "vertical", "horizontal_and_vertical"] | None = None
    shift: Annotated[float, Field(ge=0, lt=1)] | None = Field(
        None,
        description="Random translation by up to this fraction of height and width, "
        "filled with 0 after normalisation (the NIN seed's 0.125).",
    )
    crop: Annotated[int, Field(ge=1)] | None = Field(
        None, description="Random crop after zero-padding this many pixels on each side."
    )
    cutout: Annotated[int, Field(ge=1)] | None = Field(
        None, description="Zero a random square of this many pixels per image."
    )


DATASETS = ("cifar10", "fashion_mnist", "mnist", "folder", "synthetic")


class Data(_Model):
    """Where the data comes from and how pixels are normalised: ``(x - mean) / std``
    with pixels in 0..255 (without mean/std: ``x / 255``)."""

    dataset: Literal["cifar10", "fashion_mnist", "mnist", "folder", "synthetic"] | None = Field(
        None,
        description="cifar10, fashion_mnist, mnist (Keras's loaders, or local files with "
        "--data), folder (class sub-folders at 'path' or --data), synthetic (generated "
        "images a model can learn, for tests and benchmarks).",
    )
    path: str | None = Field(
        None,
        description="Local data (as --data): a folder of class sub-folders, a "
        "cifar-10-batches-py folder, cifar-10-python.tar.gz or a folder of idx files.",
    )
    classes: list[str] | None = None
    mean: list[float] | None = None
    std: list[Annotated[float, Field(gt=0)]] | None = None
    validation_split: Annotated[float, Field(ge=0, lt=1)] = 0.1
    split_seed: int = Field(
        0,
        description="Seed of the validation split and of data.limit's subset (not "
        "train.seed, so runs with different seeds see the same split).",
    )
    limit: Annotated[int, Field(ge=1)] | None = Field(
        None,
        description="Use at most this many training images (stratified, seeded); "
        "the number of synthetic images (default 2048).",
    )
    resize: Literal["pad", "stretch", "crop"] = Field(
        "pad",
        description="How images of another size reach the input size: resize keeping the "
        "aspect ratio and pad, stretch, or resize and crop to the aspect ratio.",
    )
    augment: Augment | None = None
    on_device: Literal["auto"] | StrictBool = Field(
        "auto",
        description="Keep the training images on the device for the whole run (JAX or "
        "PyTorch): true, false, or auto (on a GPU when they take at most half its free "
        "memory).",
    )

    @model_validator(mode="after")
    def _pairs(self) -> Data:
        if (self.mean is None) != (self.std is None):
            raise PydanticCustomError("data", "give both 'mean' and 'std', or neither")
        if self.mean is not None and len(self.mean) != len(self.std):
            raise PydanticCustomError(
                "data",
                "'mean' and 'std' need one value per channel; received {m} and {s} values",
                {"m": len(self.mean), "s": len(self.std)},
            )
        if self.classes is not None and len(set(self.classes)) != len(self.classes):
            raise PydanticCustomError("data", "data.classes has a repeated name")
        return self


class Spec(_Model):
    """A nincompile model spec (see the README's tour of the format)."""

    model_config = ConfigDict(title="nincompile spec")  # merged with _Model's

    name: Identifier
    description: str | None = None
    params: dict[Identifier, Any] = Field(
        default_factory=dict,
        description="The spec's own variables ($name in every item and in 'input'), e.g. "
        "a width multiplier; a family member sets them.",
    )
    family: dict[Identifier, dict[Identifier, Any]] | None = Field(
        None,
        description="Members of a model family: member -> values of 'params' (and its own "
        "'expect'); the spec expands into one model per member, named <name>_<member>.",
    )
    input: tuple[Int1, Int1, Int1] = Field(description="[height, width, channels]")
    defaults: Defaults = Field(default_factory=Defaults)
    blocks: dict[Identifier, BlockDef] = Field(default_factory=dict)
    stages: list[Stage] = Field(min_length=1)
    head: list[Stage] = Field(default_factory=list)
    expect: Expect | None = None
    train: Train | None = None
    data: Data | None = None
    variants: dict[str, Annotated[list[Any], Field(min_length=1)]] | None = Field(
        None,
        description="Spec fields (dotted paths, as --set) and their alternative values; "
        "the spec expands into one model per combination, named <name>_<values>.",
    )

    @field_validator("input", mode="before")
    @classmethod
    def _input_list(cls, value: Any, info: ValidationInfo) -> Any:
        if not isinstance(value, list | tuple) or len(value) != 3:
            raise PydanticCustomError(
                "input",
                "expected [height, width, channels], e.g. [32, 32, 3]; received {received}",
                {"received": repr(value)},
            )
        params = info.data.get("params") or {}
        return [_evaluated(v, params) for v in value]

    @model_validator(mode="after")
    def _classes_match(self) -> Spec:
        if self.data and self.data.mean is not None and len(self.data.mean) != self.input[2]:
            raise PydanticCustomError(
                "data",
                "data.mean has {m} values but the input has {c} channels",
                {"m": len(self.data.mean), "c": self.input[2]},
            )
        return self


def _editor_friendly(node: Any) -> Any:
    """Stage unions: drop the catch-all ``{}`` member (it only serves error messages)
    and use ``anyOf``; every real member forbids the others' keys, so they cannot
    overlap, but a bare-word item like ``relu`` would otherwise match twice."""
    if isinstance(node, dict):
        out = {k: _editor_friendly(v) for k, v in node.items()}
        if "oneOf" in out:
            members = [m for m in out.pop("oneOf") if m != {}]
            out["anyOf"] = members
        return out
    if isinstance(node, list):
        return [_editor_friendly(v) for v in node]
    return node


def json_schema() -> dict:
    """The JSON Schema of a spec, for editors (yaml-language-server) and docs."""
    schema = _editor_friendly(Spec.model_json_schema(by_alias=True))
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    return schema
