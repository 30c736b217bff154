"""The spec's ``train:`` section as Keras objects: optimiser, loss, metrics, precision
and compilation, chosen per backend and device."""

from __future__ import annotations

from ..keras_import import import_keras
from ..spec.schema import LOSSES, OPTIMIZERS

keras = import_keras()


def device() -> dict:
    """``{"kind": "gpu"|"cpu", "name": ..., "count": n}`` for the current backend."""
    backend = keras.backend.backend()
    try:
        if backend == "jax":
            import jax

            devs = jax.devices()
            kind = "cpu" if devs[0].platform == "cpu" else "gpu"
            return {"kind": kind, "name": devs[0].device_kind, "count": len(devs)}
        if backend == "torch":
            import torch

            if torch.cuda.is_available():
                n = torch.cuda.device_count()
                return {"kind": "gpu", "name": torch.cuda.get_device_name(0), "count": n}
            return {"kind": "cpu", "name": "cpu", "count": 1}
        import tensorflow as tf

        gpus = tf.config.list_physical_devices("GPU")
        if gpus:
            return {"kind": "gpu", "name": gpus[0].name, "count": len(gpus)}
    except Exception:  # a broken accelerator stack: report the CPU we certainly have
        pass
    return {"kind": "cpu", "name": "cpu", "count": 1}


def jit_compile(setting) -> bool:
    """``train.jit_compile`` resolved: ``auto`` is on for JAX (it always compiles) and
    for TensorFlow on a GPU; off for TensorFlow on CPU (XLA ran 3x slower there) and
    for PyTorch."""
    if setting != "auto":
        return bool(setting)
    backend = keras.backend.backend()
    if backend == "jax":
        return True
    if backend == "tensorflow":
        return device()["kind"] == "gpu"
    return False


def dtype_policy(setting) -> str:
    if setting is True or setting == "float16":
        return "mixed_float16"
    if setting == "bfloat16":
        return "mixed_bfloat16"
    return "float32"


def optimizer(train, schedule):
    kwargs = {"learning_rate": schedule}
    for key in ("momentum", "nesterov", "weight_decay"):
        value = getattr(train, key)
        if value is not None:
            kwargs[key] = value
    return getattr(keras.optimizers, OPTIMIZERS[train.optimizer])(**kwargs)


def loss(train, n_classes: int):
    """The loss; sparse cross-entropy with label smoothing is computed on one-hot
    labels (Keras's sparse loss has no smoothing)."""
    ls = float(train.label_smoothing or 0.0)
    if train.loss == "sparse_categorical_crossentropy" and ls > 0:
        from_logits = train.from_logits

        def sparse_smoothed_crossentropy(y_true, y_pred):
            ops = keras.ops
            y = ops.one_hot(ops.cast(ops.reshape(y_true, (-1,)), "int32"), n_classes)
            return keras.losses.categorical_crossentropy(
                y, y_pred, from_logits=from_logits, label_smoothing=ls
            )

        return sparse_smoothed_crossentropy
    cls = getattr(keras.losses, LOSSES[train.loss])
    if train.loss == "mean_squared_error":
        return cls()
    kwargs = {"from_logits": train.from_logits}
    if ls > 0 and train.loss != "sparse_categorical_crossentropy":
        kwargs["label_smoothing"] = ls
    return cls(**kwargs)


def metrics(train) -> list:
    sparse = train.loss == "sparse_categorical_crossentropy"
    out = []
    for m in train.metrics:
        if m == "accuracy":
            cls = keras.metrics.SparseCategoricalAccuracy if sparse else keras.metrics.Accuracy
            if not sparse and train.loss == "categorical_crossentropy":
                cls = keras.metrics.CategoricalAccuracy
            out.append(cls(name="accuracy"))
        elif m == "top_5_accuracy":
            cls = (
                keras.metrics.SparseTopKCategoricalAccuracy
                if sparse
                else keras.metrics.TopKCategoricalAccuracy
            )
            out.append(cls(k=5, name="top_5_accuracy"))
    return out
