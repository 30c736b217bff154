"""A training run as the library returns it (:class:`Run`): the folder, its history
and ``metrics.json``, and the paths of the files in it."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from . import folder as runs


@dataclass
class Run:
    """A training run folder: its history (one dict per epoch), its ``metrics.json``
    and the paths of what it holds.  A run can be passed wherever a path to a model
    is taken (``evaluate``, ``predict``, ``export``)."""

    path: Path
    history: list[dict]
    metrics: dict
    resumed_from: int = 0
    notes: list[str] = field(default_factory=list)
    chief: bool = True  # False in processes other than 0 of a multi-process job

    @classmethod
    def open(cls, path: str | os.PathLike) -> Run:
        """The run in folder ``path`` as it is now."""
        from .model import model_files

        model_files(path)  # refuses what is not a run folder
        folder = runs.RunFolder(path)
        return cls(Path(path), folder.read_history(), folder.metrics() or {})

    def __fspath__(self) -> str:
        return str(self.path)

    def _file(self, key: str) -> Path:
        return self.path / getattr(runs, key)

    @property
    def spec_path(self) -> Path:
        return self._file("SPEC")

    @property
    def model_path(self) -> Path:
        return self._file("MODEL")

    @property
    def best_path(self) -> Path:
        return self._file("BEST")

    @property
    def best(self) -> dict:
        """The best epoch's figures (``epoch``, ``val_accuracy``, ...)."""
        return self.metrics.get("best") or {}

    @property
    def final(self) -> dict:
        return self.metrics.get("final") or {}

    @property
    def finished(self) -> bool:
        return self.metrics.get("epochs_completed", 0) >= self.metrics.get("epochs", 0)
