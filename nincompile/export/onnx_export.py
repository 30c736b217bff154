"""ONNX export for deployment, with proof that the ONNX model matches Keras.

``export_onnx(source, out)`` turns a model into a verified ``.onnx`` file.  A source
is one of:

* a **spec** (``*.yaml``/``*.yml``): compiled and built with fresh, untrained weights,
  seeded with ``keras.utils.set_random_seed(spec.train.seed or 0)`` so two exports of
  one spec are identical;
* a **saved model** (``*.keras``): loaded with
  ``keras.saving.load_model(path, safe_mode=True, compile=False)``.  Legacy ``.h5``
  files are refused (Keras's safe mode does not protect them) and so is any model
  holding a ``Lambda`` layer (arbitrary Python code);
* a **training run** folder, as written by ``nincompile train``::

      RUN/
        model.keras     the trained model (required)
        spec.yaml       the spec it was trained from (optional: name, classes and
                        normalisation for the ONNX metadata come from it)

How the graph is made: through ``tf2onnx.convert.from_function`` (tf2onnx >= 1.17,
opsets 13..18) on a ``tf.function`` that calls the model with ``training=False``,
so augmentation layers (RandomFlip, RandomTranslation, ...) and dropout are traced in
inference mode: they are identities and never reach the ONNX graph.  (Keras's
``model.export(format="onnx")`` traces random augmentation ops into the graph that
ONNX cannot express, keras issue #21346.)  A model with any non-float32 dtype policy
(mixed precision) is first rebuilt in float32 with its weights copied.

The ONNX model has one input ``input`` (NHWC, float32; batch axis ``batch`` unless a
fixed batch is asked for) and one output ``probabilities`` (softmax/sigmoid head) or
``logits``.  Its ``metadata_props`` hold (JSON where marked)::

    nincompile_version, name, source (spec|keras|run), source_sha256,
    spec_sha256 (when a spec is known), classes (JSON list or null),
    input_layout ("NHWC"), input_shape (JSON), input_name, output_name,
    mean, std (JSON lists or null), preprocessing ("none" or "folded"),
    opset, batch ("dynamic" or N)

Pixel convention: raw pixels are float32 in 0..255 and ``data.mean``/``data.std`` are
in those units, ``x = (pixels - mean) / std`` (as in the NIN seed's CIFAR-10 code).
``include_preprocessing=True`` folds that normalisation into the graph, so a deployer
feeds raw pixels.  Without mean/std in the spec, real images (``data=``) are fed to
both models as ``pixels / 255``.

Verification runs on every export before anything is written: ``onnx.checker``
(``full_check=True``), then onnxruntime (CPUExecutionProvider) against Keras in
inference mode on seeded random inputs at batch 1 and 4 (only N with a fixed batch)
and, with ``data=``, on up to 64 real images.  Each needs max |onnx - keras| <= 1e-5
and 100 % top-1 agreement.  A failed check raises :class:`VerificationFailed`; the
file is written (atomically) only when every check passed.
"""

from __future__ import annotations

import json
import logging
import os
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

from .. import __version__
from ..errors import ExportError
from ..files import sha256_file

#: The opsets nincompile exports to: tf2onnx 1.17 knows IR versions up to opset 18
#: (``tf2onnx.constants.OPSET_TO_IR_VERSION``); below 13 several ops we rely on
#: (Softmax on the last axis, ReduceMean with axes input) change meaning.
MIN_OPSET = 13
MAX_OPSET = 18
DEFAULT_OPSET = 17
#: Tolerance of every parity check (max absolute difference of the outputs).
ATOL = 1e-5
#: Top-1 flips where Keras's best two scores are closer than this are ties, not errors.
TIE_MARGIN = 1e-6
MAX_DATA_IMAGES = 64
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png")
INPUT_NAME = "input"
#: ONNX ops that would make inference random; none may reach an exported graph.
TRAINING_ONLY_OPS = frozenset(
    {"RandomUniform", "RandomUniformLike", "RandomNormal", "RandomNormalLike",
     "Multinomial", "Bernoulli", "Dropout"}
)  # fmt: skip


class SourceError(ExportError):
    """The model to export is missing, unreadable, unsafe or unsupported."""


class OutputPathError(ExportError):
    """The output path is unusable (missing folder, symbolic link, not ``.onnx``)."""


class OptionError(ExportError):
    """An export option is out of range or impossible for this model."""


class ConversionError(ExportError):
    """tf2onnx could not turn the model into a clean inference graph."""


class VerificationFailed(ExportError):
    """The ONNX model failed a check; nothing was written."""

    def __init__(self, message: str, report: ExportReport):
        super().__init__(message)
        self.report = report


# ---------------------------------------------------------------------- sources


@dataclass
class Source:
    """A model ready to export, with what is known about where it came from."""

    kind: str  # "spec" | "keras" | "run"
    path: Path
    model: object
    name: str
    source_sha256: str
    spec: object | None = None  # nincompile.spec.schema.Spec
    spec_sha256: str | None = None
    notes: list[str] = field(default_factory=list)
    original: object | None = None  # the mixed-precision model, when rebuilt

    @property
    def data(self):
        return self.spec.data if self.spec is not None else None

    @property
    def classes(self) -> list[str] | None:
        return list(self.data.classes) if self.data and self.data.classes else None

    @property
    def mean(self) -> list[float] | None:
        return list(self.data.mean) if self.data and self.data.mean is not None else None

    @property
    def std(self) -> list[float] | None:
        return list(self.data.std) if self.data and self.data.std is not None else None


def _keras():
    from ..keras_import import import_keras

    return import_keras()


def require_tensorflow_backend() -> None:
    """tf2onnx converts TensorFlow graphs: export needs Keras's TensorFlow backend."""
    backend = _keras().backend.backend()
    if backend != "tensorflow":
        raise OptionError(
            f"ONNX export runs on Keras's TensorFlow backend; received KERAS_BACKEND={backend}. "
            "Run it with KERAS_BACKEND=tensorflow (a .keras model saved under any backend "
            "loads there)."
        )


def _check_source_path(path: Path) -> str:
    """The kind of ``path`` (spec, keras, run); raise SourceError if unusable."""
    suffix = path.suffix.lower()
    if suffix in (".h5", ".hdf5"):
        raise SourceError(
            f"refusing '{path}': legacy HDF5 (.h5) models are not loaded because Keras's "
            "safe mode does not protect them; re-save the model as .keras"
        )
    if not path.exists():
        raise SourceError(f"cannot export '{path}': no such file or folder")
    if path.is_dir():
        if not (path / "model.keras").is_file():
            raise SourceError(
                f"cannot export '{path}': a run folder must hold model.keras "
                "(and optionally spec.yaml)"
            )
        return "run"
    if suffix in (".yaml", ".yml"):
        return "spec"
    if suffix == ".keras":
        return "keras"
    raise SourceError(
        f"cannot export '{path}': expected a spec (.yaml), a saved model (.keras) "
        "or a training run folder holding model.keras"
    )


def load_keras_model(path: str | os.PathLike):
    """Load a ``.keras`` file in safe mode, turning Keras's errors into clear ones."""
    path = Path(path)
    if not path.is_file():
        raise SourceError(f"cannot load '{path}': no such file")
    if not zipfile.is_zipfile(path):
        with open(path, "rb") as f:
            magic = f.read(8)
        if magic.startswith(b"\x89HDF"):
            raise SourceError(
                f"refusing '{path}': it is a legacy HDF5 model, which Keras's safe mode "
                "does not protect; re-save the model as .keras"
            )
        raise SourceError(f"cannot load '{path}': not a valid .keras file (not a zip archive)")
    keras = _keras()
    try:
        model = keras.saving.load_model(path, safe_mode=True, compile=False)
    except Exception as err:  # Keras raises ValueError/TypeError/KeyError/OSError here
        text = str(err)
        if "Lambda" in text or "safe_mode" in text or "unsafe_deserialization" in text:
            raise SourceError(
                f"refusing '{path}': it holds a Lambda layer (arbitrary Python code), which "
                "Keras's safe mode will not load; rebuild the model without Lambda layers"
            ) from None
        first = text.strip().splitlines()[0] if text.strip() else type(err).__name__
        raise SourceError(
            f"cannot load '{path}': corrupt or unsupported .keras file ({first})"
        ) from None
    if not isinstance(model, keras.Model):
        raise SourceError(f"cannot export '{path}': it holds a {type(model).__name__}, not a model")
    return model


def load_source(path: str | os.PathLike) -> Source:
    """Load a spec, a ``.keras`` file or a run folder (see the module docstring)."""
    from .. import api

    path = Path(path)
    kind = _check_source_path(path)
    if kind == "spec":
        compiled = api.compile_spec(path)
        spec = compiled.spec
        seed = spec.train.seed if spec.train is not None else 0
        _keras().utils.set_random_seed(seed)
        model = api.build(compiled)
        src = Source(
            kind, path, model, spec.name, compiled.source.sha256, spec, compiled.source.sha256
        )
        src.notes.append(f"fresh untrained weights (seed {seed})")
    elif kind == "keras":
        model = load_keras_model(path)
        src = Source(kind, path, model, path.stem, sha256_file(path))
    else:
        model_path = path / "model.keras"
        model = load_keras_model(model_path)
        spec = spec_sha = None
        name = path.resolve().name
        if (path / "spec.yaml").is_file():
            compiled = api.compile_spec(path / "spec.yaml")
            spec, spec_sha, name = compiled.spec, compiled.source.sha256, compiled.spec.name
        src = Source(kind, path, model, name, sha256_file(model_path), spec, spec_sha)
    _check_model(src)
    _to_float32(src)
    return src


def _input_shape(model) -> tuple[int, int, int]:
    shape = tuple(model.inputs[0].shape)
    return tuple(int(d) for d in shape[1:])


def _check_model(src: Source) -> None:
    model = src.model
    where = f"'{src.path}'"
    try:
        inputs, outputs = model.inputs, model.outputs
    except (AttributeError, ValueError):
        inputs = outputs = None
    if not inputs or not outputs:
        raise SourceError(f"cannot export {where}: the model has no defined inputs/outputs")
    if len(inputs) != 1 or len(outputs) != 1:
        raise SourceError(
            f"cannot export {where}: expected one image input and one output; the model has "
            f"{len(inputs)} inputs and {len(outputs)} outputs"
        )
    shape = tuple(inputs[0].shape)
    if len(shape) != 4 or any(d is None for d in shape[1:]):
        raise SourceError(
            f"cannot export {where}: expected an NHWC image input (batch, height, width, "
            f"channels) with fixed height, width and channels; received {shape}"
        )
    if len(tuple(outputs[0].shape)) != 2:
        raise SourceError(
            f"cannot export {where}: expected a (batch, classes) output; received "
            f"{tuple(outputs[0].shape)}"
        )
    if src.spec is not None and tuple(src.spec.input) != _input_shape(model):
        raise SourceError(
            f"cannot export {where}: the model's input {_input_shape(model)} differs from "
            f"its spec's input {tuple(src.spec.input)}"
        )
    n_out = int(outputs[0].shape[-1])
    if src.classes is not None and len(src.classes) != n_out:
        raise SourceError(
            f"cannot export {where}: data.classes names {len(src.classes)} classes but the "
            f"model has {n_out} outputs"
        )


# ---------------------------------------------------------------- float32 models


def _all_layers(model):
    for layer in model.layers:
        yield layer
        if hasattr(layer, "layers"):  # a nested model
            yield from _all_layers(layer)


def _dtype_policies(model) -> set[str]:
    names = set()
    for layer in _all_layers(model):
        policy = getattr(layer, "dtype_policy", None)
        if policy is not None:
            names.add(policy.name)
    return names


def is_float32(model) -> bool:
    """True when every layer computes and stores in float32."""
    policies = _dtype_policies(model) - {"float32"}
    weights = {str(w.dtype) for w in model.weights if "float" in str(w.dtype)} - {"float32"}
    return not policies and not weights


def rebuild_float32(model):
    """A float32 clone of ``model`` (mixed precision removed), weights copied."""
    import numpy as np

    keras = _keras()

    def clone(layer):
        config = layer.get_config()
        config["dtype"] = "float32"
        return layer.__class__.from_config(config)

    try:
        new = keras.models.clone_model(model, clone_function=clone, recursive=True)
        weights = [
            w.astype(np.float32) if np.issubdtype(w.dtype, np.floating) else w
            for w in model.get_weights()
        ]
        new.set_weights(weights)
    except Exception as err:
        raise ConversionError(
            f"cannot rebuild mixed-precision model '{model.name}' in float32: {err}"
        ) from None
    return new


def _to_float32(src: Source) -> None:
    if is_float32(src.model):
        return
    policies = sorted(_dtype_policies(src.model) - {"float32"})
    src.original = src.model
    src.model = rebuild_float32(src.model)
    src.notes.append(f"rebuilt in float32 (was {', '.join(policies) or 'mixed'})")


# ------------------------------------------------------------------ output path


def resolve_output(out: str | os.PathLike | None, name: str) -> Path:
    """The ``.onnx`` path to write; raise OutputPathError if it cannot be used.

    Default: ``build/<name>.onnx`` (``build/`` is created when the file is written).
    An explicit path must end in ``.onnx`` and its folder must already exist; no
    folder on the way may be a symbolic link, nor the file itself.
    """
    explicit = out is not None
    target = Path(out) if explicit else Path("build") / f"{name}.onnx"
    if target.suffix.lower() != ".onnx":
        raise OutputPathError(f"cannot write '{target}': the output must end in .onnx")
    if target.is_symlink():
        raise OutputPathError(f"refusing to write '{target}': it is a symbolic link")
    if target.is_dir():
        raise OutputPathError(f"cannot write '{target}': it is a folder")
    parent = target.parent
    absolute = Path(os.path.abspath(parent))
    for folder in (absolute, *absolute.parents):
        if folder.is_symlink():
            raise OutputPathError(
                f"refusing to write '{target}': its folder is reached through the symbolic "
                f"link '{folder}'"
            )
    if explicit and not parent.is_dir():
        raise OutputPathError(
            f"cannot write '{target}': folder '{parent}' does not exist"
            if not parent.exists()
            else f"cannot write '{target}': '{parent}' is not a folder"
        )
    if not explicit and parent.exists() and not parent.is_dir():
        raise OutputPathError(f"cannot write '{target}': '{parent}' is not a folder")
    return target


def check_opset(opset: int) -> int:
    if isinstance(opset, bool) or not isinstance(opset, int):
        raise OptionError(f"opset must be an integer; received {opset!r}")
    if not MIN_OPSET <= opset <= MAX_OPSET:
        raise OptionError(
            f"unsupported opset {opset}: nincompile exports opsets {MIN_OPSET}..{MAX_OPSET} "
            f"(tf2onnx's maximum is {MAX_OPSET})"
        )
    return opset


def check_batch(batch: int | None) -> int | None:
    if batch is None:
        return None
    if isinstance(batch, bool) or not isinstance(batch, int) or batch < 1:
        raise OptionError(f"batch must be a positive integer or dynamic; received {batch!r}")
    return batch


# ------------------------------------------------------------------------- data


def list_images(folder: str | os.PathLike, limit: int = MAX_DATA_IMAGES) -> list[Path]:
    """Up to ``limit`` images of an image folder (class sub-folders), taken round-robin
    over the classes in sorted order so every class is represented."""
    folder = Path(folder)
    if not folder.is_dir():
        raise OptionError(f"--data '{folder}' is not a folder of class sub-folders")
    per_class = []
    for sub in sorted(p for p in folder.iterdir() if p.is_dir()):
        files = sorted(
            p for p in sub.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES
        )
        if files:
            per_class.append(files)
    if not per_class:
        raise OptionError(
            f"--data '{folder}' holds no images: expected class sub-folders of "
            f"{', '.join(IMAGE_SUFFIXES)} files"
        )
    picked: list[Path] = []
    i = 0
    while len(picked) < limit and any(i < len(files) for files in per_class):
        picked.extend(files[i] for files in per_class if i < len(files))
        i += 1
    return picked[:limit]


def load_images(paths: list[Path], shape: tuple[int, int, int]):
    """Images as float32 pixels 0..255, resized (bilinear) to ``(height, width, channels)``.

    Decoded with Pillow through :func:`nincompile.data.sources.read_images`.
    """
    import numpy as np

    from ..data.sources import read_images
    from ..errors import DataError

    h, w, c = shape
    if c not in (1, 3, 4):
        raise OptionError(f"--data needs a model with 1, 3 or 4 input channels; this has {c}")
    try:
        images = read_images(paths, channels=c, size=(h, w))
    except DataError as err:
        raise OptionError(str(err)) from None
    return images.astype(np.float32)


# ---------------------------------------------------------------------- report


def _fmt_size(n: int) -> str:
    return f"{n / 1e6:.2f} MB" if n >= 1e6 else f"{n / 1e3:.1f} kB"


@dataclass
class Check:
    name: str
    passed: bool
    detail: str
    batch: int | None = None
    max_abs_diff: float | None = None
    top1_agree: int | None = None
    top1_total: int | None = None
    ties: int = 0


@dataclass
class ExportReport:
    """What was exported and the evidence that it matches Keras."""

    name: str
    source: str
    source_kind: str
    out: Path
    opset: int
    batch: int | None
    input_name: str
    output_name: str
    input_shape: tuple[int, int, int]
    preprocessing: bool
    metadata: dict[str, str] = field(default_factory=dict)
    checks: list[Check] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    size_bytes: int = 0
    written: bool = False

    @property
    def ok(self) -> bool:
        return bool(self.checks) and all(c.passed for c in self.checks)

    def lines(self) -> list[str]:
        batch = "dynamic" if self.batch is None else str(self.batch)
        head = (
            f"{self.name}: {'wrote' if self.written else 'did not write'} {self.out}"
            + (f" ({_fmt_size(self.size_bytes)})" if self.written else "")
            + f", opset {self.opset}, batch {batch}"
        )
        out = [head, f"  source     {self.source} ({self.source_kind})"]
        h, w, c = self.input_shape
        dims = "batch" if self.batch is None else str(self.batch)
        out.append(
            f"  graph      {self.input_name} [{dims}, {h}, {w}, {c}] float32 NHWC -> "
            f"{self.output_name}"
            + ("; (x - mean) / std folded in: feed raw pixels 0..255" if self.preprocessing else "")
        )
        out.extend(f"  note       {n}" for n in self.notes)
        for c in self.checks:
            out.append(f"  {'ok  ' if c.passed else 'FAIL'}       {c.name}: {c.detail}")
        return out

    def text(self) -> str:
        return "\n".join(self.lines())


# -------------------------------------------------------------------- conversion


def _output_name(model) -> str:
    layer = model.layers[-1]
    act = getattr(layer, "activation", None)
    name = getattr(act, "__name__", "") or ""
    return "probabilities" if name in ("softmax", "sigmoid") else "logits"


def _to_onnx(model, shape, opset: int, batch: int | None, output_name: str, mean, std):
    """The ONNX ModelProto of ``model`` in inference mode (no file written)."""
    import numpy as np
    import tensorflow as tf
    import tf2onnx

    spec = [tf.TensorSpec((batch, *shape), tf.float32, name=INPUT_NAME)]
    if mean is not None:
        mean_a, std_a = np.asarray(mean, np.float32), np.asarray(std, np.float32)

        @tf.function(input_signature=spec)
        def serve(x):
            # constants made inside the function are graph constants, not captured inputs
            return {
                output_name: model((x - tf.constant(mean_a)) / tf.constant(std_a), training=False)
            }

    else:

        @tf.function(input_signature=spec)
        def serve(x):
            return {output_name: model(x, training=False)}

    logger = logging.getLogger("tf2onnx")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        proto, _ = tf2onnx.convert.from_function(serve, input_signature=spec, opset=opset)
    except Exception as err:
        raise ConversionError(f"tf2onnx could not convert '{model.name}': {err}") from None
    finally:
        logger.setLevel(level)
    _check_ops(proto, model.name)
    if batch is None:
        for value in (*proto.graph.input, *proto.graph.output):
            dim = value.type.tensor_type.shape.dim[0]
            dim.dim_param = "batch"
    return proto


def _check_ops(proto, name: str) -> None:
    import onnx

    unknown, random = set(), set()
    for node in proto.graph.node:
        if not onnx.defs.has(node.op_type, node.domain):
            unknown.add(node.op_type if not node.domain else f"{node.domain}.{node.op_type}")
        if node.op_type in TRAINING_ONLY_OPS:
            random.add(node.op_type)
    if unknown:
        raise ConversionError(
            f"tf2onnx could not convert '{name}': no ONNX equivalent for "
            f"{', '.join(sorted(unknown))}"
        )
    if random:
        raise ConversionError(
            f"the ONNX graph of '{name}' holds training-only ops ({', '.join(sorted(random))}); "
            "inference must be deterministic"
        )


def _metadata(src: Source, report: ExportReport, mean, std) -> dict[str, str]:
    meta = {
        "nincompile_version": __version__,
        "name": src.name,
        "source": src.kind,
        "source_sha256": src.source_sha256,
    }
    if src.spec_sha256:
        meta["spec_sha256"] = src.spec_sha256
    meta.update(
        {
            "classes": json.dumps(src.classes),
            "input_layout": "NHWC",
            "input_shape": json.dumps(list(report.input_shape)),
            "input_name": report.input_name,
            "output_name": report.output_name,
            "mean": json.dumps(mean),
            "std": json.dumps(std),
            "preprocessing": "folded" if report.preprocessing else "none",
            "opset": str(report.opset),
            "batch": "dynamic" if report.batch is None else str(report.batch),
        }
    )
    return meta


# ------------------------------------------------------------------ verification


def _session(data: bytes):
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.log_severity_level = 3
    return ort.InferenceSession(data, opts, providers=["CPUExecutionProvider"])


def _compare(name: str, onnx_out, keras_out, batch: int | None = None) -> Check:
    import numpy as np

    if onnx_out.shape != keras_out.shape:
        return Check(name, False, f"shape {onnx_out.shape} != Keras {keras_out.shape}", batch)
    diff = float(np.max(np.abs(onnx_out.astype(np.float64) - keras_out.astype(np.float64))))
    k_top, o_top = keras_out.argmax(-1), onnx_out.argmax(-1)
    agree = int((k_top == o_top).sum())
    ties = 0
    if agree < len(k_top) and keras_out.shape[-1] > 1:
        top2 = np.sort(keras_out, axis=-1)[:, -2:]
        tied = (top2[:, 1] - top2[:, 0]) <= TIE_MARGIN
        ties = int((tied & (k_top != o_top)).sum())
    total = len(k_top)
    passed = bool(np.isfinite(diff) and diff <= ATOL and agree + ties == total)
    detail = f"max |onnx - keras| {diff:.2e} (<= {ATOL:g}), top-1 {agree}/{total}"
    if ties:
        detail += f" ({ties} exact tie{'s' if ties > 1 else ''} in Keras)"
    return Check(name, passed, detail, batch, diff, agree, total, ties)


def _run_batches(sess, model, x_onnx, x_keras, batch: int | None):
    """ONNX and Keras outputs on the same images (chunks of ``batch`` when fixed)."""
    import numpy as np

    n = len(x_onnx)
    step = batch or n
    onnx_parts, keras_parts = [], []
    for i in range(0, n, step):
        xo, xk = x_onnx[i : i + step], x_keras[i : i + step]
        real = len(xo)
        if real < step:  # pad the last chunk of a fixed-batch model
            pad = [(0, step - real)] + [(0, 0)] * (xo.ndim - 1)
            xo, xk = np.pad(xo, pad, mode="edge"), np.pad(xk, pad, mode="edge")
        onnx_parts.append(sess.run(None, {INPUT_NAME: xo})[0][:real])
        keras_parts.append(np.asarray(model(xk, training=False))[:real])
    return np.concatenate(onnx_parts), np.concatenate(keras_parts)


def _normalise(x, mean, std):
    import numpy as np

    if mean is None:
        return x
    return ((x - np.asarray(mean, np.float32)) / np.asarray(std, np.float32)).astype(np.float32)


def verify(
    proto, src: Source, report: ExportReport, mean, std, images=None, data_label: str = ""
) -> list[Check]:
    """Run every check on ``proto``; returns the checks (each passed or not)."""
    import numpy as np
    import onnx

    checks = []
    try:
        onnx.checker.check_model(proto, full_check=True)
        checks.append(Check("onnx.checker", True, "check_model(full_check=True) passed"))
    except Exception as err:
        checks.append(Check("onnx.checker", False, f"{type(err).__name__}: {err}"))
        return checks
    try:
        sess = _session(proto.SerializeToString())
    except Exception as err:
        checks.append(Check("onnxruntime", False, f"cannot load the model: {err}"))
        return checks
    folded = report.preprocessing
    rng = np.random.default_rng(0)
    shape = report.input_shape
    for b in [report.batch] if report.batch else [1, 4]:
        if folded:
            raw = rng.uniform(0.0, 255.0, (b, *shape)).astype(np.float32)
            x_onnx, x_keras = raw, _normalise(raw, mean, std)
        else:
            x_onnx = x_keras = rng.standard_normal((b, *shape)).astype(np.float32)
        o, k = _run_batches(sess, src.model, x_onnx, x_keras, report.batch)
        checks.append(_compare(f"random inputs, batch {b}", o, k, b))
    if images is not None:
        if mean is not None:
            x_keras = _normalise(images, mean, std)
        else:
            x_keras = (images / np.float32(255.0)).astype(np.float32)
        x_onnx = images if folded else x_keras
        o, k = _run_batches(sess, src.model, x_onnx, x_keras, report.batch)
        checks.append(_compare(f"{len(images)} real images from {data_label}", o, k))
    if src.original is not None:  # informational: how far mixed precision was from float32
        ref = np.asarray(src.original(x_keras[:4], training=False), dtype=np.float32)
        drift = float(np.max(np.abs(k[: len(ref)] - ref)))
        report.notes.append(f"float32 vs original mixed-precision model: max diff {drift:.2e}")
    return checks


# -------------------------------------------------------------------------- API


def export_onnx(
    source: str | os.PathLike | Source,
    out: str | os.PathLike | None = None,
    opset: int = DEFAULT_OPSET,
    batch: int | None = None,
    data: str | os.PathLike | None = None,
    include_preprocessing: bool = False,
) -> ExportReport:
    """Export ``source`` to ONNX, verify it against Keras and write it atomically.

    ``source`` is a spec path, a ``.keras`` path, a run folder or a :class:`Source`
    from :func:`load_source` (to export one loaded model several times).  Returns the
    :class:`ExportReport`; raises an :class:`~nincompile.errors.ExportError` subclass
    (and writes nothing) on bad input or a failed check.
    """
    from ..api import atomic_write

    check_opset(opset)
    check_batch(batch)
    require_tensorflow_backend()
    if out is not None:
        resolve_output(out, "model")  # fail before the slow work
    image_paths = list_images(data) if data is not None else None
    src = source if isinstance(source, Source) else load_source(source)
    target = resolve_output(out, src.name)

    mean, std = src.mean, src.std
    if include_preprocessing and mean is None:
        raise OptionError(
            f"--include-preprocessing needs data.mean and data.std in the spec of "
            f"'{src.name}'" + ("" if src.spec is not None else " (no spec is known for it)")
        )
    shape = _input_shape(src.model)
    report = ExportReport(
        name=src.name,
        source=str(src.path),
        source_kind=src.kind,
        out=target,
        opset=opset,
        batch=batch,
        input_name=INPUT_NAME,
        output_name=_output_name(src.model),
        input_shape=shape,
        preprocessing=include_preprocessing,
        notes=list(src.notes),
    )
    images = load_images(image_paths, shape) if image_paths is not None else None

    proto = _to_onnx(
        src.model,
        shape,
        opset,
        batch,
        report.output_name,
        mean if include_preprocessing else None,
        std if include_preprocessing else None,
    )
    report.metadata = _metadata(src, report, mean, std)
    proto.graph.name = src.name
    proto.doc_string = f"{src.name}, exported by nincompile {__version__}"
    del proto.metadata_props[:]
    for key, value in report.metadata.items():
        entry = proto.metadata_props.add()
        entry.key, entry.value = key, value

    report.checks = verify(proto, src, report, mean, std, images, str(data) if data else "")
    if not report.ok:
        raise VerificationFailed(
            f"{src.name}: ONNX export failed verification; nothing written\n{report.text()}",
            report,
        )
    payload = proto.SerializeToString()
    target = resolve_output(out, src.name)  # re-check: the folder may have changed
    if out is None:
        target.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(target, lambda tmp: tmp.write_bytes(payload))
    report.size_bytes = len(payload)
    report.written = True
    return report
