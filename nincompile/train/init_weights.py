"""``train.init_weights`` (``train --weights``): the weights a run starts from.

The source is a ``.keras`` or ``.weights.h5`` file, a run folder (its ``best.keras``,
else its ``model.keras``) or ``keras:NAME``.  It is read like every other input: a
run folder's files never through a link (:meth:`RunFolder.file`), a path that is not
a regular file (a FIFO, a device) refused without being opened, a ``.keras`` file
sized by :func:`nincompile.guard.check_keras_file` and a ``.weights.h5`` file by
:func:`nincompile.guard.check_weights_file` before an array is read.  The
arrays are then assigned by :func:`nincompile.weights.load_weights`, the mapping of
``build --weights``: layers paired in graph order, every shape checked, nothing
assigned unless all fit; the layers named in ``train.init_skip`` keep their initial
values.
"""

from __future__ import annotations

import zipfile
from pathlib import Path

from .. import guard
from ..errors import WeightsError, WeightsMismatch
from ..files import UnsafePathError, sha256_file
from ..ir.select import selects
from ..runs import folder as runs
from ..runs.model import check_regular, run_model_file
from ..weights import KERAS_PREFIX, SourceWeights, WeightsReport, load_weights, read_weights

SKIP_HINT = (
    "to keep their initial values instead (a head with another number of classes), list "
    "them or their items in train.init_skip"
)


def weights_file(text: str) -> Path:
    """The file ``text`` names: itself, or a run folder's ``best.keras`` (else
    ``model.keras``); a :class:`WeightsError` if a folder holds neither, a
    :class:`ModelLoadError` if the file is missing or not a regular file."""
    path = Path(text)
    if path.is_dir():
        try:
            found = run_model_file(path, best=True)
        except UnsafePathError as err:
            raise WeightsError(str(err)) from None
        if found is not None:
            return found
        raise WeightsError(
            f"init weights '{text}' is a folder without {runs.BEST} or {runs.MODEL}: expected "
            "a run folder, a .keras file or a .weights.h5 file"
        )
    check_regular(path)  # no such file, a FIFO, a device: a clean ModelLoadError
    return path


def read(text: str, limits: guard.Limits | None = None) -> tuple[SourceWeights, dict]:
    """The weights ``text`` names, read once, and what a run records of them (the file
    and its sha256)."""
    if text.startswith(KERAS_PREFIX):
        return read_weights(text), {"source": text}
    path = weights_file(text)
    if zipfile.is_zipfile(path):
        guard.check_keras_file(path, limits)  # sized before a byte of weights is read
    return read_weights(path), {"source": text, "file": str(path), "sha256": sha256_file(path)}


def skipped_layers(train, model) -> list[str]:
    """The model's layers that ``train.init_skip`` names."""
    return [
        layer.name for layer in model.layers if any(selects(s, layer.name) for s in train.init_skip)
    ]


def load(model, train, source: SourceWeights) -> WeightsReport:
    """Load ``source`` into ``model``, leaving the layers of ``train.init_skip``; a
    :class:`WeightsError` saying how to skip the layers that do not fit."""
    try:
        return load_weights(model, source, skipped_layers(train, model))
    except WeightsMismatch as err:
        raise WeightsError(f"train.init_weights: {err}; {SKIP_HINT}") from None
    except WeightsError as err:
        raise WeightsError(f"train.init_weights: {err}") from None


def describe(report: WeightsReport) -> str:
    """The line a run prints about its init weights."""
    text = (
        f"init weights: loaded {report.tensors:,} tensors ({report.params:,} parameters) into "
        f"{report.layers} layers from {report.source}"
    )
    if report.skipped:
        text += f"; skipped, keeping their initial values: {', '.join(report.skipped)}"
    return text
