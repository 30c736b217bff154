"""The model to export: loaded from a spec, a ``.keras`` file or a run folder by
:mod:`nincompile.runs.model`, checked to be a one-image-in, one-output model and
made float32 (:mod:`nincompile.export.float32`)."""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass

from ..errors import ModelLoadError, OptionError, SourceError
from ..runs.model import SavedModel, classifier_problem, load_saved
from .float32 import dtype_policies, is_float32, rebuild_float32


@dataclass
class Source(SavedModel):
    """A model ready to export, with what is known about where it came from."""

    original: object | None = None  # the mixed-precision model, when rebuilt


def require_tensorflow_backend() -> None:
    """tf2onnx converts TensorFlow graphs: export needs Keras's TensorFlow backend."""
    from ..keras_import import import_keras

    backend = import_keras().backend.backend()
    if backend != "tensorflow":
        raise OptionError(
            f"ONNX export runs on Keras's TensorFlow backend; received KERAS_BACKEND={backend}. "
            "Run it with KERAS_BACKEND=tensorflow (a .keras model saved under any backend "
            "loads there)."
        )


def load_source(path: str | os.PathLike) -> Source:
    """Load a spec, a ``.keras`` file or a run folder (see :mod:`nincompile.runs.model`),
    check that it can be exported and make it float32."""
    try:
        saved = load_saved(path)
    except ModelLoadError as err:
        raise SourceError(str(err)) from None
    src = Source(**{f.name: getattr(saved, f.name) for f in dataclasses.fields(saved)})
    check_model(src)
    to_float32(src)
    return src


def input_shape(model) -> tuple[int, int, int]:
    """``(height, width, channels)`` of the model's image input."""
    shape = tuple(model.inputs[0].shape)
    return tuple(int(d) for d in shape[1:])


def check_model(src: Source) -> None:
    """Raise SourceError unless the model takes one NHWC image and gives one
    ``(batch, classes)`` output with a score for each class its spec names (whose
    input the loader checked)."""
    problem = classifier_problem(src.model, src.classes)
    if problem is not None:
        raise SourceError(f"cannot export '{src.path}': {problem}")


def to_float32(src: Source) -> None:
    """Make ``src.model`` float32, keeping a mixed-precision original in ``src.original``."""
    if is_float32(src.model):
        return
    policies = sorted(dtype_policies(src.model) - {"float32"})
    src.original = src.model
    src.model = rebuild_float32(src.model)
    src.notes.append(f"rebuilt in float32 (was {', '.join(policies) or 'mixed'})")
