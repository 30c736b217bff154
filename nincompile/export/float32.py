"""Float32 models for export: a model with any non-float32 dtype policy (mixed
precision) is rebuilt in float32 with its weights copied, since the ONNX graph and
its parity checks are float32."""

from __future__ import annotations

from ..errors import ConversionError


def all_layers(model):
    """Every layer of ``model``, nested models' layers included (depth first)."""
    for layer in model.layers:
        yield layer
        if hasattr(layer, "layers"):  # a nested model
            yield from all_layers(layer)


def dtype_policies(model) -> set[str]:
    names = set()
    for layer in all_layers(model):
        policy = getattr(layer, "dtype_policy", None)
        if policy is not None:
            names.add(policy.name)
    return names


def is_float32(model) -> bool:
    """True when every layer computes and stores in float32."""
    policies = dtype_policies(model) - {"float32"}
    weights = {str(w.dtype) for w in model.weights if "float" in str(w.dtype)} - {"float32"}
    return not policies and not weights


def rebuild_float32(model):
    """A float32 clone of ``model`` (mixed precision removed), weights copied."""
    import numpy as np

    from ..keras_import import import_keras

    keras = import_keras()

    def clone(layer):
        config = layer.get_config()
        config["dtype"] = "float32"
        return layer.__class__.from_config(config)

    try:
        new = keras.models.clone_model(model, clone_function=clone, recursive=True)
        weights = [
            w.astype(np.float32) if np.issubdtype(w.dtype, np.floating) else w
            for w in model.get_weights()
        ]
        new.set_weights(weights)
    except Exception as err:
        raise ConversionError(
            f"cannot rebuild mixed-precision model '{model.name}' in float32: {err}"
        ) from None
    return new
