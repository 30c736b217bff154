"""Convolutions on channels-last memory while training under the torch backend.

nincompile's models are channels-last (NHWC).  Keras 3's torch backend hands each
convolution to ``torch.nn.functional.conv2d`` as NCHW: it permutes the input, copies
it into NCHW memory (``.contiguous()``), then copies it back into channels-last memory
(``.contiguous(memory_format=torch.channels_last)``), the layout PyTorch's CPU and
cuDNN kernels are fastest on; backward repeats both copies on the gradient.  An NHWC
tensor permuted to NCHW already *is* channels-last memory, so both copies move the
activations for nothing.

:func:`channels_last_conv` switches a model's eligible ``Conv2D`` layers to a
convolution that hands PyTorch the permuted view itself (copying only an input whose
memory is not NHWC) for as long as the block lasts (``nincompile train`` holds it over
the epochs).  The call to ``conv2d`` is the one Keras makes (same strides, dilation,
groups, "same" padding split the same way, the kernel in channels-last memory), so the
function computed is the same; ``tests/test_channels_last_conv.py`` checks outputs and
gradients against Keras's code and that no activation is copied.  No layer's class,
config or weights change.  Set ``NINCOMPILE_CHANNELS_LAST_CONV=0`` to keep Keras's code.
"""

from __future__ import annotations

import contextlib
import os

from ..keras_import import import_keras

keras = import_keras()


def _same_padding(size: int, kernel: int, stride: int, dilation: int) -> tuple[int, int]:
    """Keras's "same" padding of one spatial axis as (before, after): the extra pixel
    of an odd total goes after."""
    effective = (kernel - 1) * dilation + 1
    out = (size + stride - 1) // stride
    total = max(0, (out - 1) * stride + effective - size)
    return total // 2, total - total // 2


def _channels_last_op(layer):
    """``layer.convolution_op`` on the NCHW view of the NHWC input."""
    import torch
    import torch.nn.functional as F

    strides = tuple(layer.strides)
    dilation = tuple(layer.dilation_rate)

    def convolution_op(inputs, kernel):
        x = keras.ops.convert_to_tensor(inputs).permute(0, 3, 1, 2)
        if not x.is_contiguous(memory_format=torch.channels_last):
            x = x.contiguous(memory_format=torch.channels_last)
        w = keras.ops.convert_to_tensor(kernel).permute(3, 2, 0, 1)
        w = w.contiguous(memory_format=torch.channels_last)
        groups = x.shape[1] // w.shape[1]
        padding: tuple[int, int] | int = 0
        if layer.padding == "same":
            pads = [
                _same_padding(x.shape[2 + i], w.shape[2 + i], strides[i], dilation[i])
                for i in range(2)
            ]
            if all(before == after for before, after in pads):
                padding = (pads[0][0], pads[1][0])
            else:
                x = F.pad(x, (*pads[1], *pads[0]))
        y = F.conv2d(x, w, stride=strides, padding=padding, dilation=dilation, groups=groups)
        return y.permute(0, 2, 3, 1)

    return convolution_op


def enabled() -> bool:
    """Whether training may switch convolutions to channels-last memory: the torch
    backend, unless NINCOMPILE_CHANNELS_LAST_CONV=0."""
    return keras.backend.backend() == "torch" and os.environ.get(
        "NINCOMPILE_CHANNELS_LAST_CONV", "1"
    ) not in ("0", "false", "no", "off")


def eligible(layer) -> bool:
    """Whether ``layer`` is a channels-last 2-D convolution this module computes."""
    return type(layer) is keras.layers.Conv2D and layer.data_format == "channels_last"


@contextlib.contextmanager
def channels_last_conv(model):
    """Inside, ``model``'s eligible convolutions run on channels-last memory (see the
    module's text); yields the layers switched (none where :func:`enabled` is false).
    Leaving the block gives them back Keras's code."""
    switched = []
    if enabled():
        for layer in model._flatten_layers(include_self=False, recursive=True):
            if eligible(layer) and "convolution_op" not in vars(layer):
                object.__setattr__(layer, "convolution_op", _channels_last_op(layer))
                switched.append(layer)
    try:
        yield switched
    finally:
        for layer in switched:
            object.__delattr__(layer, "convolution_op")
