"""Convolutions and pooling on channels-last memory under the torch backend
(train, evaluate, predict).

nincompile's models are channels-last (NHWC).  Keras 3's torch backend hands each
convolution to ``torch.nn.functional.conv2d`` as NCHW: it permutes the input, copies
it into NCHW memory (``.contiguous()``), then copies it back into channels-last memory
(``.contiguous(memory_format=torch.channels_last)``), the layout PyTorch's CPU and
cuDNN kernels are fastest on, and adds the bias in a pass of its own.  Pooling copies
its input into NCHW memory, and with "same" padding split unevenly (a 3x3 window,
stride 2, on 32x32) first copies it into a padded tensor.  An NHWC tensor permuted to
NCHW already *is* channels-last memory, so those copies move the activations for
nothing.

:func:`channels_last` switches a model's eligible layers (:data:`CALLS`), for as long
as the block lasts (``nincompile train`` holds it over the epochs, ``evaluate`` and
``predict`` over their batches), to calls that hand PyTorch the permuted view itself
(copying only an input whose memory is not NHWC):

- ``Conv2D``, ``DepthwiseConv2D`` and ``SeparableConv2D``: the ``conv2d`` calls Keras
  makes (strides, dilation, groups, a depthwise kernel as one group per input channel,
  a separable layer's depthwise then 1x1 pointwise convolution, "same" padding split
  the same way, the kernel in channels-last memory), with the bias added inside the
  (last) convolution;
- ``MaxPooling2D``: ``max_pool2d`` with the padding as an argument where the windows
  are Keras's (even padding, or ceil mode for an extra pixel after), an explicit
  padding with the dtype's lowest value (-inf for floats) otherwise (the maximum of a
  window that holds a real pixel is the same as with the edge replicated, Keras's
  padding);
- ``AveragePooling2D``: ``avg_pool2d`` over the input's pixels only, an even "same"
  padding as an argument; padding split unevenly replicates the edge, as Keras does.

The function computed is the same: ``tests/test_channels_last.py`` checks outputs and
gradients against Keras's code and counts the activation copies left.  No layer's
class, config or weights change.  Set ``NINCOMPILE_CHANNELS_LAST=0`` to keep Keras's
code.
"""

from __future__ import annotations

import functools
import math

from ..keras_import import import_keras
from .layer_calls import env_on, switched_calls

keras = import_keras()


def same_padding(size: int, window: int, stride: int, dilation: int = 1) -> tuple[int, int]:
    """Keras's "same" padding of one spatial axis as (before, after): the extra pixel
    of an odd total goes after."""
    effective = (window - 1) * dilation + 1
    out = (size + stride - 1) // stride
    total = max(0, (out - 1) * stride + effective - size)
    return total // 2, total - total // 2


def _nchw_view(inputs):
    """The NHWC ``inputs`` as an NCHW tensor in channels-last memory: a view, or a copy
    where the memory is not NHWC."""
    import torch

    x = keras.ops.convert_to_tensor(inputs).permute(0, 3, 1, 2)
    if not x.is_contiguous(memory_format=torch.channels_last):
        x = x.contiguous(memory_format=torch.channels_last)
    return x


def _same_pads(x, window, strides, dilation=(1, 1)) -> list[tuple[int, int]]:
    """Keras's "same" padding of the NCHW ``x``'s two spatial axes, (before, after)
    each."""
    return [same_padding(x.shape[2 + i], window[i], strides[i], dilation[i]) for i in range(2)]


def _symmetric(pads) -> tuple[int, int] | None:
    """``pads`` as PyTorch's padding argument (the same on both sides of each axis), or
    None where an axis is split unevenly (then the input itself is padded)."""
    return (pads[0][0], pads[1][0]) if all(b == a for b, a in pads) else None


def _padded(x, pads, **how):
    """``x`` padded by ``pads`` (``F.pad``'s ``mode``/``value`` in ``how``)."""
    import torch.nn.functional as F

    return F.pad(x, (*pads[1], *pads[0]), **how)


def _is_same(padding: str) -> bool:
    """Whether a layer's padding is "same" (pooling layers keep the case given; Keras's
    ops lower-case it)."""
    return padding.lower() == "same"


def _conv2d(x, kernel, bias, strides, padding: str, dilation, depthwise: bool = False):
    """Keras's ``conv2d`` call on the NCHW view ``x`` (channels-last memory) with the
    Keras kernel ``kernel`` (h, w, in / groups, out; with ``depthwise``, h, w, in,
    multiplier), the bias inside the convolution; returns NCHW."""
    import torch
    import torch.nn.functional as F

    w = keras.ops.convert_to_tensor(kernel)
    if depthwise:  # (h, w, in, multiplier) -> (h, w, 1, in * multiplier), as Keras
        w = w.reshape(w.shape[0], w.shape[1], 1, w.shape[2] * w.shape[3])
    w = w.permute(3, 2, 0, 1).contiguous(memory_format=torch.channels_last)
    pad: tuple[int, int] | int = 0
    if _is_same(padding):
        pads = _same_pads(x, w.shape[2:], strides, dilation)
        even = _symmetric(pads)
        if even is None:
            x = _padded(x, pads)
        else:
            pad = even
    return F.conv2d(x, w, bias, stride=strides, padding=pad, dilation=dilation,
                    groups=x.shape[1] // w.shape[1])  # fmt: skip


def _bias(layer):
    return keras.ops.convert_to_tensor(layer.bias) if layer.use_bias else None


def _conv_call(layer, depthwise: bool = False):
    """``layer.call`` (a Conv2D, or with ``depthwise`` a DepthwiseConv2D) on
    channels-last memory, the bias inside the conv."""
    strides, dilation = tuple(layer.strides), tuple(layer.dilation_rate)

    def call(inputs):
        y = _conv2d(_nchw_view(inputs), layer.kernel, _bias(layer), strides, layer.padding,
                    dilation, depthwise).permute(0, 2, 3, 1)  # fmt: skip
        return y if layer.activation is None else layer.activation(y)

    return call


def _separable_call(layer):
    """``layer.call`` (a SeparableConv2D) on channels-last memory: Keras's two
    convolutions (depthwise with the layer's strides, padding and dilation, then the
    1x1 pointwise one), the bias inside the second."""
    strides, dilation = tuple(layer.strides), tuple(layer.dilation_rate)

    def call(inputs):
        x = _conv2d(_nchw_view(inputs), layer.depthwise_kernel, None, strides, layer.padding,
                    dilation, depthwise=True)  # fmt: skip
        y = _conv2d(x, layer.pointwise_kernel, _bias(layer), (1, 1), "valid", (1, 1))
        y = y.permute(0, 2, 3, 1)
        return y if layer.activation is None else layer.activation(y)

    return call


def _ceil_mode_size(size: int, window: int, stride: int, pad: int) -> int:
    """PyTorch's pooled size with ceil mode (a window that would start in the right
    padding is dropped: PyTorch's rule, kept although with Keras's "same" padding, the
    only caller, no window starts there)."""
    out = math.ceil((size + 2 * pad - window) / stride) + 1
    return out - 1 if (out - 1) * stride >= size + pad else out


def _lowest(dtype) -> float:
    """The lowest value of ``dtype``: -inf for a float, the minimum for an integer."""
    import torch

    return -math.inf if dtype.is_floating_point else torch.iinfo(dtype).min


def _max_pool_call(layer):
    """``layer.call`` (a MaxPooling2D) on channels-last memory."""
    import torch.nn.functional as F

    window = tuple(layer.pool_size)
    strides = tuple(layer.strides)

    def call(inputs):
        x = _nchw_view(inputs)
        padding, ceil_mode = (0, 0), False
        if _is_same(layer.padding):
            sizes = x.shape[2:]
            pads = _same_pads(x, window, strides)
            padding = (pads[0][0], pads[1][0])
            if _symmetric(pads) is None:
                wanted = [-(-sizes[i] // strides[i]) for i in range(2)]  # Keras's sizes
                ceil_mode = all(
                    _ceil_mode_size(sizes[i], window[i], strides[i], padding[i]) == wanted[i]
                    for i in range(2)
                )
                if not ceil_mode:  # pad explicitly with a value no window's maximum is
                    x = _padded(x, pads, value=_lowest(x.dtype))
                    padding = (0, 0)
        y = F.max_pool2d(x, window, strides, padding=padding, ceil_mode=ceil_mode)
        return y.permute(0, 2, 3, 1)

    return call


def _average_pool_call(layer):
    """``layer.call`` (an AveragePooling2D) on channels-last memory: ``avg_pool2d``
    over the pixels of the input only (``count_include_pad=False``) with an even
    "same" padding as an argument; padding split unevenly replicates the edge pixels,
    as Keras's torch code does (the replicated pixels then count in the average)."""
    import torch.nn.functional as F

    window = tuple(layer.pool_size)
    strides = tuple(layer.strides)

    def call(inputs):
        x = _nchw_view(inputs)
        padding = (0, 0)
        if _is_same(layer.padding):
            pads = _same_pads(x, window, strides)
            even = _symmetric(pads)
            if even is None:
                x = _padded(x, pads, mode="replicate")
            else:
                padding = even
        y = F.avg_pool2d(x, window, strides, padding=padding, count_include_pad=False)
        return y.permute(0, 2, 3, 1)

    return call


#: the layers switched, each with its channels-last call
CALLS = {
    "Conv2D": _conv_call,
    "DepthwiseConv2D": functools.partial(_conv_call, depthwise=True),
    "SeparableConv2D": _separable_call,
    "MaxPooling2D": _max_pool_call,
    "AveragePooling2D": _average_pool_call,
}


def enabled() -> bool:
    """Whether to switch layers to channels-last memory: the torch backend, unless
    NINCOMPILE_CHANNELS_LAST=0."""
    return keras.backend.backend() == "torch" and env_on("NINCOMPILE_CHANNELS_LAST")


def eligible(layer) -> bool:
    """Whether ``layer`` is a channels-last layer of a class in :data:`CALLS` (exactly
    those classes, not subclasses)."""
    kind = type(layer)
    return (
        kind.__name__ in CALLS
        and kind is getattr(keras.layers, kind.__name__)
        and layer.data_format == "channels_last"
    )


def channels_last(model):
    """A block inside which ``model``'s eligible layers run on channels-last memory
    (see the module's text); it yields the layers switched (none where
    :func:`enabled` is false).  Leaving the block gives them back Keras's code."""
    on = enabled()
    return switched_calls(
        model, lambda layer: CALLS[type(layer).__name__](layer) if on and eligible(layer) else None
    )
