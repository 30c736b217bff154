"""Learning-rate schedules of the spec's ``train:`` section, per optimiser step.

The schedule is a function of ``optimizer.iterations`` only, so restoring the
optimiser's variables restores the schedule exactly.  ``epoch = step /
steps_per_epoch`` (fractional); every schedule may start with a linear warm-up from
``learning_rate / 25`` over ``warmup_epochs``.

* step (``lr_schedule: {0: 0.05, 61: 0.01}``): the rate of the last boundary reached,
  boundaries in whole (0-based) epochs, as the NIN seed's ``LearningRateScheduler``;
* ``constant``;
* ``cosine``: half a cosine from ``learning_rate`` to ``min_learning_rate``;
* ``onecycle``: warm-up (default 30 % of the epochs), then linear decay to
  ``min_learning_rate`` (airbench's triangular schedule).
"""

from __future__ import annotations

import math

from ..keras_import import import_keras

keras = import_keras()
ops = keras.ops

WARMUP_START = 1 / 25


def describe(train) -> str:
    s = train.lr_schedule
    if isinstance(s, dict):
        return "step " + ", ".join(f"epoch {e}: {lr:g}" for e, lr in sorted(s.items()))
    return s or "constant"


class EpochSchedule(keras.optimizers.schedules.LearningRateSchedule):
    def __init__(self, train, steps_per_epoch: int):
        self.base = float(train.learning_rate)
        self.kind = train.lr_schedule if isinstance(train.lr_schedule, str) else "constant"
        self.steps = (
            sorted((int(e), float(lr)) for e, lr in train.lr_schedule.items())
            if isinstance(train.lr_schedule, dict)
            else []
        )
        self.epochs = float(train.epochs)
        self.min_lr = float(train.min_learning_rate)
        warmup = train.warmup_epochs
        if warmup is None:
            warmup = 0.3 * self.epochs if self.kind == "onecycle" else 0.0
        self.warmup = min(float(warmup), self.epochs)
        self.steps_per_epoch = max(1, int(steps_per_epoch))

    def __call__(self, step):
        e = ops.cast(step, "float32") / float(self.steps_per_epoch)
        lr = ops.convert_to_tensor(self.base, dtype="float32")
        for first, value in self.steps:
            lr = ops.where(e >= float(first), value, lr)
        rest = max(self.epochs - self.warmup, 1e-9)
        t = ops.clip((e - self.warmup) / rest, 0.0, 1.0)
        if self.kind == "cosine":
            lr = self.min_lr + (self.base - self.min_lr) * 0.5 * (1.0 + ops.cos(math.pi * t))
        elif self.kind == "onecycle":
            lr = self.base + (self.min_lr - self.base) * t
        if self.warmup > 0:
            ramp = ops.clip(e / self.warmup, 0.0, 1.0)
            lr = lr * (WARMUP_START + (1.0 - WARMUP_START) * ramp)
        return lr

    def get_config(self):
        return {"base": self.base, "kind": self.kind, "steps": self.steps}
