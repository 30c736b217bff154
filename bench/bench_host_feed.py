"""Host memory of feeding training batches to ``fit`` (issue 20 / the reliability
issue): the training set must be held once, not once more per epoch.

Usage: python bench/bench_host_feed.py [--images 50000] [--epochs 2]
       [--backends tensorflow,jax,torch] [--out bench/results]

Each measurement runs in its own process: ``--images`` random CIFAR-sized uint8
images (32 x 32 x 3, 3 KiB each: 146.5 MiB for 50,000) and int32 labels, then
``--epochs`` epochs of iterating every batch of 128 that ``fit`` would receive, in a
shuffled order (``nincompile.data.split.epoch_order``), with nothing trained (so only
the feeding counts).  Two feeds:

* ``indexed``: ``nincompile.train.loop.host_batches(x, y, 128, order)``, what
  training does: each batch gathered from the images by index;
* ``copied``: what training did before: a shuffled copy ``x[order]`` per epoch, under
  TensorFlow handed to ``tf.data.Dataset.from_tensor_slices`` (which copies it again),
  under JAX and PyTorch sliced in batches.

The figure is the peak resident set size (``ru_maxrss``) less the resident size
after the images were made and the backend imported, in MiB, against the images'
size.  Writes ``host_feed.json`` and ``host_feed.md`` under ``--out``.  Peaks move by
a few MiB from run to run; nothing is asserted.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

CHILD = r"""
import json, resource, sys
import numpy as np
from nincompile.data.split import epoch_order
from nincompile.train import loop
feed, n, epochs = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
x = np.empty((n, 32, 32, 3), np.uint8)
rng = np.random.default_rng(0)
for i in range(0, n, 1000):  # in parts: no temporary as large as the images
    x[i:i + 1000] = rng.integers(0, 256, x[i:i + 1000].shape, dtype=np.uint8)
y = (np.arange(n) % 10).astype(np.int32)

def rss_mib():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * resource.getpagesize() / 2**20

def batches(order):
    if feed == "indexed":
        data = loop.host_batches(x, y, 128, order)["x"]
    elif loop.keras.backend.backend() == "tensorflow":
        import tensorflow as tf
        data = tf.data.Dataset.from_tensor_slices((x[order], y[order])).batch(128)
    else:
        xs, ys = x[order], y[order]
        data = [(xs[i:i + 128], ys[i:i + 128]) for i in range(0, n, 128)]
    if hasattr(data, "as_numpy_iterator"):
        return data.as_numpy_iterator()
    return (data[i] for i in range(len(data)))

for _ in batches(np.arange(256)):  # import and start the backend's feeding
    pass
base = rss_mib()
seen = 0
for epoch in range(epochs):
    for xb, yb in batches(epoch_order(n, 0, epoch)):
        seen += len(yb)
    xb = yb = None  # a batch may be a view that keeps a shuffled copy alive
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print(json.dumps({"base_mib": base, "peak_mib": peak, "over_base_mib": peak - base,
                  "images_mib": x.nbytes / 2**20, "batches_seen": seen}))
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=50000)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--backends", default="tensorflow,jax,torch")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results")
    args = parser.parse_args()
    results = {}
    for backend in args.backends.split(","):
        env = {**os.environ, "KERAS_BACKEND": backend, "TF_CPP_MIN_LOG_LEVEL": "2",
               "PYTHONPATH": str(ROOT)}  # fmt: skip
        for feed in ("copied", "indexed"):
            proc = subprocess.run(
                [sys.executable, "-c", CHILD, feed, str(args.images), str(args.epochs)],
                cwd=ROOT, env=env, capture_output=True, text=True,
            )  # fmt: skip
            if proc.returncode:
                raise SystemExit(f"{backend} {feed} failed:\n{proc.stderr[-3000:]}")
            results[f"{backend}:{feed}"] = json.loads(proc.stdout.strip().splitlines()[-1])
            print(backend, feed, results[f"{backend}:{feed}"], flush=True)
    out = {
        "images": args.images,
        "epochs": args.epochs,
        "machine": {"python": platform.python_version(), "cpus": os.cpu_count()},
        "load_average_end": list(os.getloadavg()),
        "feeds": results,
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "host_feed.json").write_text(json.dumps(out, indent=2) + "\n")
    images_mib = next(iter(results.values()))["images_mib"]
    lines = [
        f"# Host memory of feeding {args.images:,} images ({images_mib:.1f} MiB) for "
        f"{args.epochs} epochs",
        "",
        "Peak RSS over the RSS after the images were made (MiB); `bench/bench_host_feed.py`.",
        "",
        "| backend | shuffled copy per epoch (before) | gathered by index (now) |",
        "|---|---:|---:|",
    ]
    for backend in args.backends.split(","):
        before = results[f"{backend}:copied"]["over_base_mib"]
        now = results[f"{backend}:indexed"]["over_base_mib"]
        lines.append(f"| {backend} | {before:.1f} | {now:.1f} |")
    text = "\n".join(lines) + "\n"
    (args.out / "host_feed.md").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
