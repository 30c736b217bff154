"""Keras to ONNX: the opsets, the traced inference graph, the op check, the metadata.

The graph is made through ``tf2onnx.convert.from_function`` on a ``tf.function``
that calls the model with ``training=False`` (see :mod:`nincompile.export.onnx_export`).
"""

from __future__ import annotations

import json
import logging
from typing import TYPE_CHECKING

from .. import __version__
from ..errors import ConversionError, OptionError

if TYPE_CHECKING:
    from .report import ExportReport
    from .source import Source

#: The opsets nincompile exports to: tf2onnx 1.17 knows IR versions up to opset 18
#: (``tf2onnx.constants.OPSET_TO_IR_VERSION``); below 13 several ops we rely on
#: (Softmax on the last axis, ReduceMean with axes input) change meaning.
MIN_OPSET = 13
MAX_OPSET = 18
DEFAULT_OPSET = 17
INPUT_NAME = "input"
#: ONNX ops that would make inference random; none may reach an exported graph.
TRAINING_ONLY_OPS = frozenset(
    {"RandomUniform", "RandomUniformLike", "RandomNormal", "RandomNormalLike",
     "Multinomial", "Bernoulli", "Dropout"}
)  # fmt: skip


def check_opset(opset: int) -> int:
    if isinstance(opset, bool) or not isinstance(opset, int):
        raise OptionError(f"opset must be an integer; received {opset!r}")
    if not MIN_OPSET <= opset <= MAX_OPSET:
        raise OptionError(
            f"unsupported opset {opset}: nincompile exports opsets {MIN_OPSET}..{MAX_OPSET} "
            f"(tf2onnx's maximum is {MAX_OPSET})"
        )
    return opset


def output_name(model) -> str:
    """``probabilities`` after a softmax/sigmoid head, else ``logits``."""
    layer = model.layers[-1]
    act = getattr(layer, "activation", None)
    name = getattr(act, "__name__", "") or ""
    return "probabilities" if name in ("softmax", "sigmoid") else "logits"


def to_onnx(model, shape, opset: int, batch: int | None, out_name: str, mean, std):
    """The ONNX ModelProto of ``model`` in inference mode (no file written); with
    ``mean``/``std``, ``(x - mean) / std`` is folded in front of the model."""
    import numpy as np
    import tensorflow as tf
    import tf2onnx

    spec = [tf.TensorSpec((batch, *shape), tf.float32, name=INPUT_NAME)]
    if mean is not None:
        mean_a, std_a = np.asarray(mean, np.float32), np.asarray(std, np.float32)

        @tf.function(input_signature=spec)
        def serve(x):
            # constants made inside the function are graph constants, not captured inputs
            return {out_name: model((x - tf.constant(mean_a)) / tf.constant(std_a), training=False)}

    else:

        @tf.function(input_signature=spec)
        def serve(x):
            return {out_name: model(x, training=False)}

    logger = logging.getLogger("tf2onnx")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        proto, _ = tf2onnx.convert.from_function(serve, input_signature=spec, opset=opset)
    except Exception as err:
        raise ConversionError(f"tf2onnx could not convert '{model.name}': {err}") from None
    finally:
        logger.setLevel(level)
    check_ops(proto, model.name)
    if batch is None:
        for value in (*proto.graph.input, *proto.graph.output):
            dim = value.type.tensor_type.shape.dim[0]
            dim.dim_param = "batch"
    return proto


def check_ops(proto, name: str) -> None:
    """Raise ConversionError for ops ONNX does not know or that make inference random."""
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


def metadata(src: Source, report: ExportReport, mean, std) -> dict[str, str]:
    """The ``metadata_props`` of an exported model (keys in the module docstring of
    :mod:`nincompile.export.onnx_export`)."""
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
