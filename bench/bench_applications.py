"""ONNX export of the twelve keras.applications models written as specs.

Usage: python bench/bench_applications.py [--only NAME] [--timeout 1800]
                                          [--images-per-class 16] [--min-agreement 0.98]

For each of the twelve specs in specs/applications/ (vgg16, vgg19, resnet50, resnet50v2,
mobilenet, mobilenetv2, mobilenetv3small, densenet121, xception, inceptionv3,
efficientnetb0, convnexttiny; family files such as efficientnet.yaml are skipped), with
fresh seeded weights (untrained):

1. float ONNX through ``nincompile.export.export_onnx`` (opset 17, dynamic batch) into a
   temporary folder: whether the parity gate passed (onnx.checker, then onnxruntime vs
   Keras on seeded standard-normal inputs at batch 1 and 4: max |onnx - keras| <=
   1e-5 + 1e-4 x max |keras| (``nincompile.export.verify.tolerance``) and 100 % top-1
   agreement), the max absolute difference of each check as the export
   report gives it, the ONNX file size and the wall time of the ``export_onnx`` call.
   The report gives no relative figure, so this bench computes one on the same inputs:
   max |onnx - keras| / max |keras| (and, in the JSON, the largest elementwise
   |onnx - keras| / |keras| over |keras| >= 1e-6).  It also records how far Keras's
   output is from constant: in several untrained models the activations vanish (BN
   moving statistics at 0/1, no normalisation) and the softmax is exactly uniform, so
   the gate compares constants.  A failed export's error is recorded; after a failed
   parity check the graph is converted again (``convert.to_onnx``) to measure it.
2. a probe that makes the gate bite: every BatchNormalization layer's moving mean and
   variance set to the batch statistics of 8 standard-normal images (one training-mode
   pass with momentum 0; nothing for models without BN), then the model without its
   final softmax (the logits) exported the same way (``export_onnx`` on the Source with
   that model), with the same figures.
3. for mobilenetv2 and efficientnetb0, int8 through ``nincompile.export.quantize_onnx``
   (what ``--quantize int8`` runs) on a synthetic folder of random RGB PNGs (2 class
   sub-folders x ``--images-per-class`` images at the model's input size, uniform noise,
   seeded): half the images calibrate, the other half gate.  The folder is unlabelled
   for these 1000-output models (2 sub-folders, no class names), so the gate is top-1
   agreement with Keras only, at ``--min-agreement`` (default 0.98, the library's).  Run
   on the model as initialised and again after BN re-estimation on 8 uniform 0..1 images
   (the gate's pixels / 255).  A refusal is recorded with the agreement it measured.

``--only NAME`` runs one spec and replaces its record in the results (the others are
kept).  Each model runs in its own Python process (``--worker``), so memory is returned
and a crash is recorded, not fatal.  Writes bench/results/applications.json and
bench/results/applications.md and prints the table; nothing is asserted.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
import traceback
from pathlib import Path

from _common import machine

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

ROOT = Path(__file__).resolve().parent.parent
SPECS = ROOT / "specs" / "applications"
RESULTS = ROOT / "bench" / "results"
NAMES = [
    "vgg16",
    "vgg19",
    "resnet50",
    "resnet50v2",
    "mobilenet",
    "mobilenetv2",
    "mobilenetv3small",
    "densenet121",
    "xception",
    "inceptionv3",
    "efficientnetb0",
    "convnexttiny",
]
QUANTIZE = {"mobilenetv2", "efficientnetb0"}
OPSET = 17
#: Outputs smaller than this are left out of the elementwise relative difference.
REL_FLOOR = 1e-6


# ----------------------------------------------------------------------- worker


def diff_figures(sess, model, shape) -> dict:
    """Max abs and relative |onnx - keras| on the inputs the parity gate uses."""
    import numpy as np

    rng = np.random.default_rng(0)  # as nincompile.export.verify: batch 1, then batch 4
    out = {}
    for b in (1, 4):
        x = rng.standard_normal((b, *shape)).astype(np.float32)
        o = sess.run(None, {"input": x})[0].astype(np.float64)
        k = np.asarray(model(x, training=False)).astype(np.float64)
        d = np.abs(o - k)
        big = np.abs(k) >= REL_FLOOR
        out[f"batch_{b}"] = {
            "max_abs_diff": float(d.max()),
            "max_abs_keras": float(np.abs(k).max()),
            "max_diff_over_max_keras": float(d.max() / max(np.abs(k).max(), 1e-30)),
            "max_elementwise_rel_diff": float((d[big] / np.abs(k[big])).max())
            if big.any()
            else None,
            "top1_agree": int((o.argmax(-1) == k.argmax(-1)).sum()),
            "top1_total": b,
        }
    return out


def checks_of(report) -> list[dict]:
    return [
        {
            "name": c.name,
            "passed": c.passed,
            "detail": c.detail,
            "max_abs_diff": c.max_abs_diff,
        }
        for c in report.checks
    ]


def make_images(folder: Path, shape, per_class: int, seed: int = 0) -> None:
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(seed)
    h, w, _ = shape
    for cls in ("class_a", "class_b"):
        (folder / cls).mkdir(parents=True)
        for i in range(per_class):
            pixels = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
            Image.fromarray(pixels, "RGB").save(folder / cls / f"{i:03d}.png")


def float_export(src, out: Path) -> dict:
    """``export_onnx(src, out)``: the gate's checks and verdict, size, time, own figures."""
    import onnxruntime as ort

    from nincompile.errors import VerificationFailed
    from nincompile.export import export_onnx
    from nincompile.export.convert import output_name, to_onnx
    from nincompile.export.source import input_shape

    shape = input_shape(src.model)
    rec: dict = {"output": output_name(src.model)}
    start = time.perf_counter()
    try:
        report = export_onnx(src, out, opset=OPSET)
    except VerificationFailed as err:
        rec["wall_s"] = time.perf_counter() - start
        rec["passed"] = False
        rec["error"] = f"{type(err).__name__}: {err}"
        rec["checks"] = checks_of(err.report)
        try:  # convert again to measure how far off it is
            proto = to_onnx(src.model, shape, OPSET, None, rec["output"], None, None)
            payload = proto.SerializeToString()
            sess = ort.InferenceSession(payload, providers=["CPUExecutionProvider"])
            rec["onnx_bytes"] = len(payload)
            rec["diff"] = diff_figures(sess, src.model, shape)
        except Exception as err2:  # noqa: BLE001 - recorded
            rec["diff_error"] = f"{type(err2).__name__}: {err2}"
        return rec
    except Exception as err:  # noqa: BLE001 - a conversion error is a finding
        rec["wall_s"] = time.perf_counter() - start
        rec["passed"] = False
        rec["error"] = f"{type(err).__name__}: {err}"
        rec["traceback"] = traceback.format_exc()
        return rec
    rec["wall_s"] = time.perf_counter() - start
    rec["passed"] = report.ok
    rec["checks"] = checks_of(report)
    rec["onnx_bytes"] = report.size_bytes
    sess = ort.InferenceSession(str(report.out), providers=["CPUExecutionProvider"])
    rec["diff"] = diff_figures(sess, src.model, shape)
    out.unlink()
    return rec


def int8_export(src, data: Path, out: Path, per_class: int, min_agreement: float) -> dict:
    """``quantize_onnx(src, out, data=data)`` with half the images calibrating, half gating."""
    from nincompile.export.quantize import GateRefused, quantize_onnx
    from nincompile.export.source import input_shape

    h, w, _ = input_shape(src.model)
    total = 2 * per_class
    calibration = total // 2
    holdout = total - calibration
    rec: dict = {
        "data": f"2 class folders x {per_class} random RGB PNGs {h}x{w} (uniform noise, seed 0)",
        "calibration": calibration,
        "holdout": holdout,
        "min_agreement": min_agreement,
    }
    start = time.perf_counter()
    try:
        report = quantize_onnx(
            src,
            out,
            data=data,
            calibration=calibration,
            holdout=holdout,
            min_agreement=min_agreement,
            opset=OPSET,
        )
        rec["passed"] = True
    except GateRefused as err:
        report = err.report
        rec["passed"] = False
        rec["error"] = f"GateRefused: {str(err).splitlines()[0]}"
        rec["failures"] = report.gate.failures() if report.gate else []
    except Exception as err:  # noqa: BLE001 - recorded
        rec["wall_s"] = time.perf_counter() - start
        rec["passed"] = False
        rec["error"] = f"{type(err).__name__}: {err}"
        rec["traceback"] = traceback.format_exc()
        report = getattr(err, "report", None)
        if report is not None:
            rec["checks"] = checks_of(report)
        return rec
    rec["wall_s"] = time.perf_counter() - start
    rec["checks"] = checks_of(report)
    rec["notes"] = list(report.notes)
    rec["label_note"] = report.label_note
    rec["float_onnx_bytes"] = report.float_size_bytes
    rec["int8_onnx_bytes"] = report.size_bytes or None
    gate = report.gate
    if gate is not None:
        rec["gate_images"] = gate.images
        rec["agree"] = gate.agree
        rec["agreement"] = gate.agreement
    if out.exists():
        out.unlink()
    return rec


def logits_model(model):
    """``model`` without its final softmax Activation layer (weights shared)."""
    import keras

    return keras.Model(model.inputs, model.layers[-1].input, name=f"{model.name}_logits")


def output_stats(model, shape) -> dict:
    """How far the Keras outputs on the gate's random inputs are from constant."""
    import numpy as np

    x = np.random.default_rng(0).standard_normal((4, *shape)).astype(np.float32)
    y = np.asarray(model(x, training=False), dtype=np.float64)
    z = np.asarray(logits_model(model)(x, training=False), dtype=np.float64)
    return {
        "prob_spread": float((y.max(-1) - y.min(-1)).max()),
        "logits_max_abs": float(np.abs(z).max()),
        "logits_std": float(z.std()),
        "top1": [int(i) for i in y.argmax(-1)],
    }


def reestimate_bn(model, x) -> int:
    """Set every BatchNormalization layer's moving mean/variance to the batch statistics
    of ``x`` (one training-mode pass with momentum 0); returns how many layers."""
    import keras

    layers = [
        layer
        for layer in model._flatten_layers()
        if isinstance(layer, keras.layers.BatchNormalization)
    ]
    saved = [layer.momentum for layer in layers]
    for layer in layers:
        layer.momentum = 0.0
    model(x, training=True)
    for layer, m in zip(layers, saved, strict=True):
        layer.momentum = m
    return len(layers)


def peak_rss_mb() -> float:
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # kB on Linux


def rss_mb(pid: int) -> float:
    """Resident memory of process ``pid`` now (0 when unknown)."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def run_worker(cmd: list[str], timeout: float, max_rss_mb: float) -> tuple[int | None, str, float]:
    """Run a worker; kill it past ``timeout`` s or ``max_rss_mb`` resident memory.
    Returns (exit status or None when killed here, why/output tail, peak RSS seen)."""
    log = tempfile.TemporaryFile(mode="w+")
    proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, text=True)
    start, peak, why = time.monotonic(), 0.0, ""
    while proc.poll() is None:
        peak = max(peak, rss_mb(proc.pid))
        if peak > max_rss_mb:
            why = f"killed by the bench: resident memory {peak / 1024:.1f} GB > --max-rss-gb"
        elif time.monotonic() - start > timeout:
            why = f"killed by the bench: still running after {timeout:.0f} s (--timeout)"
        if why:
            proc.kill()
            proc.wait()
            break
        time.sleep(0.2)
    log.seek(0)
    tail = log.read()[-3000:]
    log.close()
    return (None if why else proc.returncode), (why or tail), peak


def worker(name: str, out: Path, per_class: int, min_agreement: float) -> None:
    import dataclasses

    import keras
    import numpy as np

    from nincompile.export import load_source
    from nincompile.export.source import input_shape

    rec: dict = {"name": name, "spec": f"specs/applications/{name}.yaml"}

    def save(phase: str = "done") -> None:
        rec["phase"] = phase  # what the worker was doing, should it be killed
        rec["peak_rss_mb"] = peak_rss_mb()
        out.write_text(json.dumps(rec, indent=2))

    save("load")
    start = time.perf_counter()
    try:
        src = load_source(SPECS / f"{name}.yaml")
    except Exception as err:  # noqa: BLE001 - recorded
        rec["load_error"] = f"{type(err).__name__}: {err}"
        save()
        return
    shape = input_shape(src.model)
    rec["load_s"] = time.perf_counter() - start
    rec["input"] = list(shape)
    rec["params"] = int(src.model.count_params())
    rec["layers"] = len(src.model.layers)
    rec["keras_output_as_initialised"] = output_stats(src.model, shape)
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        save("float export")
        rec["float"] = float_export(src, tmp / f"{name}.onnx")
        if name in QUANTIZE:
            save("int8 export")
            make_images(tmp / "images", shape, per_class)
            rec["int8"] = int8_export(
                src, tmp / "images", tmp / f"{name}_int8.onnx", per_class, min_agreement
            )
        save("probe: float export of the logits")

        # probe: activations that do not vanish, and the logits, not the softmax
        rng = np.random.default_rng(1)
        n_bn = reestimate_bn(src.model, rng.standard_normal((8, *shape)).astype(np.float32))
        probe = dataclasses.replace(src, model=logits_model(src.model), notes=list(src.notes))
        rec["probe"] = {
            "bn_layers_reestimated": n_bn,
            "bn_inputs": "8 standard-normal images (seed 1)",
            "keras_logits": output_stats(src.model, shape),
            **float_export(probe, tmp / f"{name}_logits.onnx"),
        }
        if name in QUANTIZE:
            save("probe: int8 export")
            x01 = rng.uniform(0.0, 1.0, (8, *shape)).astype(np.float32)  # pixels / 255
            rec["int8_probe"] = {
                "bn_layers_reestimated": reestimate_bn(src.model, x01),
                "bn_inputs": "8 uniform 0..1 images (seed 1), as the gate's pixels / 255",
                **int8_export(
                    src, tmp / "images", tmp / f"{name}_int8p.onnx", per_class, min_agreement
                ),
            }
    rec["keras"] = keras.__version__
    save()


# ------------------------------------------------------------------------ table


def mb(n) -> str:
    return "-" if not n else f"{n / 1e6:.2f} MB"


def gb(mb_: float) -> str:
    return "-" if not mb_ else f"{mb_ / 1024:.1f} GB"


def sci(x) -> str:
    return "-" if x is None else f"{x:.1e}"


def verdict(part: dict | None, rec: dict) -> str:
    if "load_error" in rec:
        return "LOAD FAILED"
    if part is None:
        return "CRASHED" if "crash" in rec else "-"
    return "passed" if part.get("passed") else "FAILED"


def figures(part: dict) -> tuple[str, str]:
    """The gate's max abs diff and this bench's max |diff| / max |keras|."""
    found = [c["max_abs_diff"] for c in part.get("checks", []) if c["max_abs_diff"] is not None]
    diffs = list((part.get("diff") or {}).values())
    rel = max((d["max_diff_over_max_keras"] for d in diffs), default=None)
    return sci(max(found, default=None)), sci(rel)


def float_row(rec: dict) -> list[str]:
    f, p = rec.get("float") or {}, rec.get("probe") or {}
    stats = rec.get("keras_output_as_initialised") or {}
    spread = stats.get("prob_spread")
    return [
        rec["name"],
        "-" if "params" not in rec else f"{rec['params']:,}",
        verdict(rec.get("float"), rec),
        *figures(f),
        "-" if spread is None else ("0 (constant)" if spread == 0 else sci(spread)),
        mb(f.get("onnx_bytes")),
        "-" if "wall_s" not in f else f"{f['wall_s']:.1f} s",
        gb(max(rec.get("peak_rss_mb") or 0, rec.get("peak_rss_mb_polled") or 0)),
        verdict(rec.get("probe"), rec),
        sci((p.get("keras_logits") or {}).get("logits_max_abs")),
        *figures(p),
    ]


FLOAT_HEADER = [
    ("model", "---"),
    ("params", "---:"),
    ("parity (as initialised)", "---"),
    ("max abs diff", "---:"),
    ("max diff / max keras", "---:"),
    ("Keras prob. spread", "---:"),
    ("ONNX size", "---:"),
    ("export time", "---:"),
    ("peak memory", "---:"),
    ("parity on logits, BN re-estimated", "---"),
    ("max abs logit", "---:"),
    ("max abs diff", "---:"),
    ("max diff / max keras", "---:"),
]


def int8_cell(q: dict | None) -> str:
    if q is None:
        return "-"
    if "agreement" not in q:
        return f"FAILED: {q.get('error', '?').splitlines()[0]}"
    word = "passed" if q.get("passed") else "REFUSED"
    return (
        f"{word}: {q['agree']}/{q['gate_images']} agree ({100 * q['agreement']:.2f} %, "
        f"needs >= {100 * q['min_agreement']:g} %); int8 {mb(q.get('int8_onnx_bytes'))}"
    )


def table(header, rows) -> list[str]:
    return [
        "| " + " | ".join(h for h, _ in header) + " |",
        "|" + "|".join(a for _, a in header) + "|",
        *("| " + " | ".join(r) + " |" for r in rows),
    ]


def markdown(records: list[dict], meta: dict) -> str:
    from nincompile.export.verify import ATOL, RTOL

    lines = [
        "# keras.applications specs -> ONNX",
        "",
        f"`python bench/bench_applications.py`: {meta['machine']['cpus']} CPU cores (shared), "
        f"opset {OPSET}, dynamic batch, `export_onnx`, fresh seeded (untrained) weights.",
        "",
        "The parity gate: onnx.checker, then onnxruntime vs Keras on seeded standard-normal "
        "inputs at batch 1 and 4, max |onnx - keras| <= "
        f"{ATOL:g} + {RTOL:g} x max |keras| and 100 % top-1 agreement (a flip where Keras's "
        "top two are within twice the max difference is a tie). "
        "*As initialised*: the spec's model as built (softmax output). *Keras prob. spread*: "
        "the largest max - min of one image's 1000 probabilities; 0 means the untrained "
        "model's activations vanish and the output is exactly uniform, so the gate compares "
        "constants. *Logits, BN re-estimated*: the same export of the model without its "
        "softmax, after each BatchNormalization layer's moving statistics were set to the "
        "batch statistics of 8 standard-normal images (no-op for models without BN), so the "
        "gate applies to non-trivial logits. *max diff / max keras*: this bench's own "
        "figure, max |onnx - keras| / max |keras| on the gate's inputs. Export time: the "
        "`export_onnx` call (conversion, checks, write). Peak memory: the worker process's "
        "peak resident memory over all its exports (a worker above --max-rss-gb "
        f"{meta['method']['max_rss_gb']:g} is killed).",
        "",
        *table(FLOAT_HEADER, [float_row(r) for r in records]),
    ]
    q = [r for r in records if "int8" in r or "int8_probe" in r]
    if q:
        first = q[0].get("int8") or q[0].get("int8_probe")
        lines += [
            "",
            f"int8: `quantize_onnx` (as `--quantize int8`) on {first['data']}: "
            f"--calibration {first['calibration']}, --holdout {first['holdout']}, "
            f"--min-agreement {first['min_agreement']:g}. With 2 sub-folders and no class "
            "names the folder is unlabelled for a 1000-output model, so the gate is top-1 "
            "agreement only; one disagreement in 16 costs 6.25 points. Weights and activations "
            "are int8/uint8 but for the end of the graph: the final Softmax, the logits it reads "
            "and the output stay float32. *BN re-estimated*: on "
            "8 uniform 0..1 images (the gate's pixels / 255). Noise images and untrained "
            "weights: these figures say little about int8 quality on real data.",
            "",
            *table(
                [
                    ("model", "---"),
                    ("int8, as initialised", "---"),
                    ("int8, BN re-estimated", "---"),
                ],
                [[r["name"], int8_cell(r.get("int8")), int8_cell(r.get("int8_probe"))] for r in q],
            ),  # fmt: skip
        ]
    errors = []
    for r in records:
        for key in ("load_error", "crash"):
            if key in r:
                errors.append(f"- **{r['name']}** ({key}): `{r[key].splitlines()[0]}`")
        for part in ("float", "int8", "probe", "int8_probe"):
            err = (r.get(part) or {}).get("error")
            if err:
                errors.append(f"- **{r['name']}** ({part}): `{err.splitlines()[0]}`")
            for fail in (r.get(part) or {}).get("failures", []):
                errors.append(f"  - {fail}")
    if errors:
        lines += ["", "Failures and refusals:", "", *errors]
    return "\n".join(lines) + "\n"


# ------------------------------------------------------------------------- main


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", choices=NAMES, help="run one spec")
    parser.add_argument("--timeout", type=int, default=1800, help="seconds per model")
    parser.add_argument("--images-per-class", type=int, default=16, help="int8 noise images")
    parser.add_argument("--min-agreement", type=float, default=0.98, help="int8 gate")
    parser.add_argument(
        "--max-rss-gb", type=float, default=12.0, help="kill a worker above this memory"
    )
    parser.add_argument("--worker", choices=NAMES, help=argparse.SUPPRESS)
    parser.add_argument("--worker-out", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.worker:
        worker(args.worker, args.worker_out, args.images_per_class, args.min_agreement)
        return

    names = [args.only] if args.only else NAMES
    records = []
    total_start = time.perf_counter()
    for name in names:
        print(f"{name} ...", flush=True)
        with tempfile.TemporaryDirectory() as tmp:
            out = Path(tmp) / "rec.json"
            cmd = [
                sys.executable, __file__, "--worker", name, "--worker-out", str(out),
                "--images-per-class", str(args.images_per_class),
                "--min-agreement", str(args.min_agreement),
            ]  # fmt: skip
            start = time.perf_counter()
            rc, tail, peak = run_worker(cmd, args.timeout, args.max_rss_gb * 1024)
            rec = json.loads(out.read_text()) if out.is_file() else {"name": name}
            rec["process_s"] = time.perf_counter() - start
            rec["peak_rss_mb_polled"] = peak
            if rc != 0:
                status = (
                    "killed"
                    if rc is None
                    else f"exit {rc}"
                    + (" (SIGKILL: the kernel's out-of-memory killer?)" if rc == -9 else "")
                )
                rec["crash"] = f"worker {status} during {rec.get('phase', '?')}" + (
                    f": {tail}" if rc is None else ""
                )
                rec["crash_output"] = tail
        records.append(rec)
        print("  " + " | ".join(float_row(rec)), flush=True)

    from nincompile.export.verify import ATOL, RTOL

    meta = {
        "machine": machine(),
        "method": {
            "opset": OPSET,
            "batch": "dynamic",
            "weights": "fresh, seeded by the spec (untrained)",
            "parity_gate": "onnx.checker full_check; onnxruntime vs Keras on seeded "
            f"standard-normal inputs at batch 1 and 4; max abs diff <= {ATOL:g} + {RTOL:g} x "
            "max |keras|, 100 % top-1",
            "relative_diff": "this bench, same inputs: max|o-k| / max|k|, and max "
            f"|o-k|/|k| over |k| >= {REL_FLOOR:g}",
            "max_rss_gb": args.max_rss_gb,
            "timeout_s": args.timeout,
            "int8": {
                "models": sorted(QUANTIZE),
                "images_per_class": args.images_per_class,
                "min_agreement": args.min_agreement,
            },
        },
        "total_s": time.perf_counter() - total_start,
    }
    json_path = RESULTS / "applications.json"
    md_path = RESULTS / "applications.md"
    if args.only and json_path.is_file():  # replace that model's record, keep the others
        kept = {r["name"]: r for r in json.loads(json_path.read_text()).get("models", [])}
        kept[args.only] = records[0]
        records = [kept[n] for n in NAMES if n in kept]
    result = {**meta, "models": records}
    RESULTS.mkdir(parents=True, exist_ok=True)
    json_path.write_text(json.dumps(result, indent=2) + "\n")
    md = markdown(records, meta)
    md_path.write_text(md)
    print()
    print(md)
    print(f"wrote {json_path.relative_to(ROOT)} and {md_path.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
