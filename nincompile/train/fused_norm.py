"""Batch normalisation in one kernel while training (TensorFlow and torch backends).

Keras 3's ``BatchNormalization`` computes a training batch's statistics with
``ops.moments`` and normalises with ``ops.batch_normalization``: about ten elementwise
passes over the activations forward and as many backward.  On a CPU those passes are
memory-bound; for NIN-BN (activations of 128 x 32 x 32 x 192 floats) they cost about a
sixth of each training step under TensorFlow (``bench/bench_peers.py``).
TensorFlow's ``FusedBatchNormV3`` and PyTorch's ``native_batch_norm`` do the same in
one pass each way.  (XLA fuses Keras's passes by itself, so JAX keeps Keras's code.)

:func:`fused_batch_norm` switches a model's eligible layers to that kernel for as long
as the block lasts (``nincompile train`` holds it over the epochs).  It changes no
layer's class, config or weights: a checkpoint saved inside is the same Keras model,
and inference (``training=False``, frozen layers) runs Keras's own code.  The function
computed is the same: the batch mean, the biased batch variance, ``epsilon`` and the
moving averages ``moving * momentum + batch * (1 - momentum)`` (TensorFlow's kernel
reports the unbiased variance, scaled back by ``(n - 1) / n``; PyTorch's reports
``1 / sqrt(variance + epsilon)``); only float rounding differs
(``tests/test_fused_norm.py`` trains both ways under each backend and compares).

A call keeps Keras's code where the kernel would not compute the same thing or cannot
run: an input that is not 4-D with the channels last, a mask, renormalisation,
synchronised statistics, or an ``epsilon`` below 1.001e-5 (the smallest
TensorFlow's kernel is guaranteed to accept on every device).  Set
``NINCOMPILE_FUSED_NORM=0`` to keep Keras's code everywhere.
"""

from __future__ import annotations

from ..keras_import import import_keras
from .layer_calls import env_on, switched_calls

keras = import_keras()

#: the smallest epsilon FusedBatchNormV3 takes on every device (cuDNN's bound)
MIN_EPSILON = 1.001e-5


def _tensorflow_kernel(layer, inputs):
    """A training call of ``layer`` on TensorFlow's FusedBatchNormV3."""
    import tensorflow as tf

    x = tf.cast(inputs, "float32")
    channels = x.shape[-1]
    gamma = tf.cast(layer.gamma, "float32") if layer.scale else tf.ones([channels])
    beta = tf.cast(layer.beta, "float32") if layer.center else tf.zeros([channels])
    y, mean, variance, *_ = tf.raw_ops.FusedBatchNormV3(
        x=x,
        scale=gamma,
        offset=beta,
        mean=tf.zeros([0]),
        variance=tf.zeros([0]),
        epsilon=layer.epsilon,
        data_format="NHWC",
        is_training=True,
    )
    n = tf.cast(tf.size(x) // channels, "float32")
    variance = variance * ((n - 1.0) / n)  # the kernel's is unbiased; Keras's is not
    _update_moving(layer, mean, variance)
    return y


def _torch_kernel(layer, inputs):
    """A training call of ``layer`` on PyTorch's native batch norm, on the
    channels-last tensor seen as NCHW (a view: nothing is copied)."""
    import torch

    x = inputs.float().permute(0, 3, 1, 2)
    gamma = layer.gamma.value.float() if layer.scale else None
    beta = layer.beta.value.float() if layer.center else None
    y, mean, invstd = torch.native_batch_norm(x, gamma, beta, None, None, True, 0.0, layer.epsilon)
    with torch.no_grad():  # the kernel keeps 1 / sqrt(variance + epsilon)
        _update_moving(layer, mean, invstd.pow(-2) - layer.epsilon)
    return y.permute(0, 2, 3, 1)


#: the fused training kernel of each backend that has one
KERNELS = {"tensorflow": _tensorflow_kernel, "torch": _torch_kernel}


def _fused_call(layer, kernel):
    """``layer.call`` with its training branch on ``kernel`` where the call trains on a
    4-D channels-last input, Keras's own code otherwise."""
    keras_call = layer.call

    def call(inputs, training=None, mask=None):
        rank = len(inputs.shape)
        if (
            not (training and layer.trainable)
            or mask is not None
            or rank != 4
            or (layer.axis not in (-1, rank - 1))
        ):
            return keras_call(inputs, training=training, mask=mask)
        return keras.ops.cast(kernel(layer, inputs), layer.compute_dtype)

    return call


def enabled() -> bool:
    """Whether training may switch batch normalisation to a fused kernel: a backend
    in :data:`KERNELS`, unless NINCOMPILE_FUSED_NORM=0."""
    return keras.backend.backend() in KERNELS and env_on("NINCOMPILE_FUSED_NORM")


def eligible(layer) -> bool:
    """Whether ``layer`` is a batch normalisation the fused kernel computes exactly
    (the input's rank and axis are checked as it is called)."""
    return (
        type(layer) is keras.layers.BatchNormalization
        and not layer.renorm
        and not layer.synchronized
        and layer.epsilon >= MIN_EPSILON
    )


def _update_moving(layer, mean, variance) -> None:
    """Keras's moving averages: ``moving * momentum + batch * (1 - momentum)``."""
    m = layer.momentum
    layer.moving_mean.assign(keras.ops.cast(layer.moving_mean, "float32") * m + mean * (1.0 - m))
    layer.moving_variance.assign(
        keras.ops.cast(layer.moving_variance, "float32") * m + variance * (1.0 - m)
    )


def fused_batch_norm(model):
    """A block inside which ``model``'s eligible batch normalisation layers train with
    the fused kernel (see the module's text); it yields the layers switched (none
    where :func:`enabled` is false).  Leaving the block gives them back Keras's code."""
    kernel = KERNELS[keras.backend.backend()] if enabled() else None
    return switched_calls(
        model, lambda layer: _fused_call(layer, kernel) if kernel and eligible(layer) else None
    )
