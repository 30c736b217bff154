"""The GPU check's dry run (issue 20, item 5): ``bench/gpu_check.sh --cpu`` runs every
step it runs on a GPU machine (the float32 and bfloat16 feeds, device and host, then a
shortened recipe through ``nincompile train``) under JAX with TensorFlow made
unimportable, as on the GPU machines, so that only the figures are unknown there."""

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from doctext import docs_text
from PIL import Image

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "bench"))
from gpu_check import shortened_schedule  # noqa: E402

TINY = """\
name: tiny_gpu_check
input: [8, 8, 3]
stages:
  - {conv: [4, 3], padding: same, batch_norm: true, activation: relu}
head: [gap, {dense: 2, activation: softmax}]
train:
  optimizer: sgd
  learning_rate: 0.05
  momentum: 0.9
  batch_size: 8
  epochs: 10
  lr_schedule: {0: 0.05, 4: 0.01, 8: 0.002}
data:
  augment: {flip: horizontal, shift: 0.125}
"""


def test_schedule_is_squeezed_at_the_same_fractions():
    nin = {0: 0.05, 61: 0.01, 121: 0.002, 161: 0.0004}
    assert shortened_schedule(nin, 200, 200) == nin
    assert shortened_schedule(nin, 200, 40) == {0: 0.05, 13: 0.01, 25: 0.002, 33: 0.0004}
    assert shortened_schedule(nin, 200, 3) == {0: 0.05, 1: 0.01, 2: 0.002}
    assert shortened_schedule(nin, 200, 1) == {0: 0.05}


@pytest.mark.skipif(importlib.util.find_spec("jax") is None, reason="needs JAX")
def test_dry_run_runs_every_step_without_tensorflow(tmp_path):
    rng = np.random.default_rng(0)
    for c in ("a", "b"):
        (tmp_path / "data" / c).mkdir(parents=True)
        for i in range(12):
            pixels = rng.integers(0, 256, (8, 8, 3), dtype=np.uint8)
            Image.fromarray(pixels).save(tmp_path / "data" / c / f"{i}.png")
    spec = tmp_path / "tiny.yaml"
    spec.write_text(TINY)
    blocker = tmp_path / "notf" / "tensorflow"
    blocker.mkdir(parents=True)
    (blocker / "__init__.py").write_text("raise ImportError('no TensorFlow on a GPU machine')\n")
    env = dict(os.environ, PYTHONPATH=str(tmp_path / "notf"), KERAS_BACKEND="jax")
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env["PATH"]])
    out = tmp_path / "out"
    proc = subprocess.run(
        ["bash", "bench/gpu_check.sh", "--cpu", "--spec", str(spec), "--images", "16",
         "--data", str(tmp_path / "data"), "--out", str(out)],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    report = json.loads(proc.stdout)
    assert report == json.loads((out / "gpu_check.json").read_text())
    assert report["errors"] == {} and report["dry_run"] is True
    assert report["backend"] == "jax" and report["device"]["kind"] == "cpu"
    for precision in ("float32", "bfloat16"):
        rates = report[precision]
        assert rates["device_images_per_s"] > 0 and rates["host_images_per_s"] > 0
        # on a CPU the device is host memory: both ways give the same weights
        assert rates["max_weight_diff_device_vs_host"] == 0.0
    recipe = report["short_recipe"]
    assert recipe["epochs"] == 1 and recipe["lr_schedule"] == {"0": 0.05}
    assert recipe["train_images"] + recipe["val_images"] == 24
    assert 0.0 <= recipe["final_val_accuracy"] <= 1.0
    assert recipe["dtype_policy"] == "float32" and recipe["jit_compile"] is True
    assert "# GPU check: tiny under jax" in (out / "gpu_check.md").read_text()


def test_readme_gpu_figures_are_the_recorded_runs():
    """The README's GPU figures are those of the runs kept in bench/results/gpu/."""
    readme = docs_text()
    check = json.loads((ROOT / "bench/results/gpu/gpu_check.json").read_text())
    full = json.loads((ROOT / "bench/results/gpu/nin_bamd_200/metrics.json").read_text())
    assert check["device"]["name"] == full["device"]["name"] == "NVIDIA H200"
    for precision in ("float32", "bfloat16"):
        r = check[precision]
        row = (
            f"| {precision} | {r['device_images_per_s']:,.0f} | {r['host_images_per_s']:,.0f} "
            f"| {r['recipe_minutes_at_device_rate']:.1f} min |"
        )
        assert row in readme
    recipe = check["short_recipe"]
    assert f"{recipe['epochs']} epochs of the shortened recipe reached " in readme
    assert f"{100 * recipe['final_val_accuracy']:.2f} % validation accuracy" in readme
    assert full["epochs_completed"] == 200 and full["val_images"] == 5000
    best, final = full["best"], full["final"]
    assert (
        f"best validation accuracy {100 * best['val_accuracy']:.2f} % "
        f"(epoch {best['epoch'] + 1}), final {100 * final['val_accuracy']:.2f} %" in readme
    )
    assert f"{full['images_per_second']:,.0f} images/s" in readme
    assert f"{full['train_seconds']:.0f} s of fitting" in readme
    assert f"{full['wall_seconds_this_session'] / 60:.1f} minutes of wall time" in readme
