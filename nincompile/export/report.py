"""What an export did and the evidence that it matches Keras: the checks and the
report ``nincompile export`` prints."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from .. import __version__
from ..units import format_bytes
from .convert import INPUT_NAME, output_name
from .source import Source, input_shape


@dataclass
class Check:
    name: str
    passed: bool
    detail: str
    batch: int | None = None
    max_abs_diff: float | None = None
    top1_agree: int | None = None
    top1_total: int | None = None
    ties: int = 0


@dataclass
class ExportReport:
    """What was exported and the evidence that it matches Keras."""

    name: str
    source: str
    source_kind: str
    out: Path
    opset: int
    batch: int | None
    input_name: str
    output_name: str
    input_shape: tuple[int, int, int]
    preprocessing: bool
    metadata: dict[str, str] = field(default_factory=dict)
    checks: list[Check] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    size_bytes: int = 0
    written: bool = False

    @classmethod
    def of(cls, src, out: Path, opset: int, batch: int | None, preprocessing: bool, **more):
        """A report on exporting ``src`` (an export ``Source``) to ``out``."""
        return cls(
            name=src.name,
            source=str(src.path),
            source_kind=src.kind,
            out=out,
            opset=opset,
            batch=batch,
            input_name=INPUT_NAME,
            output_name=output_name(src.model),
            input_shape=input_shape(src.model),
            preprocessing=preprocessing,
            notes=list(src.notes),
            **more,
        )

    @property
    def ok(self) -> bool:
        return bool(self.checks) and all(c.passed for c in self.checks)

    def lines(self) -> list[str]:
        batch = "dynamic" if self.batch is None else str(self.batch)
        head = (
            f"{self.name}: {'wrote' if self.written else 'did not write'} {self.out}"
            + (f" ({format_bytes(self.size_bytes)})" if self.written else "")
            + f", opset {self.opset}, batch {batch}"
        )
        out = [head, f"  source     {self.source} ({self.source_kind})"]
        h, w, c = self.input_shape
        dims = "batch" if self.batch is None else str(self.batch)
        out.append(
            f"  graph      {self.input_name} [{dims}, {h}, {w}, {c}] float32 NHWC -> "
            f"{self.output_name}"
            + ("; (x - mean) / std folded in: feed raw pixels 0..255" if self.preprocessing else "")
        )
        out.extend(f"  note       {n}" for n in self.notes)
        for c in self.checks:
            out.append(f"  {'ok  ' if c.passed else 'FAIL'}       {c.name}: {c.detail}")
        return out

    def text(self) -> str:
        return "\n".join(self.lines())


def metadata(src: Source, report: ExportReport, mean, std) -> dict[str, str]:
    """The ``metadata_props`` of an exported model (keys in the module docstring of
    :mod:`nincompile.export.onnx_export`)."""
    meta = {
        "nincompile_version": __version__,
        "name": src.name,
        "source": src.kind,
        "source_sha256": src.source_sha256,
    }
    if src.spec_sha256:
        meta["spec_sha256"] = src.spec_sha256
    meta.update(
        {
            # a name per output (numbers past the spec's names), or null without names
            "classes": json.dumps(src.labels if src.classes else None),
            "input_layout": "NHWC",
            "input_shape": json.dumps(list(report.input_shape)),
            "input_name": report.input_name,
            "output_name": report.output_name,
            "mean": json.dumps(mean),
            "std": json.dumps(std),
            "preprocessing": "folded" if report.preprocessing else "none",
            "opset": str(report.opset),
            "batch": "dynamic" if report.batch is None else str(report.batch),
        }
    )
    return meta
