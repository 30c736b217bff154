"""The same spec builds, runs and takes a training step under every Keras backend.

Each backend runs in its own process (KERAS_BACKEND is read at import). Backends
whose package is not installed are skipped; TensorFlow always runs."""

import importlib.util
import json
import subprocess
import sys

import pytest
from conftest import ROOT

from nincompile import api

SPECS = ["baseline", "inception10", "resnet18"]  # sequential, concat, residual add
SCRIPT = r"""
import json, sys
import numpy as np
import keras
from nincompile import api
from nincompile.keras_builder import count_params
out = {}
for name in sys.argv[1:]:
    compiled = api.compile_spec(f"specs/{name}.yaml")
    model = api.build(compiled)
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    x = np.random.default_rng(0).random((4, *compiled.spec.input), dtype="float32")
    y = np.arange(4) % 10
    loss = model.fit(x, y, epochs=1, batch_size=2, verbose=0).history["loss"][0]
    probs = np.asarray(model.predict(x, verbose=0))
    out[name] = {"counts": count_params(model), "loss": float(loss),
                 "shape": list(probs.shape), "backend": keras.backend.backend()}
print("RESULT" + json.dumps(out))
"""


@pytest.mark.parametrize("backend", ["tensorflow", "jax", "torch"])
def test_specs_build_and_train_under_backend(backend, backend_env):
    if importlib.util.find_spec(backend) is None:
        pytest.skip(f"{backend} is not installed")
    env = backend_env(backend)
    proc = subprocess.run(
        [sys.executable, "-c", SCRIPT, *SPECS],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    line = next(x for x in proc.stdout.splitlines() if x.startswith("RESULT"))
    results = json.loads(line[len("RESULT") :])
    for name in SPECS:
        got = results[name]
        assert got["backend"] == backend
        assert got["counts"] == api.compile_spec(ROOT / "specs" / f"{name}.yaml").counts()
        assert got["shape"] == [4, 10]
        assert got["loss"] == got["loss"]  # not NaN


#: 72 images: 8 held out, 64 to train, two whole batches an epoch (a partial batch
#: would be one more compiled training step under JAX; more batches add only time)
TRAIN_SPEC = """\
name: tiny
input: [12, 12, 3]
stages:
  - {conv: [6, 3], padding: same, batch_norm: true, activation: relu, pool: {max: 2},
     dropout: 0.1}
head: [gap, {dense: 4, activation: softmax}]
train: {optimizer: sgd, momentum: 0.9, nesterov: true, learning_rate: 0.05, batch_size: 32,
        epochs: 2, lr_schedule: onecycle}
data:
  dataset: synthetic
  limit: 72
  augment: {flip: horizontal, shift: 0.125, crop: 2, cutout: 4}
"""


@pytest.mark.parametrize("backend", ["tensorflow", "jax", "torch"])
def test_train_and_resume_under_backend(backend, tmp_path, backend_env):
    """`nincompile train` (augmentation, schedule, checkpoints, resume) on each backend;
    under JAX the whole step must really be jit-compiled."""
    if importlib.util.find_spec(backend) is None:
        pytest.skip(f"{backend} is not installed")
    spec = tmp_path / "tiny.yaml"
    spec.write_text(TRAIN_SPEC)
    env = backend_env(backend)
    run = tmp_path / "run"
    base = [sys.executable, "-m", "nincompile.cli", "train", str(spec), "--out", str(run)]
    for extra in (["--stop-after", "1"], ["--resume"]):
        proc = subprocess.run(
            base + extra, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600
        )
        assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["backend"] == backend
    assert metrics["epochs_completed"] == 2
    assert metrics["final"]["loss"] == metrics["final"]["loss"]  # not NaN
    if backend == "jax":
        assert metrics["jit_compile"] is True
    # the layers each faster kernel ran: batch norm fused under TensorFlow and torch,
    # the conv and the max pooling on channels-last memory under torch
    assert metrics["kernels"] == {
        "fused_batch_norm": int(backend != "jax"),
        "channels_last": 2 * (backend == "torch"),
    }
    assert (run / "model.keras").is_file()
    assert metrics["data_on_device"] is False  # auto: no accelerator here
    if backend == "tensorflow":
        return
    # the same run with the data kept on the device trains to the same weights
    on_device = tmp_path / "on_device"
    proc = subprocess.run(
        [*base[:-1], str(on_device), "--set", "data.on_device=true"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    assert "data kept on the device" in proc.stdout + proc.stderr
    assert json.loads((on_device / "metrics.json").read_text())["data_on_device"] is True
    import keras
    import numpy as np

    host = keras.saving.load_model(run / "model.keras", compile=False).get_weights()
    dev = keras.saving.load_model(on_device / "model.keras", compile=False).get_weights()
    assert len(host) == len(dev)
    for a, b in zip(host, dev, strict=True):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("backend", ["tensorflow", "jax"])
def test_every_augmentation_trains_under_jit(backend, tmp_path, backend_env):
    """Flip, shift, crop and cutout inside an XLA-compiled training step
    (``--jit-compile on``): the shift is written with gathers, which XLA compiles,
    where ``ImageProjectiveTransformV3`` made TensorFlow's jit fail.  One epoch of one
    batch and no validation: one training step is compiled, and it is the one tested."""
    if importlib.util.find_spec(backend) is None:
        pytest.skip(f"{backend} is not installed")
    spec = tmp_path / "tiny.yaml"
    one_batch = TRAIN_SPEC.replace("  limit: 72\n", "  limit: 32\n  validation_split: 0\n")
    spec.write_text(one_batch.replace("epochs: 2", "epochs: 1"))
    env = backend_env(backend)
    run = tmp_path / "run"
    proc = subprocess.run(
        [sys.executable, "-m", "nincompile.cli", "train", str(spec), "--out", str(run),
         "--jit-compile", "on"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["jit_compile"] is True and metrics["backend"] == backend
    assert metrics["final"]["loss"] == metrics["final"]["loss"]  # not NaN


TORCH_COMPILE = r"""
import numpy as np, torch, keras
from nincompile.data import pipeline
from nincompile.spec.schema import Data
data = Data(augment={"flip": "horizontal", "shift": 0.25, "crop": 2, "cutout": 3})
layers = pipeline.augment_layers(data.augment)
def augment(x):
    for layer in layers:
        x = layer.transform(x)  # what each layer computes when training
    return x
x = torch.tensor(np.random.default_rng(0).random((8, 12, 12, 3)), dtype=torch.float32)
compiled = torch.compile(augment, backend="aot_eager")
for layer in layers:
    layer.generator.state.assign(np.array([1, 1], dtype="uint32"))
eager = augment(x).numpy()
for layer in layers:
    layer.generator.state.assign(np.array([1, 1], dtype="uint32"))
out = compiled(x).numpy()
assert out.shape == eager.shape and np.allclose(out, eager, atol=1e-6), abs(out - eager).max()
print("OK")
"""


def test_every_augmentation_compiles_under_torch(backend_env):
    """Under PyTorch, ``torch.compile`` of what the whole augmentation stack computes
    gives what eager mode gives.  Keras's PyTorch random draws are excluded from
    compilation (``torch.compiler.disable``), so the graph breaks around them; the
    ops between them compile.  (A full ``--jit-compile on`` training step under PyTorch
    takes minutes of inductor compilation on this CPU, so the test traces with the
    ``aot_eager`` backend.)"""
    if importlib.util.find_spec("torch") is None:
        pytest.skip("torch is not installed")
    env = backend_env("torch")
    proc = subprocess.run(
        [sys.executable, "-c", TORCH_COMPILE], cwd=ROOT, env=env, capture_output=True,
        text=True, timeout=600,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "OK" in proc.stdout
