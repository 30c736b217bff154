"""Data-parallel training on Keras's own distribution engines; no communication layer
of ours.

* JAX: ``keras.distribution.DataParallel`` over the local (or, after
  ``keras.distribution.initialize``, every process's) devices; the global batch is
  split across them.  Several processes or machines: the same ``nincompile train``
  started once per process, with ``--coordinator HOST:PORT --num-processes N
  --process-id I`` or Keras's variables ``KERAS_DISTRIBUTION_JOB_ADDRESSES``,
  ``KERAS_DISTRIBUTION_NUM_PROCESSES``, ``KERAS_DISTRIBUTION_PROCESS_ID``.
* TensorFlow: ``tf.distribute.MirroredStrategy`` over the local GPUs (or, asked for N
  devices on a CPU, N logical CPU devices, for testing).
* PyTorch: one device.

Each process feeds its own slice of every global batch; only process 0 writes the run
folder.  Every process reads the same checkpoint on ``--resume``.
"""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass, field

import numpy as np

from ..errors import TrainError, first_line
from ..keras_import import import_keras

keras = import_keras()
ENV_VARS = (
    "KERAS_DISTRIBUTION_JOB_ADDRESSES",
    "KERAS_DISTRIBUTION_NUM_PROCESSES",
    "KERAS_DISTRIBUTION_PROCESS_ID",
)


@dataclass
class Topology:
    devices: int = 1
    processes: int = 1
    process_id: int = 0
    engine: str = "none"  # none | keras.distribution.DataParallel | tf.distribute.MirroredStrategy
    device_names: list[str] = field(default_factory=list)
    strategy: object = None

    @property
    def chief(self) -> bool:
        return self.process_id == 0

    @property
    def distributed(self) -> bool:
        return self.devices > 1 or self.processes > 1

    def scope(self):
        return self.strategy.scope() if self.strategy is not None else contextlib.nullcontext()

    def describe(self) -> str:
        if not self.distributed:
            return "1 device"
        return (
            f"data-parallel over {self.devices} device(s) in {self.processes} process(es) "
            f"(this is process {self.process_id}) with {self.engine}"
        )

    def as_dict(self) -> dict:
        return {"devices": self.devices, "processes": self.processes,
                "process_id": self.process_id, "engine": self.engine,
                "device_names": self.device_names}  # fmt: skip


def _count(devices, available: int) -> int:
    if devices in (None, "all"):
        return available
    try:
        n = int(devices)
    except (TypeError, ValueError):
        raise TrainError(f"--devices expects a number or 'all'; received {devices!r}") from None
    if n < 1:
        raise TrainError(f"--devices must be at least 1; received {n}")
    if n > available:
        raise TrainError(f"--devices {n}: only {available} device(s) are available here")
    return n


def setup(devices=None, coordinator=None, num_processes=None, process_id=None) -> Topology:
    """Choose and install the distribution for this process (before any model is
    built).  ``devices``: a number, ``all`` or None (all of them when there are
    several accelerators; one on a CPU)."""
    backend = keras.backend.backend()
    multi = coordinator is not None or any(os.environ.get(v) for v in ENV_VARS)
    if backend == "jax":
        return _jax(devices, multi, coordinator, num_processes, process_id)
    if multi:
        raise TrainError(
            f"training in several processes needs KERAS_BACKEND=jax; received {backend}"
        )
    if backend == "tensorflow":
        return _tensorflow(devices)
    if devices not in (None, "all", 1, "1"):
        raise TrainError(f"--devices {devices}: data-parallel training needs the JAX or "
                         f"TensorFlow backend; received {backend}")  # fmt: skip
    return Topology()


def _jax(devices, multi, coordinator, num_processes, process_id) -> Topology:
    import jax

    if multi:
        if coordinator is not None and (num_processes is None or process_id is None):
            raise TrainError("--coordinator needs --num-processes and --process-id too")
        try:
            keras.distribution.initialize(
                job_addresses=coordinator, num_processes=num_processes, process_id=process_id
            )
        except Exception as err:
            raise TrainError(f"could not join the distributed job: {first_line(err)}") from None
    all_devices = keras.distribution.list_devices()
    accel = [d for d in all_devices if not d.startswith("cpu")]
    default = len(all_devices) if (accel or multi) else 1
    n = _count(devices, len(all_devices)) if devices is not None else default
    topo = Topology(devices=n, processes=jax.process_count(), process_id=jax.process_index())
    if topo.distributed:
        chosen = all_devices[:n]
        dist = keras.distribution.DataParallel(devices=chosen)
        dist.auto_shard_dataset = False  # each process feeds its own slice (local_rows)
        keras.distribution.set_distribution(dist)
        topo.engine = "keras.distribution.DataParallel"
        topo.device_names = list(chosen)
    return topo


def _tensorflow(devices) -> Topology:
    import tensorflow as tf

    gpus = tf.config.list_physical_devices("GPU")
    if gpus:
        n = _count(devices, len(gpus))
        names = [f"/gpu:{i}" for i in range(n)]
    else:
        n = 1 if devices in (None, "all") else _count(devices, max(int(devices), 1))
        if n > 1:  # split the CPU into n logical devices (possible only before TF starts)
            cpu = tf.config.list_physical_devices("CPU")[0]
            try:
                tf.config.set_logical_device_configuration(
                    cpu, [tf.config.LogicalDeviceConfiguration() for _ in range(n)]
                )
            except RuntimeError:
                pass  # already initialised: use what is there
            have = len(tf.config.list_logical_devices("CPU"))
            if have < n:
                raise TrainError(f"--devices {n}: TensorFlow already runs on {have} CPU device(s)")
        names = [f"/cpu:{i}" for i in range(n)]
    if n == 1:
        return Topology()
    strategy = tf.distribute.MirroredStrategy(names)
    return Topology(devices=n, engine="tf.distribute.MirroredStrategy", device_names=names,
                    strategy=strategy)  # fmt: skip


def local_rows(order: np.ndarray, batch: int, topo: Topology) -> np.ndarray:
    """The rows this process feeds, in order: whole global batches only (a partial
    last batch cannot be split evenly), each global batch cut into one slice per
    process, so every process's k-th local batch is its part of global batch k."""
    if not topo.distributed:
        return order
    steps = len(order) // batch
    if steps == 0:
        raise TrainError(f"{len(order)} images make no whole batch of {batch}")
    used = order[: steps * batch].reshape(steps, topo.processes, batch // topo.processes)
    return used[:, topo.process_id].reshape(-1)


def check_batch(batch: int, topo: Topology) -> None:
    if topo.distributed and batch % topo.devices:
        raise TrainError(
            f"batch size {batch} cannot be split evenly over {topo.devices} devices; use a "
            f"multiple of {topo.devices} (--batch-size)"
        )


def to_numpy(value) -> np.ndarray:
    """A variable's value on the host, also when it is a replicated array spanning
    several processes (each process holds a full copy)."""
    try:
        return np.asarray(keras.ops.convert_to_numpy(value))
    except Exception:
        if hasattr(value, "addressable_data"):
            return np.asarray(value.addressable_data(0))
        raise


def _batch_norms(model) -> list:
    return [
        layer
        for layer in model._flatten_layers(include_self=False, recursive=True)
        if isinstance(layer, keras.layers.BatchNormalization)
    ]


def prepare_model(model, topo: Topology) -> None:
    """Under MirroredStrategy, batch norm must use the statistics of the global batch
    (``synchronized``), as one device would; other engines compute them globally."""
    if topo.strategy is not None:
        for layer in _batch_norms(model):
            layer.synchronized = True


@contextlib.contextmanager
def portable(model):
    """Save with ``synchronized=False`` (a TensorFlow-only setting that the other
    backends refuse to load); training state is unchanged afterwards."""
    layers = [layer for layer in _batch_norms(model) if layer.synchronized]
    for layer in layers:
        layer.synchronized = False
    try:
        yield model
    finally:
        for layer in layers:
            layer.synchronized = True
