"""Data-parallel overhead on CPU: `nincompile train` under JAX on 1 device and on 2
host devices (XLA_FLAGS=--xla_force_host_platform_device_count=2), same spec, data and
global batch.  CPU devices share the same cores, so no speed-up is expected; this
measures what the distribution layer costs.  Also prints the per-step gradient
all-reduce volume (parameters x 4 bytes) of the spec.

Usage: python bench/bench_distribute.py [--spec specs/nin_bamd.yaml] [--images 2048]
Writes bench/results/distribute.json and .md.  Figures only; no assertions.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"


def run(spec: str, images: int, epochs: int, devices: int, out: Path) -> dict:
    env = {**os.environ, "KERAS_BACKEND": "jax", "TF_CPP_MIN_LOG_LEVEL": "2",
           "XLA_FLAGS": "--xla_force_host_platform_device_count=2"}  # fmt: skip
    cmd = [sys.executable, "-m", "nincompile.cli", "train", spec, "--out", str(out),
           "--devices", str(devices), "--epochs", str(epochs),
           "--set", "data.dataset=synthetic", "--set", f"data.limit={images}",
           "--set", "data.validation_split=0"]  # fmt: skip
    subprocess.run(cmd, cwd=ROOT, env=env, check=True, capture_output=True)
    metrics = json.loads((out / "metrics.json").read_text())
    rows = [r for r in (out / "history.csv").read_text().splitlines()[2:]]  # skip epoch 1
    ips = [float(r.split(",")[7]) for r in rows]
    return {"devices": devices, "images_per_second": sum(ips) / len(ips),
            "distribution": metrics["distribution"]}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--spec", default="specs/nin_bamd.yaml")
    parser.add_argument("--images", type=int, default=2048)
    parser.add_argument("--epochs", type=int, default=3, help="the first is warm-up")
    args = parser.parse_args()
    sys.path.insert(0, str(ROOT))
    from nincompile import api

    params = api.compile_spec(ROOT / args.spec).counts()["total"]
    with tempfile.TemporaryDirectory() as tmp:
        one = run(args.spec, args.images, args.epochs, 1, Path(tmp) / "one")
        two = run(args.spec, args.images, args.epochs, 2, Path(tmp) / "two")
    ratio = two["images_per_second"] / one["images_per_second"]
    out = {
        "machine": {"platform": platform.platform(), "cpus": os.cpu_count(),
                    "load_at_end": os.getloadavg()[0]},
        "spec": args.spec, "images": args.images, "timed_epochs": args.epochs - 1,
        "one_device": one, "two_devices": two, "two_over_one": ratio,
        "allreduce_bytes_per_step": params * 4, "params": params,
    }  # fmt: skip
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "distribute.json").write_text(json.dumps(out, indent=2) + "\n")
    table = (
        f"| JAX on CPU, {args.spec}, synthetic {args.images} images | images/s |\n|---|---:|\n"
        f"| 1 device | {one['images_per_second']:,.0f} |\n"
        f"| 2 host devices (DataParallel) | {two['images_per_second']:,.0f} |\n"
        f"| ratio | {ratio:.3f} |\n\n"
        f"Gradient all-reduce per step: {params:,} parameters x 4 bytes = "
        f"{params * 4 / 1e6:.2f} MB.\n"
    )
    (RESULTS / "distribute.md").write_text(table)
    print(table)


if __name__ == "__main__":
    main()
