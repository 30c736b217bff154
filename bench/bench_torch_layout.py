"""Training steps of modern CNNs under the torch backend: Keras's convolution and
pooling code against nincompile's channels-last calls (``nincompile.train.channels_last``).

Usage: python bench/bench_torch_layout.py [--specs xception,densenet121,...]
                                          [--size 96] [--batch 16] [--steps 3] [--rounds 3]

Each spec of ``specs/applications/`` named in ``--specs`` is built at a
``--size`` x ``--size`` input (``input=[S,S,3]``; the rest as written, 1000 outputs)
with fresh seeded weights and compiled with SGD (momentum 0.9) and sparse categorical
cross-entropy.  In its own process under ``KERAS_BACKEND=torch`` it times
``train_on_batch`` on one seeded batch of standard-normal images: after two warm-up
steps in each mode, ``--rounds`` rounds of ``--steps`` steps with Keras's code, then
the same with the layers switched (the two modes alternate, so load from other
processes falls on both alike).  Only the layout changes: batch normalisation runs
Keras's code in both (``nincompile train`` fuses it as well; see bench_peers.py).
Reports the median step time of each mode, the ratio, and how many layers of each
class were switched; writes bench/results/torch_layout.json and .md.  Nothing is
asserted.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

from _common import machine, write_report

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_SPECS = "xception,densenet121,inceptionv3,mobilenetv2,resnet50"


def worker(spec: str, size: int, batch: int, steps: int, rounds: int) -> dict:
    """Under torch: the step times of ``spec`` in both modes (see the module's text)."""
    import collections

    import numpy as np

    import nincompile
    from nincompile.keras_import import import_keras
    from nincompile.train import channels_last

    keras = import_keras()
    assert keras.backend.backend() == "torch", keras.backend.backend()
    keras.utils.set_random_seed(0)
    path = ROOT / "specs" / "applications" / f"{spec}.yaml"
    model = nincompile.build(path, overrides=[f"input=[{size},{size},3]"])
    model.compile(optimizer=keras.optimizers.SGD(0.01, momentum=0.9),
                  loss="sparse_categorical_crossentropy")  # fmt: skip
    rng = np.random.default_rng(0)
    x = rng.standard_normal((batch, size, size, 3)).astype("float32")
    y = rng.integers(0, model.output_shape[-1], batch)

    def step() -> float:
        t0 = time.perf_counter()
        model.train_on_batch(x, y)
        return time.perf_counter() - t0

    times: dict[str, list[float]] = {"keras": [], "channels_last": []}
    switched: dict[str, int] = {}
    for r in range(rounds + 1):  # round 0 warms each mode up
        for mode in times:
            if mode == "keras":
                got = [step() for _ in range(2 if r == 0 else steps)]
            else:
                with channels_last.channels_last(model) as layers:
                    switched = dict(collections.Counter(type(la).__name__ for la in layers))
                    got = [step() for _ in range(2 if r == 0 else steps)]
            if r:
                times[mode].extend(got)
    median = {mode: statistics.median(v) for mode, v in times.items()}
    return {
        "spec": f"specs/applications/{spec}.yaml",
        "params": int(model.count_params()),
        "switched_layers": switched,
        "step_s": median,
        "images_per_s": {mode: batch / s for mode, s in median.items()},
        "speedup": median["keras"] / median["channels_last"],
        "raw_s": times,
    }


def markdown(report: dict) -> str:
    m = report["method"]
    lines = [
        "# Training steps under the torch backend: Keras's layout code vs channels-last",
        "",
        f"{report['machine']['cpus']} CPU cores; input {m['size']}x{m['size']}x3, batch "
        f"{m['batch']}, SGD; median of {m['rounds']} rounds x {m['steps']} steps per mode "
        f"(after 2 warm-up steps each); batch norm is Keras's code in both. 1-minute load "
        f"{report['load_average']['start'][0]:.2f} at the start, "
        f"{report['load_average']['end'][0]:.2f} at the end.",
        "",
        "| spec | parameters | layers switched | Keras's code (s/step) | channels-last "
        "(s/step) | speed-up |",
        "|---|---:|---|---:|---:|---:|",
    ]
    for name, r in report["models"].items():
        if "error" in r:
            lines.append(f"| {name} | | failed: {r['error']} | | | |")
            continue
        layers = ", ".join(f"{k} {v}" for k, v in sorted(r["switched_layers"].items()))
        lines.append(
            f"| {name} | {r['params']:,} | {layers} | {r['step_s']['keras']:.3f} | "
            f"{r['step_s']['channels_last']:.3f} | {r['speedup']:.2f}x |"
        )
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--specs", default=DEFAULT_SPECS, help="comma-separated names")
    parser.add_argument("--size", type=int, default=96)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--steps", type=int, default=3, help="timed steps per round and mode")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        result = worker(args.worker, args.size, args.batch, args.steps, args.rounds)
        print(json.dumps(result))
        return

    env = {**os.environ, "KERAS_BACKEND": "torch", "TF_CPP_MIN_LOG_LEVEL": "2"}
    env.pop("NINCOMPILE_CHANNELS_LAST", None)
    load = {"start": list(os.getloadavg())}
    models = {}
    for spec in [s.strip() for s in args.specs.split(",") if s.strip()]:
        cmd = [sys.executable, __file__, "--worker", spec, "--size", str(args.size),
               "--batch", str(args.batch), "--steps", str(args.steps),
               "--rounds", str(args.rounds)]  # fmt: skip
        out = subprocess.run(cmd, env=env, cwd=ROOT, capture_output=True, text=True)
        if out.returncode != 0:
            tail = out.stderr.strip().splitlines()
            models[spec] = {"error": tail[-1] if tail else f"exit {out.returncode}"}
        else:
            models[spec] = json.loads(out.stdout.strip().splitlines()[-1])
        r = models[spec]
        print(spec, r.get("error") or f"{r['speedup']:.2f}x ({r['step_s']})", flush=True)
    load["end"] = list(os.getloadavg())
    import torch

    report = {
        "machine": machine(torch=torch.__version__),
        "load_average": load,
        "method": {
            "size": args.size,
            "batch": args.batch,
            "steps": args.steps,
            "rounds": args.rounds,
            "backend": "torch",
            "statistic": "median step time",
        },  # fmt: skip
        "models": models,
    }
    write_report(args.out, "torch_layout", report, markdown)


if __name__ == "__main__":
    main()
