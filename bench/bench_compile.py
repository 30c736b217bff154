"""Wall time of `nincompile check`: all of specs/ in one process, and each spec in
specs/ and specs/applications/ on its own (a new process each, interpreter start
included, median of the repeats: what a user waits for on every save), plus the
in-process compile time (validate, lower, count) of each; and `nincompile build` per
top-level spec.

Usage: python bench/bench_compile.py [--repeats 5]
Writes bench/results/compile.json and prints a table. Figures only; no assertions.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SPECS = sorted((ROOT / "specs").glob("*.yaml"))
ALL_SPECS = sorted((ROOT / "specs").rglob("*.yaml"))


def nincompile_cmd() -> list[str]:
    exe = shutil.which("nincompile")
    return [exe] if exe else [sys.executable, "-m", "nincompile.cli"]


def timed(cmd: list[str]) -> float:
    start = time.perf_counter()
    subprocess.run(cmd, check=True, cwd=ROOT, capture_output=True)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    env_cmd = nincompile_cmd()

    timed([*env_cmd, "check", *map(str, SPECS)])  # warm the file cache
    check_runs = [timed([*env_cmd, "check", *map(str, SPECS)]) for _ in range(args.repeats)]

    per_spec = {}
    for spec in ALL_SPECS:
        timed([*env_cmd, "check", str(spec)])  # warm
        runs = [timed([*env_cmd, "check", str(spec)]) for _ in range(args.repeats)]
        per_spec[str(spec.relative_to(ROOT))] = statistics.median(runs)

    from nincompile.api import compile_all

    compile_s = {}
    for spec in ALL_SPECS:
        start = time.perf_counter()
        compile_all(spec)
        compile_s[str(spec.relative_to(ROOT))] = time.perf_counter() - start

    builds = {}
    with tempfile.TemporaryDirectory() as out:
        for spec in SPECS:
            builds[spec.stem] = timed([*env_cmd, "build", str(spec), "-o", out])

    # In-process: compile + Keras model construction, imports excluded.
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import keras  # noqa: F401  (import cost excluded from the per-spec figures)

    from nincompile import api

    in_process = {}
    for spec in SPECS:
        start = time.perf_counter()
        api.build_spec(spec)
        in_process[spec.stem] = time.perf_counter() - start

    result = {
        "machine": {"python": platform.python_version(), "cpus": os.cpu_count()},
        "check_all_specs_s": {
            "specs": len(SPECS),
            "median": statistics.median(check_runs),
            "min": min(check_runs),
            "runs": check_runs,
        },
        "check_each_spec_s": per_spec,
        "compile_in_process_s": compile_s,
        "build_cli_s": builds,
        "build_in_process_s": in_process,
    }
    out = ROOT / "bench" / "results" / "compile.json"
    out.write_text(json.dumps(result, indent=2) + "\n")

    print(
        f"nincompile check ({len(SPECS)} specs, new process each run): "
        f"median {result['check_all_specs_s']['median']:.3f} s, "
        f"min {result['check_all_specs_s']['min']:.3f} s over {args.repeats} runs"
    )
    print(f"\n{'spec':<40} {'check CLI (s)':>14} {'compile (s)':>12}")
    for name in per_spec:
        print(f"{name:<40} {per_spec[name]:>14.3f} {compile_s[name]:>12.3f}")
    print(f"\n{'spec':<20} {'build CLI (s)':>14} {'in-process (s)':>15}")
    for name in builds:
        print(f"{name:<20} {builds[name]:>14.2f} {in_process[name]:>15.3f}")
    print(f"\nwrote {out.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
