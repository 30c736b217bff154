"""The Keras classes of the ``train:`` recipe that Keras lacks: the learning rate per
optimiser step (:class:`EpochLearningRate`) and sparse cross-entropy with label
smoothing (:class:`SmoothedSparseCategoricalCrossentropy`).

Both are written standalone (they use ``keras`` and ``math`` only, within 88
columns): the code generator copies their source into every generated module whose
``train:`` uses them, so ``nincompile train`` and a generated ``compile_model`` run
the same code.  :mod:`.table` says which of them a spec uses, with which arguments.

The schedule is a function of ``optimizer.iterations`` only, so restoring the
optimiser's variables restores the schedule exactly.  ``epoch = step /
steps_per_epoch`` (fractional); every schedule may start with a linear warm-up from
``learning_rate / 25`` over ``warmup_epochs``.  The spec's ``lr_schedule``:

* step (``{0: 0.05, 61: 0.01}``): the rate of the last boundary reached, boundaries in
  whole (0-based) epochs, as the NIN seed's ``LearningRateScheduler``;
* ``constant``;
* ``cosine``: half a cosine from ``learning_rate`` to ``min_learning_rate``;
* ``onecycle``: warm-up (default 30 % of the epochs), then linear decay to
  ``min_learning_rate`` (airbench's triangular schedule).
"""

from __future__ import annotations

import math

from ..keras_import import import_keras
from . import table

keras = import_keras()


def describe(train) -> str:
    s = train.lr_schedule
    if isinstance(s, dict):
        return "step " + ", ".join(f"epoch {e}: {lr:g}" for e, lr in sorted(s.items()))
    return s or "constant"


class EpochLearningRate(keras.optimizers.schedules.LearningRateSchedule):
    """The learning rate of each optimizer step, from its epoch
    ``step / steps_per_epoch`` (fractional):

    * ``boundaries`` (``{first_epoch: rate}`` or its pairs, 0-based epochs): the rate
      of the last boundary reached, ``learning_rate`` before the first;
    * ``decay="cosine"``: half a cosine from ``learning_rate`` down to
      ``min_learning_rate`` over the epochs after the warm-up; ``decay="linear"``: a
      straight line between them (with a warm-up: a one-cycle schedule);
    * ``warmup_epochs``: the rate is scaled by a ramp from 1/25 up to 1 over them.

    It depends on the step only, so restoring the optimizer restores the schedule.
    """

    WARMUP_START = 1 / 25

    def __init__(
        self,
        steps_per_epoch,
        learning_rate,
        epochs,
        boundaries=None,
        decay=None,
        min_learning_rate=0.0,
        warmup_epochs=0.0,
    ):
        self.steps_per_epoch = max(1, int(steps_per_epoch))
        self.learning_rate = float(learning_rate)
        self.epochs = float(epochs)
        pairs = sorted(dict(boundaries or {}).items(), key=lambda pair: int(pair[0]))
        self.boundaries = {int(epoch): float(rate) for epoch, rate in pairs}
        self.decay = decay
        self.min_learning_rate = float(min_learning_rate)
        self.warmup_epochs = min(float(warmup_epochs), self.epochs)

    def __call__(self, step):
        ops = keras.ops
        epoch = ops.cast(step, "float32") / float(self.steps_per_epoch)
        lr = ops.convert_to_tensor(self.learning_rate, dtype="float32")
        for first, rate in self.boundaries.items():
            lr = ops.where(epoch >= float(first), rate, lr)
        top, low = self.learning_rate, self.min_learning_rate
        warmup = self.warmup_epochs
        t = ops.clip((epoch - warmup) / max(self.epochs - warmup, 1e-9), 0.0, 1.0)
        if self.decay == "cosine":
            lr = low + (top - low) * 0.5 * (1.0 + ops.cos(math.pi * t))
        elif self.decay == "linear":
            lr = top + (low - top) * t
        if warmup > 0:
            ramp = ops.clip(epoch / warmup, 0.0, 1.0)
            lr = lr * (self.WARMUP_START + (1.0 - self.WARMUP_START) * ramp)
        return lr

    def get_config(self):
        return {
            "steps_per_epoch": self.steps_per_epoch,
            "learning_rate": self.learning_rate,
            "epochs": self.epochs,
            "boundaries": self.boundaries,
            "decay": self.decay,
            "min_learning_rate": self.min_learning_rate,
            "warmup_epochs": self.warmup_epochs,
        }


class SmoothedSparseCategoricalCrossentropy(keras.losses.Loss):
    """Sparse categorical cross-entropy with label smoothing, which Keras's
    ``SparseCategoricalCrossentropy`` lacks: the integer labels become one-hot rows
    as wide as the predictions, smoothed by categorical cross-entropy."""

    def __init__(
        self,
        label_smoothing=0.0,
        from_logits=False,
        name="sparse_categorical_crossentropy",
        reduction="sum_over_batch_size",
        dtype=None,
    ):
        super().__init__(name=name, reduction=reduction, dtype=dtype)
        self.label_smoothing = float(label_smoothing)
        self.from_logits = bool(from_logits)

    def call(self, y_true, y_pred):
        ops = keras.ops
        labels = ops.cast(ops.reshape(y_true, (-1,)), "int32")
        y_true = ops.one_hot(labels, ops.shape(y_pred)[-1])
        return keras.losses.categorical_crossentropy(
            y_true,
            y_pred,
            from_logits=self.from_logits,
            label_smoothing=self.label_smoothing,
        )

    def get_config(self):
        config = super().get_config()
        config["label_smoothing"] = self.label_smoothing
        config["from_logits"] = self.from_logits
        return config


class EpochSchedule(EpochLearningRate):
    """The :class:`EpochLearningRate` of a spec's ``train:`` section (``nincompile
    train``'s; what a generated ``compile_model`` makes from the same table)."""

    def __init__(self, train, steps_per_epoch: int):
        args, kwargs = table.arguments(table.table(train).learning_rate, steps_per_epoch)
        super().__init__(*args, **kwargs)

    @classmethod
    def from_config(cls, config):
        return EpochLearningRate(**config)
