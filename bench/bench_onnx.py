"""onnxruntime vs Keras on CPU for NIN-BN: throughput at batch 256, latency at batch 1.

Usage: python bench/bench_onnx.py [--runs-256 10] [--runs-1 200] [--spec PATH]

The model is specs/nin_bamd.yaml (falling back to specs/nin_badm.yaml) with fresh
seeded weights (speed does not depend on the weights), exported through
``nincompile.export.export_onnx`` (so the ONNX file passed the parity checks).
Each figure is a median over the timed runs, after warm-up runs.  Keras is timed
through ``model.predict`` and through a direct ``model(x, training=False)`` call.
Writes bench/results/onnx_vs_keras.json and prints a table.  Targets (onnxruntime
>= 1.0x Keras images/s at batch 256, >= 2x faster at batch 1) are reported, never
asserted.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

ROOT = Path(__file__).resolve().parent.parent
CANDIDATES = [ROOT / "specs" / "nin_bamd.yaml", ROOT / "specs" / "nin_badm.yaml"]


def median_time(fn, runs: int, warmup: int) -> tuple[float, list[float]]:
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times), times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs-256", type=int, default=10, help="timed batches of 256")
    parser.add_argument("--runs-1", type=int, default=200, help="timed single-image runs")
    parser.add_argument("--spec", type=Path, help="spec to benchmark (default: NIN-BN)")
    args = parser.parse_args()

    spec = args.spec or next((p for p in CANDIDATES if p.is_file()), None)
    if spec is None:
        raise SystemExit(f"none of {', '.join(str(p) for p in CANDIDATES)} exists")

    import keras
    import numpy as np
    import onnxruntime as ort
    import tensorflow as tf

    from nincompile.export import export_onnx, load_source

    src = load_source(spec)
    model = src.model
    with tempfile.TemporaryDirectory() as tmp:
        report = export_onnx(src, Path(tmp) / "model.onnx", opset=17)
        sess = ort.InferenceSession(str(report.out), providers=["CPUExecutionProvider"])
        onnx_bytes = report.size_bytes

    shape = tuple(src.spec.input)
    rng = np.random.default_rng(0)
    x256 = rng.standard_normal((256, *shape)).astype(np.float32)
    x1 = x256[:1].copy()

    def ort_run(x):
        return lambda: sess.run(None, {"input": x})

    def keras_predict(x, batch_size):
        return lambda: model.predict(x, batch_size=batch_size, verbose=0)

    def keras_call(x):
        return lambda: model(x, training=False)

    # batch 256: throughput
    warm_256 = 2
    t_ort_256, r_ort_256 = median_time(ort_run(x256), args.runs_256, warm_256)
    t_kp_256, r_kp_256 = median_time(keras_predict(x256, 256), args.runs_256, warm_256)
    t_kc_256, r_kc_256 = median_time(keras_call(x256), args.runs_256, warm_256)

    # batch 1: latency
    warm_1 = 20
    t_ort_1, r_ort_1 = median_time(ort_run(x1), args.runs_1, warm_1)
    t_kp_1, r_kp_1 = median_time(keras_predict(x1, 1), args.runs_1, warm_1)
    t_kc_1, r_kc_1 = median_time(keras_call(x1), args.runs_1, warm_1)

    ips = {k: 256 / t for k, t in (("onnxruntime", t_ort_256), ("keras_predict", t_kp_256),
                                    ("keras_call", t_kc_256))}  # fmt: skip
    lat_ms = {"onnxruntime": t_ort_1 * 1e3, "keras_predict": t_kp_1 * 1e3,
              "keras_call": t_kc_1 * 1e3}  # fmt: skip
    speedup_256 = ips["onnxruntime"] / ips["keras_predict"]
    speedup_1_predict = lat_ms["keras_predict"] / lat_ms["onnxruntime"]
    speedup_1_call = lat_ms["keras_call"] / lat_ms["onnxruntime"]

    result = {
        "model": {
            "spec": str(spec.relative_to(ROOT)) if spec.is_relative_to(ROOT) else str(spec),
            "name": src.name,
            "input": list(shape),
            "params": int(model.count_params()),
            "onnx_bytes": onnx_bytes,
            "opset": 17,
            "weights": "fresh, seeded (speed does not depend on them)",
        },
        "machine": {
            "python": platform.python_version(),
            "processor": platform.processor() or platform.machine(),
            "cpus": os.cpu_count(),
            "keras": keras.__version__,
            "tensorflow": tf.__version__,
            "onnxruntime": ort.__version__,
            "onnxruntime_providers": sess.get_providers(),
            "threads": "library defaults (onnxruntime intra-op = cores; TensorFlow defaults)",
        },
        "method": {
            "statistic": "median",
            "batch_256": {"warmup": warm_256, "runs": args.runs_256},
            "batch_1": {"warmup": warm_1, "runs": args.runs_1},
            "keras_predict": "model.predict(x, batch_size=len(x), verbose=0)",
            "keras_call": "model(x, training=False), eager",
        },
        "batch_256_images_per_s": ips,
        "batch_1_latency_ms": lat_ms,
        "ratios": {
            "throughput_256_onnxruntime_over_keras_predict": speedup_256,
            "throughput_256_onnxruntime_over_keras_call": ips["onnxruntime"] / ips["keras_call"],
            "latency_1_keras_predict_over_onnxruntime": speedup_1_predict,
            "latency_1_keras_call_over_onnxruntime": speedup_1_call,
        },
        "targets": {
            "batch_256_onnxruntime_at_least_1x_keras": speedup_256 >= 1.0,
            "batch_1_onnxruntime_at_least_2x_faster_than_predict": speedup_1_predict >= 2.0,
            "batch_1_onnxruntime_at_least_2x_faster_than_call": speedup_1_call >= 2.0,
        },
        "raw_s": {
            "batch_256": {
                "onnxruntime": r_ort_256,
                "keras_predict": r_kp_256,
                "keras_call": r_kc_256,
            },
            "batch_1": {"onnxruntime": r_ort_1, "keras_predict": r_kp_1, "keras_call": r_kc_1},
        },  # fmt: skip
    }
    out = ROOT / "bench" / "results" / "onnx_vs_keras.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")

    def yes(flag: bool) -> str:
        return "met" if flag else "NOT met"

    print(f"{src.name} ({result['model']['spec']}), {os.cpu_count()} CPU cores, ONNX opset 17")
    print(f"\n{'runtime':<34} {'batch 256 (img/s)':>18} {'batch 1 (ms)':>13}")
    rows = (
        ("onnxruntime (CPU)", "onnxruntime"),
        ("Keras model.predict", "keras_predict"),
        ("Keras model(x, training=False)", "keras_call"),
    )
    for label, key in rows:
        print(f"{label:<34} {ips[key]:>18.1f} {lat_ms[key]:>13.2f}")
    print(
        f"\nbatch 256: onnxruntime {speedup_256:.2f}x Keras predict "
        f"(target >= 1.0x: {yes(speedup_256 >= 1.0)})"
    )
    print(
        f"batch 1:   onnxruntime {speedup_1_predict:.1f}x faster than predict "
        f"(target >= 2x: {yes(speedup_1_predict >= 2.0)}), "
        f"{speedup_1_call:.1f}x faster than a direct call "
        f"(target >= 2x: {yes(speedup_1_call >= 2.0)})"
    )
    print(f"\nwrote {out.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
