"""Every IR node kind and every activation exports to ONNX and passes the parity gate.

Each case is a tiny spec written here (a few kB of weights, well under a second to
convert).  ``test_every_kind_has_an_export_case`` fails when a node kind is added
without a case here, so a kind without export support cannot go unnoticed.  The
other tests pin the fixes of the keras.applications benchmark
(``bench/bench_applications.py``): Normalization's captured mean/variance, exact GELU
and grouped convolutions traced through a twin model, onnxruntime failures reported
as failed checks, the scale-relative tolerance, and int8 models whose Softmax stays
float.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import onnx  # noqa: E402
import onnxruntime as ort  # noqa: E402
from click.testing import CliRunner  # noqa: E402
from conftest import block_library  # noqa: E402
from PIL import Image  # noqa: E402

from nincompile import api  # noqa: E402
from nincompile.cli import main  # noqa: E402
from nincompile.export import (  # noqa: E402
    ConversionError,
    convert,
    export_onnx,
    load_source,
    rewrite,  # noqa: E402
    verify,
)
from nincompile.export import quantize as q  # noqa: E402
from nincompile.export.report import ExportReport  # noqa: E402
from nincompile.ir import NODE_KINDS  # noqa: E402
from nincompile.spec import parse_spec  # noqa: E402
from nincompile.spec.schema import ACTIVATIONS  # noqa: E402

HEAD = "[gap, {dense: 5}]"
BLOCKS = block_library(
    res=4,
    se=4,
    extra="""\
  convnext:
    params: {dim: int}
    branches:
      - []
      - - {conv: [$dim, 7], groups: $dim, padding: same}
        - {layer_norm: {epsilon: 1.0e-6}}
        - {dense: "$dim * 4", pointwise: true, activation: gelu}
        - {dense: $dim, pointwise: true}
        - {layer_scale: 0.5}
        - {drop_path: 0.1}
    merge: add
""",
)

#: node kind -> cases (id, input shape, stage items, head); each case's model holds a
#: layer of that kind.  Several cases for the kinds the benchmark found broken.
CASES: dict[str, list[tuple[str, list[int], str, str]]] = {
    "input": [("input", [6, 6, 3], "[{conv: [4, 3]}]", HEAD)],
    "conv2d": [
        ("conv", [9, 7, 3], "[{conv: [5, [3, 2]], strides: [2, 1], bias: false}]", HEAD),
        ("conv_groups", [8, 8, 4], "[{conv: [6, 3], groups: 2, padding: same}]", HEAD),
        ("conv_groups_strided", [9, 9, 6], "[{conv: [6, 3], groups: 3, strides: 2}]", HEAD),
        ("conv_groups_dilated", [9, 9, 4], "[{conv: [4, 3], groups: 2, dilation: 2}]", HEAD),
        # groups == channels: ConvNeXt's depthwise convolution, with a multiplier of 2
        ("conv_groups_depthwise", [8, 8, 4], "[{conv: [8, 7], groups: 4, padding: same}]", HEAD),
        ("convnext_block", [8, 8, 3], "[{conv: [8, 1]}, {block: convnext, with: {dim: 8}}]",
         HEAD),
    ],
    "depthwise_conv2d": [
        ("depthwise", [9, 9, 3],
         "[{depthwise: 3, depth_multiplier: 2, strides: 2, padding: same}]", HEAD),
        ("depthwise_dilated", [9, 9, 3], "[{depthwise: 3, dilation: 2}]", HEAD),
    ],
    "separable_conv2d": [
        ("separable", [9, 9, 4], "[{separable: [6, 3], depth_multiplier: 2, bias: false}]", HEAD),
        ("separable_strided", [9, 9, 4], "[{separable: [6, 3], strides: 2, padding: same}]",
         HEAD),
    ],
    "conv2d_transpose": [
        ("conv_transpose", [5, 5, 4], "[{conv_transpose: [3, 3], strides: 2}]", HEAD),
        ("conv_transpose_same", [5, 5, 4],
         "[{conv_transpose: [3, 3], strides: 2, padding: same}]", HEAD),
    ],
    "dense": [
        ("dense", [4, 4, 3], "[flatten, {dense: 6, activation: relu}]", "[{dense: 5}]"),
        ("dense_pointwise", [4, 4, 3], "[{dense: 6, pointwise: true}]", HEAD),
    ],
    "batch_norm": [("batch_norm", [6, 6, 3], "[{conv: [4, 3]}, bn]", HEAD)],
    "layer_norm": [("layer_norm", [4, 4, 6], "[{layer_norm: {epsilon: 1.0e-6}}]", HEAD)],
    "layer_scale": [("layer_scale", [4, 4, 6], "[{layer_scale: 0.5}]", HEAD)],
    "drop_path": [("drop_path", [4, 4, 6], "[{conv: [4, 3]}, {drop_path: 0.2}]", HEAD)],
    "activation": [("activation", [6, 6, 3], "[{conv: [4, 3]}, {activation: hard_swish}]", HEAD)],
    "zero_pad": [("zero_pad", [7, 7, 3], "[{pad: [[0, 1], [2, 3]]}, {conv: [4, 3]}]", HEAD)],
    "upsample": [
        ("upsample", [4, 5, 2], "[{upsample: [2, 3]}, {conv: [4, 3]}]", HEAD),
        ("upsample_bilinear", [4, 5, 2],
         "[{upsample: [2, 3], interpolation: bilinear}, {conv: [4, 3]}]", HEAD),
    ],
    "reshape": [("reshape", [4, 4, 6], "[gap, {reshape: [1, 1, -1]}, {conv: [4, 1]}]", HEAD)],
    "rescaling": [("rescaling", [4, 4, 3], "[{rescale: 0.0078431, offset: -1}]", HEAD)],
    "normalization": [
        ("normalize", [4, 4, 3], "[{normalize: {}}, {conv: [4, 3]}]", HEAD),
        ("normalize_given", [4, 4, 3],
         "[{normalize: {mean: [1.0, 2.0, 3.0], variance: [4.0, 5.0, 6.0]}}, {conv: [4, 3]}]",
         HEAD),
        # 160 channels: a mean larger than TensorFlow captures by value (128 numbers)
        ("normalize_wide", [2, 2, 160], "[{normalize: {}}, {conv: [4, 1]}]", HEAD),
    ],
    "pool2d": [
        ("pool_max", [9, 9, 3], "[{pool: {max: 3, strides: 2, padding: same}}]", HEAD),
        ("pool_avg", [9, 9, 3], "[{pool: {avg: 3, strides: 2, padding: same}}]", HEAD),
    ],
    "global_pool": [
        ("global_pool", [6, 6, 3], "[{global_pool: max, keepdims: true}, {conv: [4, 1]}]",
         "[flatten, {dense: 5}]"),
    ],
    "flatten": [("flatten", [4, 5, 3], "[flatten]", "[{dense: 5, activation: softmax}]")],
    "dropout": [("dropout", [6, 6, 3], "[{conv: [4, 3]}, {dropout: 0.3}]", HEAD)],
    "concat": [("concat", [6, 6, 3], "[{block: two, with: {}}]", HEAD)],
    "add": [("add", [6, 6, 3], "[{conv: [4, 1]}, {block: res, with: {}}]", HEAD)],
    "multiply": [("multiply", [6, 6, 3], "[{conv: [4, 1]}, {block: se, with: {}}]", HEAD)],
}  # fmt: skip
ALL_CASES = [(kind, *case) for kind, cases in CASES.items() for case in cases]
#: activations whose model does not build yet (not an export matter)
NOT_BUILDING: dict[str, str] = {}


def _build(text: str):
    """``(compiled, keras_model)`` of a spec's text."""
    compiled = api.compile_source(parse_spec(text))
    return compiled, api.build(compiled)


def _spec_text(name: str, shape, stages: str, head: str) -> str:
    return f"name: {name}\ninput: {shape}\nstages: {stages}\nhead: {head}\n{BLOCKS}"


def _export(tmp_path: Path, name: str, text: str):
    spec = tmp_path / f"{name}.yaml"
    spec.write_text(text)
    src = load_source(spec)
    report = export_onnx(src, tmp_path / f"{name}.onnx")
    return src, report


def _check_exported(src, report) -> None:
    assert report.ok and report.written, report.text()
    proto = onnx.load(report.out)
    assert [i.name for i in proto.graph.input] == ["input"]
    # an independent run: batch 3, not one the gate used; the outputs are not constant
    shape = src.spec.input
    x = np.random.default_rng(5).standard_normal((3, *shape)).astype(np.float32)
    sess = ort.InferenceSession(str(report.out), providers=["CPUExecutionProvider"])
    got = sess.run(None, {"input": x})[0]
    want = np.asarray(src.model(x, training=False))
    assert np.max(np.abs(got - want)) <= verify.tolerance(want)
    assert np.ptp(want) > 1e-4, "a degenerate test model"


# ---------------------------------------------------------------- every kind


def test_every_kind_has_an_export_case():
    assert set(CASES) == set(NODE_KINDS), "a node kind without an export case"
    layers = {}
    for kind, case_id, shape, stages, head in ALL_CASES:
        _, model = _build(_spec_text(f"k_{case_id}", shape, stages, head))
        layers.setdefault(kind, set()).update(type(layer).__name__ for layer in model.layers)
    built = {kind for kind in CASES if kind == "input" or layers[kind]}
    assert built == set(CASES)


@pytest.mark.parametrize(
    ("kind", "case_id", "shape", "stages", "head"), ALL_CASES, ids=[c[1] for c in ALL_CASES]
)
def test_kind_exports_with_parity(kind, case_id, shape, stages, head, tmp_path):
    src, report = _export(tmp_path, f"k_{case_id}", _spec_text(f"k_{case_id}", shape, stages, head))
    _check_exported(src, report)


@pytest.mark.parametrize("activation", ACTIVATIONS)
def test_activation_exports_with_parity(activation, tmp_path):
    if activation in NOT_BUILDING:
        pytest.xfail(NOT_BUILDING[activation])
    text = _spec_text(f"a_{activation}", [6, 6, 4], f"[{{conv: [4, 3], activation: {activation}}}]",
                      HEAD)  # fmt: skip
    src, report = _export(tmp_path, f"a_{activation}", text)
    _check_exported(src, report)


# ------------------------------------------------------------ the twin model


def test_swapped_layers_leave_the_model_unchanged(tmp_path):
    """gelu, celu and grouped convolutions are traced through a twin; the model keeps
    its own layers and weights, and the twin shares every other layer."""
    text = _spec_text(
        "twin", [8, 8, 4],
        "[{conv: [8, 3], groups: 4, padding: same, activation: gelu}, celu, {conv: [4, 1]}]",
        HEAD,
    )  # fmt: skip
    spec = tmp_path / "twin.yaml"
    spec.write_text(text)
    src = load_source(spec)
    before = [w.copy() for w in src.model.get_weights()]
    layers = list(src.model.layers)

    notes: list[str] = []
    twin = rewrite.graph_model(src.model, notes)
    assert twin is not src.model
    assert "exact GELU as Erf" in notes[0] and "grouped Conv2D" in notes[0] and "CELU" in notes[0]
    assert list(src.model.layers) == layers
    conv = src.model.get_layer("stage1_conv")
    assert type(conv) is keras.layers.Conv2D and conv.groups == 4
    assert src.model.get_layer("stage1_gelu").activation.__name__ == "gelu"
    assert src.model.get_layer("stage2_celu").activation.__name__ == "celu"
    shared = {id(layer) for layer in twin.layers} & {id(layer) for layer in layers}
    assert id(src.model.get_layer("stage3_conv")) in shared
    assert id(conv) not in shared

    report = export_onnx(src, tmp_path / "twin.onnx")
    assert report.ok
    assert any("verified against the unchanged model" in n for n in report.notes)
    for a, b in zip(before, src.model.get_weights(), strict=True):
        assert np.array_equal(a, b)
    ops = {n.op_type for n in onnx.load(report.out).graph.node}
    assert "Erf" in ops
    convs = [n for n in onnx.load(report.out).graph.node if n.op_type == "Conv"]
    assert any(a.name == "group" and a.i == 4 for n in convs for a in n.attribute)


def test_activations_inside_layers_of_a_keras_file(tmp_path):
    """A .keras model made elsewhere may hold gelu inside a Conv2D or Dense layer."""
    keras.utils.set_random_seed(0)
    inp = keras.Input((6, 6, 4))
    x = keras.layers.Conv2D(8, 3, groups=2, activation="gelu")(inp)
    x = keras.layers.GlobalAveragePooling2D()(x)
    x = keras.layers.Dense(6, activation="celu")(x)
    out = keras.layers.Dense(3, activation="softmax")(x)
    keras.Model(inp, out, name="inside").save(tmp_path / "inside.keras")
    report = export_onnx(tmp_path / "inside.keras", tmp_path / "inside.onnx")
    assert report.ok and report.written
    assert any("exact GELU as Erf" in n for n in report.notes)


def test_a_model_without_swaps_is_traced_as_it_is(tmp_path):
    spec = tmp_path / "plain.yaml"
    spec.write_text(_spec_text("plain", [6, 6, 3], "[{conv: [4, 3], activation: relu}]", HEAD))
    model = load_source(spec).model
    notes: list[str] = []
    assert rewrite.graph_model(model, notes) is model and notes == []


def test_gelu_and_celu_formulas_equal_keras():
    x = np.linspace(-12, 12, 2001, dtype=np.float32)
    np.testing.assert_allclose(
        np.asarray(rewrite.gelu_erf(x)), np.asarray(keras.activations.gelu(x, False)), atol=1e-6
    )
    np.testing.assert_allclose(
        np.asarray(rewrite.celu_exp(x)), np.asarray(keras.activations.celu(x)), atol=1e-6
    )


# ----------------------------------------------- Normalization's captured values


def test_captured_values_never_become_graph_inputs(tmp_path, monkeypatch):
    """tf2onnx's own from_function lists a Normalization layer's mean and variance as
    graph inputs; the exporter refuses such a graph with a clean error (and converts
    with the function's own inputs, as the parity tests above show)."""
    import tf2onnx

    spec = tmp_path / "norm.yaml"
    spec.write_text(_spec_text("norm", [4, 4, 3], "[{normalize: {}}, {conv: [4, 3]}]", HEAD))
    src = load_source(spec)

    def tf2onnx_own(function, spec, opset):
        return tf2onnx.convert.from_function(function, input_signature=spec, opset=opset)[0]

    monkeypatch.setattr(convert, "from_function", tf2onnx_own)
    with pytest.raises(ConversionError, match="extra graph inputs"):
        export_onnx(src, tmp_path / "norm.onnx")
    assert not (tmp_path / "norm.onnx").exists()


def test_onnxruntime_failures_are_failed_checks(tmp_path):
    """A graph onnxruntime cannot run (here: a required input verify does not feed)
    fails a check; nothing escapes as a raw onnxruntime error."""
    import tensorflow as tf
    import tf2onnx

    spec = tmp_path / "norm.yaml"
    spec.write_text(_spec_text("norm", [4, 4, 3], "[{normalize: {}}, {conv: [4, 3]}]", HEAD))
    src = load_source(spec)
    sig = [tf.TensorSpec((None, 4, 4, 3), tf.float32, name="input")]

    @tf.function(input_signature=sig)
    def serve(x):
        return {"logits": src.model(x, training=False)}

    proto, _ = tf2onnx.convert.from_function(serve, input_signature=sig, opset=17)
    assert len(proto.graph.input) > 1  # tf2onnx's own behaviour, which the exporter avoids
    report = ExportReport.of(src, tmp_path / "x.onnx", 17, None, False)
    checks = verify.verify(proto, src, report, None, None)
    assert not checks[-1].passed
    assert "onnxruntime could not run the model" in checks[-1].detail


def test_cli_reports_an_onnxruntime_failure_without_a_traceback(tmp_path, monkeypatch):
    spec = tmp_path / "tiny.yaml"
    spec.write_text(_spec_text("tiny", [4, 4, 3], "[{conv: [4, 3]}]", HEAD))

    class Broken:
        def run(self, *args, **kwargs):
            raise RuntimeError("[ONNXRuntimeError] : 2 : INVALID_ARGUMENT : boom\nmore")

    monkeypatch.setattr(verify, "session", lambda data: Broken())
    result = CliRunner().invoke(main, ["export", str(spec), "-o", str(tmp_path / "t.onnx")])
    assert result.exit_code == 1
    assert "Traceback" not in result.output
    assert "onnxruntime could not run the model: RuntimeError: [ONNXRuntimeError]" in result.output
    assert not (tmp_path / "t.onnx").exists()


# ------------------------------------------------------------ lean conversion


def test_conversion_writes_fresh_node_protos_and_restores_tf2onnx():
    """Each update of a tf2onnx node writes a new NodeProto (the old one, and its copy
    of the weights, is freed); tf2onnx is left as it was."""
    import onnx
    import tf2onnx.graph
    from tf2onnx import constants

    original = tf2onnx.graph.Node.update_proto
    key = constants.ENV_TF2ONNX_CATCH_ERRORS
    assert key not in os.environ
    with convert._lean_conversion(catch_errors=False):
        assert os.environ[key] == "FALSE"
        graph = tf2onnx.graph.Graph([], opset=17)
        node = graph.make_node("Identity", ["x"])
        before = node.op
        node.update_proto()
        assert node.op is not before and node.op.op_type == "Identity"
        assert list(node.op.input) == ["x"]
    assert tf2onnx.graph.Node.update_proto is original and key not in os.environ
    with convert._lean_conversion(catch_errors=True):
        assert key not in os.environ  # tf2onnx's default: catch an optimiser's failure
    assert isinstance(before, onnx.NodeProto)


def test_a_failing_optimiser_is_retried_with_tf2onnx_default(tmp_path, monkeypatch):
    """tf2onnx's transpose optimiser fails on hard_sigmoid's scalar Add: the conversion
    runs again with tf2onnx's default (a failed optimiser is skipped) and passes."""
    seen = []
    lean = convert._lean_conversion

    def spy(catch_errors):
        seen.append(catch_errors)
        return lean(catch_errors)

    monkeypatch.setattr(convert, "_lean_conversion", spy)
    text = _spec_text("hs", [6, 6, 4], "[{conv: [4, 3], activation: hard_sigmoid}]", HEAD)
    src, report = _export(tmp_path, "hs", text)
    _check_exported(src, report)
    assert seen == [False, True]


# -------------------------------------------------------------------- tolerance


def test_tolerance_follows_the_scale_of_the_outputs():
    rng = np.random.default_rng(0)
    logits = (4.3 * rng.standard_normal((4, 1000)) / 3).astype(np.float32)
    logits[:, 7] += 10.0  # a clear top-1: the tolerance, not a tie, decides
    # float32 rounding of a deep network: relative 2e-5 of logits of order 4 passes
    # (the old absolute 1e-5 refused it) ...
    scale = float(np.max(np.abs(logits)))
    near = logits + np.float32(2e-5 * scale)
    assert verify.compare("logits", near, logits).passed
    # ... a real error, 1e-3 of the scale, fails
    assert not verify.compare("logits", logits + np.float32(1e-3 * scale), logits).passed
    # small outputs keep the absolute 1e-5 floor
    probs = np.full((2, 1000), 1e-3, np.float32)
    probs[:, 3] = 2e-3
    assert verify.compare("p", probs + np.float32(9e-6), probs).passed
    assert not verify.compare("p", probs + np.float32(2e-5), probs).passed
    assert verify.tolerance(probs) == pytest.approx(verify.ATOL + verify.RTOL * 2e-3)


def test_a_flip_within_rounding_is_a_tie():
    keras_out = np.array([[0.5, 0.50002, 0.1]], np.float32)
    onnx_out = np.array([[0.50002, 0.5, 0.1]], np.float32)
    check = verify.compare("near tie", onnx_out, keras_out)
    assert check.passed and check.ties == 1 and check.top1_agree == 0
    far = np.array([[0.6, 0.5, 0.1]], np.float32)
    assert not verify.compare("no tie", far, keras_out).passed


# ------------------------------------------------------------------------- int8


#: a 1000-class head after the image's mean: a Dense layer, or MobileNetV3's 1x1
#: convolution then Flatten
THOUSAND = {
    "dense": "stages: [gap]\nhead: [{dense: 1000, activation: softmax}]",
    "conv_flatten": "stages: [{global_pool: avg, keepdims: true}, {conv: [1000, 1]}, flatten]\n"
    "head: [softmax]",
}


def _thousand_class_model(head: str):
    """The image's channel means, then 1000 classes; classes 500, 501, 502 follow the
    red, green and blue means by a margin of 0.3, so every probability is below 0.002:
    int8 probabilities on steps of 1/255 would all be 0 and tie (0 % agreement)."""
    keras.utils.set_random_seed(0)
    _, model = _build(f"name: k1000\ninput: [4, 4, 3]\n{THOUSAND[head]}\n")
    (layer,) = [la for la in model.layers if la.weights]
    kernel = np.zeros((3, 1000), np.float32)
    kernel[[0, 1, 2], [500, 501, 502]] = 0.3
    shape = layer.get_weights()[0].shape
    layer.set_weights([kernel.reshape(shape), np.zeros(1000, np.float32)])
    return model


@pytest.mark.parametrize("head", sorted(THOUSAND))
def test_int8_keeps_the_softmax_in_float(head, tmp_path):
    model = _thousand_class_model(head)
    model.save(tmp_path / "k1000.keras")
    rng = np.random.default_rng(0)
    for name, channel in (("green", 1), ("blue", 2)):
        (tmp_path / "images" / name).mkdir(parents=True)
        for i in range(12):
            x = rng.integers(0, 60, (4, 4, 3))
            x[..., channel] = rng.integers(200, 256, (4, 4))
            Image.fromarray(x.astype(np.uint8)).save(tmp_path / "images" / name / f"{i}.png")
    report = q.quantize_onnx(
        tmp_path / "k1000.keras", tmp_path / "k1000_int8.onnx", data=tmp_path / "images",
        calibration=12, holdout=12,
    )  # fmt: skip
    assert report.written and report.gate.agree == 12
    graph = onnx.load(report.out).graph
    producer = {o: n for n in graph.node for o in n.output}
    softmax = producer[graph.output[0].name]
    assert softmax.op_type == "Softmax"  # no quantise/dequantise after it ...
    assert producer[softmax.input[0]].op_type != "DequantizeLinear"  # ... nor before it
    assert any(n.op_type == "QuantizeLinear" for n in graph.node)  # the rest is int8
