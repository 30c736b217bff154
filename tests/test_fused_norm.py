"""Issue 20: under TensorFlow and torch, training runs batch normalisation in one fused
kernel (nincompile.train.fused_norm), and TensorFlow runs oneDNN's kernels
(nincompile.keras_import); both compute what Keras computes."""

import contextlib
import os
import subprocess
import sys

import numpy as np
import pytest
from conftest import ROOT

from nincompile.keras_import import import_keras
from nincompile.train import fused_norm

keras = import_keras()
tf_only = pytest.mark.skipif(
    keras.backend.backend() != "tensorflow", reason="TensorFlow's kernels, in this process"
)


def _model(seed=3, **bn):
    keras.utils.set_random_seed(seed)
    inputs = keras.Input((8, 8, 3))
    x = keras.layers.Conv2D(6, 3, padding="same")(inputs)
    x = keras.layers.BatchNormalization(**bn)(x)
    x = keras.layers.Activation("relu")(x)
    x = keras.layers.Conv2D(5, 3)(x)
    x = keras.layers.BatchNormalization(momentum=0.5)(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    x = keras.layers.Dense(4)(x)
    x = keras.layers.BatchNormalization()(x)  # 2-D: Keras's own code
    outputs = keras.layers.Activation("softmax")(x)
    return keras.Model(inputs, outputs)


def _train(fused: bool, steps=4, **bn):
    model = _model(**bn)
    model.compile(
        optimizer=keras.optimizers.SGD(0.1, momentum=0.9), loss="sparse_categorical_crossentropy"
    )
    rng = np.random.default_rng(0)
    x = rng.normal(1.5, 2.0, (16, 8, 8, 3)).astype("float32")
    y = rng.integers(0, 4, 16)
    with fused_norm.fused_batch_norm(model) if fused else contextlib.nullcontext([]) as switched:
        losses = [float(model.train_on_batch(x, y)) for _ in range(steps)]
    return model, losses, switched


BN_OPTIONS = {
    "default": {},
    "no-center": {"center": False},
    "no-scale": {"scale": False},
    "epsilon-momentum": {"epsilon": 0.1, "momentum": 0.9},
}


def compare(bn: dict) -> None:
    """Train the same model with Keras's batch normalisation and with the fused
    kernel; every loss and weight (moving statistics included) agree."""
    keras_model, keras_losses, _ = _train(False, **bn)
    fused_model, fused_losses, switched = _train(True, **bn)
    assert len(switched) == 3  # the 2-D one is switched too, and runs Keras's code
    np.testing.assert_allclose(fused_losses, keras_losses, rtol=1e-5)
    for a, b in zip(keras_model.weights, fused_model.weights, strict=True):
        np.testing.assert_allclose(
            keras.ops.convert_to_numpy(b), keras.ops.convert_to_numpy(a), rtol=1e-4,
            atol=1e-5, err_msg=b.path,
        )  # fmt: skip
    assert all("call" not in vars(layer) for layer in switched)  # given back


@tf_only
@pytest.mark.parametrize("bn", BN_OPTIONS.values(), ids=BN_OPTIONS.keys())
def test_fused_training_computes_what_keras_computes(bn):
    compare(bn)


def test_fused_training_computes_what_keras_computes_under_torch(backend_env):
    pytest.importorskip("torch")
    out = subprocess.run([sys.executable, __file__], env=backend_env("torch"), cwd=ROOT,
                         capture_output=True, text=True, timeout=300)  # fmt: skip
    assert out.returncode == 0, out.stderr[-3000:]
    assert out.stdout.split() == ["torch", *BN_OPTIONS]


@tf_only
def test_the_fused_kernel_is_what_runs():
    import tensorflow as tf

    model = _model()
    x = tf.zeros((2, 8, 8, 3))

    def ops():
        graph = tf.function(lambda t: model(t, training=True)).get_concrete_function(x).graph
        return {op.type for op in graph.get_operations()}

    assert "FusedBatchNormV3" not in ops()
    with fused_norm.fused_batch_norm(model):
        assert "FusedBatchNormV3" in ops()
        inference = tf.function(lambda t: model(t, training=False)).get_concrete_function(x)
        assert "FusedBatchNormV3" not in {op.type for op in inference.graph.get_operations()}


@tf_only
@pytest.mark.parametrize(
    "layer",
    [
        lambda: keras.layers.BatchNormalization(epsilon=1e-5),
        lambda: keras.layers.BatchNormalization(renorm=True),
        lambda: keras.layers.BatchNormalization(synchronized=True),
        lambda: keras.layers.LayerNormalization(),
    ],
    ids=["epsilon-below-the-kernels", "renorm", "synchronized", "layer-norm"],
)
def test_what_the_kernel_cannot_compute_keeps_keras_code(layer):
    assert not fused_norm.eligible(layer())


@tf_only
def test_off_by_environment(monkeypatch):
    monkeypatch.setenv("NINCOMPILE_FUSED_NORM", "0")
    with fused_norm.fused_batch_norm(_model()) as switched:
        assert switched == []


@tf_only
@pytest.mark.parametrize("setting", [None, "0"])
def test_onednn_is_on_unless_the_user_says(setting):
    env = {k: v for k, v in os.environ.items() if k != "TF_ENABLE_ONEDNN_OPTS"}
    if setting is not None:
        env["TF_ENABLE_ONEDNN_OPTS"] = setting
    code = (
        "from nincompile.keras_import import import_keras; import_keras();"
        "from tensorflow.python.util import _pywrap_util_port as p; print(p.IsMklEnabled())"
    )
    out = subprocess.run([sys.executable, "-c", code], env=env, cwd=ROOT, capture_output=True,
                         text=True, check=True)  # fmt: skip
    assert out.stdout.strip() == ("True" if setting is None else "False")


if __name__ == "__main__":  # the comparison under $KERAS_BACKEND, in its own process
    print(keras.backend.backend())
    if keras.backend.backend() == "torch":  # count the kernel's calls: it is what runs
        import torch

        calls, kernel = [], torch.native_batch_norm
        torch.native_batch_norm = lambda *a: calls.append(1) or kernel(*a)
    for name, options in BN_OPTIONS.items():
        n = len(calls)
        compare(options)
        assert len(calls) - n == 4 * 2, len(calls) - n  # 4 steps of 2 conv BN layers
        print(name)


TINY = """\
name: tiny_kernels
input: [8, 8, 3]
stages:
  - {conv: [4, 3], padding: same, batch_norm: true, activation: relu, pool: {max: 2}}
head: [gap, {dense: 3, activation: softmax}]
train: {optimizer: sgd, learning_rate: 0.01, batch_size: 16, epochs: 1, seed: 1}
data: {dataset: synthetic, limit: 32, validation_split: 0, classes: [a, b, c],
       augment: {flip: horizontal, shift: 0.125, crop: 2, cutout: 3}}
"""


@tf_only
def test_training_with_every_augmentation_logs_nothing_from_tensorflow(spec_file, tmp_path):
    """With oneDNN on, no TensorFlow C++ line reaches the terminal (Keras's gathers
    under TensorFlow took int64 indices, which oneDNN logged an error for on AVX2)."""
    env = {k: v for k, v in os.environ.items() if k not in ("TF_ENABLE_ONEDNN_OPTS",
                                                           "TF_CPP_MIN_LOG_LEVEL")}  # fmt: skip
    cmd = [sys.executable, "-m", "nincompile.cli", "train", str(spec_file(TINY)), "--out",
           str(tmp_path / "run")]  # fmt: skip
    out = subprocess.run(cmd, env=env, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    tf_lines = [ln for ln in out.stderr.splitlines() if ln[:1] in "EWI" and ln[1:5].isdigit()]
    assert tf_lines == []
