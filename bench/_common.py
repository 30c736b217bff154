"""What every benchmark report holds and how it is written: the machine's facts and
the installed versions (:func:`machine`), and the report as JSON plus a readable
table (:func:`write_report`).  Imported by the scripts in this folder, which run as
``python bench/<script>.py`` (this folder is then first on ``sys.path``)."""

from __future__ import annotations

import importlib
import json
import os
import platform
from collections.abc import Callable
from pathlib import Path


def machine(**extra) -> dict:
    """Python, the processor, the core count and the versions of Keras, TensorFlow,
    tf2onnx and onnxruntime where each is installed; ``extra`` is added as given."""
    out = {
        "python": platform.python_version(),
        "processor": platform.processor() or platform.machine(),
        "cpus": os.cpu_count(),
    }
    for name in ("keras", "tensorflow", "tf2onnx", "onnxruntime"):
        try:
            out[name] = importlib.import_module(name).__version__
        except ImportError:
            continue
    return {**out, **extra}


def write_report(out: Path, name: str, report: dict, markdown: Callable[[dict], str]) -> str:
    """Write ``out/<name>.json`` and ``out/<name>.md`` (``markdown(report)``), print the
    table and return it."""
    out.mkdir(parents=True, exist_ok=True)
    (out / f"{name}.json").write_text(json.dumps(report, indent=2) + "\n")
    table = markdown(report)
    (out / f"{name}.md").write_text(table)
    print(table)
    return table
