"""Resource guard: refuse what cannot fit in memory before anything is allocated.

**Specs.**  From the IR alone (no TensorFlow, no Keras) :func:`estimate` says what a
model needs, in bytes:

* for inference (a spec without ``train:``): its float32 weights (``params * 4``) and
  the largest activation of one batch (``prod(shape) * batch * 4``, batch 1);
* for training (a spec with ``train:``, batch ``train.batch_size``): the weights, their
  gradients (one per trainable weight), the optimiser's slots (Adam, AdamW and Nadam
  keep 2 per trainable weight, RMSprop 1, SGD 1 with momentum and 0 without), the
  copies made while each epoch's checkpoint (weights and slots, as arrays) and
  ``model.keras`` (its weights file is built in memory) are written, every layer's
  output for one batch that back-propagation goes through (the input included; not
  the outputs of frozen layers before the first trainable one, through which no
  gradient flows) and a working set of twice the largest of them for the backward
  pass; float16 or bfloat16 activations under mixed precision.  With
  ``train.phases``, the largest of the phases' estimates.

``check`` and ``build`` refuse a model over a limit with the estimate, the limit, the
layer responsible (located in the spec) and how to raise the limit;
:func:`nincompile.api.build` applies the same guard, so ``train`` and ``export`` never
hand Keras a model that cannot fit.  ``bench/bench_memory.py`` compares the training
estimate with the peak resident memory measured while training.

**Saved models.**  :func:`check_keras_file` sizes a ``.keras`` file before Keras
builds it: the parameters its ``config.json`` declares (read with a bound, sized per
layer class from the layer's configuration and input shape; building them peaks at
about 3 times their size) and the arrays its ``model.weights.h5`` declares (shapes
from HDF5 metadata, no array is read), plus the largest activation of a batch.
:func:`check_weights_file` sizes a ``.weights.h5`` file (``build --weights``, ``train
--weights``) the same way, from the arrays its HDF5 metadata declares.

**Limits**, in order of precedence: ``--max-params``/``--max-memory`` (a command's
``--max-memory`` holds for every check the command makes, through
:func:`memory_limit`), the environment variables ``NINCOMPILE_MAX_PARAMS`` and
``NINCOMPILE_MAX_MEMORY`` (every command), the defaults: 2 billion parameters, and
the memory this machine has available now (``MemAvailable`` in ``/proc/meminfo``,
lowered by a cgroup's limit less its use; 16 GiB when neither can be read).

**Inputs.**  :func:`open_regular` opens a file only if it is a regular file: a FIFO,
a device or a socket is refused before it is opened (opening a FIFO blocks, reading
``/dev/zero`` never ends).
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import math
import os
import re
import stat
import zipfile
from dataclasses import dataclass, field

from .errors import (
    ModelLoadError,
    ModelTooLarge,
    NincompileError,
    SpecError,
    SpecProblem,
    first_line,
)
from .files import file_kind, open_checked
from .units import format_bytes

BYTES_PER_VALUE = 4  # float32
DEFAULT_MAX_PARAMS = 2_000_000_000
DEFAULT_MAX_MEMORY = 16 * 2**30  # when the machine's memory cannot be read
PARAMS_ENV = "NINCOMPILE_MAX_PARAMS"
MEMORY_ENV = "NINCOMPILE_MAX_MEMORY"
MEMINFO = "/proc/meminfo"
#: (limit, usage) file pairs of cgroup v2 and v1
CGROUP_FILES = (
    ("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory.current"),
    ("/sys/fs/cgroup/memory/memory.limit_in_bytes", "/sys/fs/cgroup/memory/memory.usage_in_bytes"),
)
#: Optimiser variables per trainable weight (Keras's optimisers).
OPTIMIZER_SLOTS = {"adam": 2, "adamw": 2, "nadam": 2, "rmsprop": 1, "sgd": 0}


class ResourceError(SpecError):
    """A model too large to allocate: its estimate, the limit and how to raise it."""


class LimitError(NincompileError):
    """A limit given on the command line or in the environment that cannot be read."""


# ------------------------------------------------------------------ quantities

_SIZE_UNITS = {
    "": 1,
    "b": 1,
    "k": 2**10,
    "kib": 2**10,
    "kb": 10**3,
    "m": 2**20,
    "mib": 2**20,
    "mb": 10**6,
    "g": 2**30,
    "gib": 2**30,
    "gb": 10**9,
    "t": 2**40,
    "tib": 2**40,
    "tb": 10**12,
}
_COUNT_UNITS = {"": 1, "k": 10**3, "m": 10**6, "g": 10**9, "b": 10**9, "t": 10**12}
_NUMBER = re.compile(r"\s*([0-9][0-9_,]*(?:\.[0-9]*)?(?:e[+-]?[0-9]+)?)\s*([a-z]*)\s*", re.I)


def _parse(text: str, units: dict[str, int], what: str, example: str) -> int:
    m = _NUMBER.fullmatch(str(text))
    unit = m.group(2).lower() if m else ""
    if not m or unit not in units:
        raise LimitError(f"cannot read {text!r} as {what}; expected e.g. {example}")
    number = float(m.group(1).replace("_", "").replace(",", ""))
    value = number * units[unit]
    if not math.isfinite(value):
        raise LimitError(f"{what} {text!r} is too large to be a limit")
    if value < 1:
        raise LimitError(f"{what} must be at least 1; received {text!r}")
    return int(value)


def parse_size(text: str) -> int:
    """Bytes in ``"16GiB"``, ``"500 MB"``, ``"2g"`` (K/M/G/T alone are binary), ``"1e9"``."""
    return _parse(text, _SIZE_UNITS, "a memory size", "16GiB, 512MiB, 20GB or 2e10")


def parse_count(text: str) -> int:
    """A count in ``"2000000000"``, ``"2_000_000_000"``, ``"3e9"``, ``"3G"``, ``"500M"``."""
    return _parse(text, _COUNT_UNITS, "a parameter count", "3000000000, 3e9 or 3G")


# ---------------------------------------------------------------------- limits


def _read_int(path: str) -> int | None:
    try:
        with open(path, encoding="ascii") as f:
            text = f.read(64).strip()
    except (OSError, UnicodeDecodeError):
        return None
    return int(text) if text.isdigit() else None


def _meminfo_available() -> int | None:
    try:
        with open(MEMINFO, encoding="ascii", errors="replace") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    parts = line.split()
                    if len(parts) >= 2 and parts[1].isdigit():
                        unit = parts[2].lower() if len(parts) > 2 else "kb"
                        return int(parts[1]) * (1024 if unit == "kb" else 1)
    except OSError:
        return None
    return None


def _sysconf_available() -> int | None:
    try:
        pages = os.sysconf("SC_AVPHYS_PAGES")
        size = os.sysconf("SC_PAGE_SIZE")
    except (AttributeError, ValueError, OSError):
        return None
    return pages * size if pages > 0 and size > 0 else None


def _cgroup_available() -> int | None:
    for limit_file, usage_file in CGROUP_FILES:
        limit = _read_int(limit_file)  # "max" (no limit) reads as None
        if limit is None or limit >= 2**60:  # v1 writes "no limit" as a huge number
            continue
        usage = _read_int(usage_file) or 0
        return max(limit - usage, 0)
    return None


def available_memory() -> tuple[int, str] | None:
    """``(bytes, where from)``: the memory this process can still have now, or None."""
    found = []
    avail = _meminfo_available()
    if avail is not None:
        found.append((avail, f"the memory available now, MemAvailable in {MEMINFO}"))
    else:
        avail = _sysconf_available()
        if avail is not None:
            found.append((avail, "the memory available now, from sysconf"))
    cgroup = _cgroup_available()
    if cgroup is not None:
        found.append((cgroup, "what this cgroup's memory limit leaves"))
    return min(found) if found else None


#: The running command's ``--max-memory`` (see :func:`memory_limit`), or None.
_command_memory: int | None = None


@contextlib.contextmanager
def memory_limit(size: int | None):
    """While the block runs, ``size`` (when not None) is the memory limit that every
    :meth:`Limits.from_env` gives, as ``--max-memory``: a command's option reaches
    every check it makes (the model's estimate, the data's caps, the decoding and
    cache budgets, in any thread) without being handed down to each."""
    global _command_memory
    previous = _command_memory
    if size is not None:
        _command_memory = size
    try:
        yield
    finally:
        _command_memory = previous


@dataclass(frozen=True)
class Limits:
    max_params: int = DEFAULT_MAX_PARAMS
    max_memory: int = DEFAULT_MAX_MEMORY
    memory_source: str = "the default"

    @classmethod
    def from_env(cls, max_params: int | None = None, max_memory: int | None = None) -> Limits:
        """The limits: the arguments where given (for memory, else the running
        command's ``--max-memory``: :func:`memory_limit`), else the environment, else
        the defaults (2 billion parameters; the memory available now)."""
        if max_memory is None:
            max_memory = _command_memory
        if max_params is None:
            raw = os.environ.get(PARAMS_ENV, "").strip()
            max_params = _env(raw, parse_count, PARAMS_ENV) if raw else DEFAULT_MAX_PARAMS
        source = "--max-memory"
        if max_memory is None:
            raw = os.environ.get(MEMORY_ENV, "").strip()
            if raw:
                max_memory, source = _env(raw, parse_size, MEMORY_ENV), MEMORY_ENV
            else:
                found = available_memory()
                if found is not None:
                    max_memory, source = max(found[0], 1), found[1]
                else:
                    max_memory = DEFAULT_MAX_MEMORY
                    source = "the default; this machine's available memory could not be read"
        return cls(max_params, max_memory, source)

    def memory_text(self) -> str:
        """``16.0 GiB (NINCOMPILE_MAX_MEMORY)``."""
        return f"{format_bytes(self.max_memory)} ({self.memory_source})"


def _env(raw: str, parse, var: str) -> int:
    try:
        return parse(raw)
    except LimitError as err:
        raise LimitError(f"environment variable {var}: {err}") from None


RAISE_MEMORY = f"raise the limit with --max-memory SIZE or the environment variable {MEMORY_ENV}"


# -------------------------------------------------------------------- estimate


@dataclass(frozen=True)
class Estimate:
    """What a model needs for one batch: for inference (``optimizer`` None), weights
    and the largest activation; for training, also gradients, optimiser slots, every
    activation kept for back-propagation and the backward pass's working set."""

    params: int
    batch: int
    weights_bytes: int
    activation_bytes: int  # the largest layer output of one batch
    activation_layer: str  # the layer that gives it
    params_layer: str  # the layer with the most parameters
    trainable: int = 0
    optimizer: str | None = None  # the optimiser when training; None for inference
    slots: int = 0  # optimiser variables per trainable weight
    gradient_bytes: int = 0
    optimizer_bytes: int = 0
    kept_activation_bytes: int = 0  # the outputs back-propagation needs, of one batch
    saving_bytes: int = 0  # copies made while a checkpoint and model.keras are written
    value_bytes: int = BYTES_PER_VALUE  # bytes per activation value
    kept_largest_bytes: int = 0  # the largest of the outputs kept
    kept_largest_layer: str = ""
    frozen_front: int = 0  # layers before any trainable one: no back-propagation there
    phase: int | None = None  # with train.phases: the phase estimated (the largest)
    phases: int = 0

    @property
    def training(self) -> bool:
        return self.optimizer is not None

    @property
    def backward_bytes(self) -> int:
        """The backward pass's working set: the gradient of the largest activation
        back-propagation goes through and of its input, about twice that activation."""
        return 2 * self.kept_largest_bytes if self.training else 0

    @property
    def parameter_bytes(self) -> int:
        """Everything that grows with the parameters."""
        return self.weights_bytes + self.gradient_bytes + self.optimizer_bytes + self.saving_bytes

    @property
    def batch_bytes(self) -> int:
        """Everything that grows with the batch."""
        if self.training:
            return self.kept_activation_bytes + self.backward_bytes
        return self.activation_bytes

    @property
    def total_bytes(self) -> int:
        return self.parameter_bytes + self.batch_bytes

    def describe(self) -> str:
        weights = f"weights {format_bytes(self.weights_bytes)} ({self.params:,} parameters)"
        if not self.training:
            return (
                f"{weights} + largest activation {format_bytes(self.activation_bytes)} "
                f"('{self.activation_layer}', batch {self.batch}) = "
                f"{format_bytes(self.total_bytes)}"
            )
        kept = "every layer's output"
        if self.frozen_front:
            kept = (
                f"the outputs back-propagation goes through: none of the {self.frozen_front} "
                "frozen layers before the first trainable one"
            )
        phase = ""
        if self.phase is not None:
            phase = f" (phase {self.phase} of {self.phases}, the largest of train.phases)"
        return (
            f"{weights} + gradients {format_bytes(self.gradient_bytes)} + optimiser slots "
            f"{format_bytes(self.optimizer_bytes)} ({self.optimizer}: {self.slots} per "
            f"trainable weight) + saving {format_bytes(self.saving_bytes)} (the checkpoint's "
            f"copy of weights and slots, and model.keras's) + activations kept for "
            f"back-propagation {format_bytes(self.kept_activation_bytes)} ({kept}, batch "
            f"{self.batch}) + backward working set {format_bytes(self.backward_bytes)} "
            f"(twice the largest activation kept, '{self.kept_largest_layer}') = "
            f"{format_bytes(self.total_bytes)}{phase}"
        )


def batch_of(spec) -> int:
    return spec.train.batch_size if spec.train is not None else 1


def optimizer_slots(train) -> int:
    """Optimiser variables Keras keeps per trainable weight for ``train`` (a spec's
    ``train:`` section)."""
    slots = OPTIMIZER_SLOTS.get(train.optimizer, 2)
    if train.optimizer == "sgd" and train.momentum:
        slots = 1
    return slots


def _activation_bytes(train) -> int:
    mixed = train.mixed_precision
    return 2 if mixed is True or mixed in ("float16", "bfloat16") else BYTES_PER_VALUE


def _backward(graph, layers) -> set[str]:
    """The layers back-propagation goes through: those with trainable weights and every
    layer after one (the gradient flows back through them), with their inputs (whose
    values the backward pass reads).  A frozen layer before every trainable one needs
    no gradient, and its output is not kept unless a layer of the set reads it."""
    trainable = {layer.name for layer in layers if layer.params.trainable}
    through: set[str] = set()
    for node in graph.nodes:
        if node.name in trainable or any(i in through for i in node.inputs):
            through.add(node.name)
    kept = set(through)
    for node in graph.nodes:
        if node.name in through:
            kept.update(node.inputs)
    return kept


def estimate(graph, batch: int = 1, train=None) -> Estimate:
    """The estimate for an IR graph (:class:`nincompile.ir.Graph`): for inference, or
    for training with ``train`` (a spec's ``train:`` section).  With ``train.phases``,
    the largest of the phases' estimates (each with its freeze and its optimiser)."""
    if train is not None and train.phases:
        frozen = graph.phase_frozen or (graph.frozen,) * len(train.phases)
        each = [
            dataclasses.replace(
                _estimate(graph, batch, phase, frozen[k]), phase=k + 1, phases=len(frozen)
            )
            for k, phase in enumerate(train.plan())
        ]
        return max(each, key=lambda est: est.total_bytes)
    return _estimate(graph, batch, train, None)


def _estimate(graph, batch: int, train, frozen) -> Estimate:
    params = trainable = 0
    act, act_layer = -1, ""
    most, most_layer = -1, ""
    value_bytes = BYTES_PER_VALUE if train is None else _activation_bytes(train)
    layers = graph.layers(frozen)
    for layer in layers:
        n = layer.params.total
        params += n
        trainable += layer.params.trainable
        if n > most:
            most, most_layer = n, layer.name
        size = math.prod(layer.output_shape)
        if size > act:
            act, act_layer = size, layer.name
    act_bytes = max(act, 0) * batch * value_bytes
    common = dict(
        params=params,
        batch=batch,
        weights_bytes=params * BYTES_PER_VALUE,
        activation_bytes=act_bytes,
        activation_layer=act_layer,
        params_layer=most_layer,
        trainable=trainable,
        value_bytes=value_bytes,
    )
    if train is None:
        return Estimate(**common)
    slots = optimizer_slots(train)
    kept = _backward(graph, layers)
    values, largest, largest_layer = 0, 0, ""  # the kept outputs of one image
    for layer in layers:
        if layer.name in kept:
            size = math.prod(layer.output_shape)
            values += size
            if size > largest:
                largest, largest_layer = size, layer.name
    front = 0  # frozen layers before the first one back-propagation goes through
    for layer in layers:
        if layer.name in kept:
            break
        front += 1
    return Estimate(
        **common,
        optimizer=train.optimizer,
        slots=slots,
        gradient_bytes=trainable * BYTES_PER_VALUE,
        optimizer_bytes=slots * trainable * BYTES_PER_VALUE,
        saving_bytes=(2 * params + slots * trainable) * BYTES_PER_VALUE,
        kept_activation_bytes=values * batch * value_bytes,
        kept_largest_bytes=largest * batch * value_bytes,
        kept_largest_layer=largest_layer,
        frozen_front=front,
    )


def estimate_of(compiled) -> Estimate:
    """The estimate of a compiled spec: for training when it has ``train:`` (batch
    ``train.batch_size``), else for inference on one image."""
    spec = compiled.spec
    return estimate(compiled.graph, batch_of(spec), spec.train)


def check(compiled, limits: Limits | None = None) -> Estimate:
    """The estimate of a compiled spec (:func:`estimate_of`); raise
    :class:`ResourceError` if it is over ``limits`` (default :meth:`Limits.from_env`)."""
    limits = limits or Limits.from_env()
    est = estimate_of(compiled)
    nodes = {n.name: n for n in compiled.graph.nodes}
    source = compiled.source

    def problem(message: str, layer: str) -> SpecProblem:
        node = nodes.get(layer)
        path = tuple(node.source) if node is not None else ()
        line, col = source.locate(path)
        return SpecProblem(message, path, source.file, line, col)

    name = compiled.name
    problems = []
    if est.params > limits.max_params:
        problems.append(
            problem(
                f"{name} is too large: {est.params:,} parameters, over the limit of "
                f"{limits.max_params:,} (the largest layer, '{est.params_layer}', here). "
                f"If the model is meant to be this large, raise the limit with --max-params "
                f"(build, check) or the environment variable {PARAMS_ENV}.",
                est.params_layer,
            )
        )
    if est.total_bytes > limits.max_memory:
        layer = est.activation_layer if est.batch_bytes > est.parameter_bytes else est.params_layer
        what = "for training" if est.training else "(float32)"
        problems.append(
            problem(
                f"{name} does not fit in memory {what}: {est.describe()}, over the limit "
                f"of {limits.memory_text()}. If the model is meant to be this large, "
                f"{RAISE_MEMORY}"
                + (", or lower train.batch_size." if layer == est.activation_layer else "."),
                layer,
            )
        )
    if problems:
        raise ResourceError(problems)
    return est


# --------------------------------------------------------------------- inputs


class NotRegularFile(OSError):
    """A path that is not a regular file: ``kind`` says what it is (``a FIFO``)."""

    def __init__(self, path, kind: str):
        super().__init__(f"'{path}' is not a regular file ({kind})")
        self.path = path
        self.kind = kind


def not_regular(path) -> str | None:
    """None if ``path`` is a regular file (links followed), else what it is; a path
    that does not exist raises FileNotFoundError."""
    mode = os.stat(path).st_mode
    return None if stat.S_ISREG(mode) else file_kind(mode)


def open_regular(path):
    """Open ``path`` for binary reading if it is a regular file (links followed).  A
    FIFO, device or socket raises :class:`NotRegularFile` without blocking: the file is
    opened non-blocking and checked with ``fstat`` before anything is read."""
    kind = not_regular(path)  # a device is refused before it is even opened
    if kind is not None:
        raise NotRegularFile(path, kind)
    # swapped for a FIFO since the stat above: refused by open_checked's fstat
    return open_checked(path, 0, lambda mode: NotRegularFile(path, file_kind(mode)))


# ---------------------------------------------------------------- saved models

#: config.json of a .keras file is read whole; the largest of Keras's applications is
#: under 1 MiB.
KERAS_CONFIG_MAX_BYTES = 32 * 2**20
#: HDF5 objects visited to sum model.weights.h5's declared arrays.
KERAS_H5_MAX_OBJECTS = 1_000_000
#: Peak memory of building a model from its config, in multiples of its weights.
LOAD_FACTOR = 3
_MAX_CONFIG_DEPTH = 200

#: Keras layers without variables.
_WEIGHTLESS = frozenset(
    """InputLayer Activation ReLU Softmax LeakyReLU ELU Flatten Reshape Permute Dropout
    SpatialDropout1D SpatialDropout2D SpatialDropout3D GaussianDropout GaussianNoise
    AlphaDropout MaxPooling1D MaxPooling2D MaxPooling3D AveragePooling1D AveragePooling2D
    AveragePooling3D GlobalAveragePooling1D GlobalAveragePooling2D GlobalAveragePooling3D
    GlobalMaxPooling1D GlobalMaxPooling2D GlobalMaxPooling3D ZeroPadding1D ZeroPadding2D
    ZeroPadding3D Cropping1D Cropping2D Cropping3D UpSampling1D UpSampling2D UpSampling3D
    Add Subtract Multiply Average Maximum Minimum Concatenate Dot Rescaling Resizing
    CenterCrop RandomFlip RandomRotation RandomTranslation RandomZoom RandomContrast
    RandomCrop RandomBrightness RepeatVector Identity Masking UnitNormalization
    ActivityRegularization Lambda""".split()
)


def _ints(value) -> list[int]:
    """An int or a list of ints from a layer config (anything else: ValueError)."""
    items = value if isinstance(value, list) else [value]
    if not items or not all(isinstance(v, int) and not isinstance(v, bool) for v in items):
        raise ValueError(value)
    return items


def _dim(shape, axis: int) -> int:
    value = shape[axis]
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise ValueError(shape)
    return value


def _layer_params(kind: str, cfg: dict, shape) -> int | None:
    """Parameters a Keras layer of class ``kind`` with config ``cfg`` creates when built
    on ``shape`` (its input shape, batch first); None for a class not sized here."""
    bias = bool(cfg.get("use_bias", True))

    def channels():
        return _dim(shape, 1 if cfg.get("data_format") == "channels_first" else -1)

    if kind in _WEIGHTLESS:
        return 0
    if kind == "Dense":
        units = _ints(cfg["units"])[0]
        return _dim(shape, -1) * units + (units if bias else 0)
    m = re.fullmatch(r"(Conv|DepthwiseConv|SeparableConv)([123])D(Transpose)?", kind)
    if m:
        k = math.prod(_ints(cfg["kernel_size"]))
        c = channels()
        if m.group(1) == "DepthwiseConv":
            out = c * _ints(cfg.get("depth_multiplier", 1))[0]
            return k * out + (out if bias else 0)
        filters = _ints(cfg["filters"])[0]
        if m.group(1) == "SeparableConv":
            mid = c * _ints(cfg.get("depth_multiplier", 1))[0]
            return k * mid + mid * filters + (filters if bias else 0)
        groups = 1 if m.group(3) else max(_ints(cfg.get("groups", 1))[0], 1)
        return k * (c // groups) * filters + (filters if bias else 0)
    if kind == "BatchNormalization":
        c = _dim(shape, _ints(cfg.get("axis", -1))[0])
        return c * (2 + bool(cfg.get("center", True)) + bool(cfg.get("scale", True)))
    if kind in ("LayerNormalization", "RMSNormalization"):
        n = math.prod(_dim(shape, a) for a in _ints(cfg.get("axis", -1)))
        center = kind == "LayerNormalization" and bool(cfg.get("center", True))
        return n * (center + bool(cfg.get("scale", True)))
    if kind == "GroupNormalization":
        c = _dim(shape, _ints(cfg.get("axis", -1))[0])
        return c * (bool(cfg.get("center", True)) + bool(cfg.get("scale", True)))
    if kind in ("LayerScale", "nincompile>LayerScale"):
        return _dim(shape, -1)
    if kind == "Normalization":
        return 2 * _dim(shape, -1) + 1
    if kind == "PReLU":
        return math.prod(_dim(shape, i) for i in range(1, len(shape)))
    if kind == "Embedding":
        return _ints(cfg["input_dim"])[0] * _ints(cfg["output_dim"])[0]
    if kind in ("LSTM", "GRU", "SimpleRNN"):
        units = _ints(cfg["units"])[0]
        gates = {"LSTM": 4, "GRU": 3, "SimpleRNN": 1}[kind]
        biases = 2 if kind == "GRU" and cfg.get("reset_after", True) else 1
        return gates * units * (_dim(shape, -1) + units) + (gates * units * biases if bias else 0)
    return None


def _shape_of(entry: dict):
    """The input shape a layer entry declares: ``build_config.input_shape``, else the
    shape of its first inbound tensor."""
    build = entry.get("build_config")
    if isinstance(build, dict):
        shape = build.get("input_shape")
        if isinstance(shape, list) and shape and isinstance(shape[0], list):
            shape = shape[0]  # several inputs: the first (merges have no weights)
        if isinstance(shape, list):
            return shape
    nodes = entry.get("inbound_nodes")
    try:
        arg = nodes[0]["args"][0]
        if isinstance(arg, list):
            arg = arg[0]
        shape = arg["config"]["shape"]
        return shape if isinstance(shape, list) else None
    except (KeyError, IndexError, TypeError):
        return None


def _tensor_shapes(entry: dict):
    """Every tensor shape an entry declares (its inputs; an InputLayer's batch shape)."""
    cfg = entry.get("config")
    if isinstance(cfg, dict):
        for key in ("batch_shape", "batch_input_shape"):
            if isinstance(cfg.get(key), list):
                yield cfg[key]
    shape = _shape_of(entry)
    if shape is not None:
        yield shape


def _values(shape) -> int:
    """Values of one sample of ``shape`` (batch axis dropped; unknown axes count 1)."""
    out = 1
    for d in shape[1:]:
        if isinstance(d, int) and not isinstance(d, bool) and d > 0:
            out *= d
    return out


@dataclass
class _Walk:
    params: int = 0
    largest: int = -1
    largest_layer: str = ""
    activation: int = 0
    activation_layer: str = ""
    unsized: set = field(default_factory=set)

    def layer(self, entry, depth: int = 0, times: int = 1) -> None:
        if depth > _MAX_CONFIG_DEPTH:
            raise ValueError("the config is nested too deeply")
        if not isinstance(entry, dict):
            return
        kind = str(entry.get("class_name", ""))
        cfg = entry.get("config")
        cfg = cfg if isinstance(cfg, dict) else {}
        name = str(cfg.get("name", entry.get("name", kind)))
        for shape in _tensor_shapes(entry):
            n = _values(shape)
            if n > self.activation:
                self.activation, self.activation_layer = n, name
        if isinstance(cfg.get("layers"), list):  # a model inside the model
            for inner in cfg["layers"]:
                self.layer(inner, depth + 1, times)
            return
        if isinstance(cfg.get("layer"), dict):  # TimeDistributed, Bidirectional
            inner = dict(cfg["layer"])
            shape = _shape_of(entry)
            if shape is not None and "build_config" not in inner and kind == "TimeDistributed":
                inner["build_config"] = {"input_shape": [shape[0], *shape[2:]]}
            elif shape is not None and "build_config" not in inner:
                inner["build_config"] = {"input_shape": shape}
            self.layer(inner, depth + 1, times * (2 if kind == "Bidirectional" else 1))
            return
        try:
            n = _layer_params(kind, cfg, _shape_of(entry))
        except (KeyError, ValueError, TypeError, IndexError, OverflowError):
            n = None  # no shape, or a config Keras itself would refuse
        if n is None:
            self.unsized.add(kind)
            return
        n *= times
        self.params += n
        if n > self.largest:
            self.largest, self.largest_layer = n, f"'{name}' ({kind})"


@dataclass(frozen=True)
class KerasFileEstimate:
    """What loading a ``.keras`` file and running a batch through it would take."""

    path: str
    config_params: int  # parameters config.json declares (layers sized here)
    declared_bytes: int  # bytes of every array model.weights.h5 declares
    weights_member_bytes: int  # model.weights.h5 as stored (Keras reads it in whole)
    largest_layer: str  # the config's layer with the most parameters
    activation_values: int  # values of the largest tensor of one sample in the config
    activation_layer: str
    unsized: tuple[str, ...] = ()  # layer classes whose size comes from the weights only

    @property
    def build_bytes(self) -> int:
        """Building the model from its config: Keras's initialisers make each
        variable's value before it is assigned, about 3 times the weights at the peak
        (measured: 2.8x for ConvNeXt-Tiny, 3.0x for an oversized Dense layer)."""
        return LOAD_FACTOR * self.config_params * BYTES_PER_VALUE

    @property
    def read_bytes(self) -> int:
        """Reading the weights: Keras reads model.weights.h5 into memory, and every array
        it declares, before it checks its shape."""
        return max(self.declared_bytes, self.weights_member_bytes)

    def total_bytes(self, batch: int = 1) -> int:
        return self.build_bytes + self.read_bytes + self.activation_values * batch * BYTES_PER_VALUE

    def describe(self, batch: int = 1) -> str:
        act = self.activation_values * batch * BYTES_PER_VALUE
        layer = f", the largest {self.largest_layer}" if self.largest_layer else ""
        return (
            f"its config declares {self.config_params:,} parameters "
            f"({format_bytes(self.config_params * BYTES_PER_VALUE)}{layer}; building them "
            f"takes about {format_bytes(self.build_bytes)}) and model.weights.h5 declares "
            f"{format_bytes(self.declared_bytes)} of arrays "
            f"({format_bytes(self.weights_member_bytes)} stored); with the largest activation "
            f"of a batch of {batch} ({format_bytes(act)}, '{self.activation_layer}'), loading "
            f"and running it needs about {format_bytes(self.total_bytes(batch))}"
        )


class _TooManyObjects(Exception):
    pass


def _h5_declared(archive: zipfile.ZipFile, name: str) -> int:
    """Bytes of every dataset ``name`` (an HDF5 member) declares, from metadata only."""
    try:
        with archive.open(name) as raw:
            return _h5_declared_bytes(raw, name)
    except _TooManyObjects:
        raise
    except Exception:  # unreadable HDF5: Keras reports it when it loads the file
        return 0


def _h5_declared_bytes(file, name: str) -> int:
    """Bytes of every dataset the HDF5 ``file`` (a path or a binary file object)
    declares, from metadata only; :class:`_TooManyObjects` past
    :data:`KERAS_H5_MAX_OBJECTS` objects, h5py's errors for a file it cannot read."""
    import h5py

    total = 0
    seen = 0

    def visit(_path, obj):
        nonlocal total, seen
        seen += 1
        if seen > KERAS_H5_MAX_OBJECTS:
            return True  # stop: a real weights file has a few thousand objects
        if isinstance(obj, h5py.Dataset):
            shape = obj.shape or ()
            total += math.prod(int(d) for d in shape) * obj.dtype.itemsize
        return None

    with h5py.File(file, "r") as h5:
        h5.visititems(visit)
    if seen > KERAS_H5_MAX_OBJECTS:
        raise _TooManyObjects(f"{name} holds more than {KERAS_H5_MAX_OBJECTS:,} HDF5 objects")
    return total


def keras_file_estimate(path) -> KerasFileEstimate:
    """Size a ``.keras`` file from its config and its weights' metadata, reading no
    array and building nothing; a ModelLoadError if its config cannot be read."""
    shown = str(path)
    try:
        with zipfile.ZipFile(path) as archive:
            names = set(archive.namelist())
            cfg_info = archive.getinfo("config.json") if "config.json" in names else None
            walk = _Walk()
            if cfg_info is not None:
                if cfg_info.file_size > KERAS_CONFIG_MAX_BYTES:
                    raise ModelLoadError(
                        f"cannot load '{shown}': its config.json is {cfg_info.file_size:,} "
                        f"bytes; expected at most {KERAS_CONFIG_MAX_BYTES:,} (a model's "
                        "config is a few hundred KB)"
                    )
                with archive.open(cfg_info) as f:
                    text = f.read(KERAS_CONFIG_MAX_BYTES + 1)
                if len(text) > KERAS_CONFIG_MAX_BYTES:
                    raise ModelLoadError(f"cannot load '{shown}': its config.json is too large")
                config = json.loads(text)
                walk.layer(config)
            member = 0
            declared = 0
            if "model.weights.h5" in names:
                member = archive.getinfo("model.weights.h5").file_size
                declared = _h5_declared(archive, "model.weights.h5")
    except ModelLoadError:
        raise
    except (ValueError, RecursionError, _TooManyObjects) as err:
        raise ModelLoadError(
            f"cannot load '{shown}': corrupt or unsupported .keras file ({first_line(err)})"
        ) from None
    except (OSError, zipfile.BadZipFile, KeyError, EOFError) as err:
        raise ModelLoadError(
            f"cannot load '{shown}': corrupt or unsupported .keras file ({err})"
        ) from None
    return KerasFileEstimate(
        path=shown,
        config_params=walk.params,
        declared_bytes=declared,
        weights_member_bytes=member,
        largest_layer=walk.largest_layer,
        activation_values=walk.activation,
        activation_layer=walk.activation_layer,
        unsized=tuple(sorted(walk.unsized)),
    )


def check_keras_file(path, limits: Limits | None = None, batch: int = 1) -> KerasFileEstimate:
    """:func:`keras_file_estimate`, refused with :class:`ModelTooLarge` when loading the
    file and running a batch of ``batch`` through it would exceed the memory limit."""
    limits = limits or Limits.from_env()
    est = keras_file_estimate(path)
    if est.total_bytes(batch) > limits.max_memory:
        raise ModelTooLarge(
            f"cannot load '{path}': it does not fit in memory: {est.describe(batch)}, over "
            f"the memory limit of {limits.memory_text()}. Nothing was loaded. If the model "
            f"is meant to be this large, {RAISE_MEMORY}."
        )
    return est


def check_weights_file(path, limits: Limits | None = None) -> int:
    """The bytes of the arrays a ``.weights.h5`` (or Keras 2 ``.h5``) file declares,
    summed from its HDF5 metadata without reading one (reading the weights holds them
    all in memory); :class:`ModelTooLarge` when they are over the memory limit, a
    :class:`ModelLoadError` for a file that is not a regular one or holds too many
    HDF5 objects.  One h5py cannot open is left to the reader, which says so."""
    limits = limits or Limits.from_env()
    try:
        with open_regular(path) as f:
            declared = _h5_declared_bytes(f, str(path))
    except NotRegularFile as err:
        raise ModelLoadError(f"cannot load '{path}': {err.kind}, not a regular file") from None
    except _TooManyObjects as err:
        raise ModelLoadError(f"cannot load '{path}': {err}") from None
    except Exception:  # h5py raises OSError and others for what it cannot read
        return 0  # nothing to size: the reader refuses it ("cannot read ... as a .weights.h5")
    if declared > limits.max_memory:
        raise ModelTooLarge(
            f"cannot load '{path}': it does not fit in memory: its arrays take "
            f"{format_bytes(declared)} (declared in its HDF5 metadata, all read to load "
            f"them), over the memory limit of {limits.memory_text()}. Nothing was loaded. If "
            f"the weights are meant to be this large, {RAISE_MEMORY}."
        )
    return declared
