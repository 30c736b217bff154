"""Feeding training from arrays kept on the device against feeding it from host memory
(``data.on_device: true`` vs ``false``), with ``nincompile train``'s own loop.

Usage: KERAS_BACKEND=jax python bench/bench_feed.py [--data /tmp/cifar/train]
       [--spec specs/nin_bamd.yaml --spec specs/lenet5.yaml] [--images 2048]
       [--epochs 2] [--rounds 2] [--out bench/results] [--set KEY=VALUE ...]
       [--cache DIR]

For each spec, ``train()`` runs ``1 + --epochs`` epochs on ``--images`` images of the
class folder (``data.limit``, no validation split), once with the data on the device
and once from the host, ``--rounds`` times, the order of the two alternating from
round to round so that load from other processes falls on both alike.  Epoch 0
(tracing and compiling) is left out; each figure is the median over the other epochs
of all rounds of ``images / epoch seconds`` (history.csv's ``images_per_second``).
Also reported: the weights of the two ways after the same epochs (they must be
equal), and, from the device rate, the minutes 200 epochs of 50,000 images would take
(the seed's NIN recipe).  Writes ``feed.json`` and ``feed.md`` under ``--out`` and
prints the table.  On a CPU "the device" is host memory too, so what differs is only
the per-batch conversion ``fit`` does; the comparison that matters is on a GPU.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import tempfile
import time
from pathlib import Path

from _common import write_report

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_DATA = Path("/tmp/cifar/train")
RECIPE_IMAGES, RECIPE_EPOCHS = 50_000, 200


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--spec", type=Path, action="append", help="specs (default NIN-BN)")
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA, help="class-folder data")
    parser.add_argument("--images", type=int, default=2048, help="training images (data.limit)")
    parser.add_argument("--epochs", type=int, default=2, help="timed epochs after 1 warm-up")
    parser.add_argument("--rounds", type=int, default=2, help="alternating rounds")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results")
    parser.add_argument(
        "--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
        help="extra spec override for every run, e.g. train.mixed_precision=bfloat16",
    )  # fmt: skip
    parser.add_argument("--cache", type=Path, help="decoded-image cache (default: a temporary one)")
    args = parser.parse_args()
    specs = args.spec or [ROOT / "specs" / "nin_bamd.yaml"]
    if not args.data.is_dir():
        raise SystemExit(
            f"{args.data} is missing: mkdir -p /tmp/cifar && "
            "tar xzf ../shared/data/cifar10-train-jpeg.tar.gz -C /tmp/cifar"
        )

    import numpy as np

    import nincompile
    from nincompile import __version__
    from nincompile.keras_import import import_keras
    from nincompile.train import recipe

    keras = import_keras()
    backend = keras.backend.backend()
    results = []
    with tempfile.TemporaryDirectory(prefix="bench_feed_") as tmp:
        cache = args.cache or Path(tmp) / "cache"
        for spec_path in specs:
            per = {True: [], False: []}
            weights = {}
            for r in range(args.rounds):
                order = (True, False) if r % 2 == 0 else (False, True)
                for on_device in order:
                    sets = [
                        f"data.limit={args.images}",
                        f"train.epochs={1 + args.epochs}",
                        "data.validation_split=0",
                        f"data.on_device={'true' if on_device else 'false'}",
                        *args.overrides,
                    ]
                    out = Path(tmp) / f"{spec_path.stem}-{on_device}-{r}"
                    res = nincompile.train(spec_path, overrides=sets, data=args.data, out=out,
                                          cache_dir=cache)  # fmt: skip
                    assert res.metrics["data_on_device"] is on_device
                    per[on_device] += [row["images_per_second"] for row in res.history[1:]]
                    if r == 0:
                        model = keras.saving.load_model(out / "model.keras", compile=False)
                        weights[on_device] = model.get_weights()
                    print(f"{spec_path.stem} round {r} on_device={on_device}: "
                          f"{[round(row['images_per_second']) for row in res.history]}",
                          flush=True)  # fmt: skip
            diff = max(
                float(np.max(np.abs(a - b)))
                for a, b in zip(weights[True], weights[False], strict=True)
            )
            dev, host = statistics.median(per[True]), statistics.median(per[False])
            results.append(
                {
                    "spec": spec_path.stem,
                    "images": args.images,
                    "device_images_per_s": dev,
                    "host_images_per_s": host,
                    "ratio": dev / host,
                    "device_epochs": per[True],
                    "host_epochs": per[False],
                    "max_weight_diff": diff,
                    "recipe_minutes": RECIPE_IMAGES * RECIPE_EPOCHS / dev / 60,
                }
            )
    report = {
        "backend": backend,
        "device": recipe.device(),
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
        "versions": {"nincompile": __version__, "keras": keras.__version__},
        "settings": vars(args)
        | {
            "spec": [str(s) for s in specs],
            "data": str(args.data),
            "out": str(args.out),
            "cache": str(args.cache) if args.cache else None,
        },  # fmt: skip
        "date": time.strftime("%Y-%m-%d %H:%M:%S"),
        "results": results,
    }
    write_report(args.out, "feed", report, markdown)


def markdown(r: dict) -> str:
    dev = r["device"]
    lines = [
        f"# Feeding from the device vs from the host ({r['backend']}, {dev['kind']}: "
        f"{dev['name']}, {r['date']})",
        "",
        "| spec | images | on device img/s | from host img/s | device / host | "
        "max weight diff | 200 epochs x 50,000 images at the device rate |",
        "|---|---|---|---|---|---|---|",
    ]
    for x in r["results"]:
        lines.append(
            f"| {x['spec']} | {x['images']:,} | {x['device_images_per_s']:,.0f} | "
            f"{x['host_images_per_s']:,.0f} | {x['ratio']:.3f} | {x['max_weight_diff']:.1e} | "
            f"{x['recipe_minutes']:,.0f} min |"
        )
    lines.append("")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
