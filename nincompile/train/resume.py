"""What a resumed run may change in its spec: ``train.epochs`` and the learning-rate
schedule beyond the epochs already trained (with ``train.phases``: each phase's epochs
and schedule, and anything of a phase not yet begun), nothing that changes the model,
the data or the recipe of what was trained.

``--resume --epochs 60`` (or ``--set train.lr_schedule=...``) gives a spec whose
sha256 differs from the run's; the two specs are compared field by field (validated,
so a default written out is no change), and the run is refused, naming each field that
differs and its two values, unless every change is in :data:`SCHEDULE_FIELDS`.  Once
the run's data are read (so the steps per epoch are known), :func:`check_schedule`
refuses a schedule that would have given another learning rate to any step already
trained (a cosine schedule depends on ``train.epochs``: extending it changes them).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

import numpy as np

from ..errors import TrainError
from ..spec.load import parse_spec

#: The fields a resume may change (and what lies below them).
SCHEDULE_FIELDS = (
    "train.epochs",
    "train.learning_rate",
    "train.lr_schedule",
    "train.warmup_epochs",
    "train.min_learning_rate",
)
_SHOWN = 6
_PHASE_FIELD = re.compile(r"train\.phases\[(\d+)\]\.(\w+)")


@dataclass
class Changes:
    """How the spec of a resumed run differs from the run's: ``fields`` as
    ``(field, run's value, new value)``, and the run's own spec."""

    old: object  # SpecSource
    fields: list[tuple[str, object, object]] = field(default_factory=list)

    def describe(self) -> str:
        return ", ".join(f"{n} {_short(a)} -> {_short(b)}" for n, a, b in self.fields)

    def as_dict(self) -> dict:
        return {name: {"run": _plain(a), "now": _plain(b)} for name, a, b in self.fields}


def _plain(value):
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if value is None or isinstance(value, bool | int | float | str):
        return value
    return str(value)


def _flat(value, prefix: str, out: dict) -> dict:
    if isinstance(value, dict) and value:
        for key, item in value.items():
            _flat(item, f"{prefix}.{key}" if prefix else str(key), out)
    elif isinstance(value, list | tuple) and value and prefix.split(".")[-1] != "lr_schedule":
        for i, item in enumerate(value):
            _flat(item, f"{prefix}[{i}]", out)
    else:
        out[prefix] = value
    return out


def _fields(source) -> dict:
    return _flat(source.spec.model_dump(by_alias=True), "", {})


def _allowed(name: str, old, new, trained: int) -> bool:
    """``name`` may change on resuming after ``trained`` epochs from the spec ``old`` to
    ``new``: a field of :data:`SCHEDULE_FIELDS` (of ``train:`` or of a phase), or any
    field of a phase that begins after the epochs trained in both specs."""
    m = _PHASE_FIELD.match(name)
    if m is not None:
        k = int(m.group(1))
        if f"train.{m.group(2)}" in SCHEDULE_FIELDS:
            return True
        return all(
            s.spec.train is not None
            and k < len(s.spec.train.phases or ())
            and s.spec.train.phase_start(k) >= trained
            for s in (old, new)
        )
    return any(name == f or name.startswith((f + ".", f + "[")) for f in SCHEDULE_FIELDS)


def _short(value) -> str:
    text = repr(_plain(value))
    return text if len(text) <= 40 else text[:37] + "..."


def compare(path, run_spec_text: str, source, trained: int = 0) -> Changes:
    """The changes from the run's spec (``run_spec_text``) to ``source``, resuming
    after ``trained`` epochs; a :class:`TrainError` naming every field that may not
    change."""
    old = parse_spec(run_spec_text, str(path / "spec.yaml"))
    a, b = _fields(old), _fields(source)
    names = [*a, *(n for n in b if n not in a)]
    changed = [(n, a.get(n), b.get(n)) for n in names if n not in a or n not in b or a[n] != b[n]]
    refused = [c for c in changed if not _allowed(c[0], old, source, trained)]
    if refused:
        shown = "; ".join(f"{n}: run {_short(x)}, now {_short(y)}" for n, x, y in refused[:_SHOWN])
        more = f"; and {len(refused) - _SHOWN} more" if len(refused) > _SHOWN else ""
        raise TrainError(
            f"cannot resume '{path}': it was trained from a different spec ({_hashes(old, source)})"
            f", which differs in what was trained: {shown}{more}; a resume may change only "
            "train.epochs and the learning-rate schedule beyond the epochs already trained "
            "(with train.phases: each phase's epochs and schedule, and phases not yet begun); "
            f"resume with the run's own spec ({path / 'spec.yaml'}) or start a new run"
        )
    return Changes(old, changed)


def _hashes(old, new) -> str:
    return f"run spec sha256 {old.sha256}, this spec {new.sha256}"


def _numpy(tensor) -> np.ndarray:
    from ..keras_import import import_keras

    return np.asarray(import_keras().ops.convert_to_numpy(tensor), dtype=np.float32)


def check_schedule(path, changes: Changes, new_source, trained: int, steps: int) -> None:
    """Refuse a schedule that gives a step of the ``trained`` epochs another learning
    rate than the run's did (or another phase), or fewer epochs than were trained."""
    new_train = new_source.spec.train
    if new_train.epochs < trained:
        raise TrainError(
            f"cannot resume '{path}' with train.epochs {new_train.epochs}: it has trained "
            f"{trained} epochs already"
        )
    old_train = changes.old.spec.train
    if old_train is None or new_train is None or trained == 0:
        return
    for epoch in range(trained):
        was, now = old_train.phase_of(epoch), new_train.phase_of(epoch)
        if was != now:
            raise TrainError(
                f"cannot resume '{path}': it was trained from a different spec "
                f"({_hashes(changes.old, new_source)}), whose phases move epochs already "
                f"trained (epoch {epoch + 1}: phase {was + 1} in the run, {now + 1} now); "
                f"change the phases' epochs only beyond epoch {trained}"
            )
    before, after = _rates(old_train, steps, trained), _rates(new_train, steps, trained)
    differs = np.flatnonzero(before != after)
    if differs.size:
        step = int(differs[0])
        kinds = (old_train.lr_schedule, new_train.lr_schedule)
        raise TrainError(
            f"cannot resume '{path}': it was trained from a different spec "
            f"({_hashes(changes.old, new_source)}), whose learning-rate schedule changes epochs "
            f"already trained (epoch {step // steps + 1}: {float(before[step]):.6g} in the run, "
            f"{float(after[step]):.6g} now); change the schedule only beyond epoch {trained}"
            + (
                " (a cosine or onecycle schedule depends on train.epochs)"
                if "cosine" in kinds or "onecycle" in kinds
                else ""
            )  # fmt: skip
        )


def _rates(train, steps: int, epochs: int) -> np.ndarray:
    """The learning rate of every step of the first ``epochs`` epochs of ``train``:
    each phase's schedule counted from the phase's first step."""
    from .schedule import EpochSchedule

    out = []
    for k, phase in enumerate(train.plan()):
        first = train.phase_start(k)
        last = min(first + phase.epochs, epochs)
        if last <= first:
            break
        local = np.arange((last - first) * steps)
        out.append(np.broadcast_to(_numpy(EpochSchedule(phase, steps)(local)), local.shape))
    return np.concatenate(out)
