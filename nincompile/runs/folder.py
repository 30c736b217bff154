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

A run folder may come from someone else (a shared or copied run), so nothing in it is
trusted: every path below it goes through :meth:`RunFolder.file`, which refuses a
symbolic link at any component (``checkpoint/``, ``tensorboard/``, a file, the lock),
files are read only through :func:`~nincompile.files.open_regular` (no link, no FIFO),
and ``state.json``, the checkpoints, ``history.csv`` and ``metrics.json`` are checked
against a schema, a bad one being a one-line :class:`~nincompile.errors.RunFileError`
naming the file and the field.
"""

from __future__ import annotations

import contextlib
import csv
import errno
import io
import json
import os
import re
import stat
from pathlib import Path

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, StrictInt, StrictStr, ValidationError
from pydantic import model_validator as _model_validator

from ..errors import RunFileError, TrainError, first_line
from ..files import (
    UnsafePathError,
    atomic_write,
    inside,
    open_regular,
    regular_or_missing,
    safe_child,
    temporary_name_regex,
    write_text,
)

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
    "planned_epochs",
    "phase",
)
#: Columns of whole numbers besides ``epoch`` (empty in rows of older runs; ``phase``,
#: the 0-based index in ``train.phases``, empty in runs without phases).
_INT_COLUMNS = ("planned_epochs", "phase")
DEFAULT_ROOT = Path("runs")
CHECKPOINT_NAME = re.compile(r"ckpt-(\d{4,})\.npz")
#: Files that training writes with ``atomic_write`` (their temporary files are ours).
_WRITTEN = {"": (SPEC, HISTORY, METRICS, CURVES, MODEL, BEST), CHECKPOINT: (STATE,)}
_OURS = {
    folder: re.compile(
        "|".join(temporary_name_regex(re.escape(Path(n).stem), Path(n).suffix) for n in names)
        + ("|" + temporary_name_regex(r"ckpt-\d{4,}", ".npz") if folder == CHECKPOINT else "")
    )
    for folder, names in _WRITTEN.items()
}
WHAT = "run folder"


def _is_ours(folder: str, name: str) -> bool:
    """``name`` in ``folder`` (``""`` or ``checkpoint``) is a temporary file training's
    ``atomic_write`` makes (left there only by a kill)."""
    return _OURS[folder].fullmatch(name) is not None


def _mode(path: Path) -> int | None:
    try:
        return os.lstat(path).st_mode
    except (FileNotFoundError, NotADirectoryError):
        return None


def is_empty_run_folder(path: str | Path) -> bool:
    """True when ``path`` does not exist, or is a folder holding nothing but what a run
    that failed before its first epoch leaves: our ``.lock`` (a regular file), our
    temporary files, and an empty ``checkpoint/`` or ``tensorboard/`` (real folders,
    the former holding at most our temporary files).  Such a folder takes a new run."""
    path = Path(path)
    if not path.exists():
        return True
    if not path.is_dir():
        return False
    for entry in path.iterdir():
        mode = os.lstat(entry).st_mode
        name = entry.name
        if stat.S_ISREG(mode) and (name == LOCK or _is_ours("", name)):
            continue
        if stat.S_ISDIR(mode) and name in (CHECKPOINT, TENSORBOARD):
            inner = list(entry.iterdir())
            if all(
                name == CHECKPOINT and _is_ours(CHECKPOINT, q.name) and stat.S_ISREG(_mode(q) or 0)
                for q in inner
            ):
                continue
        return False
    return True


def is_run(path: Path) -> bool:
    path = Path(path)
    return path.is_dir() and ((path / SPEC).is_file() or (path / MODEL).is_file())


def new_run_path(out: str | Path | None, name: str) -> Path:
    """``out`` if given (it must not hold a run already); else ``runs/<name>``, or the
    first free ``runs/<name>-N``."""
    if out is not None:
        out = Path(out)
        if not is_empty_run_folder(out):
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


# ------------------------------------------------------------------ schemas
class _Loose(BaseModel):
    """Strict types (``"2"`` is not an epoch, ``1.9`` is not an int; an int is a fine
    float); keys nincompile does not read are allowed."""

    model_config = ConfigDict(extra="allow", strict=True)


class Best(_Loose):
    """The best epoch's figures (``state.json`` and ``metrics.json``)."""

    epoch: StrictInt | None = Field(default=None, ge=0)
    val_accuracy: float | None = None
    val_loss: float | None = None
    accuracy: float | None = None
    loss: float | None = None


class SavedEpoch(_Loose):
    """One committed epoch in ``checkpoint/state.json``: its checkpoint file, the
    hashes of the spec and the data it was trained on, and running figures."""

    epoch: StrictInt = Field(ge=1)
    checkpoint: StrictStr
    spec_sha256: StrictStr
    data_sha256: StrictStr | None = None
    best: Best | None = None
    train_seconds: float = Field(default=0.0, ge=0)
    phase: StrictInt | None = Field(default=None, ge=0)  # train.phases' index, its optimiser's

    @_model_validator(mode="after")
    def _names_agree(self):
        m = CHECKPOINT_NAME.fullmatch(self.checkpoint)
        if m is None:
            raise ValueError(
                f"checkpoint: expected a file name ckpt-NNNN.npz inside {CHECKPOINT}/, "
                f"received {_short(self.checkpoint)}"
            )
        if int(m.group(1)) != self.epoch:
            raise ValueError(
                f"epoch {self.epoch} disagrees with the checkpoint it names, "
                f"{self.checkpoint} (written after epoch {int(m.group(1))})"
            )
        return self


class State(SavedEpoch):
    """``checkpoint/state.json``: the latest committed epoch and the one before it."""

    previous: SavedEpoch | None = None

    @_model_validator(mode="after")
    def _previous_is_earlier(self):
        if self.previous is not None and self.previous.epoch >= self.epoch:
            raise ValueError(
                f"previous: expected an epoch before {self.epoch}, received {self.previous.epoch}"
            )
        return self


class Params(_Loose):
    total: StrictInt | None = None
    trainable: StrictInt | None = None
    non_trainable: StrictInt | None = None


class Metrics(_Loose):
    """The fields of ``metrics.json`` that ``compare`` and ``train`` read."""

    name: StrictStr | None = None
    seed: StrictInt | None = None
    epochs_completed: StrictInt | None = None
    epochs: StrictInt | None = None
    final: dict[str, float | None] | None = None
    best: Best | None = None
    params: Params | None = None
    macs: StrictInt | None = None
    images_per_second: float | None = None
    train_seconds: float | None = None


def _short(value, limit: int = 40) -> str:
    """``value`` as it appears in its file (JSON for JSON values), cut to ``limit``."""
    try:
        text = repr(value) if isinstance(value, str) else json.dumps(value)
    except (TypeError, ValueError):
        text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _describe(err: ValidationError) -> str:
    """The first problem of a validation error as ``field: expected ..., received ...``."""
    problems = err.errors()
    e = problems[0]
    loc = ".".join(str(p) for p in e["loc"])
    msg = e["msg"].removeprefix("Value error, ")
    msg = re.sub(r"^Input should be (a valid )?", "expected ", msg)
    msg = re.sub(r"^expected dictionary( or instance of \w+)?", "expected a JSON object", msg)
    msg = re.sub(r"^expected (integer|number|string|boolean)", r"expected a \1", msg)
    msg = msg.replace("expected a integer", "expected an integer")
    msg = msg.replace("expected greater than", "expected a value greater than")
    msg = msg.replace("Field required", "missing (required)")
    if e["type"] not in ("missing", "value_error"):
        msg += f", received {_short(e.get('input'))}"
    more = f" (and {len(problems) - 1} more problem{'s' * (len(problems) > 2)})"
    return (f"{loc}: {msg}" if loc else msg) + (more if len(problems) > 1 else "")


def _kind_of(value) -> str:
    return {list: "a list", str: "a string", type(None): "null", bool: "a boolean"}.get(
        type(value), "a number"
    )


def validate_json(path: Path, data, model: type[BaseModel]) -> BaseModel:
    """``data`` (read from ``path``) checked against ``model``; a one-line
    :class:`RunFileError` naming the file and the field when it does not fit."""
    if not isinstance(data, dict):
        raise RunFileError(f"{path}: expected a JSON object, received {_kind_of(data)}")
    try:
        return model.model_validate(data)
    except ValidationError as err:
        raise RunFileError(f"{path}: {_describe(err)}") from None


def _number(path, line, column, text, integer=False):
    try:
        value = float(text) if not integer else int(text)
    except ValueError:
        kind = "a whole number" if integer else "a number"
        raise RunFileError(
            f"{path}:{line}: {column}: expected {kind}, received {_short(text)}"
        ) from None
    return value


def parse_history(path: Path, data: bytes) -> list[dict]:
    """Rows of ``history.csv`` (its bytes) as dicts: ``epoch`` an int, ``planned_epochs``
    an int or None, every other column a float or None.  A bad file is a
    :class:`RunFileError` naming its line."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as err:
        raise RunFileError(
            f"{path}: expected UTF-8 text, received a byte 0x{data[err.start]:02x} at offset "
            f"{err.start}"
        ) from None
    try:
        lines = list(csv.reader(io.StringIO(text, newline="")))
    except csv.Error as err:
        raise RunFileError(f"{path}: not a CSV file ({err})") from None
    if not lines:
        return []
    header = lines[0]
    if (
        "epoch" not in header
        or set(header) - set(HISTORY_COLUMNS)
        or len(set(header)) < len(header)
    ):
        raise RunFileError(
            f"{path}:1: expected the header {','.join(HISTORY_COLUMNS)}, received "
            f"{_short(','.join(header), 60)}"
        )
    rows = []
    for line, cells in enumerate(lines[1:], start=2):
        if not cells:
            continue
        if len(cells) != len(header):
            raise RunFileError(
                f"{path}:{line}: {len(cells)} values where the header has {len(header)}"
            )
        row = {}
        for column, cell in zip(header, cells, strict=True):
            if column == "epoch":
                row["epoch"] = _number(path, line, column, cell, integer=True)
                if row["epoch"] < 0:
                    raise RunFileError(
                        f"{path}:{line}: epoch: expected 0 or more, received {row['epoch']}"
                    )
            elif column in _INT_COLUMNS:
                row[column] = None if cell == "" else _number(path, line, column, cell, True)
            else:
                row[column] = None if cell == "" else _number(path, line, column, cell)
        rows.append(row)
    return rows


class RunFolder:
    def __init__(self, path: str | Path):
        self.path = Path(path)

    def file(self, name: str) -> Path:
        """``path / name`` (``name`` may be ``checkpoint/state.json``), refusing with
        :class:`UnsafePathError` a symbolic link at any component below the folder."""
        return inside(self.path, name, WHAT)

    def _read(self, name: str) -> bytes | None:
        """The bytes of a regular file in the folder, or None when there is none."""
        try:
            with open_regular(self.file(name), WHAT) as f:
                return f.read()
        except FileNotFoundError:
            return None

    def read_text(self, name: str) -> str | None:
        data = self._read(name)
        if data is None:
            return None
        try:
            return data.decode("utf-8")
        except UnicodeDecodeError as err:
            raise RunFileError(
                f"{self.path / name}: expected UTF-8 text, received a byte "
                f"0x{data[err.start]:02x} at offset {err.start}"
            ) from None

    def create(self) -> None:
        self.path.mkdir(parents=True, exist_ok=True)
        self.file(CHECKPOINT).mkdir(exist_ok=True)

    def check_layout(self) -> None:
        """Refuse a symbolic link at any file or folder a run reads, writes or deletes
        (``checkpoint/``, ``tensorboard/``, every output, every checkpoint), before
        anything is written or deleted."""
        names = [*_WRITTEN[""], CHECKPOINT, TENSORBOARD, f"{CHECKPOINT}/{STATE}"]
        for name in names:
            self.file(name)
        for sub in (CHECKPOINT, TENSORBOARD):
            mode = _mode(self.path / sub)
            if mode is not None and not stat.S_ISDIR(mode):
                raise UnsafePathError(
                    f"refusing '{self.path / sub}': expected a folder, found another kind of "
                    "file; remove it"
                )
        folder = self.path / CHECKPOINT
        if folder.is_dir():
            for entry in folder.iterdir():
                if CHECKPOINT_NAME.fullmatch(entry.name):
                    self.file(f"{CHECKPOINT}/{entry.name}")

    def trained_files(self) -> list[str]:
        """What in the folder only a completed epoch writes (the models, a checkpoint),
        by name; no link is followed."""
        found = [name for name in (MODEL, BEST) if _mode(self.path / name) is not None]
        folder = self.path / CHECKPOINT
        if stat.S_ISDIR(_mode(folder) or 0) and any(
            CHECKPOINT_NAME.fullmatch(entry.name) for entry in folder.iterdir()
        ):
            found.append(f"{CHECKPOINT}/*.npz")
        return found

    def remove_stale_temporaries(self) -> list[str]:
        """Remove the temporary files a killed run left (``.history.x1y2z3w4.csv``...):
        only regular files named as training's ``atomic_write`` names them, in the
        folder and ``checkpoint/``.  Call it only holding the lock: no live writer of
        ours can own them then.  Returns what was removed."""
        removed = []
        for sub in ("", CHECKPOINT):
            folder = self.path / sub
            if not stat.S_ISDIR(_mode(folder) or 0):
                continue
            for entry in folder.iterdir():
                if _is_ours(sub, entry.name) and stat.S_ISREG(_mode(entry) or 0):
                    entry.unlink(missing_ok=True)
                    removed.append(str(entry.relative_to(self.path)))
        return removed

    # ---------------------------------------------------------------- history
    def read_history(self, upto: int | None = None) -> list[dict]:
        """Rows of history.csv with ``epoch <= upto`` (all when None)."""
        data = self._read(HISTORY)
        if data is None:
            return []
        rows = parse_history(self.path / HISTORY, data)
        return [r for r in rows if upto is None or r["epoch"] <= upto]

    def write_history(self, rows: list[dict]) -> None:
        buf = io.StringIO()
        w = csv.DictWriter(buf, fieldnames=HISTORY_COLUMNS, lineterminator="\n")
        w.writeheader()
        for row in rows:
            w.writerow({k: _fmt(row.get(k)) for k in HISTORY_COLUMNS})
        write_text(self.file(HISTORY), buf.getvalue())

    def write_json(self, name: str, data: dict) -> None:
        write_text(self.file(name), json.dumps(data, indent=2, default=_json_default) + "\n")

    def read_json(self, name: str, model: type[BaseModel] | None = None) -> dict | None:
        """The JSON object in ``name`` (None when there is no such file), checked
        against ``model`` when given; a bad file is a one-line :class:`RunFileError`."""
        text = self.read_text(name)
        if text is None:
            return None
        path = self.path / name
        try:
            data = json.loads(text)
        except ValueError as err:
            raise RunFileError(f"{path}: not valid JSON ({err})") from None
        if model is not None:
            validate_json(path, data, model)
        elif not isinstance(data, dict):
            raise RunFileError(f"{path}: expected a JSON object, received {_kind_of(data)}")
        return data

    def metrics(self) -> dict | None:
        return self.read_json(METRICS, Metrics)

    # ------------------------------------------------------------ checkpoints
    def state(self) -> dict | None:
        """``checkpoint/state.json``, checked (types, a checkpoint name inside
        ``checkpoint/`` that agrees with its epoch), or None when there is none."""
        return self.read_json(f"{CHECKPOINT}/{STATE}", State)

    def save_checkpoint(self, epoch: int, arrays: dict[str, np.ndarray], state: dict) -> None:
        """Write ``ckpt-<epoch>.npz`` then ``state.json`` (the commit, which also names
        the previous checkpoint), then drop any older ones."""
        folder = self.file(CHECKPOINT)
        folder.mkdir(exist_ok=True)
        name = f"ckpt-{epoch:04d}.npz"

        def write(tmp: Path) -> None:
            with open(tmp, "wb") as f:
                np.savez(f, **arrays)

        atomic_write(self.file(f"{CHECKPOINT}/{name}"), write)
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
        """The arrays of the checkpoint ``state`` names (a name State has checked): a
        regular file, opened without following a link; numbers only (no pickles, no
        text).  Raises ``UnsafePathError`` for a link or a special file, and another
        exception (ValueError, zipfile.BadZipFile, OSError) for a damaged file."""
        name = state["checkpoint"]
        if CHECKPOINT_NAME.fullmatch(str(name)) is None:  # State checks it; never trust
            raise UnsafePathError(f"refusing checkpoint name {name!r} from {STATE}")
        arrays = {}
        with open_regular(self.file(f"{CHECKPOINT}/{name}"), WHAT) as f:
            with np.load(f, allow_pickle=False) as z:
                for key in z.files:
                    try:
                        value = z[key]
                    except ValueError as err:  # an object array: it would need a pickle
                        raise ValueError(f"array {key}: {err}") from None
                    if value.dtype.kind not in "biuf":
                        raise ValueError(
                            f"array {key} holds {value.dtype} values, expected numbers"
                        )
                    arrays[key] = value
        return arrays

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
        except UnsafePathError:
            raise  # a link or FIFO is no accident: refuse it, fall back to nothing
        except Exception as err:  # zipfile.BadZipFile, OSError, ValueError, KeyError, ...
            first = first_line(err)
            previous = state.get("previous")
            if not previous:
                raise TrainError(
                    f"cannot resume '{self.path}': checkpoint {state.get('checkpoint')} is "
                    f"unreadable ({first}) and there is no earlier one"
                ) from None
            try:
                arrays = self._read_arrays(previous)
            except UnsafePathError:
                raise
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
        operating system releases it when a run dies, even by kill -9).  The lock is
        opened without following a link and refused unless it is a regular file with
        no other name (a hard link), so it can never overwrite another file.  Holding
        it, check the folder's layout (no links) and remove a killed run's temporary
        files, before anything else is written."""
        import fcntl

        self.path.mkdir(parents=True, exist_ok=True)
        path = self.file(LOCK)
        regular_or_missing(path, WHAT)  # lstat first: no link, FIFO or device is opened
        flags = os.O_RDWR | os.O_CREAT | os.O_NONBLOCK | os.O_CLOEXEC
        try:
            fd = os.open(path, flags | getattr(os, "O_NOFOLLOW", 0), 0o666)
        except OSError as err:
            if err.errno == errno.ELOOP:  # made a link since the check
                self.file(LOCK)
            raise
        with os.fdopen(fd, "r+", encoding="utf-8", errors="replace") as f:
            st = os.fstat(fd)
            if not stat.S_ISREG(st.st_mode):
                raise UnsafePathError(f"refusing '{path}': it is not a regular file; remove it")
            if st.st_nlink > 1:
                raise UnsafePathError(
                    f"refusing '{path}': it is a hard link with {st.st_nlink - 1} other "
                    "name(s), so writing it would change another file; nincompile only "
                    "uses a lock it made; remove it"
                )
            os.set_blocking(fd, True)
            try:
                fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                f.seek(0)
                pid = f.read(32).strip()
                raise TrainError(
                    f"'{self.path}' is in use by another live run (process "
                    f"{pid if pid.isdigit() else '?'}); "
                    "wait for it to finish or stop it, or pick another --out"
                ) from None
            os.ftruncate(fd, 0)
            os.pwrite(fd, str(os.getpid()).encode(), 0)
            self.check_layout()
            self.remove_stale_temporaries()
            yield


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
