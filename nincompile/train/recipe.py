"""The spec's ``train:`` section as Keras objects: optimiser, learning-rate schedule,
loss, metrics, precision and compilation, chosen per backend and device.

The objects are made from :func:`.table.table`, the one translation of ``train:``
into Keras, which the code generator also writes into a generated module's
``compile_model``: :func:`compile_args` gives what a generated ``compile_model(model,
steps_per_epoch)`` passes to ``model.compile``.  Only the choices that depend on the
machine (:func:`jit_compile`, :func:`device`) are not in the table; a generated
module leaves them to Keras.
"""

from __future__ import annotations

from ..keras_import import import_keras
from . import schedule as own_classes
from .table import OWN_CLASSES, Obj, Recipe, Ref, arguments, dtype_policy, table

keras = import_keras()

__all__ = [
    "OWN_CLASSES",
    "Obj",
    "Recipe",
    "Ref",
    "arguments",
    "compile_args",
    "device",
    "dtype_policy",
    "jit_compile",
    "loss",
    "make",
    "metrics",
    "optimizer",
    "table",
]


def make(obj: Obj, steps_per_epoch: int | None = None, **made):
    """The Keras object ``obj`` describes."""
    if obj.cls in OWN_CLASSES:
        cls = getattr(own_classes, obj.cls)
    else:
        cls = keras
        for part in obj.cls.split(".")[1:]:
            cls = getattr(cls, part)
    args, kwargs = arguments(obj, steps_per_epoch, **made)
    return cls(*args, **kwargs)


def compile_args(train, steps_per_epoch: int) -> dict:
    """``model.compile`` arguments of ``train:``: ``optimizer`` (with its learning-rate
    schedule), ``loss`` and ``metrics``, made as a generated ``compile_model`` makes
    them.  Build the model under :func:`dtype_policy` for mixed precision."""
    recipe = table(train)
    learning_rate = make(recipe.learning_rate, steps_per_epoch)
    return {
        "optimizer": make(recipe.optimizer, learning_rate=learning_rate),
        "loss": make(recipe.loss),
        "metrics": [make(m) for m in recipe.metrics],
    }


def optimizer(train, schedule):
    """The optimiser of ``train:`` with the learning rate ``schedule``."""
    return make(table(train).optimizer, learning_rate=schedule)


def loss(train, n_classes: int | None = None):
    """The loss of ``train:`` (``n_classes`` is not needed: smoothed sparse labels are
    made as wide as the predictions)."""
    return make(table(train).loss)


def metrics(train) -> list:
    return [make(m) for m in table(train).metrics]


# ------------------------------------------------------------ machine-dependent


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
    """``train.jit_compile`` resolved: ``auto`` is on for JAX (its jit trains NIN-BN
    faster than its eager mode on CPU, and the GPU figures are with jit) and for
    TensorFlow on a GPU (every augmentation compiles under XLA); off for TensorFlow on
    CPU (slower with XLA there) and for PyTorch.  The measured figures are in
    :mod:`.advice`, which ``train`` uses to say when a chosen setting is slow."""
    if setting != "auto":
        return bool(setting)
    backend = keras.backend.backend()
    if backend == "jax":
        return True
    if backend == "tensorflow":
        return device()["kind"] == "gpu"
    return False
