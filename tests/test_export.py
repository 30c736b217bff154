"""ONNX export through the library API: parity, metadata, preprocessing, bad input."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import onnx  # noqa: E402
import onnxruntime as ort  # noqa: E402

from nincompile import __version__, api  # noqa: E402
from nincompile.errors import ExportError, NincompileError  # noqa: E402
from nincompile.export import (  # noqa: E402
    ConversionError,
    OptionError,
    OutputPathError,
    Source,
    SourceError,
    VerificationFailed,
    convert,
    export_onnx,
    load_source,
    verify,
)
from nincompile.export import onnx_export as ox  # noqa: E402
from nincompile.export.float32 import is_float32  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
SPECS = sorted((ROOT / "specs").glob("*.yaml"))

TINY = """\
name: tiny
input: [16, 16, 3]
defaults: {padding: same, activation: relu, batch_norm: true}
stages:
  - {conv: [8, 3], pool: {max: 2}, dropout: 0.2}
  - {conv: [4, 1]}
head: [gap, softmax]
data:
  classes: [cat, dog, frog, ship]
  mean: [125.3, 123.0, 113.9]
  std: [63.0, 62.1, 66.7]
"""

TINY_PLAIN = """\
name: tiny_plain
input: [16, 16, 3]
defaults: {padding: same, activation: relu}
stages:
  - {conv: [8, 3]}
  - {conv: [4, 1]}
head: [gap]
"""


def _session(path):
    return ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])


def _meta(model_proto) -> dict[str, str]:
    return {p.key: p.value for p in model_proto.metadata_props}


def _files(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*"))


def _write_images(folder: Path, classes=("cat", "dog", "frog"), per_class=5, size=(20, 24)):
    import tensorflow as tf

    rng = np.random.default_rng(0)
    for c in classes:
        (folder / c).mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            img = rng.integers(0, 256, (*size, 3)).astype(np.uint8)
            if i % 2:
                tf.io.write_file(str(folder / c / f"{i}.jpg"), tf.io.encode_jpeg(img))
            else:
                tf.io.write_file(str(folder / c / f"{i}.png"), tf.io.encode_png(img))
    (folder / "README.txt").write_text("not an image")
    return folder


@pytest.fixture(scope="module")
def work(tmp_path_factory):
    """Small specs and .keras models shared by this module's tests."""
    d = tmp_path_factory.mktemp("export")
    (d / "tiny.yaml").write_text(TINY)
    (d / "tiny_plain.yaml").write_text(TINY_PLAIN)

    keras.utils.set_random_seed(1)
    inp = keras.Input((16, 16, 3), name="pixels")
    x = keras.layers.RandomFlip("horizontal", name="flip")(inp)
    x = keras.layers.RandomTranslation(0.1, 0.1, name="shift")(x)
    x = keras.layers.Conv2D(8, 3, activation="relu")(x)
    x = keras.layers.Dropout(0.5)(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    out = keras.layers.Dense(4, activation="softmax")(x)
    keras.Model(inp, out, name="augmented").save(d / "augmented.keras")

    inp = keras.Input((4, 4, 1))
    out = keras.layers.Lambda(lambda t: t * 2.0)(inp)
    keras.Model(inp, out).save(d / "lambda.keras")

    keras.mixed_precision.set_global_policy("mixed_float16")
    try:
        _, mixed = api.build_spec(d / "tiny.yaml")
    finally:
        keras.mixed_precision.set_global_policy("float32")
    mixed.save(d / "mixed.keras")

    (d / "notes.txt").write_text("hello")
    (d / "corrupt.keras").write_bytes(b"PK\x03\x04 this is not really a zip archive")
    (d / "legacy.h5").write_bytes(b"\x89HDF\r\n\x1a\n" + bytes(64))
    _write_images(d / "images")
    return d


_SOURCES: dict[Path, Source] = {}


@pytest.fixture(scope="module")
def spec_source():
    """Load (build) each spec once for the whole module."""

    def get(path: Path) -> Source:
        if path not in _SOURCES:
            _SOURCES[path] = load_source(path)
        return _SOURCES[path]

    yield get
    _SOURCES.clear()


# ---------------------------------------------------------------- pinned facts


def test_pinned_converter_facts():
    """What the exporter relies on: tf2onnx >= 1.17 and its highest opset."""
    import tf2onnx

    major, minor = (int(p) for p in tf2onnx.__version__.split(".")[:2])
    assert (major, minor) >= (1, 17)
    assert convert.MAX_OPSET == max(tf2onnx.constants.OPSET_TO_IR_VERSION)
    assert convert.MIN_OPSET <= convert.DEFAULT_OPSET <= convert.MAX_OPSET
    assert onnx.defs.onnx_opset_version() >= convert.MAX_OPSET
    # convert.from_function runs tf2onnx 1.17's from_function step by step: it calls
    # these, which are not tf2onnx's public API
    from tf2onnx import constants, tf_loader
    from tf2onnx.convert import _convert_common, tensor_names_from_structed
    from tf2onnx.graph import Node

    for f in (
        tf_loader.convert_variables_to_constants_large_model,
        tf_loader.fix_freezing_errors_part2,
        tf_loader.tf_optimize,
        _convert_common,
        tensor_names_from_structed,
        Node.update_proto,
    ):
        assert callable(f)
    assert constants.ENV_TF2ONNX_CATCH_ERRORS == "TF2ONNX_CATCH_ERRORS"


def test_errors_are_user_errors():
    for cls in (SourceError, OutputPathError, OptionError, ConversionError, VerificationFailed):
        assert issubclass(cls, ExportError) and issubclass(cls, NincompileError)


# ---------------------------------------------------------- every spec, two opsets


@pytest.mark.parametrize("opset", [17, 13])
@pytest.mark.parametrize("spec", SPECS, ids=[p.stem for p in SPECS])
def test_every_spec_exports_with_parity(spec, opset, spec_source, tmp_path):
    src = spec_source(spec)
    out = tmp_path / f"{src.name}.onnx"
    report = export_onnx(src, out, opset=opset)

    assert report.ok and report.written and out.is_file()
    assert [c.name for c in report.checks] == [
        "onnx.checker",
        "random inputs, batch 1",
        "random inputs, batch 4",
    ]
    for check in report.checks[1:]:
        assert check.max_abs_diff <= 1e-5 and check.top1_agree == check.top1_total

    proto = onnx.load(out)
    assert {o.domain: o.version for o in proto.opset_import}[""] == opset
    assert [i.name for i in proto.graph.input] == ["input"]
    assert [o.name for o in proto.graph.output] == [report.output_name]
    dims = proto.graph.input[0].type.tensor_type.shape.dim
    assert dims[0].dim_param == "batch"
    assert [d.dim_value for d in dims[1:]] == list(src.spec.input)
    assert not {n.op_type for n in proto.graph.node} & convert.TRAINING_ONLY_OPS

    # independent parity check at another batch size
    x = np.random.default_rng(7).standard_normal((3, *src.spec.input)).astype(np.float32)
    got = _session(out).run(None, {"input": x})[0]
    want = np.asarray(src.model(x, training=False))
    assert np.max(np.abs(got - want)) <= 1e-5
    assert (got.argmax(-1) == want.argmax(-1)).all()
    meta = _meta(proto)
    assert meta["spec_sha256"] == hashlib.sha256(spec.read_bytes()).hexdigest()
    assert meta["opset"] == str(opset) and meta["name"] == src.spec.name
    data = src.spec.data
    assert json.loads(meta["classes"]) == (list(data.classes) if data and data.classes else None)


def test_spec_export_is_reproducible(work, tmp_path):
    a = export_onnx(work / "tiny_plain.yaml", tmp_path / "a.onnx")
    b = export_onnx(work / "tiny_plain.yaml", tmp_path / "b.onnx")
    assert a.ok and b.ok
    x = np.random.default_rng(0).standard_normal((2, 16, 16, 3)).astype(np.float32)
    ya = _session(a.out).run(None, {"input": x})[0]
    assert np.array_equal(ya, _session(b.out).run(None, {"input": x})[0])
    assert ya.std() > 0  # not a degenerate model


# --------------------------------------------------------------------- metadata


def test_metadata(work, tmp_path):
    out = tmp_path / "tiny.onnx"
    report = export_onnx(work / "tiny.yaml", out, opset=15)
    meta = _meta(onnx.load(out))
    assert meta == report.metadata
    assert meta["nincompile_version"] == __version__
    assert meta["name"] == "tiny"
    assert meta["source"] == "spec"
    sha = hashlib.sha256((work / "tiny.yaml").read_bytes()).hexdigest()
    assert meta["spec_sha256"] == meta["source_sha256"] == sha
    assert json.loads(meta["classes"]) == ["cat", "dog", "frog", "ship"]
    assert meta["input_layout"] == "NHWC"
    assert json.loads(meta["input_shape"]) == [16, 16, 3]
    assert json.loads(meta["mean"]) == [125.3, 123.0, 113.9]
    assert json.loads(meta["std"]) == [63.0, 62.1, 66.7]
    assert meta["opset"] == "15"
    assert meta["batch"] == "dynamic"
    assert meta["preprocessing"] == "none"
    assert meta["input_name"] == "input" and meta["output_name"] == "probabilities"


def test_metadata_without_data_section(work, tmp_path):
    out = tmp_path / "plain.onnx"
    report = export_onnx(work / "tiny_plain.yaml", out)
    meta = _meta(onnx.load(out))
    assert json.loads(meta["classes"]) is None
    assert json.loads(meta["mean"]) is None and json.loads(meta["std"]) is None
    assert report.output_name == meta["output_name"] == "logits"  # no softmax head


# ---------------------------------------------------------------- preprocessing


def test_include_preprocessing_folds_normalisation(work, tmp_path):
    out = tmp_path / "tiny_pre.onnx"
    report = export_onnx(work / "tiny.yaml", out, include_preprocessing=True, data=work / "images")
    assert report.ok and report.preprocessing
    proto = onnx.load(out)
    assert _meta(proto)["preprocessing"] == "folded"
    ops = {n.op_type for n in proto.graph.node}
    assert "Sub" in ops and ops & {"Div", "Mul"}  # tf may turn / std into * (1 / std)

    keras.utils.set_random_seed(0)  # the seed the exporter used: same weights
    _, model = api.build_spec(work / "tiny.yaml")
    raw = np.random.default_rng(3).uniform(0, 255, (5, 16, 16, 3)).astype(np.float32)
    mean = np.array([125.3, 123.0, 113.9], np.float32)
    std = np.array([63.0, 62.1, 66.7], np.float32)
    want = np.asarray(model((raw - mean) / std, training=False))
    got = _session(out).run(None, {"input": raw})[0]
    assert np.max(np.abs(got - want)) <= 1e-5
    assert (got.argmax(-1) == want.argmax(-1)).all()
    # the graph really normalises: raw pixels fed to the plain Keras model differ
    assert np.max(np.abs(got - np.asarray(model(raw, training=False)))) > 1e-4


def test_include_preprocessing_needs_mean_and_std(work, tmp_path):
    with pytest.raises(OptionError, match="needs data.mean and data.std"):
        export_onnx(work / "tiny_plain.yaml", tmp_path / "x.onnx", include_preprocessing=True)
    assert _files(tmp_path) == []


# ------------------------------------------------------------ training-only layers


def test_augmentation_and_dropout_never_reach_the_graph(work, tmp_path):
    out = tmp_path / "augmented.onnx"
    report = export_onnx(work / "augmented.keras", out)
    assert report.ok
    proto = onnx.load(out)
    ops = {n.op_type for n in proto.graph.node}
    assert not ops & convert.TRAINING_ONLY_OPS
    assert all(onnx.defs.has(n.op_type, n.domain) for n in proto.graph.node)
    assert [i.name for i in proto.graph.input] == ["input"]

    model = keras.saving.load_model(work / "augmented.keras", safe_mode=True, compile=False)
    x = np.random.default_rng(0).standard_normal((6, 16, 16, 3)).astype(np.float32)
    got = _session(out).run(None, {"input": x})[0]
    np.testing.assert_allclose(got, np.asarray(model(x, training=False)), atol=1e-5)
    # deterministic: two runs agree exactly
    assert np.array_equal(got, _session(out).run(None, {"input": x})[0])


def test_training_only_ops_are_refused():
    node = onnx.helper.make_node("RandomUniform", [], ["r"], shape=[1])
    graph = onnx.helper.make_graph(
        [node], "g", [], [onnx.helper.make_tensor_value_info("r", onnx.TensorProto.FLOAT, [1])]
    )
    with pytest.raises(ConversionError, match="training-only ops"):
        convert.check_ops(onnx.helper.make_model(graph), "g")
    bad = onnx.helper.make_node("StatelessRandomUniformV2", ["a"], ["b"])
    graph = onnx.helper.make_graph([bad], "g", [], [])
    with pytest.raises(ConversionError, match="no ONNX equivalent"):
        convert.check_ops(onnx.helper.make_model(graph), "g")


# -------------------------------------------------------------- mixed precision


def test_mixed_precision_is_rebuilt_in_float32(work, tmp_path):
    src = load_source(work / "mixed.keras")
    assert src.original is not None and is_float32(src.model)
    assert not is_float32(src.original)
    out = tmp_path / "mixed.onnx"
    report = export_onnx(src, out)
    assert report.ok
    assert any("rebuilt in float32" in n for n in report.notes)
    proto = onnx.load(out)
    assert proto.graph.input[0].type.tensor_type.elem_type == onnx.TensorProto.FLOAT
    assert proto.graph.output[0].type.tensor_type.elem_type == onnx.TensorProto.FLOAT
    for init in proto.graph.initializer:
        assert init.data_type != onnx.TensorProto.FLOAT16
    # same weights as the mixed model: outputs agree to float16 precision
    x = np.random.default_rng(0).standard_normal((4, 16, 16, 3)).astype(np.float32)
    got = _session(out).run(None, {"input": x})[0]
    np.testing.assert_allclose(got, np.asarray(src.original(x), np.float32), atol=2e-2)


# ------------------------------------------------------------- batch and real data


def test_fixed_batch(work, tmp_path):
    out = tmp_path / "b3.onnx"
    report = export_onnx(work / "tiny.yaml", out, batch=3, data=work / "images")
    assert [c.batch for c in report.checks[1:2]] == [3]
    assert [c.name for c in report.checks] == [
        "onnx.checker",
        "random inputs, batch 3",
        f"15 real images from {work / 'images'}",
    ]
    proto = onnx.load(out)
    assert [d.dim_value for d in proto.graph.input[0].type.tensor_type.shape.dim] == [3, 16, 16, 3]
    assert _meta(proto)["batch"] == "3"
    x = np.zeros((3, 16, 16, 3), np.float32)
    assert _session(out).run(None, {"input": x})[0].shape == (3, 4)
    with pytest.raises(Exception):  # noqa: B017 - onnxruntime's own error type
        _session(out).run(None, {"input": np.zeros((2, 16, 16, 3), np.float32)})


def test_real_images(work, tmp_path):
    out = tmp_path / "tiny.onnx"
    report = export_onnx(work / "tiny.yaml", out, data=work / "images")
    real = report.checks[-1]
    assert real.name.startswith("15 real images") and real.passed
    assert real.top1_agree == real.top1_total == 15 and real.max_abs_diff <= 1e-5


def test_real_images_are_capped_and_spread_over_classes(tmp_path):
    _write_images(tmp_path / "many", classes=("a", "b", "c"), per_class=30, size=(4, 4))
    picked = ox.data_images(tmp_path / "many")
    assert len(picked) == 64
    assert {p.parent.name for p in picked[:3]} == {"a", "b", "c"}
    images = ox.read_data_images(picked[:4], (8, 6, 3))
    assert images.shape == (4, 8, 6, 3) and images.dtype == np.float32
    assert 0.0 <= images.min() and images.max() <= 255.0


def test_bad_data_folder(work, tmp_path):
    (tmp_path / "empty" / "cls").mkdir(parents=True)
    with pytest.raises(OptionError, match="holds no images"):
        export_onnx(work / "tiny.yaml", tmp_path / "x.onnx", data=tmp_path / "empty")
    with pytest.raises(OptionError, match="not a folder"):
        export_onnx(work / "tiny.yaml", tmp_path / "x.onnx", data=tmp_path / "missing")
    assert not list(tmp_path.glob("*.onnx"))


# ------------------------------------------------------------------ run folders


def test_run_folder_with_spec(work, tmp_path):
    run = tmp_path / "run-1"
    run.mkdir()
    (run / "spec.yaml").write_text(TINY)
    keras.utils.set_random_seed(5)
    _, model = api.build_spec(run / "spec.yaml")
    model.save(run / "model.keras")
    out = tmp_path / "run.onnx"
    report = export_onnx(run, out)
    assert report.ok and report.source_kind == "run" and report.name == "tiny"
    meta = _meta(onnx.load(out))
    assert meta["source"] == "run"
    assert meta["spec_sha256"] == hashlib.sha256(TINY.encode()).hexdigest()
    assert meta["source_sha256"] == hashlib.sha256((run / "model.keras").read_bytes()).hexdigest()
    assert json.loads(meta["classes"]) == ["cat", "dog", "frog", "ship"]
    x = np.random.default_rng(0).standard_normal((2, 16, 16, 3)).astype(np.float32)
    got = _session(out).run(None, {"input": x})[0]
    np.testing.assert_allclose(got, np.asarray(model(x, training=False)), atol=1e-5)


def test_run_folder_without_spec(work, tmp_path, monkeypatch):
    run = tmp_path / "run-2"
    run.mkdir()
    (run / "model.keras").write_bytes((work / "augmented.keras").read_bytes())
    monkeypatch.chdir(tmp_path)
    report = export_onnx(run)
    assert report.ok and report.out == Path("build/run-2.onnx")
    assert (tmp_path / "build" / "run-2.onnx").is_file()
    assert json.loads(_meta(onnx.load(tmp_path / "build" / "run-2.onnx"))["classes"]) is None


def test_run_folder_without_model(tmp_path):
    (tmp_path / "run").mkdir()
    with pytest.raises(SourceError, match="must hold model.keras"):
        export_onnx(tmp_path / "run", tmp_path / "x.onnx")
    assert not list(tmp_path.glob("*.onnx"))


def test_run_spec_must_match_model(work, tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    (run / "spec.yaml").write_text(TINY.replace("[16, 16, 3]", "[32, 32, 3]"))
    (run / "model.keras").write_bytes((work / "mixed.keras").read_bytes())
    with pytest.raises(SourceError, match="differs from its spec's input"):
        export_onnx(run, tmp_path / "x.onnx")


# -------------------------------------------------------------------- bad input


@pytest.mark.parametrize(
    ("name", "error", "message"),
    [
        ("missing.keras", SourceError, "no such file"),
        ("corrupt.keras", SourceError, "not a valid .keras file"),
        ("legacy.h5", SourceError, "legacy HDF5"),
        ("lambda.keras", SourceError, "Lambda layer"),
        ("notes.txt", SourceError, "expected a spec"),
    ],
)
def test_bad_sources(work, tmp_path, name, error, message):
    with pytest.raises(error, match=message):
        export_onnx(work / name, tmp_path / "x.onnx")
    assert _files(tmp_path) == []


def test_real_h5_model_is_refused(tmp_path):
    inp = keras.Input((4,))
    model = keras.Model(inp, keras.layers.Dense(2)(inp))
    model.save(tmp_path / "model.h5")
    with pytest.raises(SourceError, match="legacy HDF5"):
        export_onnx(tmp_path / "model.h5", tmp_path / "x.onnx")
    # renamed to .keras it is still refused (not a zip archive, HDF5 signature)
    (tmp_path / "model.h5").rename(tmp_path / "sneaky.keras")
    with pytest.raises(SourceError, match="legacy HDF5"):
        export_onnx(tmp_path / "sneaky.keras", tmp_path / "x.onnx")
    assert not list(tmp_path.glob("*.onnx"))


@pytest.mark.parametrize("opset", [7, 12, 19, 21])
def test_unsupported_opset(work, tmp_path, opset):
    with pytest.raises(OptionError, match=r"unsupported opset .*13\.\.18"):
        export_onnx(work / "tiny.yaml", tmp_path / "x.onnx", opset=opset)
    assert _files(tmp_path) == []


@pytest.mark.parametrize("batch", [0, -2, 1.5, True])
def test_bad_batch(work, tmp_path, batch):
    with pytest.raises(OptionError, match="batch"):
        export_onnx(work / "tiny.yaml", tmp_path / "x.onnx", batch=batch)


def test_output_folder_must_exist(work, tmp_path):
    with pytest.raises(OutputPathError, match="does not exist"):
        export_onnx(work / "tiny.yaml", tmp_path / "nope" / "x.onnx")
    assert _files(tmp_path) == []


def test_output_must_be_onnx_and_not_a_folder(work, tmp_path):
    with pytest.raises(OutputPathError, match="must end in .onnx"):
        export_onnx(work / "tiny.yaml", tmp_path / "x.keras")
    (tmp_path / "dir.onnx").mkdir()
    with pytest.raises(OutputPathError, match="is a folder"):
        export_onnx(work / "tiny.yaml", tmp_path / "dir.onnx")
    assert _files(tmp_path) == ["dir.onnx"]


def test_output_through_symlinks_is_refused(work, tmp_path):
    real = tmp_path / "real"
    real.mkdir()
    (tmp_path / "link").symlink_to(real, target_is_directory=True)
    with pytest.raises(OutputPathError, match="symbolic link"):
        export_onnx(work / "tiny.yaml", tmp_path / "link" / "x.onnx")
    (real / "sub").mkdir()
    with pytest.raises(OutputPathError, match="symbolic link '.*link'"):
        export_onnx(work / "tiny.yaml", tmp_path / "link" / "sub" / "x.onnx")
    (real / "target.onnx").write_text("keep me")
    (tmp_path / "out.onnx").symlink_to(real / "target.onnx")
    with pytest.raises(OutputPathError, match="is a symbolic link"):
        export_onnx(work / "tiny.yaml", tmp_path / "out.onnx")
    assert (real / "target.onnx").read_text() == "keep me"
    assert _files(real) == ["sub", "target.onnx"]


def test_default_build_folder_symlink_is_refused(work, tmp_path, monkeypatch):
    (tmp_path / "elsewhere").mkdir()
    (tmp_path / "build").symlink_to(tmp_path / "elsewhere", target_is_directory=True)
    monkeypatch.chdir(tmp_path)
    with pytest.raises(OutputPathError, match="symbolic link"):
        export_onnx(work / "tiny.yaml")
    assert _files(tmp_path / "elsewhere") == []


def test_failed_verification_writes_nothing(work, tmp_path, monkeypatch):
    monkeypatch.setattr(verify, "ATOL", -1.0)  # no difference can pass
    monkeypatch.setattr(verify, "RTOL", 0.0)
    with pytest.raises(VerificationFailed, match="failed verification; nothing written") as err:
        export_onnx(work / "tiny.yaml", tmp_path / "x.onnx")
    assert not err.value.report.ok and not err.value.report.written
    assert "FAIL" in str(err.value)
    assert _files(tmp_path) == []  # no .onnx, no temp file


def test_existing_output_is_replaced_atomically(work, tmp_path):
    out = tmp_path / "tiny.onnx"
    out.write_bytes(b"old")
    export_onnx(work / "tiny.yaml", out)
    assert onnx.load(out).graph.name == "tiny"
    assert _files(tmp_path) == ["tiny.onnx"]
