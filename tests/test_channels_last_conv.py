"""Issue 20: under the torch backend, training runs each Conv2D on the channels-last
memory of its NHWC input (nincompile.train.channels_last_conv), without the two copies
Keras's torch backend makes, and computes what Keras computes.

The checks run under torch in a subprocess (this file run as a script); the tests in
this process check eligibility and the switch's conditions."""

import contextlib
import json
import subprocess
import sys

import numpy as np
import pytest
from conftest import ROOT

from nincompile.keras_import import import_keras
from nincompile.train import channels_last_conv

keras = import_keras()

#: Conv2D configurations compared with Keras's code: "same" padding split evenly and
#: not (an even kernel, a stride), dilation, groups, 1x1
CONVS = {
    "5x5-same": dict(filters=6, kernel_size=5, padding="same"),
    "1x1": dict(filters=7, kernel_size=1),
    "3x3-valid-stride2": dict(filters=4, kernel_size=3, strides=2),
    "3x3-same-stride2": dict(filters=4, kernel_size=3, strides=2, padding="same"),
    "4x2-same": dict(filters=5, kernel_size=(4, 2), padding="same"),
    "3x3-same-dilation2": dict(filters=3, kernel_size=3, dilation_rate=2, padding="same"),
    "3x3-groups2": dict(filters=6, kernel_size=3, groups=2, padding="same", use_bias=False),
}


def _activation_copies(layer, x) -> int:
    """How many copies of an activation-sized tensor one forward and backward pass of
    ``layer`` on ``x`` makes (PyTorch's profiler, shapes recorded)."""
    import torch

    sizes = {x.numel(), int(np.prod(layer.compute_output_shape(tuple(x.shape))))}
    with torch.profiler.profile(record_shapes=True) as prof:
        y = layer(x)
        (y * y).sum().backward()
    return sum(
        1
        for event in prof.events()
        if event.name == "aten::copy_"
        and any(shape and int(np.prod(shape)) in sizes for shape in event.input_shapes)
    )


def _switching(model, switch: bool):
    """The switch over ``model``, or nothing switched."""
    return channels_last_conv.channels_last_conv(model) if switch else contextlib.nullcontext([])


def _under_torch() -> dict:
    """Every check that needs the torch backend; returns what it found."""
    import torch

    found = {"backend": keras.backend.backend(), "convs": {}}
    rng = np.random.default_rng(0)
    x_np = rng.normal(size=(2, 11, 10, 4)).astype("float32")
    for name, config in CONVS.items():
        layer = keras.layers.Conv2D(**config)
        layer.build(x_np.shape)
        results = []
        for switch in (False, True):
            x = torch.tensor(x_np, requires_grad=True)
            model = keras.Sequential([layer])
            with _switching(model, switch) as on:
                assert len(on) == int(switch)
                y = layer(x)
                (y * y).sum().backward()
                copies = _activation_copies(layer, torch.tensor(x_np, requires_grad=True))
                permuted = torch.tensor(x_np.transpose(0, 2, 1, 3)).permute(0, 2, 1, 3)
                y_permuted = layer(permuted)  # memory not NHWC: copied, same result
            results.append(
                (y.detach().numpy(), x.grad.numpy(), layer.kernel.value.grad.numpy(), copies,
                 y_permuted.detach().numpy())
            )  # fmt: skip
            layer.kernel.value.grad = None
            if layer.use_bias:
                layer.bias.value.grad = None
        (y0, gx0, gk0, copies0, _), (y1, gx1, gk1, copies1, yp1) = results
        np.testing.assert_allclose(y1, y0, rtol=1e-6, atol=1e-6, err_msg=name)
        np.testing.assert_allclose(yp1, y0, rtol=1e-6, atol=1e-6, err_msg=name)
        np.testing.assert_allclose(gx1, gx0, rtol=1e-5, atol=1e-5, err_msg=name)
        np.testing.assert_allclose(gk1, gk0, rtol=1e-5, atol=1e-4, err_msg=name)
        found["convs"][name] = {"keras_copies": copies0, "copies": copies1}
    found["losses"] = [_train(switch) for switch in (False, True)]
    return found


def _train(switch: bool) -> list[float]:
    keras.utils.set_random_seed(5)
    inputs = keras.Input((9, 9, 3))
    x = keras.layers.Conv2D(8, 3, padding="same", activation="relu")(inputs)
    x = keras.layers.BatchNormalization()(x)
    x = keras.layers.MaxPooling2D(3, strides=2, padding="same")(x)  # not NHWC memory after
    x = keras.layers.Conv2D(6, 1)(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    model = keras.Model(inputs, keras.layers.Dense(3, activation="softmax")(x))
    model.compile(optimizer=keras.optimizers.SGD(0.1, momentum=0.9),
                  loss="sparse_categorical_crossentropy")  # fmt: skip
    rng = np.random.default_rng(1)
    xs = rng.normal(size=(8, 9, 9, 3)).astype("float32")
    ys = rng.integers(0, 3, 8)
    with _switching(model, switch) as on:
        assert len(on) == 2 * switch
        return [float(model.train_on_batch(xs, ys)) for _ in range(4)]


def test_computes_what_keras_computes_without_copying_activations(backend_env):
    pytest.importorskip("torch")
    out = subprocess.run([sys.executable, __file__], env=backend_env("torch"), cwd=ROOT,
                         capture_output=True, text=True, timeout=300)  # fmt: skip
    assert out.returncode == 0, out.stderr[-3000:]
    found = json.loads(out.stdout.strip().splitlines()[-1])
    assert found["backend"] == "torch"
    assert set(found["convs"]) == set(CONVS)
    for name, copies in found["convs"].items():
        # Keras's code copies the input into NCHW memory and back into channels-last
        # memory; the switch does neither (an uneven "same" padding still copies into
        # the padded tensor forward and out of it backward, as Keras's code does)
        assert copies["keras_copies"] - copies["copies"] == 2, (name, copies)
        assert copies["copies"] == (2 if name in ("3x3-same-stride2", "4x2-same") else 0), name
    keras_losses, switched_losses = found["losses"]
    np.testing.assert_allclose(switched_losses, keras_losses, rtol=1e-5)


@pytest.mark.parametrize(
    "layer, expected",
    [
        (lambda: keras.layers.Conv2D(4, 3), True),
        (lambda: keras.layers.Conv2D(4, 3, data_format="channels_first"), False),
        (lambda: keras.layers.DepthwiseConv2D(3), False),
        (lambda: keras.layers.SeparableConv2D(4, 3), False),
        (lambda: keras.layers.Conv2DTranspose(4, 3), False),
        (lambda: keras.layers.Conv1D(4, 3), False),
    ],
    ids=["conv2d", "channels-first", "depthwise", "separable", "transpose", "conv1d"],
)
def test_eligible(layer, expected):
    assert channels_last_conv.eligible(layer()) is expected


def test_only_under_torch_and_off_by_environment(monkeypatch):
    model = keras.Sequential([keras.Input((5, 5, 2)), keras.layers.Conv2D(3, 3)])
    with channels_last_conv.channels_last_conv(model) as switched:
        assert (switched != []) == (keras.backend.backend() == "torch")
    monkeypatch.setattr(keras.backend, "backend", lambda: "torch")
    monkeypatch.setenv("NINCOMPILE_CHANNELS_LAST_CONV", "0")
    assert not channels_last_conv.enabled()
    monkeypatch.delenv("NINCOMPILE_CHANNELS_LAST_CONV")
    assert channels_last_conv.enabled()


if __name__ == "__main__":
    print(json.dumps(_under_torch()))
