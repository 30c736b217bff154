"""Issue 20: under the torch backend, each Conv2D, DepthwiseConv2D, SeparableConv2D,
MaxPooling2D and AveragePooling2D runs on the channels-last memory of its NHWC input
(nincompile.train.channels_last), without the copies Keras's torch backend makes, and
computes what Keras computes.

The checks run under torch in a subprocess (this file run as a script); the tests in
this process check the padding arithmetic, eligibility and the switch's conditions."""

import contextlib
import json
import subprocess
import sys

import numpy as np
import pytest
from conftest import ROOT

from nincompile.keras_import import import_keras
from nincompile.train import channels_last

keras = import_keras()

#: layers compared with Keras's code: "same" padding split evenly and not (an even
#: window, a stride), dilation, groups, 1x1, depthwise, pooling whose extra pixel
#: after is ceil mode (3/2 on 11 and 10) or explicit (2/1: ceil mode would add a window),
#: separable, average pooling with "same" padding split evenly (the window's pixels
#: outside the input not counted) and not (Keras's edge pixels replicated)
LAYERS = {
    "conv-5x5-same": lambda: keras.layers.Conv2D(6, 5, padding="same"),
    "conv-1x1-relu": lambda: keras.layers.Conv2D(7, 1, activation="relu"),
    "conv-3x3-valid-stride2": lambda: keras.layers.Conv2D(4, 3, strides=2),
    "conv-3x3-same-stride2": lambda: keras.layers.Conv2D(4, 3, strides=2, padding="same"),
    "conv-4x2-same": lambda: keras.layers.Conv2D(5, (4, 2), padding="same"),
    "conv-dilation2": lambda: keras.layers.Conv2D(3, 3, dilation_rate=2, padding="same"),
    "conv-groups2-no-bias": lambda: keras.layers.Conv2D(6, 3, groups=2, use_bias=False),
    "depthwise-3x3-same-mult2": lambda: keras.layers.DepthwiseConv2D(
        3, depth_multiplier=2, padding="same"
    ),
    "depthwise-stride2-same-relu": lambda: keras.layers.DepthwiseConv2D(
        3, strides=2, padding="same", activation="relu"
    ),
    "depthwise-dilation2-no-bias": lambda: keras.layers.DepthwiseConv2D(
        3, dilation_rate=2, use_bias=False
    ),
    "pool-3-stride2-same": lambda: keras.layers.MaxPooling2D(3, strides=2, padding="same"),
    "pool-2-stride1-same": lambda: keras.layers.MaxPooling2D(2, strides=1, padding="same"),
    "pool-2-valid": lambda: keras.layers.MaxPooling2D(2),
    "pool-3x2-stride-2x1-same": lambda: keras.layers.MaxPooling2D(
        (3, 2), strides=(2, 1), padding="same"
    ),
    "pool-3-stride1-same": lambda: keras.layers.MaxPooling2D(3, strides=1, padding="same"),
    "separable-3x3-same": lambda: keras.layers.SeparableConv2D(5, 3, padding="same"),
    "separable-stride2-same-mult2-relu": lambda: keras.layers.SeparableConv2D(
        6, 3, strides=2, padding="same", depth_multiplier=2, activation="relu"
    ),
    "separable-dilation2-no-bias": lambda: keras.layers.SeparableConv2D(
        4, 3, dilation_rate=2, use_bias=False
    ),
    "avgpool-2-valid": lambda: keras.layers.AveragePooling2D(2),
    "avgpool-3-stride1-same": lambda: keras.layers.AveragePooling2D(3, strides=1, padding="same"),
    "avgpool-3-stride2-same": lambda: keras.layers.AveragePooling2D(3, strides=2, padding="same"),
    "avgpool-2-stride1-same": lambda: keras.layers.AveragePooling2D(2, strides=1, padding="same"),
    # pooling layers keep the case of their padding (keras.ops lower-cases it)
    "pool-3-stride2-SAME": lambda: keras.layers.MaxPooling2D(3, strides=2, padding="SAME"),
    "avgpool-2-stride1-SAME": lambda: keras.layers.AveragePooling2D(2, strides=1, padding="SAME"),
}
#: the layers whose padding is still a tensor of its own, with the copies it makes: a
#: constant padding's forward and backward, a replicated edge's forward (as Keras's)
PADDED = {"conv-3x3-same-stride2": 2, "conv-4x2-same": 2, "depthwise-stride2-same-relu": 2,
          "pool-2-stride1-same": 2, "pool-3x2-stride-2x1-same": 2,
          "separable-stride2-same-mult2-relu": 2, "avgpool-3-stride2-same": 1,
          "avgpool-2-stride1-same": 1, "avgpool-2-stride1-SAME": 1}  # fmt: skip


def _switching(model, switch: bool):
    """The switch over ``model``, or nothing switched."""
    return channels_last.channels_last(model) if switch else contextlib.nullcontext([])


def _activation_copies(layer, x) -> int:
    """How many copies of an activation-sized tensor one forward and backward pass of
    ``layer`` on ``x`` makes (PyTorch's profiler, shapes recorded): ``copy_`` calls and
    edge-replicating paddings."""
    import torch

    sizes = {x.numel(), layer(x).numel()}  # not compute_output_shape: it refuses "SAME"
    with torch.profiler.profile(record_shapes=True) as prof:
        y = layer(x)
        (y * y).sum().backward()
    return sum(
        1
        for event in prof.events()
        if event.name in ("aten::copy_", "aten::replication_pad2d")
        and any(shape and int(np.prod(shape)) in sizes for shape in event.input_shapes)
    )


def _under_torch() -> dict:
    """Every check that needs the torch backend; returns what it found."""
    import torch

    found = {"backend": keras.backend.backend(), "layers": {}}
    rng = np.random.default_rng(0)
    inputs = {  # continuous values, and rounded after a ReLU: many tied maxima
        "normal": rng.normal(size=(2, 11, 10, 4)).astype("float32"),
        "ties": np.maximum(np.round(rng.normal(size=(2, 7, 9, 4))), 0).astype("float32"),
    }
    for name, make in LAYERS.items():
        for kind, x_np in inputs.items():
            layer = make()
            layer.build(x_np.shape)
            params = [w.value for w in layer.trainable_weights]
            results = []
            for switch in (False, True):
                x = torch.tensor(x_np, requires_grad=True)
                with _switching(keras.Sequential([layer]), switch) as on:
                    assert len(on) == int(switch)
                    y = layer(x)
                    (y * y).sum().backward()
                    grads = [x.grad.numpy()] + [p.grad.numpy().copy() for p in params]
                    for p in params:
                        p.grad = None
                    copies = _activation_copies(layer, torch.tensor(x_np, requires_grad=True))
                    # memory not NHWC: copied, the same result
                    permuted = torch.tensor(x_np.transpose(0, 2, 1, 3)).permute(0, 2, 1, 3)
                    y_permuted = layer(permuted)
                    # integers max-pool too (Keras's edge padding works for any dtype)
                    integers = name.startswith("pool-")
                    y_int = layer(torch.tensor(x_np.astype("int32"))) if integers else None
                for p in params:
                    p.grad = None
                results.append({
                    "y": y.detach().numpy(), "y_permuted": y_permuted.detach().numpy(),
                    "y_int": None if y_int is None else y_int.numpy(), "grads": grads,
                    "copies": copies,
                })  # fmt: skip
            keras_code, switched = results
            what = f"{name}, {kind} input"
            for key in ("y", "y_permuted"):
                np.testing.assert_allclose(switched[key], keras_code["y"], rtol=1e-6, atol=1e-6,
                                           err_msg=what)  # fmt: skip
            if keras_code["y_int"] is not None:
                np.testing.assert_array_equal(switched["y_int"], keras_code["y_int"], what)
            for a, b in zip(keras_code["grads"], switched["grads"], strict=True):
                np.testing.assert_allclose(b, a, rtol=1e-5, atol=1e-4, err_msg=what)
            if kind == "normal":
                found["layers"][name] = {"keras": keras_code["copies"],
                                         "switched": switched["copies"]}  # fmt: skip
    found["losses"] = [_train(switch) for switch in (False, True)]
    found["bfloat16"] = _mixed_precision()
    found["predict"] = _predict()
    return found


def _predict() -> dict:
    """``nincompile.predict`` runs the switched layers and gives Keras's answer."""
    import os
    import tempfile
    from pathlib import Path

    from PIL import Image

    import nincompile

    keras.utils.set_random_seed(7)
    inputs = keras.Input((8, 8, 3))
    x = keras.layers.Conv2D(4, 3, padding="same")(inputs)
    x = keras.layers.MaxPooling2D(3, 2, padding="same")(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    model = keras.Model(inputs, keras.layers.Dense(3, activation="softmax")(x))
    calls = {name: 0 for name in channels_last.CALLS}

    def counting(name, make):
        def make_counted(layer):
            call = make(layer)

            def counted(*args, **kwargs):
                calls[name] += 1
                return call(*args, **kwargs)

            return counted

        return make_counted

    channels_last.CALLS.update({n: counting(n, f) for n, f in channels_last.CALLS.items()})
    with tempfile.TemporaryDirectory() as tmp:
        model.save(Path(tmp) / "m.keras")
        pixels = np.random.default_rng(3).integers(0, 256, (8, 8, 3), dtype=np.uint8)
        Image.fromarray(pixels).save(Path(tmp) / "a.png")
        top, switched_calls = {}, {}
        for setting in ("1", "0"):
            os.environ["NINCOMPILE_CHANNELS_LAST"] = setting
            result = nincompile.predict(Path(tmp) / "m.keras", Path(tmp) / "a.png", top=3)
            top[setting] = [(t["class"], t["probability"]) for t in result[0]["top"]]
            switched_calls[setting] = dict(calls)
    del os.environ["NINCOMPILE_CHANNELS_LAST"]
    assert [c for c, _ in top["1"]] == [c for c, _ in top["0"]]
    np.testing.assert_allclose([p for _, p in top["1"]], [p for _, p in top["0"]], rtol=1e-5)
    return switched_calls


def _mixed_precision() -> str:
    """Under mixed_bfloat16 the switched layers compute in bfloat16 what Keras's do;
    returns the output dtype."""
    keras.mixed_precision.set_global_policy("mixed_bfloat16")
    try:
        inputs = keras.Input((12, 12, 3))
        x = keras.layers.Conv2D(8, 3, padding="same", activation="relu")(inputs)
        model = keras.Model(inputs, keras.layers.MaxPooling2D(3, 2, padding="same")(x))
    finally:
        keras.mixed_precision.set_global_policy("float32")
    xs = np.random.default_rng(2).normal(size=(2, 12, 12, 3)).astype("float32")
    expected = model(xs)
    with channels_last.channels_last(model) as on:
        assert len(on) == 2
        got = model(xs)
    assert got.dtype == expected.dtype
    np.testing.assert_allclose(got.detach().float().numpy(), expected.detach().float().numpy(),
                               rtol=1e-2, atol=1e-2)  # fmt: skip
    return str(got.dtype)


def _train(switch: bool) -> list[float]:
    """Four training steps of a small model with every kind of layer switched but
    the depthwise one (a separable convolution holds one)."""
    keras.utils.set_random_seed(5)
    inputs = keras.Input((9, 9, 3))
    x = keras.layers.Conv2D(8, 3, padding="same", activation="relu")(inputs)
    x = keras.layers.BatchNormalization()(x)
    x = keras.layers.MaxPooling2D(3, strides=2, padding="same")(x)
    x = keras.layers.SeparableConv2D(6, 3, padding="same", activation="relu")(x)
    x = keras.layers.AveragePooling2D(2, strides=1, padding="same")(x)
    x = keras.layers.Conv2D(6, 1)(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    model = keras.Model(inputs, keras.layers.Dense(3, activation="softmax")(x))
    model.compile(optimizer=keras.optimizers.SGD(0.1, momentum=0.9),
                  loss="sparse_categorical_crossentropy")  # fmt: skip
    rng = np.random.default_rng(1)
    xs = rng.normal(size=(8, 9, 9, 3)).astype("float32")
    ys = rng.integers(0, 3, 8)
    with _switching(model, switch) as on:
        assert len(on) == 5 * switch
        return [float(model.train_on_batch(xs, ys)) for _ in range(4)]


def test_computes_what_keras_computes_without_copying_activations(backend_env):
    pytest.importorskip("torch")
    out = subprocess.run([sys.executable, __file__], env=backend_env("torch"), cwd=ROOT,
                         capture_output=True, text=True, timeout=300)  # fmt: skip
    assert out.returncode == 0, out.stderr[-3000:]
    found = json.loads(out.stdout.strip().splitlines()[-1])
    assert found["backend"] == "torch"
    assert set(found["layers"]) == set(LAYERS)
    for name, copies in found["layers"].items():
        # Keras's code copies each input into NCHW memory (a convolution then back
        # into channels-last memory); switched, only a padding split unevenly that
        # ceil mode cannot express is still a tensor of its own
        assert copies["switched"] == PADDED.get(name, 0), (name, copies)
        assert copies["keras"] >= copies["switched"] + (name not in PADDED), (name, copies)
    assert found["bfloat16"] == "torch.bfloat16"
    # predict ran the switched layers, and none with NINCOMPILE_CHANNELS_LAST=0
    switched, off = found["predict"]["1"], found["predict"]["0"]
    assert switched["Conv2D"] >= 1 and switched["MaxPooling2D"] >= 1
    assert off == switched
    keras_losses, switched_losses = found["losses"]
    np.testing.assert_allclose(switched_losses, keras_losses, rtol=1e-5)


def test_same_padding_is_keras_s():
    """Keras's torch backend splits "same" padding as channels_last.same_padding does,
    for every size, window, stride and dilation up to 12, 6, 4 and 3."""
    pytest.importorskip("torch")
    from keras.src.backend.torch.nn import _compute_padding_length

    for size in range(1, 13):
        for window in range(1, 7):
            for stride in range(1, 5):
                for dilation in range(1, 4):
                    assert channels_last.same_padding(size, window, stride, dilation) == tuple(
                        _compute_padding_length(size, window, stride, dilation)
                    ), (size, window, stride, dilation)


@pytest.mark.parametrize(
    "layer, expected",
    [
        (lambda: keras.layers.Conv2D(4, 3), True),
        (lambda: keras.layers.MaxPooling2D(), True),
        (lambda: keras.layers.Conv2D(4, 3, data_format="channels_first"), False),
        (lambda: keras.layers.MaxPooling2D(data_format="channels_first"), False),
        (lambda: keras.layers.AveragePooling2D(2), True),
        (lambda: keras.layers.DepthwiseConv2D(3), True),
        (lambda: keras.layers.SeparableConv2D(4, 3), True),
        (lambda: keras.layers.AveragePooling2D(2, data_format="channels_first"), False),
        (lambda: keras.layers.Conv2DTranspose(4, 3), False),
        (lambda: keras.layers.Conv1D(4, 3), False),
        (lambda: type("MyConv", (keras.layers.Conv2D,), {})(4, 3), False),
    ],
    ids=["conv2d", "max-pool", "conv-channels-first", "pool-channels-first", "average-pool",
         "depthwise", "separable", "average-pool-channels-first", "transpose", "conv1d",
         "subclass"],
)  # fmt: skip
def test_eligible(layer, expected):
    assert channels_last.eligible(layer()) is expected


def test_only_under_torch_and_off_by_environment(monkeypatch):
    model = keras.Sequential([keras.Input((5, 5, 2)), keras.layers.Conv2D(3, 3)])
    with channels_last.channels_last(model) as switched:
        assert (switched != []) == (keras.backend.backend() == "torch")
    monkeypatch.setattr(keras.backend, "backend", lambda: "torch")
    monkeypatch.setenv("NINCOMPILE_CHANNELS_LAST", "0")
    assert not channels_last.enabled()
    monkeypatch.delenv("NINCOMPILE_CHANNELS_LAST")
    assert channels_last.enabled()
    with channels_last.channels_last(model) as switched:
        assert switched == [model.layers[0]] and "call" in vars(model.layers[0])
    assert "call" not in vars(model.layers[0])  # given back


if __name__ == "__main__":
    print(json.dumps(_under_torch()))
