"""The run folder: what a training run leaves, how it is found, resumed and loaded.

::

    runs/<name>[-N]/
      spec.yaml          the resolved spec (overrides applied); its sha256 names the run
      history.csv        one row per completed epoch (HISTORY_COLUMNS)
      metrics.json       final and best figures, timing, backend, device, versions
      curves.png         training and validation accuracy and loss
      model.keras        the model after the last completed epoch (input: normalised image)
      best.keras         the model of the epoch with the best validation accuracy
      checkpoint/        state.json + ckpt-NNNN.npz: what --resume needs (model, optimiser
                         and random-seed state after the last completed epoch)
      tensorboard/       TensorBoard scalars (when TensorFlow is installed)
      .lock              held (flock) by the live run; a second one is refused

Every file except TensorBoard's append-only event log is written to a temporary file
and renamed into place.  ``checkpoint/state.json`` is written last in each epoch: it
is the commit point, so a run killed at any moment resumes from the last epoch whose
state.json was written, and rows of ``history.csv`` beyond it are dropped.  The
checkpoint before it is kept too: when the latest cannot be read (a damaged disk, a
truncated copy), resuming falls back to it with a warning.
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
import os
import re
from pathlib import Path

import numpy as np

from ..errors import TrainError
from ..files import atomic_write, safe_child, write_text

SPEC = "spec.yaml"
HISTORY = "history.csv"
METRICS = "metrics.json"
CURVES = "curves.png"
MODEL = "model.keras"
BEST = "best.keras"
CHECKPOINT = "checkpoint"
STATE = "state.json"
LOCK = ".lock"
TENSORBOARD = "tensorboard"
HISTORY_COLUMNS = (
    "epoch",
    "loss",
    "accuracy",
    "val_loss",
    "val_accuracy",
    "learning_rate",
    "seconds",
    "images_per_second",
)
DEFAULT_ROOT = Path("runs")


def is_run(path: Path) -> bool:
    path = Path(path)
    return path.is_dir() and ((path / SPEC).is_file() or (path / MODEL).is_file())


def new_run_path(out: str | Path | None, name: str) -> Path:
    """``out`` if given (it must not hold a run already); else ``runs/<name>``, or the
    first free ``runs/<name>-N``."""
    if out is not None:
        out = Path(out)
        if out.exists() and (not out.is_dir() or any(out.iterdir())):
            raise TrainError(
                f"'{out}' already exists and is not empty; resume it with --resume, or pass "
                "another --out"
            )
        return out
    base = safe_child(DEFAULT_ROOT, name, "run name")
    if not base.exists():
        return base
    n = 2
    while safe_child(DEFAULT_ROOT, f"{name}-{n}", "run name").exists():
        n += 1
    return DEFAULT_ROOT / f"{name}-{n}"


def latest_run_path(name: str) -> Path | None:
    """The newest ``runs/<name>`` or ``runs/<name>-N`` folder (highest N)."""
    if not DEFAULT_ROOT.is_dir():
        return None
    found = []
    for p in DEFAULT_ROOT.iterdir():
        m = re.fullmatch(re.escape(name) + r"(?:-(\d+))?", p.name)
        if m and p.is_dir() and not p.is_symlink():
            found.append((int(m.group(1) or 1), p))
    return max(found)[1] if found else None


class RunFolder:
    def __init__(self, path: str | Path):
        self.path = Path(path)

    def file(self, name: str) -> Path:
        return self.path / name

    def create(self) -> None:
        self.path.mkdir(parents=True, exist_ok=True)
        (self.path / CHECKPOINT).mkdir(exist_ok=True)

    # ---------------------------------------------------------------- history
    def read_history(self, upto: int | None = None) -> list[dict]:
        """Rows of history.csv with ``epoch <= upto`` (all when None)."""
        path = self.file(HISTORY)
        if not path.is_file():
            return []
        rows = []
        with open(path, newline="", encoding="utf-8") as f:
            for row in csv.DictReader(f):
                parsed = {k: (float(v) if v not in ("", None) else None) for k, v in row.items()}
                parsed["epoch"] = int(parsed["epoch"])
                if upto is None or parsed["epoch"] <= upto:
                    rows.append(parsed)
        return rows

    def write_history(self, rows: list[dict]) -> None:
        buf = io.StringIO()
        w = csv.DictWriter(buf, fieldnames=HISTORY_COLUMNS, lineterminator="\n")
        w.writeheader()
        for row in rows:
            w.writerow({k: _fmt(row.get(k)) for k in HISTORY_COLUMNS})
        write_text(self.file(HISTORY), buf.getvalue())

    def write_json(self, name: str, data: dict) -> None:
        write_text(self.file(name), json.dumps(data, indent=2, default=_json_default) + "\n")

    def read_json(self, name: str) -> dict | None:
        path = self.file(name)
        if not path.is_file():
            return None
        try:
            return json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as err:
            raise TrainError(f"cannot read '{path}': {err}") from None

    # ------------------------------------------------------------ checkpoints
    def state(self) -> dict | None:
        return self.read_json(f"{CHECKPOINT}/{STATE}")

    def save_checkpoint(self, epoch: int, arrays: dict[str, np.ndarray], state: dict) -> None:
        """Write ``ckpt-<epoch>.npz`` then ``state.json`` (the commit, which also names
        the previous checkpoint), then drop any older ones."""
        folder = self.path / CHECKPOINT
        folder.mkdir(exist_ok=True)
        name = f"ckpt-{epoch:04d}.npz"

        def write(tmp: Path) -> None:
            with open(tmp, "wb") as f:
                np.savez(f, **arrays)

        atomic_write(folder / name, write)
        previous = self.state()
        if previous is not None and int(previous.get("epoch", 0)) >= epoch:
            previous = previous.get("previous")  # re-done after a fallback: skip the bad one
        if previous is not None:
            previous.pop("previous", None)
        new_state = {**state, "epoch": epoch, "checkpoint": name, "previous": previous}
        self.write_json(f"{CHECKPOINT}/{STATE}", new_state)
        keep = {name, previous["checkpoint"] if previous else None}
        for old in folder.glob("ckpt-*.npz"):
            if old.name not in keep:
                old.unlink(missing_ok=True)

    def _read_arrays(self, state: dict) -> dict[str, np.ndarray]:
        path = self.path / CHECKPOINT / str(state.get("checkpoint", ""))
        with np.load(path, allow_pickle=False) as z:
            return {k: z[k] for k in z.files}

    def load_checkpoint(self) -> tuple[dict, dict[str, np.ndarray], str | None]:
        """``(state, arrays, warning)``: the latest checkpoint, or the one before it
        (with a warning) when the latest cannot be read."""
        state = self.state()
        if state is None:
            raise TrainError(
                f"cannot resume '{self.path}': it has no completed epoch "
                f"({CHECKPOINT}/{STATE} is missing); start a new run instead"
            )
        try:
            return state, self._read_arrays(state), None
        except Exception as err:  # zipfile.BadZipFile, OSError, ValueError, KeyError, ...
            first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
            previous = state.get("previous")
            if not previous:
                raise TrainError(
                    f"cannot resume '{self.path}': checkpoint {state.get('checkpoint')} is "
                    f"unreadable ({first}) and there is no earlier one"
                ) from None
            try:
                arrays = self._read_arrays(previous)
            except Exception:
                raise TrainError(
                    f"cannot resume '{self.path}': checkpoints {state.get('checkpoint')} and "
                    f"{previous.get('checkpoint')} are both unreadable"
                ) from None
            warning = (
                f"warning: checkpoint {state.get('checkpoint')} is unreadable ({first}); "
                f"resuming from the one before it ({previous.get('checkpoint')}, epoch "
                f"{previous.get('epoch')})"
            )
            return previous, arrays, warning

    @contextlib.contextmanager
    def lock(self):
        """Hold ``.lock`` while training; refuse when another live run holds it (the
        operating system releases it when a run dies, even by kill -9)."""
        import fcntl

        self.path.mkdir(parents=True, exist_ok=True)
        f = open(self.path / LOCK, "a+")  # noqa: SIM115  (held for the whole run)
        try:
            try:
                fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                f.seek(0)
                pid = f.read().strip() or "?"
                raise TrainError(
                    f"'{self.path}' is in use by another live run (process {pid}); wait for "
                    "it to finish or stop it, or pick another --out"
                ) from None
            f.seek(0)
            f.truncate()
            f.write(str(os.getpid()))
            f.flush()
            yield
        finally:
            f.close()


def _fmt(value) -> str:
    if value is None:
        return ""
    if isinstance(value, int):
        return str(value)
    return repr(float(value))


def _json_default(value):
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")
