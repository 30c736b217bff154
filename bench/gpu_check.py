"""NIN-BN under JAX on a GPU, in one go: how fast, and does it learn (issue 20, item 5).

Usage: KERAS_BACKEND=jax python bench/gpu_check.py --data DIR [--cpu] [--budget 420]
       [--spec specs/nin_bamd.yaml] [--images 12800] [--out DIR]
(``bench/gpu_check.sh`` is the one command to run on a machine lent a GPU: it installs
carried wheels, unpacks the CIFAR-10 archive and calls this.)

Three steps, each ``nincompile``'s own code in its own process, so each measures what a
user's command would:

1. ``bench/bench_feed.py`` in float32: NIN-BN images/s with the data on the device and
   from the host (the same epochs; their weights must be equal), on ``--images`` images.
2. the same in ``mixed_bfloat16``.
3. ``nincompile train SPEC --data DIR``: the seed's recipe shortened to as many epochs
   as the time left in ``--budget`` allows (a step schedule's boundaries, e.g. NIN's
   epochs 61, 121, 161 of 200, kept at the same fractions), validation on the spec's
   held-out 10 %.

Prints one JSON object (also written as ``gpu_check.json``, with ``gpu_check.md``, under
``--out``): the device, the four rates, the minutes the 200-epoch recipe of 50,000 images
would take at the float32 and bfloat16 device rates (target: at most 5 on one
H100/H200), the short recipe's validation accuracy, and each step's wall seconds.
``--cpu`` is the dry run of the same steps with a tiny budget (a few images, one epoch,
batch 32), which CI runs so that only the figures are unknown on the device.
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RECIPE_IMAGES, RECIPE_EPOCHS, TARGET_MINUTES = 50_000, 200, 5.0


def shortened_schedule(steps: dict[int, float], of: int, epochs: int) -> dict[int, float]:
    """A step schedule of ``of`` epochs squeezed into ``epochs``, each boundary at the
    same fraction (of two that land on the same epoch, the earlier one stays)."""
    out: dict[int, float] = {}
    for boundary, lr in sorted(steps.items()):
        out.setdefault(min(epochs - 1, math.ceil(boundary * epochs / of)), lr)
    return out


def run_step(name: str, cmd: list[str], log: Path, env: dict) -> tuple[float, str | None]:
    """Run one step, its output into ``log`` (its tail to our stderr); returns its wall
    seconds and, when it failed, the last lines of its output."""
    print(f"== {name}: {' '.join(cmd)}", file=sys.stderr, flush=True)
    t0 = time.perf_counter()
    with log.open("w") as fh:
        proc = subprocess.run(cmd, cwd=ROOT, env=env, stdout=fh, stderr=subprocess.STDOUT)
    seconds = time.perf_counter() - t0
    tail = log.read_text(errors="replace").splitlines()[-15:]
    print("\n".join("   " + line for line in tail), file=sys.stderr, flush=True)
    if proc.returncode != 0:
        return seconds, f"exit {proc.returncode}: " + " | ".join(tail[-4:])
    return seconds, None


def rates(feed: dict) -> dict:
    r = feed["results"][0]
    return {
        "device_images_per_s": round(r["device_images_per_s"], 1),
        "host_images_per_s": round(r["host_images_per_s"], 1),
        "device_over_host": round(r["ratio"], 3),
        "max_weight_diff_device_vs_host": r["max_weight_diff"],
        "recipe_minutes_at_device_rate": round(r["recipe_minutes"], 2),
        "target_met": r["recipe_minutes"] <= TARGET_MINUTES,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, required=True, help="CIFAR-10 class folders")
    parser.add_argument("--spec", type=Path, default=ROOT / "specs" / "nin_bamd.yaml")
    parser.add_argument("--images", type=int, help="images per throughput epoch")
    parser.add_argument("--budget", type=float, help="seconds for the whole check")
    parser.add_argument("--max-epochs", type=int, default=40, help="cap on the short recipe")
    parser.add_argument("--cpu", action="store_true", help="tiny dry run (no GPU needed)")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "gpu")
    args = parser.parse_args()
    if not args.data.is_dir():
        raise SystemExit(f"gpu_check: --data {args.data} is not a folder")
    run_dir = args.out / "run"
    if run_dir.exists():
        raise SystemExit(f"gpu_check: {run_dir} exists; give a fresh --out")
    images = args.images or (96 if args.cpu else 12_800)
    budget = args.budget or (120.0 if args.cpu else 420.0)
    tiny = ["train.batch_size=32"] if args.cpu else []
    t_start = time.perf_counter()
    args.out.mkdir(parents=True, exist_ok=True)
    cache = args.out / "cache"
    env = dict(os.environ, KERAS_BACKEND=os.environ.get("KERAS_BACKEND", "jax"))
    env["PYTHONUNBUFFERED"] = "1"
    env["NINCOMPILE_CACHE"] = str(cache)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    py = sys.executable
    report: dict = {
        "check": "gpu_check",
        "dry_run": args.cpu,
        "date": time.strftime("%Y-%m-%d %H:%M:%S"),
        "spec": args.spec.stem,
        "throughput_images": images,
        "batch_size": 32 if args.cpu else None,
        "target_minutes": TARGET_MINUTES,
        "errors": {},
        "step_seconds": {},
    }

    def step(name: str, cmd: list[str]) -> bool:
        seconds, error = run_step(name, cmd, args.out / f"{name}.log", env)
        report["step_seconds"][name] = round(seconds, 1)
        if error:
            report["errors"][name] = error
        return error is None

    for precision in ("float32", "bfloat16"):
        out = args.out / f"feed_{precision}"
        cmd = [py, "bench/bench_feed.py", "--data", str(args.data), "--spec", str(args.spec),
               "--images", str(images), "--epochs", "2", "--rounds", "1", "--out", str(out),
               "--cache", str(cache)]  # fmt: skip
        if precision == "bfloat16":
            cmd += ["--set", "train.mixed_precision=bfloat16"]
        for o in tiny:
            cmd += ["--set", o]
        if step(f"feed_{precision}", cmd):
            feed = json.loads((out / "feed.json").read_text())
            report.setdefault("backend", feed["backend"])
            report.setdefault("device", feed["device"])
            report.setdefault("versions", feed["versions"])
            report[precision] = rates(feed)

    from nincompile.spec import load_spec

    rate = report.get("float32", report.get("bfloat16", {})).get("device_images_per_s", 5_000)
    per_epoch = RECIPE_IMAGES / rate
    left = budget - (time.perf_counter() - t_start) - 45.0  # start-up and compiling
    epochs = 1 if args.cpu else max(1, min(args.max_epochs, int(left / (1.3 * per_epoch + 2))))
    train_cfg = load_spec(args.spec).spec.train
    spec_steps = train_cfg.lr_schedule if isinstance(train_cfg.lr_schedule, dict) else None
    schedule = shortened_schedule(spec_steps, train_cfg.epochs, epochs) if spec_steps else {}
    cmd = [py, "-m", "nincompile", "train", str(args.spec), "--data", str(args.data),
           "--out", str(run_dir), "--epochs", str(epochs), "--json"]  # fmt: skip
    if schedule:
        steps_text = ", ".join(f"{k}: {v}" for k, v in schedule.items())
        cmd += ["--set", f"train.lr_schedule={{{steps_text}}}"]
    for o in tiny:
        cmd += ["--set", o]
    recipe: dict = {"epochs": epochs, "lr_schedule": schedule}
    report["short_recipe"] = recipe
    if step("train", cmd):
        metrics = json.loads((run_dir / "metrics.json").read_text())
        with (run_dir / "history.csv").open() as fh:
            history = list(csv.DictReader(fh))
        fit = sorted(float(row["seconds"]) for row in history[1:] or history)
        recipe.update(
            {
                "train_images": metrics["train_images"],
                "val_images": metrics["val_images"],
                "final_val_accuracy": metrics["final"]["val_accuracy"],
                "best": metrics["best"],
                "val_accuracy_by_epoch": [
                    round(float(row["val_accuracy"]), 4) if row.get("val_accuracy") else None
                    for row in history
                ],
                "train_images_per_s_median": metrics["images_per_second"],
                "fit_seconds_per_epoch_median": fit[len(fit) // 2],
                "wall_seconds": metrics["wall_seconds_this_session"],
                "dtype_policy": metrics["dtype_policy"],
                "jit_compile": metrics["jit_compile"],
                "device": metrics["device"],
            }
        )
    report["total_seconds"] = round(time.perf_counter() - t_start, 1)
    (args.out / "gpu_check.json").write_text(json.dumps(report, indent=2) + "\n")
    (args.out / "gpu_check.md").write_text(markdown(report))
    print(json.dumps(report, indent=2))
    if report["errors"]:
        raise SystemExit(f"gpu_check: failed steps: {', '.join(report['errors'])}")


def markdown(r: dict) -> str:
    dev, rec = r.get("device", {"name": "?"}), r["short_recipe"]
    lines = [
        f"# GPU check: {r['spec']} under {r.get('backend', '?')} on {dev['name']} ({r['date']})"
        + (" — CPU dry run, figures meaningless" if r["dry_run"] else ""),
        "",
        "| precision | on device img/s | from host img/s | device / host | "
        "200 x 50,000 images at the device rate |",
        "|---|---|---|---|---|",
    ]
    for p in ("float32", "bfloat16"):
        if p not in r:
            lines.append(f"| {p} | failed: {r['errors'].get('feed_' + p, '?')} | | | |")
            continue
        x = r[p]
        lines.append(
            f"| {p} | {x['device_images_per_s']:,.0f} | {x['host_images_per_s']:,.0f} | "
            f"{x['device_over_host']:.2f} | {x['recipe_minutes_at_device_rate']:.1f} min |"
        )
    acc = rec.get("final_val_accuracy")
    if "train_images" not in rec:
        return "\n".join([*lines, "", f"Short recipe failed: {r['errors'].get('train')}", ""])
    lines += [
        "",
        f"Short recipe: {rec['epochs']} epochs, lr steps {rec['lr_schedule']}, "
        f"{rec['train_images']:,} training / {rec['val_images']:,} validation images: "
        f"final validation accuracy {acc if acc is None else f'{acc:.4f}'}, "
        f"{rec['train_images_per_s_median'] or 0:,.0f} img/s in training, "
        f"{rec['wall_seconds']:.0f} s wall.",
        "",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
