"""onnxruntime vs Keras on CPU for NIN-BN: throughput at batch 256, latency at batch 1.

Usage: python bench/bench_onnx.py [--runs-256 10] [--runs-1 200] [--rounds 5] [--spec PATH]

The model is specs/nin_bamd.yaml (falling back to specs/nin_badm.yaml) with fresh
seeded weights (speed does not depend on the weights), exported through
``nincompile.export.export_onnx`` (so the ONNX file passed the parity checks).
Each figure is a median over the timed runs, after warm-up runs; the runners are
interleaved in ``--rounds`` rounds (each round times every runner in turn), so that
load from other processes falls on all alike.  Keras is timed through
``model.predict``, a direct eager ``model(x, training=False)`` call, and the same call
traced once (``tf.function`` with a fixed input signature; also with XLA,
``jit_compile=True``).  onnxruntime is timed with its library defaults (a plain
``InferenceSession``: one intra-op thread per core, spinning pool threads) and with
``nincompile.export.verify.session_options`` at one intra-op thread, and at the
default thread count without spinning, and at the graph optimisation levels below
ORT_ENABLE_ALL (basic, extended: without the NCHWc layout transformation); for the
one-thread session the calling thread's CPU time is reported too (it does all the
work, so that figure hardly moves with load from other processes).  The int8 model
of ``nincompile.export.quantize`` (calibrated on inputs drawn like the timed ones:
speed does not depend on the scales; ``bench_int8.py`` measures its accuracy) is timed
with the library defaults.  The exported graph's operators are counted (the
layout transposes left by tf2onnx among them).  Writes
bench/results/onnx_vs_keras.json and prints a table.  Targets (onnxruntime >= 1.0x
Keras images/s at batch 256; at batch 1 >= 2x faster than ``predict`` and the eager
call, >= 4x faster than the traced call, for the float and the int8 model) are
reported, never asserted.  Each
runner's share of the machine's fp32 matmul peak (measured here, as bench_peers does)
is reported with the floor it implies: the forward pass's FLOP (2 x the spec's MACs)
at the peak, the least time an image can take on these cores.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time
from pathlib import Path

from _common import machine, macs_per_image, matmul_peak

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

ROOT = Path(__file__).resolve().parent.parent
CANDIDATES = [ROOT / "specs" / "nin_bamd.yaml", ROOT / "specs" / "nin_badm.yaml"]
# graph optimisation levels timed besides ORT_ENABLE_ALL (what every session here uses)
LEVELS = {
    "basic": lambda ort: ort.GraphOptimizationLevel.ORT_ENABLE_BASIC,
    "extended": lambda ort: ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED,
}
FLOAT_SESSIONS = ("onnxruntime", "onnxruntime_1_thread", "onnxruntime_no_spinning",
                  "onnxruntime_basic", "onnxruntime_extended")  # fmt: skip


def interleaved(runners: dict, runs: int, warmup: int, rounds: int) -> dict[str, dict]:
    """Median wall (and calling-thread CPU) seconds of each runner, timed in turn:
    ``rounds`` rounds of ``runs // rounds`` calls each, after ``warmup`` calls."""
    for fn in runners.values():
        for _ in range(warmup):
            fn()
    wall = {k: [] for k in runners}
    cpu = {k: [] for k in runners}
    per_round = max(1, runs // rounds)
    for _ in range(rounds):
        for name, fn in runners.items():
            for _ in range(per_round):
                c0, t0 = time.thread_time(), time.perf_counter()
                fn()
                wall[name].append(time.perf_counter() - t0)
                cpu[name].append(time.thread_time() - c0)
    return {
        k: {"median_s": statistics.median(wall[k]), "thread_cpu_median_s":
            statistics.median(cpu[k]), "raw_s": wall[k]}
        for k in runners
    }  # fmt: skip


def graph_ops(path: Path) -> dict:
    import collections

    import onnx

    proto = onnx.load(str(path))
    ops = collections.Counter(node.op_type for node in proto.graph.node)
    transposes = [
        {"name": n.name, "input": n.input[0],
         "perm": [list(a.ints) for a in n.attribute if a.name == "perm"][0]}
        for n in proto.graph.node if n.op_type == "Transpose"
    ]  # fmt: skip
    return {"ops": dict(ops), "transposes": transposes}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs-256", type=int, default=10, help="timed batches of 256")
    parser.add_argument("--runs-1", type=int, default=200, help="timed single-image runs")
    parser.add_argument("--rounds", type=int, default=5, help="interleaved rounds")
    parser.add_argument("--spec", type=Path, help="spec to benchmark (default: NIN-BN)")
    args = parser.parse_args()

    spec = args.spec or next((p for p in CANDIDATES if p.is_file()), None)
    if spec is None:
        raise SystemExit(f"none of {', '.join(str(p) for p in CANDIDATES)} exists")

    import numpy as np
    import onnx
    import onnxruntime as ort
    import tensorflow as tf

    from nincompile.export import export_onnx, load_source
    from nincompile.export.quantize import _quantize
    from nincompile.export.verify import session, session_options

    ort.set_default_logger_severity(3)  # the int8 graph's unused-initialiser warnings
    src = load_source(spec)
    model = src.model
    forward_flop = 2 * macs_per_image(spec)
    load = {"start": list(os.getloadavg())}
    with tempfile.TemporaryDirectory() as tmp:
        report = export_onnx(src, Path(tmp) / "model.onnx", opset=17)
        path = str(report.out)
        graph = graph_ops(report.out)
        sessions = {
            "onnxruntime": ort.InferenceSession(path, providers=["CPUExecutionProvider"]),
            "onnxruntime_1_thread": session(path, threads=1),
            "onnxruntime_no_spinning": session(path, spinning=False),
        }
        for level in ("basic", "extended"):
            opts = session_options()
            opts.graph_optimization_level = LEVELS[level](ort)
            sessions[f"onnxruntime_{level}"] = ort.InferenceSession(
                path, opts, providers=["CPUExecutionProvider"]
            )
        onnx_bytes = report.size_bytes
        # int8: nincompile's quantiser (QDQ, per-channel int8 weights, uint8 activations)
        # calibrated on inputs drawn like the timed ones; speed does not depend on the
        # scales, and bench_int8 measures its accuracy on trained weights
        calibration = np.random.default_rng(1).standard_normal((64, *src.spec.input))
        int8_proto = _quantize(onnx.load(path), calibration.astype(np.float32), None)
        int8_path = str(Path(tmp) / "model_int8.onnx")
        onnx.save(int8_proto, int8_path)
        int8_bytes = Path(int8_path).stat().st_size
        sessions["onnxruntime_int8"] = ort.InferenceSession(
            int8_path, providers=["CPUExecutionProvider"]
        )

    shape = tuple(src.spec.input)
    rng = np.random.default_rng(0)
    x256 = rng.standard_normal((256, *shape)).astype(np.float32)
    x1 = x256[:1].copy()
    signature = [tf.TensorSpec((None, *shape), tf.float32)]
    traced = tf.function(lambda x: model(x, training=False), input_signature=signature)
    traced_xla = tf.function(
        lambda x: model(x, training=False), input_signature=signature, jit_compile=True
    )

    def runners(x) -> dict:
        out = {name: (lambda s=s: s.run(None, {"input": x})) for name, s in sessions.items()}
        out["keras_predict"] = lambda: model.predict(x, batch_size=len(x), verbose=0)
        out["keras_call"] = lambda: model(x, training=False)
        out["keras_traced"] = lambda: traced(x).numpy()
        out["keras_traced_xla"] = lambda: traced_xla(x).numpy()
        return out

    b256 = interleaved(runners(x256), args.runs_256, 2, min(args.rounds, args.runs_256))
    load["after_256"] = list(os.getloadavg())
    b1 = interleaved(runners(x1), args.runs_1, 20, args.rounds)
    load["end"] = list(os.getloadavg())

    ips = {k: 256 / v["median_s"] for k, v in b256.items()}
    lat_ms = {k: v["median_s"] * 1e3 for k, v in b1.items()}
    peak = matmul_peak()
    peak_flops = peak["peak_gflops"] * 1e9
    floor_ms = forward_flop / peak_flops * 1e3
    share = {
        "batch_1": {k: floor_ms / v for k, v in lat_ms.items()},
        "batch_256": {k: v * forward_flop / peak_flops for k, v in ips.items()},
    }
    cpu_ms_1_thread = b1["onnxruntime_1_thread"]["thread_cpu_median_s"] * 1e3
    best_ort = min(FLOAT_SESSIONS, key=lat_ms.get)
    ort_1 = lat_ms[best_ort]
    speedup_256 = ips["onnxruntime"] / ips["keras_predict"]
    ratios = {
        "throughput_256_onnxruntime_over_keras_predict": speedup_256,
        "throughput_256_onnxruntime_over_keras_call": ips["onnxruntime"] / ips["keras_call"],
        "throughput_256_onnxruntime_over_keras_traced": ips["onnxruntime"] / ips["keras_traced"],
        "latency_1_keras_predict_over_onnxruntime": lat_ms["keras_predict"] / ort_1,
        "latency_1_keras_call_over_onnxruntime": lat_ms["keras_call"] / ort_1,
        "latency_1_keras_traced_over_onnxruntime": lat_ms["keras_traced"] / ort_1,
        "latency_1_keras_traced_xla_over_onnxruntime": lat_ms["keras_traced_xla"] / ort_1,
        "latency_1_onnxruntime_defaults_over_1_thread": (
            lat_ms["onnxruntime"] / lat_ms["onnxruntime_1_thread"]
        ),
        "latency_1_onnxruntime_defaults_over_no_spinning": (
            lat_ms["onnxruntime"] / lat_ms["onnxruntime_no_spinning"]
        ),
        "latency_1_basic_over_all": lat_ms["onnxruntime_basic"] / lat_ms["onnxruntime"],
        "latency_1_extended_over_all": lat_ms["onnxruntime_extended"] / lat_ms["onnxruntime"],
        "latency_1_keras_traced_over_onnxruntime_int8": (
            lat_ms["keras_traced"] / lat_ms["onnxruntime_int8"]
        ),
        "latency_1_float_over_int8": lat_ms[best_ort] / lat_ms["onnxruntime_int8"],
        "throughput_256_int8_over_float": ips["onnxruntime_int8"] / ips["onnxruntime"],
    }  # fmt: skip
    result = {
        "model": {
            "spec": str(spec.relative_to(ROOT)) if spec.is_relative_to(ROOT) else str(spec),
            "name": src.name,
            "input": list(shape),
            "params": int(model.count_params()),
            "onnx_bytes": onnx_bytes,
            "onnx_int8_bytes": int8_bytes,
            "opset": 17,
            "weights": "fresh, seeded (speed does not depend on them)",
            "graph": graph,
        },
        "machine": machine(
            onnxruntime_providers=sessions["onnxruntime"].get_providers(),
            shared="other jobs may run on the same cores: see load_average",
        ),
        "load_average": load,
        "method": {
            "statistic": "median",
            "rounds": args.rounds,
            "batch_256": {"warmup": 2, "runs": args.runs_256},
            "batch_1": {"warmup": 20, "runs": args.runs_1},
            "onnxruntime": "InferenceSession(path): library defaults (intra-op threads = "
            "cores, spinning)",
            "onnxruntime_1_thread": "verify.session(path, threads=1): session_options with "
            "ORT_ENABLE_ALL, ORT_SEQUENTIAL, 1 inter-op and 1 intra-op thread",
            "onnxruntime_no_spinning": "verify.session(path, spinning=False): as above with "
            "intra-op threads = cores, session.intra_op.allow_spinning 0",
            "onnxruntime_basic": "session_options() with ORT_ENABLE_BASIC (constant "
            "folding, redundant-node removal; no fusions, no NCHWc layout)",
            "onnxruntime_extended": "session_options() with ORT_ENABLE_EXTENDED (fusions; "
            "no NCHWc layout)",
            "onnxruntime_int8": "InferenceSession(path) (library defaults) on the int8 QDQ "
            "model of nincompile.export.quantize, calibrated on 64 inputs drawn like the "
            "timed ones (speed only; bench_int8 measures accuracy on trained weights)",
            "keras_predict": "model.predict(x, batch_size=len(x), verbose=0)",
            "keras_call": "model(x, training=False), eager",
            "keras_traced": "tf.function(model(x, training=False)), fixed input signature",
            "keras_traced_xla": "the same with jit_compile=True",
            "best_onnxruntime_at_batch_1": best_ort,
        },
        "batch_256_images_per_s": ips,
        "batch_1_latency_ms": lat_ms,
        "batch_1_onnxruntime_1_thread_cpu_ms": cpu_ms_1_thread,
        "forward_flop_per_image": forward_flop,
        "matmul_peak": peak,
        "batch_1_floor_ms": floor_ms,
        "share_of_peak": share,
        "ratios": ratios,
        "targets": {
            "batch_256_onnxruntime_at_least_1x_keras": speedup_256 >= 1.0,
            "batch_1_onnxruntime_at_least_2x_faster_than_predict": (
                ratios["latency_1_keras_predict_over_onnxruntime"] >= 2.0
            ),
            "batch_1_onnxruntime_at_least_2x_faster_than_call": (
                ratios["latency_1_keras_call_over_onnxruntime"] >= 2.0
            ),
            "batch_1_onnxruntime_at_least_4x_faster_than_traced_call": (
                ratios["latency_1_keras_traced_over_onnxruntime"] >= 4.0
            ),
            "batch_1_onnxruntime_int8_at_least_4x_faster_than_traced_call": (
                ratios["latency_1_keras_traced_over_onnxruntime_int8"] >= 4.0
            ),
        },
        "raw_s": {
            "batch_256": {k: v["raw_s"] for k, v in b256.items()},
            "batch_1": {k: v["raw_s"] for k, v in b1.items()},
        },
    }
    out = ROOT / "bench" / "results" / "onnx_vs_keras.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")

    def yes(flag: bool) -> str:
        return "met" if flag else "NOT met"

    transposes = len(graph["transposes"])
    print(f"{src.name} ({result['model']['spec']}), {os.cpu_count()} CPU cores, ONNX opset 17, "
          f"{transposes} Transpose node(s) in the graph; load {load['start'][0]:.2f} -> "
          f"{load['end'][0]:.2f}")  # fmt: skip
    print(f"\n{'runtime':<46} {'batch 256 (img/s)':>18} {'batch 1 (ms)':>13} "
          f"{'share of peak (256 / 1)':>24}")  # fmt: skip
    rows = (
        ("onnxruntime, library defaults", "onnxruntime"),
        ("onnxruntime, session_options(threads=1)", "onnxruntime_1_thread"),
        ("onnxruntime, session_options(spinning=False)", "onnxruntime_no_spinning"),
        ("onnxruntime, ORT_ENABLE_BASIC", "onnxruntime_basic"),
        ("onnxruntime, ORT_ENABLE_EXTENDED", "onnxruntime_extended"),
        ("onnxruntime, int8 model, library defaults", "onnxruntime_int8"),
        ("Keras model.predict", "keras_predict"),
        ("Keras model(x, training=False)", "keras_call"),
        ("Keras traced call (tf.function)", "keras_traced"),
        ("Keras traced call, XLA", "keras_traced_xla"),
    )
    for label, key in rows:
        shares = f"{share['batch_256'][key]:.2f} / {share['batch_1'][key]:.2f}"
        print(f"{label:<46} {ips[key]:>18.1f} {lat_ms[key]:>13.2f} {shares:>24}")
    print(f"\nonnxruntime 1 thread, batch 1: {cpu_ms_1_thread:.2f} ms CPU per image")
    print(f"forward pass {forward_flop / 1e9:.3f} GFLOP per image, fp32 matmul peak "
          f"{peak['peak_gflops']:.0f} GFLOP/s: an image takes at least {floor_ms:.2f} ms on "
          f"these cores; onnxruntime ({best_ort}) ran at {share['batch_1'][best_ort]:.0%} of "
          f"that; a 4x lead over the traced call needs the traced call at >= "
          f"{4 * lat_ms[best_ort]:.2f} ms (>= {4 * floor_ms:.2f} ms at the floor)")  # fmt: skip
    print(f"batch 256: onnxruntime {speedup_256:.2f}x Keras predict "
          f"(target >= 1.0x: {yes(speedup_256 >= 1.0)})")  # fmt: skip
    r_traced = ratios["latency_1_keras_traced_over_onnxruntime"]
    print(f"batch 1 ({best_ort}): {ratios['latency_1_keras_predict_over_onnxruntime']:.1f}x "
          f"faster than predict, {ratios['latency_1_keras_call_over_onnxruntime']:.1f}x than "
          f"an eager call, {r_traced:.1f}x than a traced call "
          f"(target >= 4x: {yes(r_traced >= 4.0)})")  # fmt: skip
    r_int8 = ratios["latency_1_keras_traced_over_onnxruntime_int8"]
    print(f"batch 1, int8 model: {lat_ms['onnxruntime_int8']:.2f} ms, "
          f"{ratios['latency_1_float_over_int8']:.1f}x the float model, {r_int8:.1f}x "
          f"faster than a traced call (target >= 4x: {yes(r_int8 >= 4.0)}; its accuracy: "
          f"bench/bench_int8.py)")  # fmt: skip
    print(f"\nwrote {out.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
