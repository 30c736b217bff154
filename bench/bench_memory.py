"""Peak memory of ``nincompile`` commands against what they read (issue 17, item 2).

Usage: python bench/bench_memory.py [--photos 50 --photos 200] [--size 2000x1500]
       [--train-spec specs/nin_bamd.yaml --train-spec specs/vgg16.yaml]
       [--train-images 256] [--work /tmp/nincompile-bench-memory] [--out bench/results]
       [--before DIR] [--only training|photos|cifar ...]

Every figure is the peak resident set size (``ru_maxrss`` from ``wait4``) of one
``nincompile`` process, started fresh, so it includes the interpreter, TensorFlow and
the model, which the "base" rows measure alone:

1. **Training estimate against measurement.**  ``nincompile train`` of each
   ``--train-spec`` for one epoch on ``--train-images`` synthetic images (no
   validation split), and of ``specs/lenet5.yaml`` on the same data as the base.  The
   guard's training estimate (:func:`nincompile.guard.estimate_of`: weights, gradients,
   optimiser slots, every activation of a batch, the backward working set) is compared
   with the measured peak less the base's peak: ``estimate / measured``.
2. **Photos.**  ``train`` (one epoch), ``evaluate`` and ``predict`` of a small model
   (32x32 input; training holds nothing out for validation) on a folder of ``--photos``
   N generated JPEG photos of ``--size`` each (two class sub-folders), and the same on
   a folder of 2 photos as the base.
   Decoding is batched and each photo is reduced to the model's input as it is
   decoded, so the peak must not grow with N (training keeps the decoded set, at the
   model's input size: 3 KiB a photo).
3. **CIFAR-10 archive.**  ``evaluate`` and ``train`` (one epoch) on generated
   ``cifar-10-python.tar.gz`` archives in the real format (five training batches, a
   test batch, ``batches.meta``): 5 x 1,000 + 1,000 images and 5 x 10,000 + 10,000
   (the real data set's size), and the refusal of an archive whose test batch member
   declares 80 MiB of zeros (0.08 MB gzipped).  ``evaluate`` reads the test batch
   only; ``train`` keeps the training images (at the model's input size, which for
   CIFAR is the data set itself: 3 KiB an image), so its peak may grow by that, and
   no more.  (``predict`` takes image files, not archives.)

Each table's "over smallest" column is the peak less the same command's peak on the
smallest input.

Writes ``memory.json`` and ``memory.md`` under ``--out`` and prints the tables.  No
figure here is asserted by a test; the machine is shared, so peaks of a few tens of
MB move from run to run.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import pickle
import platform
import shutil
import subprocess
import sys
import tarfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

ROOT = Path(__file__).resolve().parent.parent
MIB = 2**20
CWD = Path("/tmp")
CIFAR_NAMES = "airplane automobile bird cat deer dog frog horse ship truck".split()
SMALL_SPEC = """\
name: small
input: [32, 32, 3]
stages:
  - {conv: [16, 3], padding: same, activation: relu, pool: {max: 2}}
  - {conv: [32, 3], padding: same, activation: relu}
head: [gap, {dense: 10, activation: softmax}]
"""


def train_spec(work: Path, classes: list[str]) -> Path:
    """The small model with ``train:`` (one epoch, batch 32) and ``data:`` for
    ``classes``."""
    path = work / f"train-{len(classes)}.yaml"
    head = f"head: [gap, {{dense: {len(classes)}, activation: softmax}}]\n"
    text = SMALL_SPEC.replace("head: [gap, {dense: 10, activation: softmax}]\n", head)
    text += (
        "train: {optimizer: adam, learning_rate: 0.001, batch_size: 32, epochs: 1, seed: 0}\n"
        f"data: {{classes: [{', '.join(classes)}], validation_split: 0}}\n"
    )
    path.write_text(text)
    return path


def train_args(spec: Path, data: Path, work: Path, name: str) -> list[str]:
    out = work / "runs" / name
    shutil.rmtree(out, ignore_errors=True)
    return ["train", str(spec), "--data", str(data), "--out", str(out), "--json",
            "--cache-dir", str(work / "cache")]  # fmt: skip


def run(args: list[str], env: dict | None = None) -> dict:
    """Run ``nincompile ARGS`` in a fresh process; its exit code, seconds, peak RSS (MiB)
    and the last lines of its output."""
    code = "import sys\nfrom nincompile.cli import main\nsys.argv[0] = 'nincompile'\nmain()\n"
    full = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", **(env or {})}
    t0 = time.perf_counter()
    proc = subprocess.Popen(
        [sys.executable, "-c", code, *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        env=full,
        cwd=CWD,  # not the checkout: python -c puts the current folder first on sys.path
    )
    out = proc.stdout.read().decode("utf-8", "replace")
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    tail = [line for line in out.strip().splitlines() if line.strip()][-3:]
    return {
        "command": "nincompile " + " ".join(args),
        "exit": proc.returncode,
        "seconds": round(time.perf_counter() - t0, 1),
        "peak_rss_mib": round(usage.ru_maxrss / 1024, 1),
        "output": tail,
    }


def _photo(rng, h: int, w: int):
    """A smooth, photo-like RGB image (gradients, blobs and mild noise): it compresses
    like a photograph, not like white noise."""
    import numpy as np

    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    img = np.empty((h, w, 3), np.float32)
    for c in range(3):
        fy, fx = rng.uniform(0.5, 4.0, 2)
        phase = rng.uniform(0, 6.28)
        img[..., c] = 128 + 80 * np.sin(2 * np.pi * (fy * yy / h + fx * xx / w) + phase)
    img += rng.normal(0, 6, (h, w, 1)).astype(np.float32)
    return np.clip(img, 0, 255).astype(np.uint8)


def photo_folder(root: Path, n: int, size: tuple[int, int]) -> Path:
    """``n`` JPEG photos of ``size`` = (width, height) in two class sub-folders (a few
    distinct photos, re-encoded at different qualities so every file differs)."""
    import numpy as np
    from PIL import Image

    if root.is_dir() and sum(1 for _ in root.rglob("*.jpg")) == n:
        return root
    shutil.rmtree(root, ignore_errors=True)
    rng = np.random.default_rng(0)
    w, h = size
    bases = [Image.fromarray(_photo(rng, h, w)) for _ in range(4)]
    for c in ("a", "b"):
        (root / c).mkdir(parents=True)
    for i in range(n):
        bases[i % 4].save(root / "ab"[i % 2] / f"{i:04d}.jpg", quality=80 + i % 15)
    return root


def cifar_archive(path: Path, test_images: int, train_images: int = 1000) -> Path:
    """A ``cifar-10-python.tar.gz`` in the real format: ``data_batch_1..5`` of
    ``train_images`` each, a ``test_batch`` of ``test_images`` and ``batches.meta``."""
    import numpy as np

    if path.is_file():
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)

    def batch(n: int) -> bytes:
        return pickle.dumps(
            {
                b"batch_label": b"generated",
                b"labels": [int(v) for v in rng.integers(0, 10, n)],
                b"data": rng.integers(0, 256, (n, 3072), dtype=np.uint8),
                b"filenames": [f"img_{i:05d}.png".encode() for i in range(n)],
            },
            protocol=2,
        )

    members = {f"data_batch_{i}": batch(train_images) for i in range(1, 6)}
    members["test_batch"] = batch(test_images)
    members["batches.meta"] = pickle.dumps(
        {b"label_names": [n.encode() for n in CIFAR_NAMES], b"num_vis": 3072}, protocol=2
    )
    _write_tar(path, members)
    return path


def _write_tar(path: Path, members: dict[str, bytes]) -> None:
    tmp = path.with_suffix(".part")
    with tarfile.open(tmp, "w:gz") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(f"cifar-10-batches-py/{name}")
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    tmp.replace(path)


def small_model(work: Path) -> Path:
    """A 32x32 model saved as .keras, with no spec.yaml beside it (pixels / 255,
    numbered classes)."""
    path = work / "model" / "small.keras"
    if path.is_file():
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    spec = work / "small.yaml"
    spec.write_text(SMALL_SPEC)
    result = run(["build", str(spec), "-o", str(path.parent)])
    if result["exit"] != 0:
        raise SystemExit(f"could not build the model: {result}")
    return path


def training(specs: list[Path], images: int, work: Path) -> list[dict]:
    from nincompile import api, guard
    from nincompile.spec import load_spec
    from nincompile.spec.overrides import apply_overrides

    sets = [
        "data.dataset=synthetic",
        f"data.limit={images}",
        "data.validation_split=0",
        "data.path=null",
        "train.epochs=1",
    ]
    rows = []
    base = None
    for spec in [ROOT / "specs" / "lenet5.yaml", *specs]:
        compiled = api.compile_source(apply_overrides(load_spec(spec), sets))
        est = guard.estimate_of(compiled)
        out = work / "runs" / spec.stem
        shutil.rmtree(out, ignore_errors=True)
        args = ["train", str(spec), "--out", str(out), "--cache-dir", str(work / "cache")]
        for s in sets:
            args += ["--set", s]
        result = run(args)
        row = {
            "spec": spec.stem,
            "batch": est.batch,
            "optimizer": est.optimizer,
            "params": est.params,
            "estimate_mib": round(est.total_bytes / MIB, 1),
            "estimate_parts_mib": {
                "weights": round(est.weights_bytes / MIB, 1),
                "gradients": round(est.gradient_bytes / MIB, 1),
                "optimizer": round(est.optimizer_bytes / MIB, 1),
                "saving": round(est.saving_bytes / MIB, 1),
                "kept_activations": round(est.kept_activation_bytes / MIB, 1),
                "backward": round(est.backward_bytes / MIB, 1),
            },
            **result,
        }
        if base is None:
            base = row
            row["role"] = "base"
        else:
            measured = row["peak_rss_mib"] - base["peak_rss_mib"]
            estimated = row["estimate_mib"] - base["estimate_mib"]
            row["measured_over_base_mib"] = round(measured, 1)
            row["estimate_over_base_mib"] = round(estimated, 1)
            row["ratio"] = round(estimated / measured, 3) if measured > 0 else None
        rows.append(row)
        print(f"train {row['spec']}: peak {row['peak_rss_mib']} MiB, estimate "
              f"{row['estimate_mib']} MiB, exit {row['exit']}", flush=True)  # fmt: skip
    return rows


def photos(
    counts: list[int], size: tuple[int, int], work: Path, before: Path | None = None
) -> list[dict]:
    model = small_model(work)
    rows = []
    runs = [(n, None) for n in [2, *counts]]
    if before is not None:  # the code before the fix, on the smallest folder only
        runs.append((min(counts), before))
    for n, code in runs:
        folder = photo_folder(work / f"photos-{n}", n, size)
        disk = sum(f.stat().st_size for f in folder.rglob("*.jpg"))
        commands = ("evaluate", "predict") if code else ("train", "evaluate", "predict")
        for command in commands:
            if command == "train":
                args = train_args(train_spec(work, ["a", "b"]), folder, work, f"photos-{n}")
            elif command == "evaluate":
                args = ["evaluate", str(model), "--data", str(folder), "--json",
                        "--cache-dir", str(work / "cache"),
                        "--confusion", str(work / "confusion.png")]  # fmt: skip
            else:
                args = ["predict", str(model), str(folder), "--json"]
            shutil.rmtree(work / "cache", ignore_errors=True)  # decode every time
            result = run(args, {"PYTHONPATH": str(code)} if code else None)
            rows.append(
                {
                    "code": "before the fix" if code else "this version",
                    "command_name": command,
                    "photos": n,
                    "size": f"{size[0]}x{size[1]}",
                    "decoded_mib": round(n * size[0] * size[1] * 3 / MIB, 1),
                    "files_mib": round(disk / MIB, 1),
                    **result,
                }
            )
            if command == "evaluate":
                cache = list((work / "cache").glob("*.npz")) if (work / "cache").is_dir() else []
                rows[-1]["cache_entry_kib"] = round(sum(p.stat().st_size for p in cache) / 1024, 1)
            which = " (before the fix)" if code else ""
            print(f"{command} {n} photos{which}: peak {result['peak_rss_mib']} MiB, exit "
                  f"{result['exit']}, {result['seconds']} s", flush=True)  # fmt: skip
    return rows


def cifar(work: Path) -> list[dict]:
    model = small_model(work)
    spec = train_spec(work, CIFAR_NAMES)
    rows = []
    for n in (1000, 10000):
        path = cifar_archive(work / f"cifar-{n}x6" / "cifar-10-python.tar.gz", n, n)
        archive = f"5 x {n:,} training + {n:,} test images"
        for command in ("evaluate", "train"):
            if command == "evaluate":
                args = ["evaluate", str(model), "--data", str(path), "--json",
                        "--confusion", str(work / "confusion.png")]  # fmt: skip
            else:
                shutil.rmtree(work / "cache", ignore_errors=True)
                args = train_args(spec, path, work, f"cifar-{n}")
            result = run(args)
            rows.append({"command_name": command, "archive": archive,
                         "images_read": n if command == "evaluate" else 5 * n,
                         "archive_mib": round(path.stat().st_size / MIB, 1),
                         "read_mib": round((n if command == "evaluate" else 5 * n) * 3072 / MIB, 1),
                         **result})  # fmt: skip
            print(f"{command} cifar {archive}: peak {result['peak_rss_mib']} MiB, exit "
                  f"{result['exit']}, {result['seconds']} s", flush=True)  # fmt: skip
    bomb = work / "cifar-bomb" / "cifar-10-python.tar.gz"
    if not bomb.is_file():
        bomb.parent.mkdir(parents=True, exist_ok=True)
        meta = pickle.dumps({b"label_names": [n.encode() for n in CIFAR_NAMES]}, protocol=2)
        _write_tar(bomb, {"batches.meta": meta, "test_batch": b"\0" * (80 * MIB)})
    result = run(["evaluate", str(model), "--data", str(bomb)])
    rows.append({"command_name": "evaluate", "archive": "test batch declaring 80 MiB of zeros",
                 "archive_mib": round(bomb.stat().st_size / MIB, 2), **result})  # fmt: skip
    print(f"evaluate cifar bomb: exit {result['exit']}, peak {result['peak_rss_mib']} MiB")
    return rows


def over_smallest(rows: list[dict]) -> None:
    """Add ``over_smallest_mib`` to each successful row of this version: its peak less
    the peak of the same command's first (smallest) row."""
    first = {}
    for row in rows:
        if row.get("code", "this version") != "this version" or row["exit"] != 0:
            continue
        base = first.setdefault(row["command_name"], row["peak_rss_mib"])
        row["over_smallest_mib"] = round(row["peak_rss_mib"] - base, 1)


def _table(rows: list[dict], columns: list[tuple[str, str]]) -> list[str]:
    lines = ["| " + " | ".join(h for h, _ in columns) + " |",
             "|" + "|".join("---" for _ in columns) + "|"]  # fmt: skip
    for row in rows:
        cells = []
        for _, key in columns:
            value = row.get(key, "")
            cells.append(f"{value:,}" if isinstance(value, int) and not isinstance(value, bool)
                         else str(value))  # fmt: skip
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def markdown(result: dict) -> str:
    lines = [f"# Peak memory of nincompile commands ({result['machine']}, {result['date']})", ""]
    lines += ["## Training: the guard's estimate against the measured peak", ""]
    lines += _table(result["training"], [
        ("spec", "spec"), ("optimizer", "optimizer"), ("batch", "batch"),
        ("params", "params"), ("estimate MiB", "estimate_mib"),
        ("peak RSS MiB", "peak_rss_mib"), ("estimate over base MiB", "estimate_over_base_mib"),
        ("measured over base MiB", "measured_over_base_mib"), ("estimate / measured", "ratio"),
    ])  # fmt: skip
    lines += ["", "The base is lenet5 on the same data: the interpreter, TensorFlow and the "
              "data. Parts of each estimate (MiB):", ""]  # fmt: skip
    for row in result["training"]:
        parts = ", ".join(f"{k} {v}" for k, v in row["estimate_parts_mib"].items())
        lines.append(f"- {row['spec']}: {parts}")
    lines += ["", "## train, evaluate and predict on folders of large photos", ""]
    lines += _table(result["photos"], [
        ("code", "code"), ("command", "command_name"), ("photos", "photos"), ("size", "size"),
        ("decoded size MiB", "decoded_mib"), ("files MiB", "files_mib"),
        ("peak RSS MiB", "peak_rss_mib"), ("over smallest MiB", "over_smallest_mib"),
        ("cache entry KiB", "cache_entry_kib"), ("seconds", "seconds"), ("exit", "exit"),
    ])  # fmt: skip
    lines += ["", "## evaluate and train on CIFAR-10 archives", ""]
    lines += _table(result["cifar"], [
        ("command", "command_name"), ("archive", "archive"), ("archive MiB", "archive_mib"),
        ("images read", "images_read"), ("their pixels MiB", "read_mib"),
        ("peak RSS MiB", "peak_rss_mib"), ("over smallest MiB", "over_smallest_mib"),
        ("seconds", "seconds"), ("exit", "exit"),
    ])  # fmt: skip
    refusal = result["cifar"][-1]["output"] if result["cifar"] else None
    if refusal:
        lines += ["", f"The refusal: `{refusal[-1][:300]}`"]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--photos", type=int, action="append", help="photos per folder")
    parser.add_argument("--size", default="2000x1500", help="photo width x height")
    parser.add_argument("--train-spec", type=Path, action="append", help="specs to train")
    parser.add_argument("--train-images", type=int, default=256)
    parser.add_argument("--work", type=Path, default=Path("/tmp/nincompile-bench-memory"))
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results")
    parser.add_argument(
        "--only", action="append", choices=("training", "photos", "cifar"),
        help="run only these parts; the others are kept from the existing memory.json",
    )  # fmt: skip
    parser.add_argument(
        "--before", type=Path,
        help="a folder holding the nincompile package before the fix (git archive "
        "<commit> nincompile | tar -x -C DIR): evaluate and predict run with it on the "
        "smallest photo folder too",
    )  # fmt: skip
    args = parser.parse_args()
    counts = args.photos or [50, 200]
    w, h = (int(v) for v in args.size.lower().split("x"))
    specs = args.train_spec or [ROOT / "specs" / "nin_bamd.yaml", ROOT / "specs" / "vgg16.yaml"]
    args.work.mkdir(parents=True, exist_ok=True)
    global CWD
    CWD = args.work

    from nincompile import __version__

    parts = {
        "training": lambda: training(specs, args.train_images, args.work),
        "photos": lambda: photos(counts, (w, h), args.work, args.before),
        "cifar": lambda: cifar(args.work),
    }
    old = args.out / "memory.json"
    kept = json.loads(old.read_text()) if args.only and old.is_file() else {}
    result = {
        "nincompile": __version__,
        "machine": f"{platform.machine()}, {os.cpu_count()} CPUs",
        "date": time.strftime("%Y-%m-%d %H:%M:%S"),
    }
    for name, make in parts.items():
        result[name] = make() if not args.only or name in args.only else kept.get(name, [])
        if name != "training":
            over_smallest(result[name])
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "memory.json").write_text(json.dumps(result, indent=2) + "\n")
    text = markdown(result)
    (args.out / "memory.md").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
