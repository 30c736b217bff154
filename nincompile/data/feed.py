"""How training batches reach the compiled step: from host memory, or from arrays
kept on the device for the whole run.

``data.on_device`` chooses:

* ``false`` (host): each epoch the images are gathered in the epoch's order on the
  host and handed to ``model.fit``, which copies one batch at a time to the device
  (on a GPU, Keras starts each copy one batch ahead).
* ``true`` (device): the raw ``uint8`` images and labels are copied to the device
  once; each epoch only the order (4 bytes an image) travels, and each batch is
  gathered on the device from its slice of the order.  Nothing goes back to the host per
  batch.  JAX and PyTorch only (Keras's TensorFlow trainer feeds through
  ``tf.data`` from the host), and not with ``--devices`` (the data-parallel
  trainer shards host batches itself).
* ``auto`` (the default): the device path on a GPU under JAX or PyTorch, when the
  images take at most :data:`DEVICE_SHARE` of the device's free memory; the host
  path otherwise.

Both paths visit the same images in the same order and batches, so a run trains to
the same weights either way (``tests/test_backends.py`` checks it on JAX and
PyTorch).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from ..errors import TrainError
from ..keras_import import import_keras

keras = import_keras()
ops = keras.ops

#: ``auto`` keeps the data on the device when it needs at most this share of the
#: device's free memory (the model, its activations and the optimiser need the rest).
DEVICE_SHARE = 0.5
DEVICE_BACKENDS = ("jax", "torch")


@dataclass(frozen=True)
class Placement:
    """Where the training data lives, and why (for the run's notes and metrics)."""

    on_device: bool
    reason: str


def _free_device_memory() -> int | None:
    """Free bytes of the first accelerator, or None when unknown (or on a CPU)."""
    backend = keras.backend.backend()
    try:
        if backend == "jax":
            import jax

            dev = jax.devices()[0]
            if dev.platform == "cpu":
                return None
            stats = dev.memory_stats() or {}
            if "bytes_limit" in stats:
                return int(stats["bytes_limit"]) - int(stats.get("bytes_in_use", 0))
            return None
        if backend == "torch":
            import torch

            if torch.cuda.is_available():
                return int(torch.cuda.mem_get_info()[0])
    except Exception:  # an accelerator stack that cannot say: decide as if unknown
        return None
    return None


def _mb(n: int) -> str:
    return f"{n / 1e6:,.1f} MB"


def on_device_setting(data) -> bool | str:
    """``data.on_device`` of a spec's ``data:`` section (None: the default, auto)."""
    return data.on_device if data is not None else "auto"


def check_setting(setting, *, distributed: bool) -> None:
    """Refuse ``data.on_device: true`` where it cannot be honoured (call it before
    anything is written)."""
    if setting is not True:
        return
    backend = keras.backend.backend()
    if backend not in DEVICE_BACKENDS:
        raise TrainError(
            f"data.on_device: true needs the JAX or PyTorch backend; received "
            f"KERAS_BACKEND={backend} (its trainer feeds from the host through tf.data). "
            "Use data.on_device: auto or false, or another backend"
        )
    if distributed:
        raise TrainError(
            "data.on_device: true does not combine with --devices: the data-parallel "
            "trainer shards host batches over the devices itself; use auto or false"
        )


def placement(setting, arrays, *, distributed: bool, device_kind: str) -> Placement:
    """Resolve ``data.on_device`` (``"auto"``, True or False) for ``arrays`` (the
    training and validation images and labels that would be copied)."""
    check_setting(setting, distributed=distributed)
    backend = keras.backend.backend()
    need = int(sum(a.nbytes for a in arrays if a is not None))
    if setting is False:
        return Placement(False, "data.on_device is false")
    if setting is True:
        return Placement(True, f"data.on_device is true ({_mb(need)})")
    if backend not in DEVICE_BACKENDS:
        return Placement(False, f"the {backend} backend feeds from the host")
    if distributed:
        return Placement(False, "data-parallel training shards host batches")
    if device_kind != "gpu":
        return Placement(False, "no accelerator")
    free = _free_device_memory()
    if free is None:
        return Placement(False, "the device's free memory is unknown")
    if need > DEVICE_SHARE * free:
        return Placement(
            False,
            f"{_mb(need)} exceeds {DEVICE_SHARE:.0%} of the device's {_mb(free)} free",
        )
    return Placement(True, f"{_mb(need)} of the device's {_mb(free)} free")


def to_device(array: np.ndarray):
    """``array`` as a tensor of the backend's default device, dtype kept."""
    return ops.convert_to_tensor(array, dtype=str(array.dtype))


class DeviceBatches(keras.utils.PyDataset):
    """Batches gathered from device-resident ``x``/``y`` in an order set per epoch.

    ``x``/``y`` are device tensors (:func:`to_device`).  ``set_order(order)`` puts
    the epoch's order (a host array of row numbers) on the device; each batch is then
    gathered there from its slice of the order, so the device holds the data once
    plus one batch.  Without an order the rows are visited as stored.  A last batch
    smaller than ``batch_size`` is kept, as ``model.fit`` does with arrays."""

    def __init__(self, x, y, batch_size: int):
        super().__init__(workers=1, use_multiprocessing=False)
        self.x, self.y = x, y
        self.batch_size = int(batch_size)
        self.set_order(None)

    def set_order(self, order: np.ndarray | None) -> None:
        if order is None:
            self.order, self.rows = None, int(self.x.shape[0])
            return
        self.order = ops.convert_to_tensor(np.asarray(order, dtype="int32"))
        self.rows = len(order)

    def gather(self, array, index):
        """The rows ``index`` (a slice of the order) of ``array``."""
        return ops.take(array, index, axis=0)

    def __len__(self) -> int:
        return math.ceil(self.rows / self.batch_size)

    def __getitem__(self, i: int):
        start = i * self.batch_size
        stop = min(start + self.batch_size, self.rows)
        if self.order is None:
            return self.x[start:stop], self.y[start:stop]
        index = self.order[start:stop]
        return self.gather(self.x, index), self.gather(self.y, index)


class HostBatches(DeviceBatches):
    """Batches gathered on the host from ``x``/``y`` (NumPy arrays) in ``order``.

    Each batch is ``x[order[i * batch_size:(i + 1) * batch_size]]`` (the same rows as
    consecutive slices of ``x[order]``, the last one partial), gathered when it is
    asked for: the arrays are never copied whole, so the host holds the training set
    once plus a batch.  ``order=None`` visits the rows as stored."""

    def __init__(self, x, y, batch_size: int, order: np.ndarray | None = None):
        super().__init__(x, y, batch_size)
        self.set_order(order)

    def set_order(self, order: np.ndarray | None) -> None:
        self.order = None if order is None else np.asarray(order)
        self.rows = int(self.x.shape[0]) if order is None else len(self.order)

    def gather(self, array, index):
        return array[index]
