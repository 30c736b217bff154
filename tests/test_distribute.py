"""Data-parallel training: 2 devices (JAX, TensorFlow) and 2 processes (JAX on
127.0.0.1) end with the weights of one device, and refusals are clear."""

import importlib.util
import json
import socket
import subprocess
import sys

import numpy as np
import pytest
from conftest import ROOT

SPEC = """\
name: dp
input: [12, 12, 3]
stages:
  - {conv: [6, 3], padding: same, batch_norm: true, activation: relu, pool: {max: 2}%s}
head: [gap, {dense: 4, activation: softmax}]
train: {optimizer: sgd, momentum: 0.9, learning_rate: 0.05, batch_size: 32, epochs: 2}
data: {dataset: synthetic, limit: 320%s}
"""
RANDOM = SPEC % (", dropout: 0.1", ", augment: {flip: horizontal, shift: 0.125}")
PLAIN = SPEC % ("", "")  # MirroredStrategy draws random numbers per replica

needs_jax = pytest.mark.skipif(importlib.util.find_spec("jax") is None, reason="no jax")


def _train(spec, out, env, *args, devices_on_host=None, wait=True):
    """``nincompile train`` in a subprocess with the environment ``env`` (see
    ``backend_env``)."""
    env = dict(env)
    if devices_on_host:
        count = f"--xla_force_host_platform_device_count={devices_on_host}"
        env["XLA_FLAGS"] = f"{env['XLA_FLAGS']} {count}"
    cmd = [sys.executable, "-m", "nincompile.cli", "train", str(spec), "--out", str(out), *args]
    if not wait:
        return subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, text=True)  # fmt: skip
    proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    return proc


def _weights(run):
    import keras

    return keras.saving.load_model(run / "model.keras", compile=False).get_weights()


def _max_diff(a, b):
    return max(float(np.abs(x - y).max()) for x, y in zip(_weights(a), _weights(b), strict=True))


@needs_jax
def test_jax_two_devices_and_two_processes_match_one_device(tmp_path, backend_env):
    spec = tmp_path / "dp.yaml"
    spec.write_text(RANDOM)
    jax = backend_env("jax")
    one = _train(spec, tmp_path / "one", jax, "--devices", "1", devices_on_host=2)
    assert one.returncode == 0, one.stdout + one.stderr[-3000:]
    two = _train(spec, tmp_path / "two", jax, "--devices", "2", devices_on_host=2)
    assert two.returncode == 0, two.stdout + two.stderr[-3000:]
    assert "data-parallel over 2 device(s) in 1 process(es)" in two.stdout
    metrics = json.loads((tmp_path / "two" / "metrics.json").read_text())
    assert metrics["distribution"]["devices"] == 2
    assert _max_diff(tmp_path / "one", tmp_path / "two") < 1e-5

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    procs = [
        _train(spec, tmp_path / "multi", jax, "--coordinator", f"127.0.0.1:{port}",
               "--num-processes", "2", "--process-id", str(i), wait=False)
        for i in range(2)
    ]  # fmt: skip
    outs = [p.communicate(timeout=600)[0] for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outs[0][-3000:] + outs[1][-3000:]
    assert "2 process(es)" in outs[0]
    history = (tmp_path / "multi" / "history.csv").read_text().splitlines()
    assert [line.split(",")[0] for line in history[1:]] == ["0", "1"]
    assert _max_diff(tmp_path / "two", tmp_path / "multi") < 1e-5


def test_tensorflow_mirrored_strategy_matches_one_device(tmp_path, backend_env):
    spec = tmp_path / "dp.yaml"
    spec.write_text(PLAIN)
    tf = backend_env("tensorflow")
    one = _train(spec, tmp_path / "one", tf)
    assert one.returncode == 0, one.stderr[-3000:]
    two = _train(spec, tmp_path / "two", tf, "--devices", "2")
    assert two.returncode == 0, two.stderr[-3000:]
    assert "MirroredStrategy" in two.stdout
    assert _max_diff(tmp_path / "one", tmp_path / "two") < 1e-5
    # batch norm is synchronised while training, but saved portable
    config = json.dumps(
        [layer.get_config() for layer in __import__("keras").saving.load_model(
            tmp_path / "two" / "model.keras", compile=False).layers]
    )  # fmt: skip
    assert '"synchronized": true' not in config


def test_refusals(tmp_path, backend_env):
    spec = tmp_path / "dp.yaml"
    spec.write_text(PLAIN)
    tf = backend_env("tensorflow")
    bad = _train(spec, tmp_path / "a", tf, "--devices", "3")
    assert bad.returncode == 1 and "cannot be split evenly over 3 devices" in bad.stderr
    assert "Traceback" not in bad.stderr
    zero = _train(spec, tmp_path / "b", tf, "--devices", "0")
    assert zero.returncode == 1 and "at least 1" in zero.stderr
    if importlib.util.find_spec("torch") is not None:
        torch = _train(spec, tmp_path / "c", backend_env("torch"), "--devices", "2")
        assert torch.returncode == 1 and "needs the JAX or TensorFlow backend" in torch.stderr
