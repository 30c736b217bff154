"""Every error nincompile reports to a user.

A :class:`SpecProblem` is one problem at one place in one spec file: the file, the
1-based line and column, the path inside the document (``stages[2].pool.strides``)
and a message that says what was expected and what was received.  A
:class:`SpecError` carries all problems found in one pass, so a user fixes them in
one go instead of one per run.

:class:`NincompileError` is the base of every error the CLI turns into a clean
message and a non-zero exit (never a traceback).
"""

from __future__ import annotations

import difflib
import signal
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Protocol

Path = tuple[str | int, ...]


class NincompileError(Exception):
    """Base class for user-facing errors: the CLI prints ``str(err)`` and exits 1."""


def first_line(err: BaseException, *, with_type: bool = False) -> str:
    """The first line of ``err``'s message (``Type: first line`` with ``with_type``),
    or its type's name when the message is empty: how an error from another library
    is quoted in one line of ours."""
    text = str(err).strip()
    name = type(err).__name__
    if not text:
        return name
    line = text.splitlines()[0]
    return f"{name}: {line}" if with_type else line


def format_path(path: Path) -> str:
    """``("stages", 2, "pool", "strides")`` -> ``stages[2].pool.strides``."""
    out = ""
    for part in path:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out or "<document>"


def _edit_distance(a: str, b: str) -> int:
    """Levenshtein distance with adjacent transpositions (``trian`` -> ``train`` is 1)."""
    prev2: list[int] = []
    prev = list(range(len(b) + 1))
    for i in range(1, len(a) + 1):
        row = [i] + [0] * len(b)
        for j in range(1, len(b) + 1):
            row[j] = min(prev[j] + 1, row[j - 1] + 1, prev[j - 1] + (a[i - 1] != b[j - 1]))
            if i > 1 and j > 1 and a[i - 1] == b[j - 2] and a[i - 2] == b[j - 1]:
                row[j] = min(row[j], prev2[j - 2] + 1)
        prev2, prev = prev, row
    return prev[-1]


def close_matches(word: str, choices: Iterable[str], n: int = 1) -> list[str]:
    """The choices close enough to ``word`` to be what was meant, closest first: at most
    one edit (insert, delete, change, swap two neighbours) per three letters of ``word``
    (at least one; none for a one-letter word), or one word a prefix of the other
    (``chan`` -> ``ch``).  Case is ignored.  ``dilation`` is 4 edits from
    ``activation``: no match."""
    w = str(word).lower()
    scored = []
    for choice in sorted(set(map(str, choices))):
        c = choice.lower()
        dist = _edit_distance(w, c)
        ratio = difflib.SequenceMatcher(None, w, c).ratio()
        prefix = min(len(w), len(c)) >= 2 and (w.startswith(c) or c.startswith(w))
        limit = max(1, len(w) // 3) if len(w) > 1 else 0
        if dist <= limit or (prefix and ratio >= 0.5):
            scored.append((dist, -ratio, choice))
    return [choice for _, _, choice in sorted(scored)[:n]]


def did_you_mean(word: str, choices: Iterable[str]) -> str:
    """A `` (did you mean 'x'?)`` suffix for the closest choice, or ``""``."""
    match = close_matches(word, choices)
    return f" (did you mean '{match[0]}'?)" if match else ""


@dataclass(frozen=True)
class SpecProblem:
    message: str
    path: Path = ()
    file: str | None = None
    line: int | None = None
    column: int | None = None

    def __str__(self) -> str:
        where = self.file or "<spec>"
        if self.line is not None:
            where += f":{self.line}"
            if self.column is not None:
                where += f":{self.column}"
        loc = format_path(self.path)
        return f"{where}: {loc}: {self.message}" if self.path else f"{where}: {self.message}"


class SpecError(NincompileError):
    """One or more problems in a spec, all reported together."""

    def __init__(self, problems: Sequence[SpecProblem]):
        self.problems = list(problems)
        super().__init__(self._render())

    def _render(self) -> str:
        n = len(self.problems)
        head = f"{n} problem{'s' if n != 1 else ''} in spec:"
        return "\n".join([head, *(f"  {p}" for p in self.problems)])

    def __str__(self) -> str:  # keep the message in sync if problems were appended
        return self._render()


class SpecShapeError(SpecError):
    """A spec problem in the model's shapes or size: every shape after it would be a
    guess, so lowering reports it and stops instead of looking for more problems."""


class ShapeError(NincompileError):
    """Raised by IR shape inference; the lowering pass re-raises it as a
    :class:`SpecShapeError` pointing at the stage that caused it."""


class KerasMismatch(NincompileError):
    """The Keras model disagrees with the IR: a bug in nincompile, never the user's."""


class ModelLoadError(NincompileError):
    """A saved model is missing, unreadable, unsafe or unsupported."""


class ExportError(NincompileError):
    """ONNX export or its verification failed; nothing was written."""


class SourceError(ExportError, ModelLoadError):
    """The model to export is missing, unreadable, unsafe or unsupported."""


class OutputPathError(ExportError):
    """The output path is unusable (missing folder, symbolic link, not ``.onnx``)."""


class OptionError(ExportError):
    """An export option is out of range or impossible for this model."""


class ConversionError(ExportError):
    """tf2onnx could not turn the model into a clean inference graph."""


class CheckedReport(Protocol):
    """What :class:`VerificationFailed` carries: an export's report
    (:class:`nincompile.export.report.ExportReport`, typed here by what it offers so that
    this module, which every other imports, imports none of them)."""

    @property
    def ok(self) -> bool: ...

    def lines(self) -> list[str]: ...


class VerificationFailed(ExportError):
    """The ONNX model failed a check; nothing was written.  ``report`` holds the
    :class:`~nincompile.export.report.ExportReport` with every check."""

    def __init__(self, message: str, report: CheckedReport):
        super().__init__(message)
        self.report = report


class WeightsError(NincompileError):
    """Weights could not be read, or do not fit the model; nothing was assigned."""


class WeightsMismatch(WeightsError):
    """Weights whose shapes do not fit some of the model's layers; ``layers`` names
    those layers of the model."""

    def __init__(self, message: str, layers: Sequence[str]):
        super().__init__(message)
        self.layers = tuple(layers)


class DataError(NincompileError):
    """Training or evaluation data could not be found, read or matched to the spec."""


class TrainError(NincompileError):
    """Training could not start or had to stop (bad run folder, NaN loss, ...)."""


class RunFileError(TrainError):
    """A file in a run folder (``checkpoint/state.json``, a checkpoint, ``history.csv``,
    ``metrics.json``) is corrupt or is not what nincompile wrote there."""


class TrainStopped(TrainError):
    """Training was stopped by Ctrl-C or a signal; the message says what was kept and
    how to resume.  ``exit_code`` is the shell's 128 + the signal's number."""

    def __init__(self, message: str, exit_code: int):
        super().__init__(message)
        self.exit_code = exit_code


class Stopped(BaseException):  # noqa: N818  (a signal, like KeyboardInterrupt, not an error)
    """Raised in the main thread when a signal (SIGTERM) asks a command to stop; like
    ``KeyboardInterrupt`` it is a ``BaseException``, so nothing swallows it on the way
    up, and every ``atomic_write`` on the way removes its temporary file."""

    def __init__(self, signum: int):
        super().__init__(signum)
        self.signum = signum


def stop_signal(stop: BaseException) -> tuple[int, str]:
    """The signal behind a stop (:class:`Stopped` holds it; ``KeyboardInterrupt`` is
    SIGINT) and its name in messages: ``Ctrl-C`` for SIGINT, else ``SIGTERM`` and so
    on."""
    signum = stop.signum if isinstance(stop, Stopped) else signal.SIGINT
    return signum, "Ctrl-C" if signum == signal.SIGINT else signal.Signals(signum).name


class InputTooLarge(NincompileError):
    """An input (a saved model, an archive member, a data file, an image) would need
    more memory than the limit allows; it was refused before it was read."""


class ModelTooLarge(ModelLoadError, InputTooLarge):
    """A saved model whose declared weights do not fit in the memory limit."""


class DataTooLarge(DataError, InputTooLarge):
    """Data whose declared size is over a cap of its format or the memory limit."""
