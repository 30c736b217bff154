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

  (loaded by :mod:`nincompile.runs.model`; :mod:`.source` checks the model).

How the graph is made: through ``tf2onnx.convert.from_function`` (tf2onnx >= 1.17,
opsets 13..18) on a ``tf.function`` that calls the model with ``training=False``,
so augmentation layers (RandomFlip, RandomTranslation, ...) and dropout are traced in
inference mode: they are identities and never reach the ONNX graph.  (Keras's
``model.export(format="onnx")`` traces random augmentation ops into the graph that
ONNX cannot express, keras issue #21346.)  A model with any non-float32 dtype policy
(mixed precision) is first rebuilt in float32 with its weights copied
(:mod:`.float32`); the conversion is in :mod:`.convert`.  Layers whose TensorFlow ops
tf2onnx cannot convert (exact GELU, CELU, grouped Conv2D) are traced as equivalent
layers of a twin model (:mod:`.rewrite`); the checks compare the graph with the model
itself.

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
and, with ``data=``, on up to 64 real images.  Each needs max |onnx - keras| <=
1e-5 + 1e-4 * max |keras| and 100 % top-1 agreement (:func:`.verify.compare`).  A
failed check raises :class:`VerificationFailed`; the file is written (atomically) only
when every check passed.  The checks are in :mod:`.verify`, the report that lists them
in :mod:`.report`; this module holds the options, the output path and
:func:`export_onnx`.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

from .. import __version__
from ..data import sources
from ..errors import DataError, OptionError, OutputPathError, VerificationFailed
from ..files import atomic_write
from .convert import DEFAULT_OPSET, check_opset, to_onnx
from .report import ExportReport, metadata
from .source import Source, input_shape, load_source, require_tensorflow_backend
from .verify import verify

#: Real images (``data=``) the parity check runs on at the most.
MAX_DATA_IMAGES = 64


# ------------------------------------------------------------------ options


def check_batch(batch: int | None) -> int | None:
    if batch is None:
        return None
    if isinstance(batch, bool) or not isinstance(batch, int) or batch < 1:
        raise OptionError(f"batch must be a positive integer or dynamic; received {batch!r}")
    return batch


@contextlib.contextmanager
def data_option_errors():
    """Report a :class:`~nincompile.errors.DataError` about ``--data`` images as the
    :class:`~nincompile.errors.OptionError` it is to an export."""
    try:
        yield
    except DataError as err:
        raise OptionError(f"--data: {err}") from None


def data_images(folder: str | os.PathLike) -> list[Path]:
    """The images of ``folder`` the parity check runs on (see
    :func:`~nincompile.data.sources.sample_class_images`)."""
    with data_option_errors():
        return sources.sample_class_images(folder, MAX_DATA_IMAGES)


def read_data_images(paths: list[Path], shape: tuple[int, int, int]):
    """``paths`` as float32 pixels 0..255 of ``shape`` (an OptionError if unreadable)."""
    with data_option_errors():
        return sources.read_images_float32(paths, shape)


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

    check_opset(opset)
    check_batch(batch)
    require_tensorflow_backend()
    if out is not None:
        resolve_output(out, "model")  # fail before the slow work
    image_paths = data_images(data) if data is not None else None
    src = source if isinstance(source, Source) else load_source(source)
    target = resolve_output(out, src.name)

    mean, std = src.mean, src.std
    if include_preprocessing and mean is None:
        raise OptionError(
            f"--include-preprocessing needs data.mean and data.std in the spec of "
            f"'{src.name}'" + ("" if src.spec is not None else " (no spec is known for it)")
        )
    shape = input_shape(src.model)
    report = ExportReport.of(src, target, opset, batch, include_preprocessing)
    images = read_data_images(image_paths, shape) if image_paths is not None else None

    proto = to_onnx(
        src.model,
        shape,
        opset,
        batch,
        report.output_name,
        mean if include_preprocessing else None,
        std if include_preprocessing else None,
        report.notes,
    )
    proto.graph.name = src.name
    proto.doc_string = f"{src.name}, exported by nincompile {__version__}"
    stamp(proto, report, metadata(src, report, mean, std))

    report.checks = verify(proto, src, report, mean, std, images, str(data) if data else "")
    if not report.ok:
        raise VerificationFailed(
            f"{src.name}: ONNX export failed verification; nothing written\n{report.text()}",
            report,
        )
    return write_verified(proto, report, out, src.name)


def stamp(proto, report: ExportReport, items: dict[str, str]) -> None:
    """Make ``items`` the model's metadata (``metadata_props``) and the report's."""
    report.metadata = items
    del proto.metadata_props[:]
    for key, value in items.items():
        entry = proto.metadata_props.add()
        entry.key, entry.value = key, value


def write_verified(proto, report: ExportReport, out, name: str) -> ExportReport:
    """The ending of every export, once its checks have passed: write ``proto``
    atomically to ``out`` (default ``build/<name>.onnx``; the folder checked again, as
    it may have changed during the slow work) and note its size in the report."""
    payload = proto.SerializeToString()
    target = resolve_output(out, name)
    if out is None:
        target.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(target, lambda tmp: tmp.write_bytes(payload))
    report.size_bytes = len(payload)
    report.written = True
    return report
