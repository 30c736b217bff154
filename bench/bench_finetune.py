"""Fine-tuning vs training from scratch on real CIFAR-10 JPEGs (issue 19).

Usage: python bench/bench_finetune.py --data /path/to/train [--per-class 500]
       [--held-out 200] [--epochs 5]

`--data` is the `train/` folder of `shared/data/cifar10-train-jpeg.tar.gz` (extract it
first).  Baseline (`specs/baseline.yaml`, its own recipe) is trained on the first five
classes (airplane ... deer); then, on the other five (dog ... truck), the same spec with
a five-way last layer is trained twice for the same epochs on the same images: once
fine-tuned from the first run's weights with its convolution stage frozen
(`train.freeze: [stage1]`, `train.init_skip: [head3]`), once from scratch; and once
more fine-tuned in two phases (`train.phases`: 2 epochs training the new last layer
only at Adam's 1e-3, then the rest of the epochs training everything at 2e-4).  Each run
takes `--per-class` images per class for training and is validated on `--held-out`
other images per class (`--val`), the same for both.  Writes
bench/results/finetune.json and bench/results/finetune.md.  Figures only; no
assertions.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"
CLASSES = "airplane automobile bird cat deer dog frog horse ship truck".split()
FIRST, LAST = CLASSES[:5], CLASSES[5:]
#: What each result keeps of the run's metrics.json, as it is.
KEPT = ("epochs_completed", "train_images", "val_images", "params", "train_seconds", "init_weights")
#: The markdown table: (title, cell of a result row).
COLUMNS = (
    ("run", "{run}"),
    ("train images", "{train_images:,}"),
    ("held-out images", "{val_images:,}"),
    ("trainable params", "{trainable}"),
    ("held-out acc (final)", "{held_out_accuracy:.2%}"),
    ("best", "{best_held_out_accuracy:.2%}"),
    ("train time", "{train_seconds:.0f} s"),
)


def _subset(data: Path, out: Path, classes, start: int, count: int) -> Path:
    """``out`` holding images ``start .. start + count`` (sorted by name) of each class."""
    for name in classes:
        files = sorted((data / name).iterdir())[start : start + count]
        if len(files) < count:
            raise SystemExit(f"{data / name} has fewer than {start + count} images")
        (out / name).mkdir(parents=True)
        for f in files:
            shutil.copyfile(f, out / name / f.name)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--data", required=True, help="the CIFAR-10 train/ class folder")
    parser.add_argument("--per-class", type=int, default=500, help="training images per class")
    parser.add_argument("--held-out", type=int, default=200, help="validation images per class")
    parser.add_argument("--epochs", type=int, default=5, help="per run (at least 3)")
    parser.add_argument("--cache-dir", default=None)
    args = parser.parse_args()
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

    import keras

    import nincompile

    data = Path(args.data)
    spec = ROOT / "specs" / "baseline.yaml"
    common = ["data.classes=null", f"train.epochs={args.epochs}"]
    five = [*common, "head.2.dense=5"]
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        n, v = args.per_class, args.held_out
        first = _subset(data, tmp / "first5", FIRST, 0, n)
        first_val = _subset(data, tmp / "first5-val", FIRST, n, v)
        last = _subset(data, tmp / "last5", LAST, 0, n)
        last_val = _subset(data, tmp / "last5-val", LAST, n, v)
        weights = json.dumps(str(tmp / "first5-run"))
        runs = [
            ("pretrain on the first 5 classes", "first5-run", first, first_val, common),
            (
                "fine-tune on the last 5 (stage1 frozen)",
                "finetuned",
                last,
                last_val,
                [
                    *five,
                    f"train.init_weights={weights}",
                    "train.init_skip=[head3]",
                    "train.freeze=[stage1]",
                ],
            ),  # fmt: skip
            ("from scratch on the last 5", "scratch", last, last_val, five),
            (
                "fine-tune in 2 phases (head only, then all)",
                "phased",
                last,
                last_val,
                [
                    *five,
                    f"train.init_weights={weights}",
                    "train.init_skip=[head3]",
                    "train.epochs=null",
                    "train.phases=[{epochs: 2, freeze: {all_but: [head3]}, learning_rate: 0.001}, "
                    f"{{epochs: {args.epochs - 2}, freeze: [], learning_rate: 0.0002}}]",
                ],
            ),  # fmt: skip
        ]
        for what, name, train_dir, val_dir, sets in runs:
            t0 = time.perf_counter()
            result = nincompile.train(spec, overrides=sets, data=train_dir, val=val_dir,
                                      out=tmp / name, cache_dir=args.cache_dir)  # fmt: skip
            m = result.metrics
            row = {"run": what, "overrides": sets, "wall_seconds": time.perf_counter() - t0}
            row.update({key: m.get(key) for key in KEPT})
            phases = m.get("phases") or [{"params": m["params"]}]  # each phase's counts
            row.update(
                trainable=", then ".join(f"{p['params']['trainable']:,}" for p in phases),
                held_out_accuracy=m["final"]["val_accuracy"],
                best_held_out_accuracy=m["best"]["val_accuracy"],
                train_accuracy=m["final"]["accuracy"],
            )
            rows.append(row)
    out = {
        "machine": {"platform": platform.platform(), "cpus": os.cpu_count()},
        "backend": keras.backend.backend(),
        "keras": keras.__version__,
        "data": str(data),
        "per_class": args.per_class,
        "held_out_per_class": args.held_out,
        "epochs": args.epochs,
        "results": rows,
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "finetune.json").write_text(json.dumps(out, indent=2) + "\n")
    lines = [
        f"Baseline, {args.epochs} epochs per run, {args.per_class} training and "
        f"{args.held_out} held-out CIFAR-10 images per class.",
        "",
        "| " + " | ".join(title for title, _ in COLUMNS) + " |",
        "|" + "---|" * len(COLUMNS),
    ]
    lines += ["| " + " | ".join(cell.format(**r) for _, cell in COLUMNS) + " |" for r in rows]
    table = "\n".join(lines) + "\n"
    (RESULTS / "finetune.md").write_text(table)
    print(table)


if __name__ == "__main__":
    main()
