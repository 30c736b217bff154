"""ONNX export (``nincompile export``); see :mod:`nincompile.export.onnx_export`.

Importing this package does not import TensorFlow, Keras or ONNX.
"""

from .onnx_export import (
    DEFAULT_OPSET,
    MAX_OPSET,
    MIN_OPSET,
    ConversionError,
    ExportReport,
    OptionError,
    OutputPathError,
    Source,
    SourceError,
    VerificationFailed,
    export_onnx,
    load_source,
)

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
