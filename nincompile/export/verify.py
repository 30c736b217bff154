"""Proof that an ONNX model matches Keras: ``onnx.checker`` (``full_check=True``),
then onnxruntime (CPUExecutionProvider) against Keras in inference mode on seeded
random inputs and, when given, real images.  Each comparison needs
max |onnx - keras| <= :func:`tolerance` (``ATOL + RTOL * max |keras|``) and 100 % top-1
agreement (ties in Keras within rounding aside).  onnxruntime failing to load or run the model
fails a check (nothing is raised)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..data.prepare import normalise
from ..errors import first_line
from .convert import INPUT_NAME
from .report import Check

if TYPE_CHECKING:
    from .report import ExportReport
    from .source import Source

#: Tolerance of every parity check: max |onnx - keras| <= ATOL + RTOL * max |keras|.
#: float32 rounding grows with the size of what is summed, so the bound follows the
#: scale of the outputs: logits of order 1 from a 50-layer network differ by a few
#: 1e-5 between two correct float32 implementations (relative 1e-5 to 5e-5), while a
#: conversion bug (a wrong padding, layout or missing bias) is off by a sizeable part
#: of the outputs.  ATOL is the floor for small outputs (probabilities of many
#: classes): the bound is never below 1e-5.
ATOL = 1e-5
RTOL = 1e-4
#: Top-1 flips where Keras's best two scores are closer than this, or than twice the
#: measured max |onnx - keras| (within the tolerance), are ties, not errors: outputs that
#: differ by at most d can swap two scores less than 2 d apart.
TIE_MARGIN = 1e-6


def session_options(threads: int | None = None, spinning: bool = True):
    """onnxruntime ``SessionOptions`` for running an exported model on CPU.

    Every graph optimisation (``ORT_ENABLE_ALL``: constant folding, node fusions and,
    on x86, the NCHWc layout transformation), operators run one after another
    (``ORT_SEQUENTIAL``: the exported graphs are chains, so a parallel executor has
    nothing to overlap; one inter-op thread), and ``threads`` intra-op threads per
    operator (None: onnxruntime's default, one per core).  For latency at batch 1 on
    a machine that runs other work too, ``threads=1`` avoids waking and synchronising
    a pool for operators of a single image, and ``spinning=False`` stops idle pool
    threads from busy-waiting between runs (``session.intra_op.allow_spinning``);
    ``bench/bench_onnx.py`` measures these.  Warnings are silenced (severity 3)."""
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.log_severity_level = 3
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    opts.inter_op_num_threads = 1
    if threads is not None:
        opts.intra_op_num_threads = int(threads)
    if not spinning:
        opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return opts


def session(data, threads: int | None = None, spinning: bool = True):
    """An onnxruntime CPU session on the model ``data`` (serialised bytes or a path),
    with :func:`session_options`."""
    import onnxruntime as ort

    opts = session_options(threads, spinning)
    return ort.InferenceSession(data, opts, providers=["CPUExecutionProvider"])


def scale(keras_out) -> float:
    """max |keras| of an output array (0 when empty)."""
    import numpy as np

    return float(np.max(np.abs(keras_out))) if keras_out.size else 0.0


def tolerance(keras_out) -> float:
    """The largest max |onnx - keras| a check accepts: ``ATOL + RTOL * max |keras|``."""
    return ATOL + RTOL * scale(keras_out)


def compare(name: str, onnx_out, keras_out, batch: int | None = None) -> Check:
    """The parity check of two output arrays (see :func:`tolerance`, :data:`TIE_MARGIN`)."""
    import numpy as np

    if onnx_out.shape != keras_out.shape:
        return Check(name, False, f"shape {onnx_out.shape} != Keras {keras_out.shape}", batch)
    diff = float(np.max(np.abs(onnx_out.astype(np.float64) - keras_out.astype(np.float64))))
    bound = tolerance(keras_out)
    k_top, o_top = keras_out.argmax(-1), onnx_out.argmax(-1)
    agree = int((k_top == o_top).sum())
    ties = 0
    if agree < len(k_top) and keras_out.shape[-1] > 1:
        top2 = np.sort(keras_out, axis=-1)[:, -2:]
        tied = (top2[:, 1] - top2[:, 0]) <= max(TIE_MARGIN, 2 * min(diff, bound))
        ties = int((tied & (k_top != o_top)).sum())
    total = len(k_top)
    passed = bool(np.isfinite(diff) and diff <= bound and agree + ties == total)
    detail = (
        f"max |onnx - keras| {diff:.2e} (<= {bound:.2e} = {ATOL:g} + {RTOL:g} x max |keras| "
        f"{scale(keras_out):.2g}), top-1 {agree}/{total}"
    )
    if ties:
        detail += f" ({ties} tie{'s' if ties > 1 else ''} in Keras: top two within rounding)"
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


class RuntimeFailed(Exception):
    """onnxruntime could not run the model (the message is onnxruntime's first line)."""


def run_onnx(sess, x):
    """The first output of ``sess`` on ``x``; :class:`RuntimeFailed` if onnxruntime fails."""
    try:
        return sess.run(None, {INPUT_NAME: x})[0]
    except Exception as err:
        raise RuntimeFailed(first_line(err, with_type=True)) from None


def run_batches(sess, model, x_onnx, x_keras, batch: int | None):
    """ONNX and Keras outputs on the same images (chunks of ``batch`` when fixed);
    :class:`RuntimeFailed` if onnxruntime fails."""
    import numpy as np

    n = len(x_onnx)
    onnx_parts, keras_parts = [], []
    pairs = zip(chunks(x_onnx, n, batch), chunks(x_keras, n, batch), strict=True)
    for (xo, real), (xk, _) in pairs:
        onnx_parts.append(run_onnx(sess, xo)[:real])
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
        why = first_line(err, with_type=True)
        checks.append(Check("onnxruntime", False, f"cannot load the model: {why}"))
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
        name = f"random inputs, batch {b}"
        try:
            o, k = run_batches(sess, src.model, x_onnx, x_keras, report.batch)
        except RuntimeFailed as err:
            checks.append(Check(name, False, f"onnxruntime could not run the model: {err}", b))
            return checks
        checks.append(compare(name, o, k, b))
    if images is not None:
        if mean is not None:
            x_keras = normalise(images, mean, std)
        else:
            x_keras = (images / np.float32(255.0)).astype(np.float32)
        x_onnx = images if folded else x_keras
        name = f"{len(images)} real images from {data_label}"
        try:
            o, k = run_batches(sess, src.model, x_onnx, x_keras, report.batch)
        except RuntimeFailed as err:
            checks.append(Check(name, False, f"onnxruntime could not run the model: {err}"))
            return checks
        checks.append(compare(name, o, k))
    if src.original is not None:  # informational: how far mixed precision was from float32
        ref = np.asarray(src.original(x_keras[:4], training=False), dtype=np.float32)
        drift = float(np.max(np.abs(k[: len(ref)] - ref)))
        report.notes.append(f"float32 vs original mixed-precision model: max diff {drift:.2e}")
    return checks
