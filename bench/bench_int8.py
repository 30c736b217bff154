"""int8 vs float ONNX vs Keras on CPU for NIN-BN and ResNet18 trained briefly.

Usage: python bench/bench_int8.py [--cifar /tmp/cifar/train] [--work /tmp/int8bench]
                                  [--reuse] [--runs-256 10] [--runs-1 200]

One run does everything:

1. two disjoint folders of CIFAR-10 training JPEGs (symbolic links, class sub-folders):
   ``train/`` (the first ``--train-per-class`` images of each class) and ``eval/``
   (``--eval-per-class`` images from the 4000th of each class on), never trained on;
2. trains NIN-BN (specs/nin_bamd.yaml) and ResNet18 (specs/resnet18.yaml) briefly on
   ``train/`` through ``nincompile.train`` (``--reuse`` keeps runs that
   already finished);
3. exports each run twice through the library: float ONNX
   (``export_onnx(..., include_preprocessing=True)``) and int8
   (``quantize_onnx(..., data=eval/)``: 256 calibration images, the gate on 1000
   held-out ones).  When the default gate refuses, that is recorded and the int8
   model is made again with the gate open so it can still be timed;
4. waits (polling every 30 s, up to 10 min) until the 1-minute load average is below
   0.6, then times Keras (``model(x, training=False)``), float ONNX and int8 ONNX
   (onnxruntime, CPUExecutionProvider, default threads) on raw pixels: median latency
   at batch 1 and median images/s at batch 256, after warm-up runs.

Writes bench/results/int8.json and bench/results/int8.md (one table).  The targets
(int8 >= 1.8x float ONNX images/s at batch 256, <= 1 point accuracy loss) are
reported, never asserted.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from pathlib import Path

from _common import machine

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"

#: What "trained briefly" means for each model (spec overrides, training images).
MODELS = {
    "NIN-BN": {
        "spec": "specs/nin_bamd.yaml",
        "overrides": ["train.epochs=2", "train.batch_size=32", "train.lr_schedule={0: 0.02}"],
        "train_images": 5000,
    },
    "ResNet18": {
        "spec": "specs/resnet18.yaml",
        "overrides": [
            "train.epochs=2",
            "train.learning_rate=0.0003",
            "data.augment={flip: horizontal}",
        ],
        "train_images": 5000,
        # Two short epochs leave its batch-norm moving statistics far from what its final
        # weights produce (inference-mode accuracy ~10 %, batch statistics ~50 %): they are
        # re-estimated on this many training images before the benchmark.
        "recalibrate_bn": 2000,
    },
}


def load1() -> float:
    return os.getloadavg()[0]


def wait_for_quiet(limit: float = 0.6, poll: float = 30.0, patience: float = 600.0) -> dict:
    start = time.time()
    seen = [load1()]
    while seen[-1] >= limit and time.time() - start < patience:
        print(f"  load {seen[-1]:.2f} >= {limit}: waiting", flush=True)
        time.sleep(poll)
        seen.append(load1())
    return {
        "threshold": limit,
        "load1_at_start": seen[-1],
        "waited_s": round(time.time() - start, 1),
        "quiet": seen[-1] < limit,
        "polls": seen,
    }


def median_time(fn, runs: int, warmup: int) -> float:
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def link_folders(cifar: Path, work: Path, train_per_class: int, eval_per_class: int) -> None:
    """``work/train`` and ``work/eval``: disjoint per-class slices of ``cifar``."""
    classes = sorted(p.name for p in cifar.iterdir() if p.is_dir())
    for split, (a, b) in {
        "train": (0, train_per_class),
        "eval": (4000, 4000 + eval_per_class),
    }.items():
        for cls in classes:
            files = sorted(os.listdir(cifar / cls))[a:b]
            folder = work / split / cls
            folder.mkdir(parents=True, exist_ok=True)
            for name in files:
                link = folder / name
                if not link.exists():
                    os.symlink(cifar / cls / name, link)


def train_run(label: str, cfg: dict, work: Path, reuse: bool) -> tuple[Path, dict]:
    import nincompile

    run = work / "runs" / label
    metrics_path = run / "metrics.json"
    if reuse and (run / "model.keras").is_file() and metrics_path.is_file():
        print(f"{label}: reusing {run}", flush=True)
        return run, json.loads(metrics_path.read_text())
    if run.exists():
        import shutil

        shutil.rmtree(run)
    print(f"{label}: training ({', '.join(cfg['overrides'])}) ...", flush=True)
    result = nincompile.train(
        ROOT / cfg["spec"],
        overrides=cfg["overrides"],
        data=str(work / "train"),
        out=str(run),
        cache_dir=False,
    )
    return run, result.metrics


def recalibrate_bn(run: Path, n: int, work: Path) -> tuple[Path, dict]:
    """A copy of ``run`` whose BatchNormalization moving statistics are re-estimated
    with the final weights: forward passes in training mode (momentum 0.9, 40 passes
    over ``n`` seeded training images); nothing else changes."""
    import shutil

    import keras
    import numpy as np

    from nincompile.data.prepare import normalise
    from nincompile.data.sources import read_source
    from nincompile.data.split import stratified_subset
    from nincompile.export import load_source
    from nincompile.export.float32 import all_layers

    src = load_source(run)
    model = src.model
    raw = read_source(work / "train", classes=src.classes, channels=3, cache_dir=False)
    idx = stratified_subset(raw.labels, n, 0)
    x = normalise(raw.images[idx].astype(np.float32), src.mean, src.std)
    bns = [b for b in all_layers(model) if isinstance(b, keras.layers.BatchNormalization)]
    for layer in bns:
        layer.momentum = 0.9
    rng = np.random.default_rng(0)
    for _ in range(40):
        batch = x[rng.choice(len(x), 100, replace=False)]
        model(batch, training=True)
    for layer in bns:
        layer.momentum = 0.99
    fixed = run.parent / f"{run.name}-bn"
    if fixed.exists():
        shutil.rmtree(fixed)
    fixed.mkdir()
    shutil.copy(run / "spec.yaml", fixed / "spec.yaml")
    model.save(fixed / "model.keras")
    return fixed, {"layers": len(bns)}


def bench_model(label: str, cfg: dict, run: Path, metrics: dict, work: Path, args) -> dict:
    import numpy as np
    import onnxruntime as ort

    from nincompile.data.prepare import normalise
    from nincompile.data.sources import read_images_float32
    from nincompile.export import export_onnx, load_source
    from nincompile.export.quantize import GateRefused, quantize_onnx, split_folder

    src = load_source(run)
    out = work / "onnx"
    out.mkdir(exist_ok=True)
    float_report = export_onnx(src, out / f"{label}.onnx", include_preprocessing=True)
    eval_dir = work / "eval"
    refused = None
    t0 = time.perf_counter()
    try:
        q_report = quantize_onnx(src, out / f"{label}_int8.onnx", data=eval_dir)
    except GateRefused as err:
        gate = err.report.gate
        refused = gate.failures()
        print(f"{label}: the default gate refused: {refused}", flush=True)
        q_report = quantize_onnx(
            src,
            out / f"{label}_int8.onnx",
            data=eval_dir,
            min_agreement=0.0,
            max_accuracy_drop=100.0,
        )
        q_report.gate = gate
    quantize_s = time.perf_counter() - t0
    gate = q_report.gate

    # float ONNX on the gate's held-out images, for its row of the table
    model = src.model
    n_out = int(model.outputs[0].shape[-1])
    split = split_folder(eval_dir, 256, 1000, src.classes, n_out)
    held = read_images_float32(split.holdout, tuple(src.spec.input))
    y = np.asarray(split.labels)
    f_sess = ort.InferenceSession(str(float_report.out), providers=["CPUExecutionProvider"])
    q_sess = ort.InferenceSession(str(q_report.out), providers=["CPUExecutionProvider"])
    keras_top, float_top = [], []
    for i in range(0, len(held), 250):
        raw = held[i : i + 250]
        keras_top.append(np.asarray(model(normalise(raw, src.mean, src.std))).argmax(-1))
        float_top.append(f_sess.run(None, {"input": raw})[0].argmax(-1))
    keras_top, float_top = np.concatenate(keras_top), np.concatenate(float_top)

    # timing
    rng = np.random.default_rng(0)
    x256 = rng.uniform(0, 255, (256, *src.spec.input)).astype(np.float32)
    x1 = x256[:1].copy()
    k256, k1 = normalise(x256, src.mean, src.std), normalise(x1, src.mean, src.std)
    load = wait_for_quiet()
    print(f"{label}: timing at load {load['load1_at_start']:.2f}", flush=True)
    timed = {}
    for name, fn256, fn1 in (
        ("keras", lambda: model(k256, training=False), lambda: model(k1, training=False)),
        (
            "float_onnx",
            lambda: f_sess.run(None, {"input": x256}),
            lambda: f_sess.run(None, {"input": x1}),
        ),
        (
            "int8_onnx",
            lambda: q_sess.run(None, {"input": x256}),
            lambda: q_sess.run(None, {"input": x1}),
        ),
    ):
        t256 = median_time(fn256, args.runs_256, 2)
        t1 = median_time(fn1, args.runs_1, 20)
        timed[name] = {"batch_256_images_per_s": 256 / t256, "batch_1_latency_ms": t1 * 1e3}
    load_end = load1()

    n = len(held)
    keras_acc = float((keras_top == y).mean())
    result = {
        "spec": cfg["spec"],
        "name": src.name,
        "params": int(model.count_params()),
        "trained": {
            "overrides": cfg["overrides"],
            "train_images": cfg["train_images"],
            "epochs": metrics.get("epochs_completed"),
            "final": metrics.get("final"),
            "bn_recalibrated": metrics.get("bn_recalibrated"),
        },
        "sizes_bytes": {
            "keras": (run / "model.keras").stat().st_size,
            "float_onnx": float_report.size_bytes,
            "int8_onnx": q_report.size_bytes,
        },
        "gate": {
            "images": gate.images,
            "calibration_images": q_report.calibration_images,
            "top1_agreement": gate.agreement,
            "keras_accuracy": gate.keras_accuracy,
            "int8_accuracy": gate.int8_accuracy,
            "accuracy_drop_points": gate.accuracy_drop,
            "default_gate_passed": refused is None,
            "refusal": refused,
        },
        "float_onnx_on_gate_images": {
            "top1_agreement": float((float_top == keras_top).mean()),
            "accuracy": float((float_top == y).mean()),
            "images": n,
        },
        "keras_accuracy_on_gate_images": keras_acc,
        "quantize_seconds": round(quantize_s, 1),
        "timing": timed,
        "load": {**load, "load1_at_end": load_end},
        "speedup_int8_over_float_onnx_batch_256": timed["int8_onnx"]["batch_256_images_per_s"]
        / timed["float_onnx"]["batch_256_images_per_s"],
        "speedup_int8_over_float_onnx_batch_1": timed["float_onnx"]["batch_1_latency_ms"]
        / timed["int8_onnx"]["batch_1_latency_ms"],
    }
    return result


def _mb(n: int) -> str:
    return f"{n / 1e6:.2f} MB"


def _pct(x) -> str:
    return "n/a" if x is None else f"{100 * x:.1f} %"


def markdown(result: dict) -> str:
    m = result["machine"]
    lines = [
        "# int8 vs float ONNX vs Keras (CPU)",
        "",
        f"{m['cpus']} CPU cores ({m['processor']}), Keras {m['keras']}, TensorFlow "
        f"{m['tensorflow']}, onnxruntime {m['onnxruntime']} (CPUExecutionProvider, default "
        "threads); median of the timed runs after warm-up; inputs are raw pixels for ONNX "
        "(normalisation folded in) and normalised pixels for Keras "
        "(`model(x, training=False)`).",
        "",
        "| model | runtime | size | batch 1 latency | batch 256 images/s | "
        "top-1 agreement with Keras | accuracy |",
        "|---|---|---:|---:|---:|---:|---:|",
    ]
    for label, r in result["models"].items():
        t, s, g = r["timing"], r["sizes_bytes"], r["gate"]
        fo = r["float_onnx_on_gate_images"]
        rows = (
            ("Keras", "keras", s["keras"], "-", r["keras_accuracy_on_gate_images"]),
            ("float ONNX", "float_onnx", s["float_onnx"], _pct(fo["top1_agreement"]),
             fo["accuracy"]),
            ("int8 ONNX", "int8_onnx", s["int8_onnx"], _pct(g["top1_agreement"]),
             g["int8_accuracy"]),
        )  # fmt: skip
        for name, key, size, agree, acc in rows:
            lines.append(
                f"| {label} | {name} | {_mb(size)} | {t[key]['batch_1_latency_ms']:.2f} ms | "
                f"{t[key]['batch_256_images_per_s']:,.0f} | {agree} | {_pct(acc)} |"
            )
    lines += ["", "| model | int8 / float ONNX, batch 256 | int8 / float ONNX, batch 1 | "
              "accuracy drop | default gate | load (1 min) at timing start / end |",
              "|---|---:|---:|---:|---|---|"]  # fmt: skip
    for label, r in result["models"].items():
        g = r["gate"]
        drop = g["accuracy_drop_points"]
        lines.append(
            f"| {label} | {r['speedup_int8_over_float_onnx_batch_256']:.2f}x | "
            f"{r['speedup_int8_over_float_onnx_batch_1']:.2f}x | "
            f"{'n/a' if drop is None else f'{drop:.1f} points'} | "
            f"{'passed' if g['default_gate_passed'] else 'REFUSED'} | "
            f"{r['load']['load1_at_start']:.2f} / {r['load']['load1_at_end']:.2f} |"
        )
    lines += ["", "Trained briefly (from scratch, on CIFAR-10 training JPEGs):", ""]
    for label, r in result["models"].items():
        tr = r["trained"]
        final = tr.get("final") or {}
        lines.append(
            f"- {label} (`{r['spec']}`, {r['params']:,} parameters): `train/` "
            f"({tr['train_images']:,} images, of which `train` holds out 10 % for "
            f"validation), `--set {' --set '.join(tr['overrides'])}`; training accuracy "
            f"{_pct(final.get('accuracy'))}, validation accuracy "
            f"{_pct(final.get('val_accuracy'))} after {tr['epochs']} epochs."
            + (
                f" Its batch-norm moving statistics were then re-estimated with the final "
                f"weights ({bn['passes']} training-mode passes of {bn['batch']} of "
                f"{bn['images']:,} training images, momentum {bn['momentum']}): without that "
                "it predicts one class in inference mode, although it scores ~50 % on the "
                "same images with batch statistics."
                if (bn := tr.get("bn_recalibrated"))
                else ""
            )
        )
    d = result["data"]
    lines += [
        "",
        f"Gate and accuracy: {d['gate_images']} held-out images of `eval/` "
        f"({d['eval_per_class']} per class, from the 4000th image of each class: never "
        f"trained on), calibration on {d['calibration_images']} other images of `eval/`. "
        "int8: QDQ, int8 weights per output channel, uint8 activations, MinMax calibration.",
        "",
        f"Targets: int8 >= 1.8x float ONNX at batch 256 "
        f"({'met' if result['targets']['int8_1_8x_float_at_256'] else 'NOT met'}), "
        f"<= 1 point accuracy loss "
        f"({'met' if result['targets']['accuracy_loss_at_most_1_point'] else 'NOT met'}).",
        "",
    ]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cifar", type=Path, default=Path("/tmp/cifar/train"))
    parser.add_argument("--work", type=Path, default=Path("/tmp/int8bench"))
    parser.add_argument("--reuse", action="store_true", help="keep finished training runs")
    parser.add_argument("--train-per-class", type=int, default=500)
    parser.add_argument("--eval-per-class", type=int, default=200)
    parser.add_argument("--runs-256", type=int, default=10, help="timed batches of 256")
    parser.add_argument("--runs-1", type=int, default=200, help="timed single-image runs")
    parser.add_argument("--only", choices=sorted(MODELS), action="append")
    parser.add_argument("--train-only", action="store_true", help="train, then stop")
    args = parser.parse_args()
    if not args.cifar.is_dir():
        raise SystemExit(
            f"{args.cifar} is missing: mkdir -p /tmp/cifar && tar xzf "
            "/work/shared/data/cifar10-train-jpeg.tar.gz -C /tmp/cifar"
        )

    args.work.mkdir(parents=True, exist_ok=True)
    link_folders(args.cifar, args.work, args.train_per_class, args.eval_per_class)
    runs = {}
    for label in args.only or MODELS:
        runs[label] = train_run(label, MODELS[label], args.work, args.reuse)
    if args.train_only:
        for label, (run, metrics) in runs.items():
            print(label, run, metrics.get("final"))
        return
    models = {}
    for label, (run, metrics) in runs.items():
        if MODELS[label].get("recalibrate_bn"):
            run, info = recalibrate_bn(run, MODELS[label]["recalibrate_bn"], args.work)
            metrics = {
                **metrics,
                "bn_recalibrated": {
                    **info,
                    "images": MODELS[label]["recalibrate_bn"],
                    "passes": 40,
                    "batch": 100,
                    "momentum": 0.9,
                },
            }
        models[label] = bench_model(label, MODELS[label], run, metrics, args.work, args)
        print(json.dumps({label: models[label]["timing"]}, indent=1), flush=True)

    speedups = [r["speedup_int8_over_float_onnx_batch_256"] for r in models.values()]
    drops = [r["gate"]["accuracy_drop_points"] for r in models.values()]
    result = {
        "machine": machine(),
        "data": {
            "source": str(args.cifar),
            "train_per_class": args.train_per_class,
            "eval_per_class": args.eval_per_class,
            "calibration_images": 256,
            "gate_images": 1000,
        },
        "method": {
            "statistic": "median",
            "batch_256": {"warmup": 2, "runs": args.runs_256},
            "batch_1": {"warmup": 20, "runs": args.runs_1},
            "keras": "model(x, training=False), eager, on normalised pixels",
            "onnx": "onnxruntime CPUExecutionProvider, default session options, raw pixels",
            "load_gate": "wait (poll 30 s, up to 10 min) for 1-minute load < 0.6 per model",
        },
        "models": models,
        "targets": {
            "int8_1_8x_float_at_256": all(s >= 1.8 for s in speedups),
            "accuracy_loss_at_most_1_point": all(d is not None and d <= 1.0 for d in drops),
        },
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "int8.json").write_text(json.dumps(result, indent=2) + "\n")
    text = markdown(result)
    (RESULTS / "int8.md").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
