"""Proof that an ONNX model matches Keras: ``onnx.checker`` (``full_check=True``),
then onnxruntime (CPUExecutionProvider) against Keras in inference mode on seeded
random inputs and, when given, real images.  Each comparison needs
max |onnx - keras| <= :data:`ATOL` and 100 % top-1 agreement (exact ties in Keras
aside)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..data.prepare import normalise
from .convert import INPUT_NAME
from .report import Check

if TYPE_CHECKING:
    from .report import ExportReport
    from .source import Source

#: Tolerance of every parity check (max absolute difference of the outputs).
ATOL = 1e-5
#: Top-1 flips where Keras's best two scores are closer than this are ties, not errors.
TIE_MARGIN = 1e-6


def session(data: bytes):
    """An onnxruntime CPU session on the serialised model ``data``."""
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.log_severity_level = 3
    return ort.InferenceSession(data, opts, providers=["CPUExecutionProvider"])


def compare(name: str, onnx_out, keras_out, batch: int | None = None) -> Check:
    """The parity check of two output arrays (see :data:`ATOL`, :data:`TIE_MARGIN`)."""
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


def chunks(x, size: int, batch: int | None):
    """``(part, real)``: ``x`` in parts of ``size`` images, or of exactly ``batch`` when
    the model's batch is fixed (the last part edge-padded; ``real`` images are real)."""
    import numpy as np

    step = batch or size
    for i in range(0, len(x), step):
        part = x[i : i + step]
        real = len(part)
        if batch and real < batch:
            pad = [(0, batch - real)] + [(0, 0)] * (part.ndim - 1)
            part = np.pad(part, pad, mode="edge")
        yield part, real


def run_batches(sess, model, x_onnx, x_keras, batch: int | None):
    """ONNX and Keras outputs on the same images (chunks of ``batch`` when fixed)."""
    import numpy as np

    n = len(x_onnx)
    onnx_parts, keras_parts = [], []
    pairs = zip(chunks(x_onnx, n, batch), chunks(x_keras, n, batch), strict=True)
    for (xo, real), (xk, _) in pairs:
        onnx_parts.append(sess.run(None, {INPUT_NAME: xo})[0][:real])
        keras_parts.append(np.asarray(model(xk, training=False))[:real])
    return np.concatenate(onnx_parts), np.concatenate(keras_parts)


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
        sess = session(proto.SerializeToString())
    except Exception as err:
        checks.append(Check("onnxruntime", False, f"cannot load the model: {err}"))
        return checks
    folded = report.preprocessing
    rng = np.random.default_rng(0)
    shape = report.input_shape
    for b in [report.batch] if report.batch else [1, 4]:
        if folded:
            raw = rng.uniform(0.0, 255.0, (b, *shape)).astype(np.float32)
            x_onnx, x_keras = raw, normalise(raw, mean, std)
        else:
            x_onnx = x_keras = rng.standard_normal((b, *shape)).astype(np.float32)
        o, k = run_batches(sess, src.model, x_onnx, x_keras, report.batch)
        checks.append(compare(f"random inputs, batch {b}", o, k, b))
    if images is not None:
        if mean is not None:
            x_keras = normalise(images, mean, std)
        else:
            x_keras = (images / np.float32(255.0)).astype(np.float32)
        x_onnx = images if folded else x_keras
        o, k = run_batches(sess, src.model, x_onnx, x_keras, report.batch)
        checks.append(compare(f"{len(images)} real images from {data_label}", o, k))
    if src.original is not None:  # informational: how far mixed precision was from float32
        ref = np.asarray(src.original(x_keras[:4], training=False), dtype=np.float32)
        drift = float(np.max(np.abs(k[: len(ref)] - ref)))
        report.notes.append(f"float32 vs original mixed-precision model: max diff {drift:.2e}")
    return checks
