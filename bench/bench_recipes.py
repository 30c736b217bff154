"""The seeds' CIFAR-10 recipes run by `nincompile train` on the real CIFAR-10 JPEGs.

Usage: python bench/bench_recipes.py --data /path/to/train [--specs baseline lenet5]

`--data` is the `train/` folder of `shared/data/cifar10-train-jpeg.tar.gz` (extract it
first).  Each spec trains with its own recipe (Adam, batch 32, pixels/255, 5 epochs for
Baseline and LeNet5), validating on a seeded, stratified 10 % held out of the 50,000
images (the archive has no test split).  Writes bench/results/recipes.json and
bench/results/recipes.md.  Figures only; no assertions.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"
#: The same recipe written by hand in Keras, measured on CIFAR-10's test split
#: (figures from the project's issue on training; the seeds' logs resume from a
#: checkpoint, so their last epoch is not a 5-epoch figure).
REFERENCE = {"baseline": 0.543, "lenet5": 0.471}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--data", required=True, help="the CIFAR-10 train/ class folder")
    parser.add_argument("--specs", nargs="+", default=["baseline", "lenet5"])
    parser.add_argument("--cache-dir", default=None)
    args = parser.parse_args()
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

    import keras

    import nincompile

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.specs:
            spec = ROOT / "specs" / f"{name}.yaml"
            t0 = time.perf_counter()
            result = nincompile.train(spec, data=args.data, out=Path(tmp) / name,
                                      cache_dir=args.cache_dir)  # fmt: skip
            wall = time.perf_counter() - t0
            m = result.metrics
            rows.append(
                {
                    "spec": name,
                    "command": f"nincompile train specs/{name}.yaml --data {args.data}",
                    "epochs": m["epochs_completed"],
                    "train_images": m["train_images"],
                    "val_images": m["val_images"],
                    "final_val_accuracy": m["final"]["val_accuracy"],
                    "best_val_accuracy": m["best"]["val_accuracy"],
                    "final_train_accuracy": m["final"]["accuracy"],
                    "reference_test_accuracy": REFERENCE.get(name),
                    "train_seconds": m["train_seconds"],
                    "wall_seconds": wall,
                    "images_per_second": m["images_per_second"],
                }
            )
    out = {
        "machine": {"platform": platform.platform(), "cpus": os.cpu_count()},
        "backend": keras.backend.backend(),
        "keras": keras.__version__,
        "data": str(args.data),
        "results": rows,
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "recipes.json").write_text(json.dumps(out, indent=2) + "\n")
    lines = [
        "| spec | epochs | final val acc | best val acc | hand-written Keras (test split) "
        "| train time | images/s |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        ref = r["reference_test_accuracy"]
        lines.append(
            f"| {r['spec']} | {r['epochs']} | {r['final_val_accuracy']:.2%} "
            f"| {r['best_val_accuracy']:.2%} | {f'{ref:.1%}' if ref else '-'} "
            f"| {r['train_seconds']:.0f} s | {r['images_per_second']:,.0f} |"
        )
    table = "\n".join(lines) + "\n"
    (RESULTS / "recipes.md").write_text(table)
    print(table)


if __name__ == "__main__":
    main()
