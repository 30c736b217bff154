"""ONNX export (``nincompile export``); see :mod:`nincompile.export.onnx_export`.

The modules, in the order an export runs: ``source`` (load and check the model),
``float32`` (rebuild a mixed-precision model), ``convert`` (Keras to ONNX; ``rewrite``
swaps layers tf2onnx cannot convert for equivalent ones), ``verify`` (parity with
Keras), ``report``; ``onnx_export`` puts them together and ``quantize`` adds the int8
export and its gate.  The errors live in
:mod:`nincompile.errors`.

Importing this package does not import TensorFlow, Keras or ONNX.
"""

from ..callable_package import make_callable
from ..errors import (
    ConversionError,
    OptionError,
    OutputPathError,
    SourceError,
    VerificationFailed,
)
from .convert import DEFAULT_OPSET, MAX_OPSET, MIN_OPSET
from .onnx_export import export_onnx
from .report import ExportReport
from .source import Source, load_source

__all__ = [
    "DEFAULT_OPSET",
    "MAX_OPSET",
    "MIN_OPSET",
    "ConversionError",
    "ExportReport",
    "OptionError",
    "OutputPathError",
    "Source",
    "SourceError",
    "VerificationFailed",
    "export_onnx",
    "load_source",
]

make_callable(__name__)  # nincompile.export(...) is nincompile.api.export(...)
