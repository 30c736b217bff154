"""int8 export for deployment, gated on held-out images (``export --quantize int8``).

``quantize_onnx(source, data=FOLDER)`` makes a statically quantised ONNX model and
writes it only when it still agrees with Keras:

1. the float graph is made as by :func:`~nincompile.export.onnx_export.export_onnx`
   (:func:`~nincompile.export.convert.to_onnx`) with the preprocessing folded in
   (raw pixels 0..255 in; ``(x - mean) / std`` with the spec's ``data.mean``/
   ``data.std``, or ``x / 255`` without them, which is what training feeds the model)
   and verified against Keras on random inputs;
2. onnxruntime's tools quantise it: ``quant_pre_process`` (shape inference and graph
   optimisation), then ``quantize_static`` in QDQ format with int8 weights per output
   channel and uint8 activations whose ranges (MinMax) come from ``calibration``
   images of the folder, but for the end of the graph: a final Softmax/Sigmoid, the
   logits it reads and the output stay float32 (onnxruntime would quantise
   probabilities on steps of 1/255, and a 1000-class model's would all tie);
3. **the gate**: the int8 model and the Keras model (float32, inference mode) see
   ``holdout`` other images of the folder, never the calibration ones.  Top-1
   agreement must be at least ``min_agreement`` (default 98 %) and, when the folder
   is labelled, int8 accuracy may be at most ``max_accuracy_drop`` points (default 1)
   below Keras's.  A failure raises :class:`GateRefused` and writes nothing.

The folder is labelled when every image lies in a class sub-folder and the
sub-folders are among the spec's ``data.classes`` (labels follow that list) or, with
no class names known, as many as the model has outputs (labels in sorted folder
order, as ``nincompile train`` numbers them).  Otherwise only agreement is measured.
Calibration and gate images are drawn seeded and, when labelled, stratified by class
(:func:`nincompile.data.split.stratified_subset`).

The gate's figures, the calibration set-up and the folded normalisation go into the
model's ``metadata_props`` beside the float export's keys (``quantization``,
``top1_agreement``, ``keras_accuracy``, ``int8_accuracy``, ... see
:func:`_int8_metadata`).
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import math
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from ..data.prepare import normalisation, normalise
from ..errors import OptionError, VerificationFailed, first_line
from ..units import format_bytes
from .convert import DEFAULT_OPSET, INPUT_NAME, check_opset, to_onnx
from .onnx_export import (
    check_batch,
    data_option_errors,
    read_data_images,
    resolve_output,
    stamp,
    write_verified,
)
from .report import Check, ExportReport, metadata
from .source import Source, input_shape, load_source, require_tensorflow_backend
from .verify import RuntimeFailed, chunks, run_batches, session, verify

QUANTIZE_MODES = ("int8",)
DEFAULT_CALIBRATION = 256
DEFAULT_HOLDOUT = 1000
DEFAULT_MIN_AGREEMENT = 0.98
DEFAULT_MAX_ACCURACY_DROP = 1.0  # percentage points
SEED = 0
#: Images per onnxruntime / Keras call while calibrating and gating.
CHUNK = 256
#: Fewer held-out images than this make a weak gate; the report says so.
FEW_GATE_IMAGES = 200
CALIBRATION_METHOD = "MinMax"


class GateRefused(VerificationFailed):
    """The int8 model disagrees with Keras beyond the gate's limits; nothing was written."""


class QuantizationError(OptionError):
    """onnxruntime could not quantise the model."""


# ------------------------------------------------------------------------- gate


@dataclass
class Gate:
    """Top-1 agreement of int8 with Keras (and accuracy of both) on held-out images."""

    images: int
    agree: int
    min_agreement: float
    max_accuracy_drop: float
    keras_correct: int | None = None  # None: the folder is not labelled
    int8_correct: int | None = None

    @property
    def labelled(self) -> bool:
        return self.keras_correct is not None

    @property
    def agreement(self) -> float:
        return self.agree / self.images

    @property
    def keras_accuracy(self) -> float | None:
        return None if self.keras_correct is None else self.keras_correct / self.images

    @property
    def int8_accuracy(self) -> float | None:
        return None if self.int8_correct is None else self.int8_correct / self.images

    @property
    def accuracy_drop(self) -> float | None:
        """Keras accuracy minus int8 accuracy, in percentage points."""
        if not self.labelled:
            return None
        return 100.0 * (self.keras_correct - self.int8_correct) / self.images

    @property
    def agreement_ok(self) -> bool:
        return self.agreement >= self.min_agreement - 1e-12

    @property
    def accuracy_ok(self) -> bool:
        return not self.labelled or self.accuracy_drop <= self.max_accuracy_drop + 1e-9

    @property
    def passed(self) -> bool:
        return self.agreement_ok and self.accuracy_ok

    def agreement_text(self) -> str:
        rel = ">=" if self.agreement_ok else "is below"
        return (
            f"top-1 agreement with Keras {_pct(self.agreement)} ({self.agree}/{self.images} "
            f"held-out images) {rel} --min-agreement {_pct(self.min_agreement)}"
        )

    def accuracy_text(self) -> str:
        rel = "<=" if self.accuracy_ok else "exceeds"
        return (
            f"accuracy Keras {_pct(self.keras_accuracy)}, int8 {_pct(self.int8_accuracy)}: "
            f"a drop of {self.accuracy_drop:.2f} points {rel} --max-accuracy-drop "
            f"{_num(self.max_accuracy_drop)}"
        )

    def failures(self) -> list[str]:
        out = []
        if not self.agreement_ok:
            out.append(self.agreement_text())
        if not self.accuracy_ok:
            out.append(self.accuracy_text())
        return out


def _pct(x: float) -> str:
    return f"{100.0 * x:.2f} %"


def _num(x: float) -> str:
    return f"{x:g}"


# ----------------------------------------------------------------------- report


@dataclass
class QuantizeReport(ExportReport):
    """An :class:`ExportReport` with the int8 set-up and the gate's figures."""

    data: str = ""
    calibration_images: int = 0
    gate: Gate | None = None
    float_size_bytes: int = 0
    label_note: str = ""
    seed: int = SEED

    def lines(self) -> list[str]:
        out = super().lines()
        extra = [
            f"  int8       QDQ, weights int8 per output channel, activations uint8; "
            f"{CALIBRATION_METHOD} calibration on {self.calibration_images} images of "
            f"{self.data} (seed {self.seed})"
        ]
        if self.float_size_bytes:
            size = f"  size       float {format_bytes(self.float_size_bytes)}"
            if self.size_bytes:
                size += f" -> int8 {format_bytes(self.size_bytes)}"
            extra.append(size)
        if self.label_note:
            extra.append(f"  gate data  {self.label_note}")
        return out[:3] + extra + out[3:]


# ------------------------------------------------------------------------- data


@dataclass
class Split:
    """Calibration and gate images drawn from one folder."""

    calibration: list[Path]
    holdout: list[Path]
    labels: list[int] | None  # of the holdout images; None when unlabelled
    note: str
    notes: list[str] = field(default_factory=list)


def _folder_labels(folder: Path, files: list[Path], classes, n_out: int):
    """``(labels or None, note)``: labels when the folder is labelled (module docstring)."""
    names = []
    for f in files:
        parts = f.relative_to(folder).parts
        if len(parts) != 2:
            return None, (
                f"unlabelled ('{f.relative_to(folder)}' is not in a class sub-folder): "
                "agreement only"
            )
        names.append(parts[0])
    found = sorted(set(names))
    if classes is not None:
        unknown = [n for n in found if n not in classes]
        if unknown:
            shown = ", ".join(unknown[:5]) + (", ..." if len(unknown) > 5 else "")
            return None, (
                f"unlabelled (sub-folders not among the spec's classes: {shown}): agreement only"
            )
        index = {c: i for i, c in enumerate(classes)}
        return [index[n] for n in names], (
            f"labelled: {len(found)} class sub-folders named as in the spec's data.classes"
        )
    if len(found) == n_out:
        index = {c: i for i, c in enumerate(found)}
        return [index[n] for n in names], (
            f"labelled by sorted sub-folder name ({len(found)} folders for {n_out} outputs; "
            "the spec names no classes)"
        )
    return None, (
        f"unlabelled ({len(found)} sub-folders for {n_out} outputs and no class names): "
        "agreement only"
    )


def split_folder(
    folder: str | os.PathLike,
    calibration: int,
    holdout: int,
    classes: list[str] | None,
    n_out: int,
    seed: int = SEED,
) -> Split:
    """Pick ``calibration`` images and, from the others, up to ``holdout`` gate images."""
    import numpy as np

    from ..data.sources import list_image_files
    from ..data.split import stratified_subset

    folder = Path(folder)
    if not folder.is_dir():
        raise OptionError(
            f"--data '{folder}' is not a folder; --quantize int8 needs a folder of images "
            "(class sub-folders) for calibration and the gate"
        )
    with data_option_errors():
        files = list_image_files(folder)
    labels, note = _folder_labels(folder, files, classes, n_out)
    total = len(files)
    if calibration >= total:
        raise OptionError(
            f"--data '{folder}' holds {total} image{'s' if total != 1 else ''}: "
            f"--calibration {calibration} leaves none held out for the gate; lower "
            "--calibration or add images"
        )
    strata = np.asarray(labels if labels is not None else [0] * total)
    cal_idx = stratified_subset(strata, calibration, seed)
    rest = np.setdiff1d(np.arange(total), cal_idx)
    hold_idx = rest[stratified_subset(strata[rest], holdout, seed + 1)]
    split = Split(
        [files[i] for i in cal_idx],
        [files[i] for i in hold_idx],
        [labels[i] for i in hold_idx] if labels is not None else None,
        note,
    )
    n = len(hold_idx)
    if n < holdout:
        split.notes.append(
            f"the gate ran on {n} held-out images, all the folder has beside the "
            f"{calibration} calibration images (--holdout {holdout})"
        )
    if n < FEW_GATE_IMAGES:
        split.notes.append(
            f"only {n} gate images: one disagreement moves agreement by {100 / n:.2f} points"
        )
    return split


# ------------------------------------------------------------------ quantisation


def _calibration_reader(images, batch: int | None):
    from onnxruntime.quantization import CalibrationDataReader

    class Reader(CalibrationDataReader):
        def __init__(self):
            self._it = (part for part, _ in chunks(images, 64, batch))

        def get_next(self):
            part = next(self._it, None)
            return None if part is None else {INPUT_NAME: part}

    return Reader()


#: Ops that squash the logits into a fixed range: onnxruntime quantises their output
#: to uint8 over that range ([0, 1] for Softmax), so 1000 probabilities fall on steps of
#: 1/255 and their top-1 ties.  The last one of the graph is left in float32.
SQUASHING_OPS = frozenset({"Softmax", "Sigmoid", "LogSoftmax"})
#: Ops that only move values: the scores pass through them unchanged.
SHAPE_OPS = frozenset({"Reshape", "Flatten", "Squeeze", "Unsqueeze", "Transpose", "Identity"})


def _producers(graph) -> dict:
    return {o: n for n in graph.node for o in n.output}


def _head(proto):
    """The squashing node (:data:`SQUASHING_OPS`) that makes the graph's output, through
    shape-only ops, or None."""
    producers = _producers(proto.graph)
    node = producers.get(proto.graph.output[0].name)
    while node is not None and node.op_type in SHAPE_OPS:
        node = producers.get(node.input[0])
    return node if node is not None and node.op_type in SQUASHING_OPS else None


def _bypass_qdq(graph, tensor: str) -> str | None:
    """Remove the QuantizeLinear -> DequantizeLinear pair that makes ``tensor``, so the
    float tensor the pair was fed takes its place; returns that tensor's name from now
    on (``tensor`` itself for a graph output), or None when there is no such pair or
    it is shared."""
    producers = _producers(graph)
    dq = producers.get(tensor)
    if dq is None or dq.op_type != "DequantizeLinear":
        return None
    q = producers.get(dq.input[0])
    if q is None or q.op_type != "QuantizeLinear":
        return None
    uses = [i for n in graph.node for i in n.input]
    if uses.count(q.output[0]) != 1:
        return None  # another DequantizeLinear reads the same quantised tensor
    source = q.input[0]
    graph.node.remove(dq)
    graph.node.remove(q)
    if tensor in {o.name for o in graph.output}:  # the float tensor takes the output's name
        for n in graph.node:
            n.output[:] = [tensor if o == source else o for o in n.output]
            n.input[:] = [tensor if i == source else i for i in n.input]
        return tensor
    for n in graph.node:
        n.input[:] = [source if i == tensor else i for i in n.input]
    return source


def float_output(proto) -> int:
    """Keep the scores in float32: walking back from the graph's output through
    shape-only ops and the final squashing node (left unquantised), remove every
    quantise/dequantise pair up to the op that computes the scores (which keeps its
    int8 weights).  Returns how many pairs were removed."""
    graph = proto.graph
    tensor = graph.output[0].name
    removed, squashed = 0, False
    while True:
        new = _bypass_qdq(graph, tensor)
        if new is not None:
            tensor, removed = new, removed + 1
            continue
        node = _producers(graph).get(tensor)
        if node is None:
            return removed
        if node.op_type in SHAPE_OPS or (node.op_type in SQUASHING_OPS and not squashed):
            squashed = squashed or node.op_type in SQUASHING_OPS
            tensor = node.input[0]
            continue
        return removed


def _quantize(float_proto, calibration_images, batch: int | None):
    """The int8 QDQ ModelProto of ``float_proto``, calibrated on the given pixels.

    Weights and activations are quantised but for the end of the graph: a final
    Softmax/Sigmoid (:data:`SQUASHING_OPS`) and the logits it reads stay float32, and so
    does the output, so top-1 is decided on float scores (the layer that makes them
    still has int8 weights)."""
    import onnx
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    with tempfile.TemporaryDirectory(prefix="nincompile-int8-") as tmp:
        tmp = Path(tmp)
        float_path, pre_path, int8_path = tmp / "float.onnx", tmp / "pre.onnx", tmp / "int8.onnx"
        onnx.save(float_proto, float_path)
        root = logging.getLogger()
        level = root.level
        root.setLevel(logging.ERROR)  # onnxruntime.quantization logs advice through root
        try:
            with contextlib.redirect_stdout(io.StringIO()):
                quant_pre_process(float_path, pre_path)
                head = _head(onnx.load(pre_path))
                quantize_static(
                    pre_path,
                    int8_path,
                    _calibration_reader(calibration_images, batch),
                    quant_format=QuantFormat.QDQ,
                    per_channel=True,
                    activation_type=QuantType.QUInt8,
                    weight_type=QuantType.QInt8,
                    calibrate_method=CalibrationMethod.MinMax,
                    nodes_to_exclude=[head.name] if head is not None else [],
                )
            proto = onnx.load(int8_path)
        except Exception as err:
            text = str(err).strip().splitlines()
            first = text[0] if text else type(err).__name__
            raise QuantizationError(f"onnxruntime could not quantise the model: {first}") from None
        finally:
            root.setLevel(level)
    float_output(proto)
    return proto


def _float_graph(
    src: Source, shape, opset: int, batch: int | None, out_name: str, mean, std, notes=None
):
    """The float ONNX graph with the normalisation folded in (raw pixels in)."""
    return to_onnx(src.model, shape, opset, batch, out_name, mean, std, notes)


def run_gate(
    proto, src: Source, images, labels, mean, std, batch: int | None, min_agreement, max_drop
) -> Gate:
    """Compare the int8 ``proto`` with Keras on ``images`` (float32 pixels 0..255);
    :class:`~nincompile.export.verify.RuntimeFailed` if onnxruntime fails."""
    import numpy as np

    try:
        sess = session(proto.SerializeToString())
    except Exception as err:
        raise RuntimeFailed(first_line(err, with_type=True)) from None
    agree = k_ok = q_ok = 0
    y = np.asarray(labels) if labels is not None else None
    for i in range(0, len(images), CHUNK):
        raw = images[i : i + CHUNK]
        q, k = run_batches(sess, src.model, raw, normalise(raw, mean, std), batch)
        qt, kt = q.argmax(-1), k.argmax(-1)
        agree += int((qt == kt).sum())
        if y is not None:
            k_ok += int((kt == y[i : i + CHUNK]).sum())
            q_ok += int((qt == y[i : i + CHUNK]).sum())
    gate = Gate(len(images), agree, min_agreement, max_drop)
    if y is not None:
        gate.keras_correct, gate.int8_correct = k_ok, q_ok
    return gate


def _int8_metadata(report: QuantizeReport) -> dict[str, str]:
    """The keys an int8 export adds to the float export's metadata."""
    import onnxruntime

    g = report.gate

    def num(x):
        return "null" if x is None else json.dumps(round(x, 6))

    return {
        "quantization": "int8",
        "quantization_format": "QDQ",
        "weight_type": "int8 per-channel",
        "activation_type": "uint8",
        "calibration_method": CALIBRATION_METHOD,
        "calibration_images": str(report.calibration_images),
        "calibration_seed": str(report.seed),
        "onnxruntime_version": onnxruntime.__version__,
        "gate_images": str(g.images),
        "top1_agreement": num(g.agreement),
        "keras_accuracy": num(g.keras_accuracy),
        "int8_accuracy": num(g.int8_accuracy),
        "accuracy_drop_points": num(g.accuracy_drop),
        "min_agreement": json.dumps(g.min_agreement),
        "max_accuracy_drop": json.dumps(g.max_accuracy_drop),
    }


def _check_gate_options(calibration, holdout, min_agreement, max_accuracy_drop) -> None:
    for name, value in (("--calibration", calibration), ("--holdout", holdout)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise OptionError(f"{name} must be a positive number of images; received {value!r}")
    for name, value in (
        ("--min-agreement", min_agreement),
        ("--max-accuracy-drop", max_accuracy_drop),
    ):
        if (
            isinstance(value, bool)
            or not isinstance(value, (int, float))
            or not math.isfinite(value)
        ):
            raise OptionError(f"{name} must be a number; received {value!r}")
    if min_agreement < 0:
        raise OptionError(
            f"--min-agreement is a fraction (0.98 = 98 %) and cannot be negative; "
            f"received {min_agreement!r}"
        )
    if max_accuracy_drop < 0:
        raise OptionError(
            f"--max-accuracy-drop is in percentage points and cannot be negative; "
            f"received {max_accuracy_drop!r}"
        )


# -------------------------------------------------------------------------- API


def quantize_onnx(
    source: str | os.PathLike | Source,
    out: str | os.PathLike | None = None,
    *,
    data: str | os.PathLike,
    mode: str = "int8",
    calibration: int = DEFAULT_CALIBRATION,
    holdout: int = DEFAULT_HOLDOUT,
    min_agreement: float = DEFAULT_MIN_AGREEMENT,
    max_accuracy_drop: float = DEFAULT_MAX_ACCURACY_DROP,
    opset: int = DEFAULT_OPSET,
    batch: int | None = None,
    seed: int = SEED,
) -> QuantizeReport:
    """Quantise ``source`` to int8, gate it against Keras and write it atomically.

    ``source`` is what :func:`~nincompile.export.onnx_export.export_onnx` takes;
    ``out`` defaults to ``build/<name>_int8.onnx``.  Raises :class:`GateRefused` (and
    writes nothing) when the gate fails, another
    :class:`~nincompile.errors.ExportError` on bad input.
    """
    import onnx

    if mode not in QUANTIZE_MODES:
        raise OptionError(f"--quantize supports {', '.join(QUANTIZE_MODES)}; received {mode!r}")
    if data is None:
        raise OptionError(
            "--quantize int8 needs --data FOLDER: images (class sub-folders) to calibrate "
            "on and to compare the int8 model with Keras"
        )
    _check_gate_options(calibration, holdout, min_agreement, max_accuracy_drop)
    check_opset(opset)
    check_batch(batch)
    require_tensorflow_backend()
    if out is not None:
        resolve_output(out, "model")  # fail before the slow work
    if not Path(data).is_dir():
        raise OptionError(
            f"--data '{data}' is not a folder; --quantize int8 needs a folder of images "
            "(class sub-folders) for calibration and the gate"
        )
    src = source if isinstance(source, Source) else load_source(source)
    target = resolve_output(out, f"{src.name}_int8")
    shape = input_shape(src.model)
    n_out = int(src.model.outputs[0].shape[-1])
    split = split_folder(data, calibration, holdout, src.classes, n_out, seed)

    mean, std = normalisation(src.data, shape[2])
    report = QuantizeReport.of(
        src,
        target,
        opset,
        batch,
        True,
        data=str(data),
        calibration_images=len(split.calibration),
        label_note=split.note,
        seed=seed,
    )
    if src.mean is None:
        report.notes.append("no data.mean/std known: x / 255 folded in (what training feeds then)")
    report.notes.extend(split.notes)

    float_proto = _float_graph(
        src, shape, opset, batch, report.output_name, mean, std, report.notes
    )
    report.float_size_bytes = len(float_proto.SerializeToString())
    float_checks = verify(float_proto, src, report, mean, std)
    for check in float_checks:
        check.name = f"float graph: {check.name}"
    report.checks = float_checks
    if not report.ok:
        raise VerificationFailed(
            f"{src.name}: the float ONNX graph failed verification before quantisation; "
            f"nothing written\n{report.text()}",
            report,
        )

    proto = _quantize(float_proto, read_data_images(split.calibration, shape), batch)
    proto.graph.name = src.name
    proto.doc_string = f"{src.name}, int8 (QDQ), exported by nincompile"
    try:
        onnx.checker.check_model(proto, full_check=True)
        report.checks.append(
            Check("int8 onnx.checker", True, "check_model(full_check=True) passed")
        )
    except Exception as err:
        report.checks.append(Check("int8 onnx.checker", False, f"{type(err).__name__}: {err}"))
        raise VerificationFailed(
            f"{src.name}: the int8 model failed onnx.checker; nothing written\n{report.text()}",
            report,
        ) from None

    holdout_images = read_data_images(split.holdout, shape)
    try:
        gate = run_gate(
            proto, src, holdout_images, split.labels, mean, std, batch, min_agreement,
            max_accuracy_drop,
        )  # fmt: skip
    except RuntimeFailed as err:
        report.checks.append(Check("int8 onnxruntime", False, f"cannot run the model: {err}"))
        raise VerificationFailed(
            f"{src.name}: onnxruntime could not run the int8 model; nothing written\n"
            f"{report.text()}",
            report,
        ) from None
    report.gate = gate
    report.checks.append(Check("gate", gate.agreement_ok, gate.agreement_text()))
    if gate.labelled:
        report.checks.append(Check("gate", gate.accuracy_ok, gate.accuracy_text()))

    stamp(proto, report, {**metadata(src, report, mean, std), **_int8_metadata(report)})

    if not gate.passed:
        reasons = "\n".join(f"  {r}" for r in gate.failures())
        raise GateRefused(
            f"{src.name}: refused: the int8 model failed the gate; nothing written\n{reasons}\n"
            "(--min-agreement and --max-accuracy-drop change the gate deliberately)\n"
            f"{report.text()}",
            report,
        )
    return write_verified(proto, report, out, f"{src.name}_int8")
