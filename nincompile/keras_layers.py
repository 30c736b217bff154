"""Keras layers that Keras itself does not export, written with ``keras.*`` APIs only
(so they run under every backend) and registered for ``.keras`` files.

``LayerScale`` is ConvNeXt's learned per-channel scale, the same computation and the
same weight (``gamma``, shape ``(channels,)``) as ``keras.applications.convnext``'s, so
its published weights load one to one.  The code generator copies this class into a
generated module that uses it, which then needs nothing from nincompile.
"""

from __future__ import annotations

import keras


@keras.saving.register_keras_serializable(package="nincompile")
class LayerScale(keras.layers.Layer):
    """``x * gamma`` with a learned ``gamma`` per channel, initialised to ``init``."""

    def __init__(self, init, **kwargs):
        super().__init__(**kwargs)
        self.init = float(init)

    def build(self, input_shape):
        self.gamma = self.add_weight(
            shape=(input_shape[-1],),
            initializer=keras.initializers.Constant(self.init),
            trainable=True,
            name="gamma",
        )

    def call(self, x):
        return x * keras.ops.cast(self.gamma, x.dtype)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {**super().get_config(), "init": self.init}
