"""Batch normalisation in one kernel while training under TensorFlow.

Keras 3's ``BatchNormalization`` computes a training batch's statistics with
``tf.nn.moments`` and normalises with ``tf.nn.batch_normalization``: about ten
elementwise passes over the activations forward and as many backward.  On a CPU those
passes are memory-bound; for NIN-BN (activations of 128 x 32 x 32 x 192 floats) they
cost about a sixth of each training step (``bench/bench_peers.py``).  TensorFlow's
``FusedBatchNormV3`` does the same in one pass each way, as PyTorch's
``batch_norm`` does.

:func:`fused_batch_norm` switches a model's eligible layers to that kernel for as long
as the block lasts (``nincompile train`` holds it over the epochs).  It changes no
layer's class, config or weights: a checkpoint saved inside is the same Keras model,
and inference (``training=False``, frozen layers) runs Keras's own code.  The function
computed is the same: the batch mean, the biased batch variance, ``epsilon`` and the
moving averages ``moving * momentum + batch * (1 - momentum)`` (the kernel reports the
unbiased variance; it is scaled back by ``(n - 1) / n``); only float rounding differs
(``tests/test_fused_norm.py`` trains both ways and compares).

A layer keeps Keras's code where the kernel would not compute the same thing or cannot
run: a backend other than TensorFlow, an input that is not 4-D with the channels last,
renormalisation, synchronised statistics, or an ``epsilon`` below 1.001e-5 (the
smallest the kernel is guaranteed to accept on every device).  Set
``NINCOMPILE_FUSED_NORM=0`` to keep Keras's code everywhere.
"""

from __future__ import annotations

import contextlib
import os

from ..keras_import import import_keras

keras = import_keras()

#: the smallest epsilon FusedBatchNormV3 takes on every device (cuDNN's bound)
MIN_EPSILON = 1.001e-5


def enabled() -> bool:
    """Whether training may switch batch normalisation to the fused kernel: the
    TensorFlow backend, unless NINCOMPILE_FUSED_NORM=0."""
    return keras.backend.backend() == "tensorflow" and os.environ.get(
        "NINCOMPILE_FUSED_NORM", "1"
    ) not in ("0", "false", "no", "off")


def eligible(layer) -> bool:
    """Whether ``layer`` is a batch normalisation the fused kernel computes exactly
    (the input's rank and axis are checked as it is called)."""
    return (
        type(layer) is keras.layers.BatchNormalization
        and not layer.renorm
        and not layer.synchronized
        and layer.epsilon >= MIN_EPSILON
    )


def _fused_call(layer):
    """``layer.call`` with its training branch on FusedBatchNormV3."""
    import tensorflow as tf

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
        momentum = layer.momentum
        layer.moving_mean.assign(
            tf.cast(layer.moving_mean, "float32") * momentum + mean * (1.0 - momentum)
        )
        layer.moving_variance.assign(
            tf.cast(layer.moving_variance, "float32") * momentum + variance * (1.0 - momentum)
        )
        return tf.cast(y, layer.compute_dtype)

    return call


@contextlib.contextmanager
def fused_batch_norm(model):
    """Inside, ``model``'s eligible batch normalisation layers train with the fused
    kernel (see the module's text); yields the layers switched (none where
    :func:`enabled` is false).  Leaving the block gives them back Keras's code."""
    switched = []
    if enabled():
        for layer in model._flatten_layers(include_self=False, recursive=True):
            if eligible(layer) and "call" not in vars(layer):
                object.__setattr__(layer, "call", _fused_call(layer))
                switched.append(layer)
    try:
        yield switched
    finally:
        for layer in switched:
            object.__delattr__(layer, "call")
