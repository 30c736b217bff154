"""``nincompile export --quantize int8``: the gate, what it writes, and when it refuses.

Two tiny colour classifiers are trained in seconds (the class is the brightest
channel): one in a run folder whose spec normalises with mean/std, one a bare
``.keras`` file fed ``x / 255``.  Image folders are PNGs written with Pillow.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import onnx  # noqa: E402
import onnxruntime as ort  # noqa: E402
from click.testing import CliRunner  # noqa: E402
from PIL import Image  # noqa: E402

from nincompile import api  # noqa: E402
from nincompile.cli import main  # noqa: E402
from nincompile.export import load_source  # noqa: E402
from nincompile.export import quantize as q  # noqa: E402

SPEC = """\
name: tiny_q
input: [12, 12, 3]
defaults: {padding: same, activation: relu}
stages:
  - {conv: [8, 3], pool: {max: 2}}
  - {conv: [3, 1]}
head: [gap, softmax]
data:
  classes: [red, green, blue]
  mean: [127.5, 127.5, 127.5]
  std: [64.0, 64.0, 64.0]
"""
CHANNEL = {"red": 0, "green": 1, "blue": 2}
PER_CLASS = 30
CALIBRATION = 30


def _colour_images(rng, channel: int, n: int) -> np.ndarray:
    """``n`` 12x12 images whose channel ``channel`` is clearly the brightest."""
    x = rng.integers(0, 110, (n, 12, 12, 3))
    x[..., channel] = rng.integers(150, 256, (n, 12, 12))
    return x.astype(np.uint8)


def _fit(model, x, y) -> None:
    model.compile(optimizer=keras.optimizers.Adam(0.05), loss="sparse_categorical_crossentropy")
    model.fit(x, y, epochs=15, batch_size=64, verbose=0)


def _write_pngs(folder: Path, images, names) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for img, name in zip(images, names, strict=True):
        Image.fromarray(img).save(folder / name)


@pytest.fixture(scope="module")
def work(tmp_path_factory):
    d = tmp_path_factory.mktemp("quantize")
    rng = np.random.default_rng(0)
    classes = ["red", "green", "blue"]
    train = np.concatenate([_colour_images(rng, CHANNEL[c], 100) for c in classes])
    raw = train.astype(np.float32)

    # a run folder: spec.yaml (mean/std) + model.keras trained on (x - mean) / std
    (d / "run").mkdir()
    (d / "run" / "spec.yaml").write_text(SPEC)
    keras.utils.set_random_seed(1)
    _, model = api.build_spec(d / "run" / "spec.yaml")
    _fit(model, (raw - 127.5) / 64.0, np.repeat(np.arange(3), 100))
    model.save(d / "run" / "model.keras")

    # a bare .keras file (no spec: x / 255, classes numbered by sorted folder name)
    (d / "bare").mkdir()
    keras.utils.set_random_seed(2)
    _, bare = api.build_spec(d / "run" / "spec.yaml")
    order = {c: i for i, c in enumerate(sorted(classes))}
    _fit(bare, raw / 255.0, np.repeat([order[c] for c in classes], 100))
    bare.save(d / "bare" / "colours.keras")

    # labelled folder: class sub-folders; unlabelled folder: the same images, loose
    for c in classes:
        imgs = _colour_images(rng, CHANNEL[c], PER_CLASS)
        _write_pngs(d / "images" / c, imgs, [f"{i:03d}.png" for i in range(PER_CLASS)])
        _write_pngs(d / "loose", imgs, [f"{c}_{i:03d}.png" for i in range(PER_CLASS)])
    return d


@pytest.fixture
def runner():
    return CliRunner()


def _meta(path) -> dict[str, str]:
    return {p.key: p.value for p in onnx.load(path).metadata_props}


def _export(runner, *args):
    return runner.invoke(main, ["export", *map(str, args)])


def _all_images(folder: Path) -> tuple[np.ndarray, list[str]]:
    files = sorted(folder.rglob("*.png"))
    return np.stack([np.asarray(Image.open(f)) for f in files]), [f.parent.name for f in files]


# ----------------------------------------------------------------- writes


def test_int8_export_passes_the_gate_and_records_it(runner, work, tmp_path):
    out = tmp_path / "tiny_int8.onnx"
    result = _export(
        runner, work / "run", "--quantize", "int8", "--data", work / "images",
        "--calibration", CALIBRATION, "-o", out,
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert f"wrote {out}" in result.output and "FAIL" not in result.output
    assert "gate: top-1 agreement with Keras 100.00 % (60/60 held-out images)" in result.output
    assert "accuracy Keras 100.00 %, int8 100.00 %" in result.output
    assert "labelled: 3 class sub-folders" in result.output
    assert os.listdir(tmp_path) == ["tiny_int8.onnx"]

    meta = _meta(out)
    assert meta["quantization"] == "int8" and meta["quantization_format"] == "QDQ"
    assert meta["calibration_images"] == str(CALIBRATION) and meta["gate_images"] == "60"
    assert json.loads(meta["top1_agreement"]) == 1.0
    assert json.loads(meta["keras_accuracy"]) == 1.0 and json.loads(meta["int8_accuracy"]) == 1.0
    assert json.loads(meta["accuracy_drop_points"]) == 0.0
    assert json.loads(meta["min_agreement"]) == 0.98 and json.loads(meta["max_accuracy_drop"]) == 1
    assert meta["preprocessing"] == "folded" and json.loads(meta["mean"]) == [127.5] * 3
    assert json.loads(meta["classes"]) == ["red", "green", "blue"] and meta["name"] == "tiny_q"

    # a QDQ graph with int8 weights quantised per output channel
    model = onnx.load(out)
    ops = {n.op_type for n in model.graph.node}
    assert {"QuantizeLinear", "DequantizeLinear", "Conv"} <= ops
    inits = {i.name: i for i in model.graph.initializer}
    per_channel = [
        n
        for n in model.graph.node
        if n.op_type == "DequantizeLinear"
        and inits.get(n.input[0]) is not None
        and inits[n.input[0]].data_type == onnx.TensorProto.INT8
        and len(inits[n.input[1]].dims) == 1
        and inits[n.input[1]].dims[0] > 1
    ]
    assert len(per_channel) == 2  # both convolutions

    # raw pixels in: int8 on 0..255 agrees with Keras on (x - mean) / std
    x, _ = _all_images(work / "images")
    x = x.astype(np.float32)
    sess = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    got = sess.run(None, {"input": x})[0]
    want = np.asarray(keras.saving.load_model(work / "run" / "model.keras")((x - 127.5) / 64.0))
    assert (got.argmax(1) == want.argmax(1)).mean() == 1.0
    assert np.abs(got - want).max() < 0.1  # int8, not float: close but not exact


def test_unlabelled_folder_measures_agreement_only(runner, work, tmp_path):
    out = tmp_path / "loose.onnx"
    result = _export(
        runner, work / "run", "--quantize", "int8", "--data", work / "loose",
        "--calibration", CALIBRATION, "--holdout", 40, "-o", out,
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "unlabelled" in result.output and "agreement only" in result.output
    assert "(40/40 held-out images)" in result.output
    assert "accuracy Keras" not in result.output
    meta = _meta(out)
    assert meta["gate_images"] == "40" and json.loads(meta["top1_agreement"]) == 1.0
    assert meta["keras_accuracy"] == "null" and meta["int8_accuracy"] == "null"


def test_bare_keras_folds_x_over_255_and_labels_by_sorted_folders(work, tmp_path):
    out = tmp_path / "bare.onnx"
    report = q.quantize_onnx(
        work / "bare" / "colours.keras", out, data=work / "images", calibration=15, batch=4
    )
    assert report.written and out.is_file()
    assert report.gate.labelled and report.gate.images == 3 * PER_CLASS - 15
    assert report.gate.int8_accuracy == 1.0
    assert "sorted sub-folder name" in report.text()
    assert any("x / 255" in n for n in report.notes)
    meta = _meta(out)
    assert json.loads(meta["mean"]) == [0.0] * 3 and json.loads(meta["std"]) == [255.0] * 3
    assert meta["classes"] == "null" and meta["batch"] == "4"
    x, names = _all_images(work / "images")
    x = np.pad(x, [(0, -len(x) % 4), (0, 0), (0, 0), (0, 0)], mode="edge").astype(np.float32)
    sess = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    top = np.concatenate([sess.run(None, {"input": x[i : i + 4]})[0] for i in range(0, len(x), 4)])
    assert [sorted(CHANNEL)[i] for i in top.argmax(1)[: len(names)]] == names


# ---------------------------------------------------------------- refusals


def test_gate_refuses_min_agreement_above_one(runner, work, tmp_path):
    out = tmp_path / "never.onnx"
    result = _export(
        runner, work / "run", "--quantize", "int8", "--data", work / "images",
        "--calibration", CALIBRATION, "--min-agreement", "1.01", "-o", out,
    )  # fmt: skip
    assert result.exit_code == 1
    assert "refused" in result.output and "nothing written" in result.output
    assert "is below --min-agreement 101.00 %" in result.output
    assert "Traceback" not in result.output
    assert os.listdir(tmp_path) == []


def _swap_classes(src):
    """A copy of the model whose last conv predicts the next class: a wrong int8 model."""
    model = keras.models.clone_model(src.model)
    model.set_weights(src.model.get_weights())
    conv = [layer for layer in model.layers if isinstance(layer, keras.layers.Conv2D)][-1]
    kernel, bias = conv.get_weights()
    conv.set_weights([np.roll(kernel, 1, axis=-1), np.roll(bias, 1)])
    return model


def test_gate_catches_an_int8_model_of_another_keras_model(work, tmp_path, monkeypatch):
    real = q._quantize
    src = load_source(work / "run")
    mean, std = src.mean, src.std
    wrong = q._float_graph(
        type(src)(**{**src.__dict__, "model": _swap_classes(src)}),
        (12, 12, 3), 17, None, "probabilities", mean, std,
    )  # fmt: skip

    def quantize_the_wrong_model(float_proto, images, batch):
        return real(wrong, images, batch)

    monkeypatch.setattr(q, "_quantize", quantize_the_wrong_model)
    out = tmp_path / "wrong.onnx"
    with pytest.raises(q.GateRefused) as err:
        q.quantize_onnx(work / "run", out, data=work / "images", calibration=CALIBRATION)
    text = str(err.value)
    assert "top-1 agreement with Keras 0.00 %" in text and "is below" in text
    assert "exceeds --max-accuracy-drop 1" in text  # Keras 100 %, int8 0 %
    assert err.value.report.gate.accuracy_drop == 100.0 and not out.exists()

    # with agreement waived the accuracy drop alone still refuses
    with pytest.raises(q.GateRefused) as err:
        q.quantize_onnx(
            work / "run", out, data=work / "images", calibration=CALIBRATION, min_agreement=0
        )
    assert "agreement" not in str(err.value).splitlines()[1]
    assert "a drop of 100.00 points exceeds --max-accuracy-drop 1" in str(err.value)
    assert os.listdir(tmp_path) == []


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--calibration", "10"], "--calibration only apply with --quantize int8"),
        (["--min-agreement", "0.5", "--max-accuracy-drop", "2"], "--min-agreement, --max-acc"),
        (["--quantize", "int8"], "--quantize int8 needs --data FOLDER"),
        (["--quantize", "int8", "--data", "IMAGES", "--calibration", "90"], "leaves none held"),
        (["--quantize", "int8", "--data", "IMAGES", "--min-agreement", "-1"], "cannot be negat"),
        (["--quantize", "int8", "--data", "IMAGES", "--holdout", "0"], "--holdout must be a po"),
        (["--quantize", "int8", "--data", "IMAGES/red/000.png"], "is not a folder"),
    ],
)
def test_bad_quantize_options_exit_1_and_write_nothing(runner, work, tmp_path, args, message):
    args = [a.replace("IMAGES", str(work / "images")) for a in args]
    result = _export(runner, work / "run", *args, "-o", tmp_path / "x.onnx")
    assert result.exit_code == 1, result.output
    assert message in result.output and "Traceback" not in result.output
    assert os.listdir(tmp_path) == []


# ------------------------------------------------------------ pure functions


def test_split_is_seeded_stratified_and_disjoint(work):
    a = q.split_folder(work / "images", 12, 1000, ["red", "green", "blue"], 3)
    b = q.split_folder(work / "images", 12, 1000, ["red", "green", "blue"], 3)
    assert a.calibration == b.calibration and a.holdout == b.holdout
    assert not set(a.calibration) & set(a.holdout)
    assert len(a.calibration) == 12 and len(a.holdout) == 3 * PER_CLASS - 12
    assert sorted(p.parent.name for p in a.calibration).count("red") == 4
    assert a.labels == [CHANNEL[p.parent.name] for p in a.holdout]
    assert any("all the folder has" in n for n in a.notes)
    other = q.split_folder(work / "images", 12, 1000, ["red", "green", "blue"], 3, seed=5)
    assert other.calibration != a.calibration
    # sub-folders that are not the spec's classes: unlabelled
    assert q.split_folder(work / "images", 12, 10, ["cat", "dog", "red"], 3).labels is None


@pytest.mark.parametrize(
    ("agree", "k_ok", "i_ok", "passed"),
    [
        (98, 90, 89, True),  # exactly 98 % agreement, exactly 1 point drop
        (97, 90, 90, False),  # agreement below
        (100, 90, 88, False),  # 2 points drop
        (100, 80, 85, True),  # int8 better than Keras
    ],
)
def test_gate_limits_are_inclusive(agree, k_ok, i_ok, passed):
    gate = q.Gate(100, agree, 0.98, 1.0, k_ok, i_ok)
    assert gate.passed is passed
    assert (gate.failures() == []) is passed
