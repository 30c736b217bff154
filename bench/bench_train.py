"""Training throughput on CPU: `nincompile train` against hand-written Keras, the input
pipeline alone, and the cost of the augmented pipeline.

Usage: python bench/bench_train.py [--images 2048] [--epochs 3] [--data /tmp/cifar/train]
       [--spec specs/nin_bamd.yaml] [--max-load 0.5] [--wait 600]

Everything trains on one subset of the CIFAR-10 training folder (``--images``, chosen
by the spec's ``data.limit``), in batches of the spec's ``train.batch_size``, with the
spec's SGD settings.  The four trainings are interleaved epoch by epoch, so that load
from other processes on a shared machine falls on all of them alike: ``train()`` runs
1 + ``--epochs`` epochs, and after each (from the reporter's ``epoch_end``) every other
model trains one epoch with ``model.fit(x, y, epochs=1, shuffle=True)``, in an order
that rotates from round to round.  Round 0 (tracing) is the warm-up; each figure is
images/s over the timed rounds, each epoch timed as the wall time of its ``fit`` call
(``train()``'s own figure: the ``seconds`` column of history.csv, which times the same).

1. ``train()`` (what ``nincompile train`` runs) on the spec with ``--set data.limit=N
   train.epochs=1+E data.validation_split=0``, against the same model
   (``api.build_spec``) behind hand-written Keras layers (``Normalization``,
   ``RandomFlip``, ``RandomTranslation``).  Target: ratio >= 0.98.
2. The input pipeline alone over the whole folder: a decode-cache hit, then one epoch of
   uint8 batches (``x[order[i:i + b]]``) through ``Preprocess`` + the spec's
   augmentation layers (the wrapper of ``pipeline.wrap`` without the model), called as
   a ``tf.function`` with ``training=True``; against the training rate of (1).
   Target: ratio >= 10.
3. ``pipeline.wrap``'s model (uint8 in, preprocess + augmentation + NIN-BN) against the
   same model fed pre-made normalised float32 tensors without augmentation.
   Target: ratio >= 0.95.

The ratios are of the totals; the JSON also has every round's figures and the median
of the per-round ratios.  Also: the first read of the folder (JPEG decode into a fresh,
temporary cache folder; the files themselves are in the OS page cache) and a cache hit.
Before measuring it waits (polling every 30 s, at most ``--wait`` seconds) for the
1-minute load average to fall below ``--max-load``, and records the load at the start
and after each phase and round.  Writes bench/results/train.json and
bench/results/train.md and prints the table.  Targets are reported, never asserted.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import platform
import statistics
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_SPEC = ROOT / "specs" / "nin_bamd.yaml"
DEFAULT_DATA = Path("/tmp/cifar/train")
TARGETS = {"train_vs_keras": 0.98, "pipeline_vs_training": 10.0, "augmented_vs_float": 0.95}


def wait_for_quiet(max_load: float, wait_s: float, poll_s: float = 30.0) -> dict:
    """Poll the 1-minute load average until it is below ``max_load`` (or time runs out)."""
    first = os.getloadavg()
    start = time.monotonic()
    while os.getloadavg()[0] >= max_load and time.monotonic() - start < wait_s:
        print(f"load average {os.getloadavg()[0]:.2f} >= {max_load}; waiting {poll_s:.0f} s")
        time.sleep(poll_s)
    now = os.getloadavg()
    return {
        "max_load": max_load,
        "before_wait": list(first),
        "at_start": list(now),
        "waited_s": round(time.monotonic() - start, 1),
        "quiet": now[0] < max_load,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--spec", type=Path, default=DEFAULT_SPEC, help="spec (default NIN-BN)")
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA, help="class-folder data")
    parser.add_argument("--images", type=int, default=2048, help="training images (data.limit)")
    parser.add_argument("--epochs", type=int, default=3, help="timed rounds after 1 warm-up")
    parser.add_argument("--cache-hits", type=int, default=3, help="timed decode-cache hits")
    parser.add_argument("--max-load", type=float, default=0.5, help="wait for load below this")
    parser.add_argument("--wait", type=float, default=600, help="longest wait for it (s)")
    args = parser.parse_args()
    if not args.data.is_dir():
        raise SystemExit(
            f"{args.data} is missing: mkdir -p /tmp/cifar && "
            "tar xzf /work/shared/data/cifar10-train-jpeg.tar.gz -C /tmp/cifar"
        )

    import numpy as np

    from nincompile import __version__, api
    from nincompile.data import pipeline, sources
    from nincompile.data.prepare import training_data
    from nincompile.data.split import epoch_order
    from nincompile.keras_import import import_keras
    from nincompile.spec import load_spec
    from nincompile.spec.overrides import apply_overrides
    from nincompile.train import recipe
    from nincompile.train.loop import Reporter, train

    keras = import_keras()
    backend = keras.backend.backend()
    load = wait_for_quiet(args.max_load, args.wait)
    t_bench = time.perf_counter()
    phases = {}  # the 1-minute load average after each phase: was anything else running?

    overrides = [
        f"data.limit={args.images}",
        f"train.epochs={1 + args.epochs}",
        "data.validation_split=0",
    ]
    source = apply_overrides(load_spec(args.spec), overrides)
    spec = source.spec
    h, w, c = spec.input
    bs = spec.train.batch_size
    classes = list(spec.data.classes) if spec.data.classes else None
    mean, std = pipeline.normalisation(spec.data, c)

    with tempfile.TemporaryDirectory(prefix="bench_train_") as tmp:
        cache = Path(tmp) / "cache"

        # ---- decode: first read into a fresh cache, then cache hits
        def read():
            return sources.read_source(
                args.data, classes=classes, channels=c, size=(h, w), cache_dir=cache
            )

        t0 = time.perf_counter()
        raw = read()
        first_read_s = time.perf_counter() - t0
        n_folder = len(raw.labels)
        hits = []
        for _ in range(args.cache_hits):
            t0 = time.perf_counter()
            raw = read()
            hits.append(time.perf_counter() - t0)
        cache_hit_s = statistics.median(hits)
        phases["decode"] = os.getloadavg()[0]

        # ---- (2) input pipeline alone: batching + Preprocess + augmentation
        inputs = keras.Input(raw.images.shape[1:], dtype="uint8")
        z = pipeline.Preprocess((h, w), mean, std, spec.data.resize, name="preprocess")(inputs)
        aug_layers = pipeline.augment_layers(spec.data.augment)
        for layer in aug_layers:
            z = layer(z)
        front = keras.Model(inputs, z, name="pipeline_front")
        if backend == "tensorflow":
            import tensorflow as tf

            sig = [tf.TensorSpec((None, *raw.images.shape[1:]), tf.uint8)]
            apply = tf.function(lambda b: front(b, training=True), input_signature=sig)
        else:
            apply = lambda b: front(b, training=True)  # noqa: E731  (eager on JAX/torch)

        def pipeline_epoch(images, epoch):
            order = epoch_order(len(images), spec.train.seed, epoch)
            out = None
            for i in range(0, len(images), bs):
                out = apply(images[order[i : i + bs]])
            return np.asarray(keras.ops.convert_to_numpy(out)).shape

        pipeline_epoch(raw.images[: 4 * bs], 0)  # trace
        t0 = time.perf_counter()
        pipeline_epoch(raw.images, 1)
        pipeline_epoch_s = time.perf_counter() - t0
        pipe = {
            "images": n_folder,
            "layers": ["preprocess", *(layer.name for layer in aug_layers)],
            "epoch_s": pipeline_epoch_s,
            "cache_hit_s": cache_hit_s,
            "images_per_s": n_folder / (cache_hit_s + pipeline_epoch_s),
            "images_per_s_without_cache_hit": n_folder / pipeline_epoch_s,
        }
        del raw
        phases["input_pipeline"] = os.getloadavg()[0]

        # ---- the images train() will use (data.limit's stratified subset), for the others
        data = training_data(spec, args.data, n_outputs=10, cache_dir=cache).train
        x, y = data.images, data.labels
        xf = (x.astype(np.float32) - np.float32(mean)) / np.float32(std)

        def fresh_model():
            keras.utils.set_random_seed(spec.train.seed)
            return api.build_spec(args.spec)[1]

        def compiled(model):
            t = spec.train
            sgd = keras.optimizers.SGD(t.learning_rate, momentum=t.momentum, nesterov=t.nesterov)
            model.compile(optimizer=sgd, loss=recipe.loss(t, 10), metrics=recipe.metrics(t))
            return model

        # (1b) hand-written Keras: Normalization + RandomFlip + RandomTranslation
        inputs = keras.Input(x.shape[1:], dtype="uint8")
        z = keras.layers.Normalization(mean=mean, variance=[s * s for s in std])(inputs)
        aug = spec.data.augment
        if aug is not None and aug.flip:
            z = keras.layers.RandomFlip(aug.flip)(z)
        if aug is not None and aug.shift:
            z = keras.layers.RandomTranslation(aug.shift, aug.shift, fill_mode="constant")(z)
        wrapped_model = pipeline.wrap(fresh_model(), x.shape[1:], spec.data)
        others = {
            "keras_by_hand": (compiled(keras.Model(inputs, fresh_model()(z))), x),
            # (3) pipeline.wrap (uint8, preprocess + augmentation) vs pre-normalised floats
            "wrapped_augmented": (compiled(wrapped_model), x),
            "float_no_augmentation": (compiled(fresh_model()), xf),
        }
        seconds = {name: {} for name in others}

        # ---- (1a) train(), and after each of its epochs one epoch of each other model
        class Interleave(Reporter):  # no per-batch hook (wants_batches stays False)
            def __init__(self):
                self.begin, self.done, self.load = {}, {}, {}

            def epoch_begin(self, epoch, epochs, steps, batch_size):
                self.begin[epoch] = time.perf_counter()

            def epoch_end(self, row, epochs):
                e = row["epoch"]
                names = list(others)
                k = e % len(names)
                for name in names[k:] + names[:k]:  # the order rotates from round to round
                    model, xs = others[name]
                    t0 = time.perf_counter()
                    model.fit(xs, y, batch_size=bs, epochs=1, shuffle=True, verbose=0)
                    seconds[name][e] = time.perf_counter() - t0
                self.load[e] = os.getloadavg()[0]
                self.done[e] = time.perf_counter()

        clock = Interleave()
        t0 = time.perf_counter()
        result = train(source, data=args.data, out=Path(tmp) / "run", cache_dir=cache,
                       reporter=clock)  # fmt: skip
        t_end = time.perf_counter()
        with open(result.path / "history.csv", newline="") as f:
            rows = list(csv.DictReader(f))
    n = int(result.metrics["train_images"])
    assert n == len(y)
    epochs = range(1, 1 + args.epochs)  # epoch 0 (tracing) is the warm-up round
    seconds["nincompile_train"] = {int(r["epoch"]): float(r["seconds"]) for r in rows}
    # commit: from the end of the round to the next epoch_begin (or train()'s return)
    commit = [clock.begin.get(e + 1, t_end) - clock.done[e] for e in epochs]
    per_round = [
        {"epoch": e, "load_1min": clock.load[e]} | {name: n / seconds[name][e] for name in seconds}
        for e in epochs
    ]

    def figure(name: str) -> dict:
        timed_s = sum(seconds[name][e] for e in epochs)
        return {
            "images_per_s": n * args.epochs / timed_s,
            "timed_s": timed_s,
            "warmup_epoch_s": seconds[name][0],
            "epoch_s": [seconds[name][e] for e in sorted(seconds[name])],
        }

    nin = figure("nincompile_train") | {
        "overrides": overrides,
        "history_images_per_second": [float(r["images_per_second"]) for r in rows],
        "images_per_s_end_to_end": n * args.epochs
        / (sum(seconds["nincompile_train"][e] for e in epochs) + sum(commit)),
        "commit_s_per_epoch": statistics.mean(commit),
        "jit_compile": result.metrics.get("jit_compile"),
        "dtype_policy": result.metrics.get("dtype_policy"),
    }  # fmt: skip
    hand, wrapped, plain = (
        figure(name) | {"jit_compile": bool(others[name][0].jit_compile)} for name in others
    )
    load_end = list(os.getloadavg())

    def paired(a: str, b: str) -> float:
        return statistics.median(r[a] / r[b] for r in per_round)

    ratios = {
        "train_vs_keras": nin["images_per_s"] / hand["images_per_s"],
        "pipeline_vs_training": pipe["images_per_s"] / nin["images_per_s"],
        "augmented_vs_float": wrapped["images_per_s"] / plain["images_per_s"],
    }
    median_round_ratios = {
        "train_vs_keras": paired("nincompile_train", "keras_by_hand"),
        "augmented_vs_float": paired("wrapped_augmented", "float_no_augmentation"),
    }
    import tensorflow as tf  # noqa: F811  (versions; tensorflow-cpu is a dependency)

    result_json = {
        "machine": {
            "python": platform.python_version(),
            "processor": platform.processor() or platform.machine(),
            "cpus": os.cpu_count(),
            "load_average": {**load, "at_end": load_end, "after_phase_1min": phases},
        },
        "backend": backend,
        "device": recipe.device(),
        "versions": {
            "nincompile": __version__,
            "keras": keras.__version__,
            "tensorflow": tf.__version__,
            "numpy": np.__version__,
        },
        "sizes": {
            "spec": str(args.spec.relative_to(ROOT))
            if args.spec.is_relative_to(ROOT)
            else str(args.spec),
            "data": str(args.data),
            "folder_images": n_folder,
            "train_images": n,
            "batch_size": bs,
            "warmup_epochs": 1,
            "timed_epochs": args.epochs,
        },
        "decode": {
            "first_read_s": first_read_s,
            "first_read_images_per_s": n_folder / first_read_s,
            "cache_hit_s": cache_hit_s,
            "cache_hit_runs_s": hits,
            "cache_hit_images_per_s": n_folder / cache_hit_s,
            "note": "fresh temporary cache folder; JPEG files in the OS page cache",
        },
        "method": {
            "interleaved": "after each train() epoch (reporter.epoch_end) one epoch of each "
            "other model, model.fit(x, y, epochs=1, shuffle=True), order rotating per round",
            "epoch_time": "wall time of one fit call (train(): history.csv seconds)",
            "warmup": "round 0 (tracing) excluded",
            "optimizer": "the spec's SGD settings for the others (train() adds its schedule)",
        },
        "nincompile_train": nin,
        "keras_by_hand": hand,
        "input_pipeline": pipe,
        "wrapped_augmented": wrapped,
        "float_no_augmentation": plain,
        "per_round_images_per_s": per_round,
        "ratios": ratios,
        "median_of_per_round_ratios": median_round_ratios,
        "targets": {k: {"target": t, "met": ratios[k] >= t} for k, t in TARGETS.items()},
        "bench_wall_s": time.perf_counter() - t_bench,
    }
    out = ROOT / "bench" / "results" / "train.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result_json, indent=2) + "\n")
    md = markdown(result_json)
    (out.parent / "train.md").write_text(md)
    print(md)
    print(f"wrote {out.relative_to(ROOT)} and bench/results/train.md")


def markdown(r: dict) -> str:
    s, d, nin, pipe = r["sizes"], r["decode"], r["nincompile_train"], r["input_pipeline"]
    la = r["machine"]["load_average"]
    rounds = r["per_round_images_per_s"]
    lines = [
        "# Training throughput (CPU)",
        "",
        f"{s['spec']}, {r['backend']} on {r['device']['kind']}, {r['machine']['cpus']} cores, "
        f"Keras {r['versions']['keras']}, TensorFlow {r['versions']['tensorflow']}; "
        f"{s['train_images']:,} training images, batch {s['batch_size']}; the four trainings "
        f"interleaved epoch by epoch, 1 warm-up + {s['timed_epochs']} timed rounds. "
        f"1-minute load average {la['at_start'][0]:.2f} at start, "
        + ", ".join(f"{k} {v:.2f}" for k, v in la["after_phase_1min"].items())
        + ", after the rounds "
        + ", ".join(f"{x['load_1min']:.2f}" for x in rounds)
        + ".",
        "",
        "| measurement | seconds | images/s |",
        "|---|---:|---:|",
        f"| decode folder, first read (fresh cache, {s['folder_images']:,} JPEG) "
        f"| {d['first_read_s']:.2f} | {d['first_read_images_per_s']:,.0f} |",
        f"| decode folder, cache hit | {d['cache_hit_s']:.2f} "
        f"| {d['cache_hit_images_per_s']:,.0f} |",
        f"| input pipeline: cache hit + batching + preprocess + augmentation "
        f"({pipe['images']:,} images) | {pipe['cache_hit_s'] + pipe['epoch_s']:.2f} "
        f"| {pipe['images_per_s']:,.0f} |",
        f"| input pipeline, one epoch without the cache hit | {pipe['epoch_s']:.2f} "
        f"| {pipe['images_per_s_without_cache_hit']:,.0f} |",
    ]
    per = s["train_images"] * s["timed_epochs"]

    def row(label, images_per_s):
        lines.append(f"| {label} | {per / images_per_s:.1f} | {images_per_s:.1f} |")

    row("`nincompile train` (history.csv, model.fit time)", nin["images_per_s"])
    row("`nincompile train`, end to end (with per-epoch commit)", nin["images_per_s_end_to_end"])
    row("hand-written Keras (Normalization + RandomFlip + RandomTranslation)",
        r["keras_by_hand"]["images_per_s"])  # fmt: skip
    row("NIN-BN behind `pipeline.wrap` (uint8, augmented)", r["wrapped_augmented"]["images_per_s"])
    row("NIN-BN on pre-normalised float32, no augmentation",
        r["float_no_augmentation"]["images_per_s"])  # fmt: skip
    lines += ["", "| ratio | value | median of rounds | target | met |", "|---|---:|---:|---:|---|"]
    labels = {
        "train_vs_keras": "`nincompile train` / hand-written Keras",
        "pipeline_vs_training": "input pipeline / `nincompile train`",
        "augmented_vs_float": "augmented pipeline / pre-normalised floats",
    }
    for key, label in labels.items():
        t = r["targets"][key]
        med = r["median_of_per_round_ratios"].get(key)
        lines.append(
            f"| {label} | {r['ratios'][key]:.3f} | {'' if med is None else f'{med:.3f}'} "
            f"| >= {t['target']:g} | {'yes' if t['met'] else 'NO'} |"
        )
    names = ["nincompile_train", "keras_by_hand", "wrapped_augmented", "float_no_augmentation"]
    lines += [
        "",
        "| round | load (1 min) | nincompile train | hand Keras | wrap (augmented) "
        "| float, no augmentation |",
        "|---:|---:|---:|---:|---:|---:|",
    ]
    for x in rounds:
        lines.append(
            f"| {x['epoch']} | {x['load_1min']:.2f} | "
            + " | ".join(f"{x[k]:.1f}" for k in names)
            + " |"
        )
    lines += [
        "",
        f"Per-epoch commit of `nincompile train` (model.keras, checkpoint, history, curves): "
        f"{nin['commit_s_per_epoch']:.2f} s, outside its history.csv figure.",
        "",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
