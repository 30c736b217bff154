"""What every benchmark report holds and how it is written: the machine's facts and
the installed versions (:func:`machine`), its measured fp32 matmul peak
(:func:`matmul_peak`, the yardstick of "share of peak", against a spec's
multiply-accumulates, :func:`macs_per_image`), and the report as JSON plus
a readable table (:func:`write_report`).  Imported by the scripts in this folder, which run as
``python bench/<script>.py`` (this folder is then first on ``sys.path``)."""

from __future__ import annotations

import importlib
import json
import os
import platform
import time
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


def matmul_peak(n: int = 2048, runs: int = 5) -> dict:
    """Best fp32 GFLOP/s of an n x n matmul, NumPy and PyTorch (all cores)."""
    import numpy as np

    out = {}
    a = np.random.default_rng(0).standard_normal((n, n), dtype=np.float32)
    b = a.T.copy()
    best = min(_timed(lambda: a @ b) for _ in range(runs))
    out["numpy_gflops"] = 2 * n**3 / best / 1e9
    try:
        import torch

        ta, tb = torch.from_numpy(a), torch.from_numpy(b)
        best = min(_timed(lambda: ta @ tb) for _ in range(runs))
        out["torch_gflops"] = 2 * n**3 / best / 1e9
        out["torch_threads"] = torch.get_num_threads()
    except ImportError:
        pass
    out["peak_gflops"] = max(v for k, v in out.items() if k.endswith("gflops"))
    out["size"] = n
    return out


def _timed(fn) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def macs_per_image(spec) -> int:
    """The multiply-accumulates of one image's forward pass through ``spec`` (a path),
    as nincompile counts them."""
    from nincompile import api
    from nincompile.spec import load_spec

    return int(api.compile_source(load_spec(spec)).graph.macs)
