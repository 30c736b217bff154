"""``nincompile export`` through click's CliRunner, results checked through the library."""

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
from click.testing import CliRunner  # noqa: E402

from nincompile import __version__, api  # noqa: E402
from nincompile.cli import main  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
NIN = ROOT / "specs" / "nin_badm.yaml"

TINY = """\
name: tiny_cli
input: [12, 12, 3]
defaults: {padding: same, activation: relu, batch_norm: true}
stages:
  - {conv: [6, 3], pool: {max: 2}, dropout: 0.3}
  - {conv: [3, 1]}
head: [gap, softmax]
data:
  classes: [red, green, blue]
  mean: [127.5, 127.5, 127.5]
  std: [255.0, 255.0, 255.0]
"""


def _files(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*"))


def _meta(path) -> dict[str, str]:
    return {p.key: p.value for p in onnx.load(path).metadata_props}


def _run(path, x):
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return sess.run(None, {"input": x})[0]


@pytest.fixture(scope="module")
def work(tmp_path_factory):
    d = tmp_path_factory.mktemp("export_cli")
    (d / "tiny.yaml").write_text(TINY)
    keras.utils.set_random_seed(3)
    _, model = api.build_spec(d / "tiny.yaml")
    model.save(d / "tiny.keras")

    inp = keras.Input((12, 12, 3))
    x = keras.layers.RandomFlip("horizontal_and_vertical")(inp)
    x = keras.layers.Conv2D(4, 3)(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    out = keras.layers.Dense(3, activation="softmax")(x)
    keras.Model(inp, out, name="flipper").save(d / "flipper.keras")

    inp = keras.Input((12, 12, 3))
    keras.Model(inp, keras.layers.Lambda(lambda t: t + 1.0)(inp)).save(d / "lambda.keras")
    inp = keras.Input((4,))
    keras.Model(inp, keras.layers.Dense(2)(inp)).save(d / "legacy.h5")
    (d / "broken.keras").write_bytes(b"\x00\x01 definitely not a model")

    import tensorflow as tf

    rng = np.random.default_rng(0)
    for cls in ("red", "green", "blue"):
        (d / "images" / cls).mkdir(parents=True)
        for i in range(4):
            img = rng.integers(0, 256, (12, 12, 3)).astype(np.uint8)
            tf.io.write_file(str(d / "images" / cls / f"{i}.png"), tf.io.encode_png(img))
    return d


@pytest.fixture
def runner():
    return CliRunner()


def test_export_spec_default_output(runner, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    result = runner.invoke(main, ["export", str(NIN)])
    assert result.exit_code == 0, result.output
    out = tmp_path / "build" / "nin_badm.onnx"
    assert out.is_file() and _files(tmp_path) == ["build", "build/nin_badm.onnx"]
    assert "wrote build/nin_badm.onnx" in result.output
    assert "onnx.checker" in result.output and "FAIL" not in result.output
    assert "random inputs, batch 1" in result.output and "random inputs, batch 4" in result.output

    meta = _meta(out)
    assert meta["name"] == "nin_badm"
    assert meta["spec_sha256"] == hashlib.sha256(NIN.read_bytes()).hexdigest()
    assert meta["nincompile_version"] == __version__
    assert meta["opset"] == "17" and meta["input_layout"] == "NHWC"
    assert len(json.loads(meta["classes"])) == 10

    keras.utils.set_random_seed(0)  # nin_badm has no train.seed: the export used 0
    _, model = api.build_spec(NIN)
    x = np.random.default_rng(1).standard_normal((2, 32, 32, 3)).astype(np.float32)
    got = _run(out, x)
    np.testing.assert_allclose(got, np.asarray(model(x, training=False)), atol=1e-5)


def test_export_spec_with_options(runner, work, tmp_path):
    out = tmp_path / "tiny.onnx"
    result = runner.invoke(
        main,
        ["export", str(work / "tiny.yaml"), "-o", str(out), "--opset", "15",
         "--batch", "4", "--data", str(work / "images"), "--include-preprocessing"],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "random inputs, batch 4" in result.output and "batch 1" not in result.output
    assert "12 real images" in result.output
    assert "feed raw pixels" in result.output

    proto = onnx.load(out)
    meta = _meta(out)
    assert meta["opset"] == "15" and meta["batch"] == "4" and meta["preprocessing"] == "folded"
    assert json.loads(meta["classes"]) == ["red", "green", "blue"]
    assert json.loads(meta["mean"]) == [127.5] * 3 and json.loads(meta["std"]) == [255.0] * 3
    assert meta["source"] == "spec" and meta["name"] == "tiny_cli"
    dims = [d.dim_value for d in proto.graph.input[0].type.tensor_type.shape.dim]
    assert dims == [4, 12, 12, 3]

    keras.utils.set_random_seed(0)  # no train.seed in the spec: the export used 0
    _, model = api.build_spec(work / "tiny.yaml")
    raw = np.random.default_rng(2).uniform(0, 255, (4, 12, 12, 3)).astype(np.float32)
    want = np.asarray(model((raw - 127.5) / 255.0, training=False))
    np.testing.assert_allclose(_run(out, raw), want, atol=1e-5)


def test_export_keras_file(runner, work, tmp_path):
    out = tmp_path / "tiny.onnx"
    result = runner.invoke(main, ["export", str(work / "tiny.keras"), "-o", str(out)])
    assert result.exit_code == 0, result.output
    meta = _meta(out)
    assert meta["source"] == "keras" and "spec_sha256" not in meta
    assert meta["source_sha256"] == hashlib.sha256((work / "tiny.keras").read_bytes()).hexdigest()
    model = keras.saving.load_model(work / "tiny.keras", safe_mode=True, compile=False)
    x = np.random.default_rng(2).standard_normal((3, 12, 12, 3)).astype(np.float32)
    np.testing.assert_allclose(_run(out, x), np.asarray(model(x, training=False)), atol=1e-5)


def test_export_augmented_model(runner, work, tmp_path):
    out = tmp_path / "flipper.onnx"
    result = runner.invoke(main, ["export", str(work / "flipper.keras"), "-o", str(out)])
    assert result.exit_code == 0, result.output
    ops = {n.op_type for n in onnx.load(out).graph.node}
    assert not any("Random" in op for op in ops)
    # a .keras without a spec has no class names; metadata says so
    assert json.loads(_meta(out)["classes"]) is None


def test_export_run_folder(runner, work, tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    (run / "model.keras").write_bytes((work / "tiny.keras").read_bytes())
    (run / "spec.yaml").write_text(TINY)
    out = tmp_path / "run.onnx"
    result = runner.invoke(main, ["export", str(run), "-o", str(out)])
    assert result.exit_code == 0, result.output
    assert "tiny_cli: wrote" in result.output
    assert _meta(out)["source"] == "run"


def test_help_lists_options(runner):
    result = runner.invoke(main, ["export", "--help"])
    assert result.exit_code == 0
    for option in ("--out", "--opset", "--batch", "--data", "--include-preprocessing"):
        assert option in result.output


# -------------------------------------------------------------------- bad input


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["missing.keras"], "no such file"),
        (["broken.keras"], "not a valid .keras file"),
        (["legacy.h5"], "legacy HDF5"),
        (["lambda.keras"], "Lambda layer"),
        (["tiny.keras", "--opset", "12"], "unsupported opset 12"),
        (["tiny.keras", "--opset", "99"], "13..18"),
        (["flipper.keras", "--include-preprocessing"], "needs data.mean and data.std"),
        (["tiny.keras", "--data", "no-such-folder"], "not a folder"),
    ],
)
def test_bad_input_exits_nonzero_and_writes_nothing(runner, work, tmp_path, args, message):
    out = tmp_path / "out.onnx"
    argv = ["export", str(work / args[0]), "-o", str(out), *args[1:]]
    result = runner.invoke(main, argv)
    assert result.exit_code == 1, result.output
    assert message in result.output
    assert "Traceback" not in result.output
    assert _files(tmp_path) == []


def test_missing_output_folder(runner, work, tmp_path):
    result = runner.invoke(
        main, ["export", str(work / "tiny.keras"), "-o", str(tmp_path / "a/b.onnx")]
    )
    assert result.exit_code == 1
    assert "does not exist" in result.output
    assert _files(tmp_path) == []


def test_symlinked_output_folder(runner, work, tmp_path):
    (tmp_path / "real").mkdir()
    (tmp_path / "link").symlink_to(tmp_path / "real", target_is_directory=True)
    result = runner.invoke(
        main, ["export", str(work / "tiny.keras"), "-o", str(tmp_path / "link" / "m.onnx")]
    )
    assert result.exit_code == 1
    assert "symbolic link" in result.output
    assert _files(tmp_path / "real") == []


@pytest.mark.parametrize("batch", ["0", "-3", "many"])
def test_bad_batch_is_a_usage_error(runner, work, tmp_path, batch):
    out = tmp_path / "x.onnx"
    result = runner.invoke(
        main, ["export", str(work / "tiny.keras"), "-o", str(out), "--batch", batch]
    )
    assert result.exit_code == 2
    assert "expected 'dynamic' or a positive integer" in result.output
    assert _files(tmp_path) == []


def test_export_refuses_other_backends_cleanly(tmp_path):
    import subprocess
    import sys

    out = tmp_path / "m.onnx"
    code = "from nincompile.cli import main; main()"
    proc = subprocess.run(
        [sys.executable, "-c", code, "export", "specs/lenet5.yaml", "-o", str(out)],
        cwd=ROOT,
        env={**os.environ, "KERAS_BACKEND": "jax"},
        capture_output=True,
        text=True,
    )
    if "jax" in proc.stderr and "No module named" in proc.stderr:
        pytest.skip("jax is not installed")
    assert proc.returncode == 1
    assert "runs on Keras's TensorFlow backend; received KERAS_BACKEND=jax" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert not out.exists()
