"""`nincompile train` side by side with a hand-written PyTorch loop on the same CPU
(issue 20, item 3).

Usage: python bench/bench_peers.py [--data /tmp/cifar/train] [--images 2048]
       [--epochs 3] [--rounds 2] [--backends tensorflow,jax,torch,tensorflow-jit,jax-nojit]
       [--peers channels_last,nchw] [--keras-layout] [--out bench/results]

Trainers, each in its own process, all on the same ``--images`` CIFAR-10 JPEGs (the
spec's ``data.limit`` subset of ``--data``, read through one decode cache), NIN-BN
(``specs/nin_bamd.yaml``), batch 128, random horizontal flip + shift by up to 4 px,
SGD lr 0.05 momentum 0.9 Nesterov, weight decay 1e-4:

* ``nincompile train`` under each of ``--backends`` (``KERAS_BACKEND`` set per
  process; ``jit_compile: auto``, or on/off for a ``-jit``/``-nojit`` suffix: these
  are the figures behind ``train``'s advice, :mod:`nincompile.train.advice`; an
  ``-unfused`` suffix trains with Keras's own batch norm code, ``-eigen`` with
  TensorFlow's own choice of kernels, oneDNN off on AVX2 CPUs), images/s from the
  ``seconds`` column of history.csv (the time of each epoch's ``fit`` call);
* NIN-BN written by hand in PyTorch (:func:`torch_loop`, below): the model as
  ``torch.nn`` modules, the batch gathered from the uint8 images in a shuffled order,
  normalised, flipped and shifted (zero padding by 4 px and a random 32 x 32 crop per
  image) with torch ops, then forward, loss, backward and ``torch.optim.SGD``; in
  ``channels_last`` memory format (the fast one on CPU) and in NCHW.  An epoch is
  timed from its first gather to its last optimiser step.

Rounds are interleaved (every trainer once per round, the order rotating), so that
load from other processes on a shared machine falls on all alike.  Each process
trains ``--epochs`` epochs; the first (tracing, compilation, warm-up) is left out and
each run's figure is ``images / median(steady epoch seconds)``; a trainer's figure is
the median over rounds.  "Share of peak" is the training FLOP rate (6 x the spec's
multiply-accumulates per image: forward 2, backward 4) over the machine's fp32 matmul
peak, measured here (the best of NumPy and PyTorch 2048 x 2048 matmuls, all cores).

``--keras-layout`` adds a measurement of whether building the model channels-first
would pay under Keras's torch backend (which transposes the input of every
convolution and pooling from NHWC to NCHW and back): the same NIN-BN as plain Keras
layers, ``image_data_format`` channels_last against channels_first, fit on pre-made
float tensors without augmentation, under ``KERAS_BACKEND=torch``.

Writes ``peers.json`` and ``peers.md`` under ``--out`` and prints the table.  The
figures are noisy on a shared machine: the 1-minute load average is recorded at the
start, before each run and at the end.  Nothing is asserted.
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
import time
from pathlib import Path

from _common import macs_per_image, matmul_peak, write_report

ROOT = Path(__file__).resolve().parent.parent
SPEC = ROOT / "specs" / "nin_bamd.yaml"
DEFAULT_DATA = Path("/tmp/cifar/train")

# ------------------------------------------------------------------ child: PyTorch


def torch_loop(args) -> dict:
    """NIN-BN trained by hand in PyTorch on the spec's images; per-epoch seconds."""
    import numpy as np
    import torch
    from torch import nn

    from nincompile.data.prepare import training_data
    from nincompile.spec import load_spec
    from nincompile.spec.overrides import apply_overrides

    source = apply_overrides(load_spec(SPEC), overrides(args.images, args.epochs))
    spec = source.spec
    data = training_data(spec, args.data, None, cache_dir=args.cache_dir)
    x = data.train.images  # uint8, N x 32 x 32 x 3
    y = np.asarray(data.train.labels, dtype=np.int64)
    train = spec.train
    mean = torch.tensor(spec.data.mean, dtype=torch.float32).view(1, 3, 1, 1)
    std = torch.tensor(spec.data.std, dtype=torch.float32).view(1, 3, 1, 1)
    shift = round(spec.data.augment.shift * spec.input[0])  # 0.125 x 32 = 4 px

    def block(cin, cout, k):
        return [nn.Conv2d(cin, cout, k, padding=k // 2, bias=False), nn.BatchNorm2d(cout),
                nn.ReLU(inplace=True)]  # fmt: skip

    def pool():
        return [nn.MaxPool2d(3, 2, padding=1), nn.Dropout(0.5)]

    torch.manual_seed(train.seed)
    model = nn.Sequential(
        *block(3, 192, 5), *block(192, 160, 1), *block(160, 96, 1), *pool(),
        *block(96, 192, 5), *block(192, 192, 1), *block(192, 192, 1), *pool(),
        *block(192, 192, 3), *block(192, 192, 1), *block(192, 10, 1),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(),
    )  # fmt: skip
    fmt = torch.channels_last if args.layout == "channels_last" else torch.contiguous_format
    model = model.to(memory_format=fmt)
    opt = torch.optim.SGD(model.parameters(), lr=train.learning_rate, momentum=train.momentum,
                          nesterov=train.nesterov, weight_decay=1e-4)  # fmt: skip
    loss_fn = nn.CrossEntropyLoss()
    xt = torch.from_numpy(x)  # shares the array
    yt = torch.from_numpy(y)
    bs = train.batch_size
    n = len(y)
    gen = torch.Generator().manual_seed(train.seed)
    side = spec.input[0]
    ar = torch.arange(side)
    seconds = []
    model.train()
    for _ in range(train.epochs):
        order = torch.randperm(n, generator=gen)
        t0 = time.perf_counter()
        for i in range(0, n, bs):
            idx = order[i : i + bs]
            b = len(idx)
            xb = xt[idx].permute(0, 3, 1, 2).float()  # NCHW shape, NHWC strides
            xb = (xb - mean) / std
            flip = torch.rand(b, generator=gen) < 0.5
            xb = torch.where(flip.view(b, 1, 1, 1), xb.flip(3), xb)
            padded = nn.functional.pad(xb, (shift, shift, shift, shift))
            dy = torch.randint(0, 2 * shift + 1, (b,), generator=gen)
            dx = torch.randint(0, 2 * shift + 1, (b,), generator=gen)
            rows = (ar.view(1, -1) + dy.view(-1, 1)).view(b, 1, side, 1)
            cols = (ar.view(1, -1) + dx.view(-1, 1)).view(b, 1, 1, side)
            batch = torch.arange(b).view(b, 1, 1, 1)
            chans = torch.arange(3).view(1, 3, 1, 1)
            xb = padded[batch, chans, rows, cols].contiguous(memory_format=fmt)
            loss = loss_fn(model(xb), yt[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
        seconds.append(time.perf_counter() - t0)
    return {"epochs_s": seconds, "images": n, "threads": torch.get_num_threads(),
            "torch": torch.__version__, "final_loss": loss.item()}  # fmt: skip


def keras_layout(args) -> dict:
    """Keras (torch backend) NIN-BN as plain layers, channels_last vs channels_first,
    fit on pre-made float tensors; per-epoch seconds."""
    import keras
    import numpy as np

    keras.config.set_image_data_format(args.layout)
    axis = -1 if args.layout == "channels_last" else 1
    layers = keras.layers

    def block(f, k):
        return [layers.Conv2D(f, k, padding="same", use_bias=False),
                layers.BatchNormalization(axis=axis), layers.ReLU()]  # fmt: skip

    def pool():
        return [layers.MaxPooling2D(3, 2, padding="same"), layers.Dropout(0.5)]

    shape = (32, 32, 3) if args.layout == "channels_last" else (3, 32, 32)
    keras.utils.set_random_seed(0)
    model = keras.Sequential(
        [keras.Input(shape), *block(192, 5), *block(160, 1), *block(96, 1), *pool(),
         *block(192, 5), *block(192, 1), *block(192, 1), *pool(),
         *block(192, 3), *block(192, 1), *block(10, 1),
         layers.GlobalAveragePooling2D(), layers.Softmax()]
    )  # fmt: skip
    model.compile(
        optimizer=keras.optimizers.SGD(0.05, momentum=0.9, nesterov=True),
        loss="sparse_categorical_crossentropy",
    )
    rng = np.random.default_rng(0)
    x = rng.standard_normal((args.images, *shape)).astype("float32")
    y = rng.integers(0, 10, args.images)
    seconds = []
    for _ in range(args.epochs):
        t0 = time.perf_counter()
        model.fit(x, y, batch_size=128, epochs=1, shuffle=True, verbose=0)
        seconds.append(time.perf_counter() - t0)
    return {"epochs_s": seconds, "images": args.images}


# ------------------------------------------------------------------ parent


def overrides(images: int, epochs: int) -> list[str]:
    return [f"data.limit={images}", "data.validation_split=0", f"train.epochs={epochs}"]


def training_flops() -> int:
    return 6 * macs_per_image(SPEC)


def history_seconds(run: Path) -> list[float]:
    with open(run / "history.csv", newline="", encoding="utf-8") as f:
        return [float(row["seconds"]) for row in csv.DictReader(f)]


def run_one(name: str, args, tmp: Path, r: int) -> dict:
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "PYTHONPATH": str(ROOT)}
    kind, _, what = name.partition(":")
    if kind == "nincompile":
        out = tmp / f"{what}-{r}"
        backend, *variants = what.split("-")  # "jax-nojit": jit_compile off
        env["KERAS_BACKEND"] = backend
        cmd = [sys.executable, "-m", "nincompile.cli", "train", str(SPEC), "--data",
               str(args.data), "--out", str(out), "--cache-dir", str(args.cache_dir)]  # fmt: skip
        for variant in variants:
            if variant in ("jit", "nojit"):
                cmd += ["--jit-compile", "on" if variant == "jit" else "off"]
            else:
                env.update(VARIANTS[variant])
        for o in overrides(args.images, args.epochs):
            cmd += ["--set", o]
        proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True)
        if proc.returncode:
            raise SystemExit(f"{name} failed:\n{proc.stdout[-2000:]}\n{proc.stderr[-3000:]}")
        first = [ln for ln in proc.stdout.splitlines() if ln.startswith("training ")]
        return {"epochs_s": history_seconds(out), "images": args.images,
                "first_line": first[0] if first else None}  # fmt: skip
    env["KERAS_BACKEND"] = "torch"
    child = ["--child", kind, "--layout", what, "--images", str(args.images),
             "--epochs", str(args.epochs), "--data", str(args.data),
             "--cache-dir", str(args.cache_dir)]  # fmt: skip
    proc = subprocess.run([sys.executable, __file__, *child], cwd=ROOT, env=env,
                          capture_output=True, text=True)  # fmt: skip
    if proc.returncode:
        raise SystemExit(f"{name} failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


#: ``--backends`` suffixes that set the environment of `nincompile train`
VARIANTS = {
    "unfused": {"NINCOMPILE_FUSED_NORM": "0"},  # Keras's own batch norm code
    "eigen": {"TF_ENABLE_ONEDNN_OPTS": "0"},  # TensorFlow's choice of kernels
    "keraslayout": {"NINCOMPILE_CHANNELS_LAST": "0"},  # Keras's torch conv and pooling code
}

LABELS = {
    "nincompile:tensorflow": "`nincompile train`, TensorFlow (default)",
    "nincompile:tensorflow-jit": "`nincompile train`, TensorFlow, jit_compile on",
    "nincompile:jax": "`nincompile train`, JAX (jit)",
    "nincompile:jax-nojit": "`nincompile train`, JAX, jit_compile off",
    "nincompile:torch": "`nincompile train`, torch backend",
    "nincompile:tensorflow-unfused": "`nincompile train`, TensorFlow, Keras's batch norm code",
    "nincompile:tensorflow-eigen": "`nincompile train`, TensorFlow, oneDNN off",
    "nincompile:tensorflow-eigen-unfused": (
        "`nincompile train`, TensorFlow, oneDNN off, Keras's batch norm code"
    ),
    "nincompile:torch-unfused": "`nincompile train`, torch backend, Keras's batch norm code",
    "nincompile:torch-keraslayout": (
        "`nincompile train`, torch backend, Keras's convolution and pooling code"
    ),
    "torch:channels_last": "PyTorch by hand, channels-last",
    "torch:nchw": "PyTorch by hand, NCHW",
    "keras_layout:channels_last": "Keras layers (torch backend), channels_last, no augmentation",
    "keras_layout:channels_first": "Keras layers (torch backend), channels_first, no augmentation",
}


def epoch_spread(runs: list[dict]) -> float:
    """Slowest over fastest steady epoch (each process's first left out) over all of a
    trainer's rounds: how evenly its epochs ran on this machine at this time."""
    steady = [s for res in runs for s in (res["epochs_s"][1:] or res["epochs_s"])]
    return max(steady) / min(steady)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--images", type=int, default=2048)
    parser.add_argument("--epochs", type=int, default=3, help="per process; the first is warm-up")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument(
        "--backends",
        default="tensorflow,jax,torch,tensorflow-jit,jax-nojit",
        help="backends of `nincompile train`; -jit/-nojit: jit_compile on/off, -unfused: "
        "Keras's batch norm code (NINCOMPILE_FUSED_NORM=0), -eigen: TensorFlow's own "
        "choice of kernels (TF_ENABLE_ONEDNN_OPTS=0), -keraslayout: Keras's torch "
        "convolution and pooling code (NINCOMPILE_CHANNELS_LAST=0)",
    )
    parser.add_argument("--peers", default="channels_last,nchw")
    parser.add_argument("--keras-layout", action="store_true")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results")
    parser.add_argument("--cache-dir", type=Path)
    parser.add_argument("--child", choices=["torch", "keras_layout"], help=argparse.SUPPRESS)
    parser.add_argument("--layout", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        fn = torch_loop if args.child == "torch" else keras_layout
        print(json.dumps(fn(args)))
        return
    if not args.data.is_dir():
        raise SystemExit(f"no folder {args.data}: unpack the CIFAR-10 JPEGs first")

    trainers = [f"nincompile:{b}" for b in args.backends.split(",") if b]
    trainers += [f"torch:{p}" for p in args.peers.split(",") if p]
    if args.keras_layout:
        trainers += ["keras_layout:channels_last", "keras_layout:channels_first"]
    load = {"start": list(os.getloadavg())}
    peak = matmul_peak()
    flops = training_flops()
    runs: dict[str, list[dict]] = {t: [] for t in trainers}
    with tempfile.TemporaryDirectory() as tmp:
        if args.cache_dir is None:
            args.cache_dir = Path(tmp) / "cache"
        for r in range(args.rounds):
            k = r % len(trainers)
            for name in trainers[k:] + trainers[:k]:  # rotate the order each round
                before = os.getloadavg()[0]
                t0 = time.perf_counter()
                res = run_one(name, args, Path(tmp), r)
                res.update(round=r, load_before=before, wall_s=time.perf_counter() - t0)
                steady = res["epochs_s"][1:] or res["epochs_s"]
                res["images_per_s"] = res["images"] / statistics.median(steady)
                runs[name].append(res)
                print(f"round {r} {name}: {res['images_per_s']:.1f} img/s "
                      f"(epochs {', '.join(f'{s:.1f}' for s in res['epochs_s'])} s; "
                      f"load {before:.2f})", flush=True)  # fmt: skip
    load["end"] = list(os.getloadavg())
    load["before_runs"] = [res["load_before"] for rs in runs.values() for res in rs]
    summary = {}
    for name, rs in runs.items():
        ips = statistics.median(res["images_per_s"] for res in rs)
        summary[name] = {
            "label": LABELS[name],
            "images_per_s": ips,
            "per_round": [res["images_per_s"] for res in rs],
            "share_of_peak": ips * flops / 1e9 / peak["peak_gflops"],
            "epoch_spread": epoch_spread(rs),
        }

    def ratio(a: str, b: str):
        if a in summary and b in summary:
            return summary[a]["images_per_s"] / summary[b]["images_per_s"]
        return None

    ratios = {
        "fused_over_unfused_tensorflow": ratio("nincompile:tensorflow",
                                               "nincompile:tensorflow-unfused"),
        "fused_over_unfused_torch": ratio("nincompile:torch", "nincompile:torch-unfused"),
        "channels_last_torch": ratio("nincompile:torch", "nincompile:torch-keraslayout"),
        "onednn_over_eigen_tensorflow": ratio("nincompile:tensorflow",
                                              "nincompile:tensorflow-eigen"),
        "default_over_eigen_unfused_tensorflow": ratio("nincompile:tensorflow",
                                                       "nincompile:tensorflow-eigen-unfused"),
        "default_backend_over_torch_channels_last": ratio("nincompile:tensorflow",
                                                          "torch:channels_last"),
        "torch_backend_over_torch_nchw": ratio("nincompile:torch", "torch:nchw"),
        "torch_backend_over_torch_channels_last": ratio("nincompile:torch",
                                                        "torch:channels_last"),
        "jax_backend_over_torch_channels_last": ratio("nincompile:jax", "torch:channels_last"),
        "tensorflow_over_jax": ratio("nincompile:tensorflow", "nincompile:jax"),
        "tensorflow_over_torch_backend": ratio("nincompile:tensorflow", "nincompile:torch"),
        "tensorflow_over_tensorflow_jit": ratio(
            "nincompile:tensorflow", "nincompile:tensorflow-jit"
        ),
        "jax_jit_over_jax_eager": ratio("nincompile:jax", "nincompile:jax-nojit"),
        "keras_torch_channels_first_over_channels_last": ratio(
            "keras_layout:channels_first", "keras_layout:channels_last"
        ),
    }  # fmt: skip
    import numpy as np

    versions = {"python": platform.python_version(), "numpy": np.__version__}
    for mod in ("keras", "tensorflow", "jax", "torch"):
        try:
            versions[mod] = __import__(mod).__version__
        except ImportError:
            pass
    out = {
        "spec": str(SPEC.relative_to(ROOT)),
        "data": str(args.data),
        "images": args.images,
        "epochs_per_process": args.epochs,
        "rounds": args.rounds,
        "batch": 128,
        "training_flop_per_image": flops,
        "matmul_peak": peak,
        "machine": {"cpus": os.cpu_count(), "processor": platform.processor() or platform.machine(),
                    "shared": "yes: other jobs ran on the same cores; figures are noisy"},
        "load_average": load,
        "versions": versions,
        "trainers": summary,
        "ratios": ratios,
        "targets": {
            "default_backend_at_least_1.1x_torch_channels_last": (
                None if ratios["default_backend_over_torch_channels_last"] is None
                else ratios["default_backend_over_torch_channels_last"] >= 1.1),
            "torch_backend_at_least_torch_nchw": (
                None if ratios["torch_backend_over_torch_nchw"] is None
                else ratios["torch_backend_over_torch_nchw"] >= 1.0),
        },
        "runs": runs,
    }  # fmt: skip
    write_report(args.out, "peers", out, markdown)


def markdown(out: dict) -> str:
    peak = out["matmul_peak"]
    load = out["load_average"]
    lines = [
        "# `nincompile train` against hand-written PyTorch (CPU)",
        "",
        f"{out['spec']}, {out['images']:,} CIFAR-10 JPEGs, batch {out['batch']}, flip + shift; "
        f"{out['machine']['cpus']} cores, shared with other jobs (noisy figures); "
        f"{out['rounds']} interleaved rounds, {out['epochs_per_process']} epochs per process "
        f"(the first left out). 1-minute load average {load['start'][0]:.2f} at the start, "
        f"{min(load['before_runs']):.2f}-{max(load['before_runs']):.2f} before the runs, "
        f"{load['end'][0]:.2f} at the end.",
        "",
        f"Training costs {out['training_flop_per_image'] / 1e9:.3f} GFLOP per image; the "
        f"measured fp32 matmul peak is {peak['peak_gflops']:.0f} GFLOP/s "
        f"({peak['size']}x{peak['size']}, best of NumPy and PyTorch).",
        "",
        "| trainer | images/s (median of rounds) | per round | share of peak | "
        "steady epochs, slowest / fastest |",
        "|---|---:|---|---:|---:|",
    ]
    for name, s in out["trainers"].items():
        rounds = ", ".join(f"{v:.0f}" for v in s["per_round"])
        spread = epoch_spread(out["runs"][name])
        lines.append(
            f"| {s['label']} | {s['images_per_s']:.1f} | {rounds} | {s['share_of_peak']:.2f} "
            f"| {spread:.2f} |"
        )
    names = {
        "fused_over_unfused_tensorflow": "TensorFlow: fused batch norm / Keras's code",
        "fused_over_unfused_torch": "torch backend: fused batch norm / Keras's code",
        "channels_last_torch": "torch backend: channels-last conv and pooling / Keras's code",
        "onednn_over_eigen_tensorflow": "TensorFlow: oneDNN on / off",
        "default_over_eigen_unfused_tensorflow": (
            "TensorFlow: both (default) / oneDNN off and Keras's batch norm code"
        ),
        "default_backend_over_torch_channels_last": "TensorFlow (default) / PyTorch channels-last",
        "torch_backend_over_torch_nchw": "torch backend / PyTorch NCHW",
        "torch_backend_over_torch_channels_last": "torch backend / PyTorch channels-last",
        "jax_backend_over_torch_channels_last": "JAX / PyTorch channels-last",
        "tensorflow_over_jax": "TensorFlow / JAX (jit)",
        "tensorflow_over_torch_backend": "TensorFlow / torch backend",
        "tensorflow_over_tensorflow_jit": "TensorFlow / TensorFlow with jit_compile on",
        "jax_jit_over_jax_eager": "JAX with jit / JAX with jit_compile off",
        "keras_torch_channels_first_over_channels_last": (
            "Keras torch backend: channels_first / channels_last"
        ),
    }
    lines += ["", "| ratio | value |", "|---|---:|"]
    for key, value in out["ratios"].items():
        if value is not None:
            lines.append(f"| {names[key]} | {value:.2f} |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
