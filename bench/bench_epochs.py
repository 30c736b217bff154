"""Every epoch at full speed: per-epoch seconds of `nincompile train` (TensorFlow,
host feeding), with the batches handed to `fit` as a tf.data pipeline without
autotuning that gathers each batch from the images by index in the epoch's order
(what training does) and, for comparison, as NumPy arrays shuffled per epoch
(``x[order]``: Keras's own pipeline, which autotunes and stalled at each epoch's end:
issue 20).

Usage: python bench/bench_epochs.py [--spec specs/nin_bamd.yaml] [--images 2500]
       [--epochs 5] [--rounds 1]
Each configuration trains in its own process on the same synthetic images (the spec's
model, batch and augmentation; data.dataset: synthetic); the first epoch (tracing,
warm-up) is left out of the spread. Writes bench/results/epochs.json and
bench/results/epochs.md. Figures only; no assertions.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

RUN = r"""
import sys
from nincompile.spec import load_spec
from nincompile.spec.overrides import apply_overrides
from nincompile.train import loop
if sys.argv[1] == "arrays":  # Keras's own pipeline for arrays (autotuned tf.data)
    def arrays(x, y, batch_size, order=None):
        rows = slice(None) if order is None else order
        return {"x": x[rows], "y": y[rows], "batch_size": batch_size}
    loop.host_batches = arrays
source = apply_overrides(load_spec(sys.argv[2]), sys.argv[4:])
loop.train(source, out=sys.argv[3])
"""


def epochs_of(run: Path) -> list[float]:
    with open(run / "history.csv", newline="", encoding="utf-8") as f:
        return [float(row["seconds"]) for row in csv.DictReader(f)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--spec", default=str(ROOT / "specs" / "nin_bamd.yaml"))
    parser.add_argument("--images", type=int, default=2500)
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--rounds", type=int, default=1)
    args = parser.parse_args()
    overrides = [
        "data.dataset=synthetic",
        f"data.limit={args.images}",
        "data.validation_split=0",
        f"train.epochs={args.epochs}",
    ]
    env = {**os.environ, "KERAS_BACKEND": "tensorflow", "TF_CPP_MIN_LOG_LEVEL": "2"}
    results: dict[str, list[list[float]]] = {"dataset": [], "arrays": []}
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(args.rounds):
            for feed in results:  # interleaved, so other load hits both alike
                run = Path(tmp) / f"{feed}-{r}"
                subprocess.run(
                    [sys.executable, "-c", RUN, feed, args.spec, str(run), *overrides],
                    cwd=ROOT, env=env, check=True, capture_output=True,
                )  # fmt: skip
                results[feed].append(epochs_of(run))
    summary = {}
    for feed, rounds in results.items():
        steady = [s for epochs in rounds for s in epochs[1:]]
        fastest = min(steady)
        summary[feed] = {
            "epochs_s": rounds,
            "fastest_s": fastest,
            "slowest_s": max(steady),
            "median_s": statistics.median(steady),
            "worst_over_fastest": max(steady) / fastest,
            "images_per_s_median": args.images / statistics.median(steady),
        }
    out = {
        "machine": {"python": platform.python_version(), "cpus": os.cpu_count()},
        "spec": str(Path(args.spec).relative_to(ROOT)),
        "images": args.images,
        "epochs": args.epochs,
        "rounds": args.rounds,
        "feeds": summary,
    }
    (ROOT / "bench" / "results" / "epochs.json").write_text(json.dumps(out, indent=2) + "\n")
    lines = [
        f"# Epoch times, `{out['spec']}`, {args.images} synthetic images, TensorFlow, "
        f"{os.cpu_count()} cores",
        "",
        "Epochs after the first (tracing); every figure from `history.csv`.",
        "",
        "| feed | epochs (s) | median img/s | slowest / fastest |",
        "|---|---|---:|---:|",
    ]
    for feed, s in summary.items():
        shown = "; ".join(", ".join(f"{e:.1f}" for e in rnd) for rnd in s["epochs_s"])
        lines.append(
            f"| {feed} | {shown} | {s['images_per_s_median']:.0f} | {s['worst_over_fastest']:.2f} |"
        )
    text = "\n".join(lines) + "\n"
    (ROOT / "bench" / "results" / "epochs.md").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
