"""The model tf2onnx traces: the model itself, or, when it holds layers whose
TensorFlow ops tf2onnx cannot convert, a twin with those layers swapped for layers
that compute the same function with ops it can.

The twin shares every other layer (and its weights) with the model; a swapped layer
is a new layer of the same configuration with the old one's weights copied.  The
model itself is never changed (training and the parity check use it as it is): the
ONNX graph of the twin is verified against the model.

The swaps (:func:`graph_model`):

* **exact GELU** (``activation: gelu``): Keras's TensorFlow backend computes
  ``0.5 x erfc(-x / sqrt 2)`` and tf2onnx has no ``Erfc``; the twin computes
  ``0.5 x (1 + erf(x / sqrt 2))`` (ONNX ``Erf``), the same function.
* **CELU** (``activation: celu``): ``expm1`` (no ONNX op) becomes ``exp(.) - 1``.
* **grouped Conv2D** (``groups`` > 1): Keras's TensorFlow backend runs it in an
  XLA-compiled ``tf.function`` (``keras/src/backend/tensorflow/nn.py``, ``conv``), which
  reaches tf2onnx as a ``StatefulPartitionedCall`` it cannot convert; the twin's
  Conv2D calls ``tf.nn.convolution`` directly, a grouped ``Conv2D`` op that tf2onnx
  turns into one ONNX ``Conv`` with its ``group`` attribute.  (The twin is only
  traced, never run: TensorFlow has no CPU kernel for a grouped convolution.)

Importing this module does not import TensorFlow or Keras.
"""

from __future__ import annotations

import functools
import math

_SQRT_HALF = 1.0 / math.sqrt(2.0)


def gelu_erf(x):
    """Exact GELU, ``0.5 x (1 + erf(x / sqrt 2))``, with ops ONNX has."""
    import tensorflow as tf

    return 0.5 * x * (1.0 + tf.math.erf(x * _SQRT_HALF))


def celu_exp(x, alpha: float = 1.0):
    """CELU as Keras computes it, with ``exp(.) - 1`` for ``expm1``."""
    import tensorflow as tf

    return tf.maximum(x, 0.0) + alpha * (tf.exp(tf.minimum(x, 0.0) / alpha) - 1.0)


#: activation name (a layer config's ``activation``) -> the function the twin uses
ACTIVATIONS = {"gelu": gelu_erf, "celu": celu_exp}


@functools.cache
def _grouped_conv2d():
    """The twin's Conv2D class for ``groups`` > 1 (made on first use: it needs Keras)."""
    import tensorflow as tf

    from ..keras_import import import_keras

    keras = import_keras()

    class GroupedConv2D(keras.layers.Conv2D):
        """Conv2D whose grouped convolution is one ``tf.nn.convolution`` (no XLA)."""

        def convolution_op(self, inputs, kernel):
            return tf.nn.convolution(
                inputs,
                kernel,
                strides=list(self.strides),
                padding=self.padding.upper(),
                data_format="NHWC" if self.data_format == "channels_last" else "NCHW",
                dilations=list(self.dilation_rate),
            )

    return GroupedConv2D


def _swap(layer):
    """``(class, config)`` of the layer replacing ``layer``, or None to keep it, and
    what was swapped (for the report)."""
    from ..keras_import import import_keras

    keras = import_keras()
    what = []
    cls = None
    config = None
    act = getattr(layer, "activation", None)
    name = getattr(act, "__name__", None)
    if callable(act) and name in ACTIVATIONS:
        config = layer.get_config()
        if config.get("activation") == name:
            config["activation"] = ACTIVATIONS[name]
            what.append(name)
    if type(layer) is keras.layers.Conv2D and layer.groups > 1:
        config = config or layer.get_config()
        cls = _grouped_conv2d()
        what.append("grouped conv")
    if not what:
        return None
    return (cls or type(layer)), config, what


def graph_model(model, notes: list[str] | None = None):
    """``model``, or its twin when a layer must be swapped (module docstring); a note
    on what was swapped is appended to ``notes``."""
    from ..keras_import import import_keras
    from .float32 import all_layers

    swaps = {id(layer): s for layer in all_layers(model) if (s := _swap(layer)) is not None}
    if not swaps:
        return model
    keras = import_keras()
    made = []

    def clone(layer):
        swap = swaps.get(id(layer))
        if swap is None:
            return layer  # shared, weights and all
        cls, config, _ = swap
        new = cls.from_config(config)
        made.append((layer, new))
        return new

    twin = keras.models.clone_model(model, clone_function=clone, recursive=True)
    for old, new in made:
        new.set_weights(old.get_weights())
    if notes is not None:
        counts: dict[str, int] = {}
        for _, _, what in swaps.values():
            for w in what:
                counts[w] = counts.get(w, 0) + 1
        text = {
            "gelu": "exact GELU as Erf",
            "celu": "CELU's expm1 as exp - 1",
            "grouped conv": "grouped Conv2D as one grouped Conv, without XLA",
        }
        done = ", ".join(f"{text[w]} ({n} layer{'s' if n > 1 else ''})" for w, n in counts.items())
        notes.append(f"traced for ONNX with {done}; verified against the unchanged model")
    return twin
