"""``nincompile train``/``evaluate``/``predict`` on tiny models and synthetic data:
run folder contents, exact resume (also after kill -9), refusals, NaN, overrides."""

import csv
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from conftest import ROOT

from nincompile.cli import main
from nincompile.runs import folder as runs
from nincompile.spec import load_spec
from nincompile.spec.overrides import apply_overrides
from nincompile.train.loop import train

TINY = """\
name: tiny
input: [12, 12, 3]
stages:
  - {conv: [6, 3], padding: same, batch_norm: true, activation: relu, pool: {max: 2},
     dropout: 0.1}
head: [gap, {dense: 4, activation: softmax}]
train: {optimizer: adam, learning_rate: 0.02, batch_size: 32, epochs: 3, lr_schedule: cosine,
        warmup_epochs: 1, seed: 3}
data:
  dataset: synthetic
  limit: 320
  classes: [a, b, c, d]
  augment: {flip: horizontal, shift: 0.125, crop: 2, cutout: 4}
"""


@pytest.fixture
def tiny(spec_file):
    return spec_file(TINY, "tiny.yaml")


# Runs that several tests read or resume, each trained once for the module: a test
# that changes a run folder gets a copy of it.


def _module_run(tmp_path_factory, name: str, overrides=(), **kwargs):
    folder = tmp_path_factory.mktemp(name)
    spec = folder / "tiny.yaml"
    spec.write_text(TINY, encoding="utf-8")
    source = apply_overrides(load_spec(spec), list(overrides))
    return source, train(source, out=folder / "run", **kwargs)


@pytest.fixture(scope="module")
def straight(tmp_path_factory) -> Path:
    """TINY trained through its 3 epochs in one call: the weights and history that
    every interrupted and resumed run of it must end with."""
    return _module_run(tmp_path_factory, "straight")[1].path


@pytest.fixture(scope="module")
def _first_epoch(tmp_path_factory) -> Path:
    return _module_run(tmp_path_factory, "first_epoch", stop_after=1)[1].path


@pytest.fixture
def first_epoch(_first_epoch, tmp_path) -> Path:
    """A copy, this test's own, of TINY's run stopped after its first epoch."""
    return Path(shutil.copytree(_first_epoch, tmp_path / "pieces"))


@pytest.fixture(scope="module")
def learned(tmp_path_factory):
    """``(source, result)``: TINY on 640 images for 6 epochs in one call."""
    return _module_run(tmp_path_factory, "learned", ["train.epochs=6", "data.limit=640"])


def _weights(path):
    import keras

    return keras.saving.load_model(path, compile=False).get_weights()


def _same_weights(a, b):
    wa, wb = _weights(a), _weights(b)
    assert len(wa) == len(wb)
    return max(float(np.abs(x - y).max()) for x, y in zip(wa, wb, strict=True))


def _history(run):
    with open(Path(run) / runs.HISTORY, newline="") as f:
        return list(csv.DictReader(f))


@pytest.mark.parametrize("head", ["[]", "[{dense: 3, pointwise: true}]"], ids=["none", "pointwise"])
def test_train_refuses_a_model_that_outputs_no_class_vector(tiny, tmp_path, head):
    """A spec whose output is an image (no head, or a pointwise dense) checks, but train
    refuses it with one error before it makes the run folder (it printed Keras's
    traceback after making it)."""
    out = tmp_path / "run"
    result = CliRunner().invoke(
        main, ["train", str(tiny), "--out", str(out), "--set", f"head={head}"]
    )
    assert result.exit_code == 1, result.output
    assert isinstance(result.exception, SystemExit), result.exception
    assert "train needs a model whose output is one score per class" in result.output
    assert "Traceback" not in result.output
    assert not out.exists()


def test_train_cli_writes_a_complete_run_folder(tiny, tmp_path):
    out = tmp_path / "run"
    result = CliRunner().invoke(main, ["train", str(tiny), "--out", str(out), "--epochs", "2"])
    assert result.exit_code == 0, result.output
    assert "epoch 2/2" in result.output and "img/s" in result.output
    for name in (runs.SPEC, runs.HISTORY, runs.METRICS, runs.CURVES, runs.MODEL, runs.BEST):
        assert (out / name).is_file(), name
    assert (out / runs.CHECKPOINT / runs.STATE).is_file()
    assert any((out / runs.TENSORBOARD).iterdir())
    rows = _history(out)
    assert [r["epoch"] for r in rows] == ["0", "1"]
    assert list(rows[0]) == list(runs.HISTORY_COLUMNS)
    metrics = json.loads((out / runs.METRICS).read_text())
    assert metrics["epochs_completed"] == 2 and metrics["backend"] == "tensorflow"
    assert metrics["final"]["val_accuracy"] == pytest.approx(float(rows[-1]["val_accuracy"]))
    assert metrics["params"] == {"total": 220, "trainable": 208, "non_trainable": 12}
    # the resolved spec (override applied) is what the run stores
    assert load_spec(out / runs.SPEC).spec.train.epochs == 2
    # model.keras is the bare model: no preprocessing or augmentation layers
    import keras

    model = keras.saving.load_model(out / runs.MODEL, compile=False)
    assert not [layer.name for layer in model.layers if "augment" in layer.name]
    assert model.input_shape == (None, 12, 12, 3)


def test_default_run_folder_is_numbered_not_overwritten(tiny, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    runner = CliRunner()
    for _ in range(2):
        result = runner.invoke(main, ["train", str(tiny), "--epochs", "1"])
        assert result.exit_code == 0, result.output
    assert (tmp_path / "runs" / "tiny" / runs.MODEL).is_file()
    assert (tmp_path / "runs" / "tiny-2" / runs.MODEL).is_file()
    again = runner.invoke(main, ["train", str(tiny), "--out", "runs/tiny"])
    assert again.exit_code == 1 and "already exists" in again.output


def test_learns_synthetic_data(learned):
    _, result = learned
    assert result.metrics["epochs_completed"] == 6 and result.metrics["train_images"] == 576
    assert result.metrics["best"]["val_accuracy"] >= 0.6  # chance is 0.25


def test_resume_ends_with_the_same_weights(tiny, straight, first_epoch):
    source = load_spec(tiny)
    pieces = first_epoch  # trained with stop_after=1
    assert [r["epoch"] for r in _history(pieces)] == ["0"]
    train(source, out=pieces, resume=True, stop_after=1)
    train(source, out=pieces, resume=True)
    assert _same_weights(straight / runs.MODEL, pieces / runs.MODEL) == 0
    a, b = _history(straight), _history(pieces)
    assert [r["epoch"] for r in b] == ["0", "1", "2"]
    for key in ("loss", "accuracy", "val_loss", "val_accuracy", "learning_rate"):
        assert [r[key] for r in a] == [r[key] for r in b]


def test_resume_differs_when_optimiser_state_is_lost(tiny, straight, first_epoch):
    """The resume test above can fail: dropping the Adam moments changes the weights."""
    source = load_spec(tiny)
    pieces = first_epoch  # trained with stop_after=1
    state_file = pieces / runs.CHECKPOINT / runs.STATE
    state = json.loads(state_file.read_text())
    ckpt = pieces / runs.CHECKPOINT / state["checkpoint"]
    with np.load(ckpt) as z:
        arrays = {k: z[k] for k in z.files}
    arrays = {k: (np.zeros_like(v) if k.endswith("opt") and v.ndim > 0 else v)
              for k, v in arrays.items()}  # fmt: skip
    with open(ckpt, "wb") as f:
        np.savez(f, **arrays)
    train(source, out=pieces, resume=True)
    assert _same_weights(straight / runs.MODEL, pieces / runs.MODEL) > 0


def test_resume_refuses_a_run_of_another_spec(tiny, tmp_path):
    runner = CliRunner()
    out = tmp_path / "r"
    assert (
        runner.invoke(main, ["train", str(tiny), "--out", str(out), "--epochs", "1"]).exit_code == 0
    )
    result = runner.invoke(
        main, ["train", str(tiny), "--out", str(out), "--epochs", "1", "--resume",
               "--set", "train.learning_rate=0.5"]
    )  # fmt: skip
    assert result.exit_code == 1
    assert "different spec" in result.output
    assert len([w for w in result.output.split() if len(w.strip("(),;")) == 64]) == 2
    # the run folder's own spec resumes it
    ok = runner.invoke(main, ["train", str(out), "--resume"])
    assert ok.exit_code == 0, ok.output


def test_resume_of_nothing_is_a_clear_error(tiny, tmp_path):
    result = CliRunner().invoke(main, ["train", str(tiny), "--out", str(tmp_path / "x"),
                                       "--resume"])  # fmt: skip
    assert result.exit_code == 1 and "nothing to resume" in result.output


def test_nan_loss_stops_with_a_clear_error(tiny, tmp_path):
    out = tmp_path / "nan"
    tiny_std = "[1.0e-38, 1.0e-38, 1.0e-38]"  # pixels / 1e-38 overflow to inf, then NaN
    result = CliRunner().invoke(
        main, ["train", str(tiny), "--out", str(out), "--set", "data.mean=[0, 0, 0]",
               "--set", f"data.std={tiny_std}"]
    )  # fmt: skip
    assert result.exit_code == 1
    assert "the loss became nan" in result.output.lower()
    assert "Traceback" not in result.output
    assert not (out / runs.CHECKPOINT / runs.STATE).exists()
    assert not [p for p in out.rglob(".*.*") if p.name != runs.LOCK], "a temporary file was left"


@pytest.mark.parametrize(
    "override, expected",
    [
        ("train.learning_rate=abc", "--set train.learning_rate=abc: train.learning_rate"),
        ("train.lerning_rate=1", "did you mean 'learning_rate'"),
        ("trian.epochs=1", "did you mean 'train'"),
        ("train.epochs", "expected KEY.PATH=VALUE"),
        ("data.augment.flip=sideways", "--set data.augment.flip=sideways"),
    ],
)
def test_bad_override_names_the_override(tiny, tmp_path, override, expected):
    result = CliRunner().invoke(main, ["train", str(tiny), "--out", str(tmp_path / "r"),
                                       "--set", override])  # fmt: skip
    assert result.exit_code == 1
    assert expected in result.output
    assert not (tmp_path / "r").exists()


def test_no_data_offline_says_how_to_pass_data(spec_file, tmp_path, monkeypatch):
    import keras

    def offline():
        raise OSError("URL fetch failure: no network")

    monkeypatch.setattr(keras.datasets.cifar10, "load_data", offline)
    spec = spec_file(TINY.replace("dataset: synthetic", "dataset: cifar10"))
    result = CliRunner().invoke(main, ["train", str(spec), "--out", str(tmp_path / "r")])
    assert result.exit_code == 1
    assert "--data PATH" in result.output and "Traceback" not in result.output


def _image_folder(root: Path, source, n: int = 48) -> Path:
    from PIL import Image

    from nincompile.data import sources

    spec = source.spec
    raw = sources.synthetic(n, tuple(spec.input), list(spec.data.classes), spec.train.seed)
    for i, (img, label) in enumerate(zip(raw.images, raw.labels, strict=True)):
        folder = root / raw.classes[label]
        folder.mkdir(parents=True, exist_ok=True)
        Image.fromarray(img).save(folder / f"{i:03d}.png")
    return root


def test_resume_refuses_other_training_data(tiny, tmp_path):
    source = load_spec(tiny)
    a = _image_folder(tmp_path / "a", source, n=40)
    b = _image_folder(tmp_path / "b", source, n=44)
    out = tmp_path / "r"
    runner = CliRunner()
    first = runner.invoke(main, ["train", str(tiny), "--data", str(a), "--out", str(out),
                                 "--stop-after", "1"])  # fmt: skip
    assert first.exit_code == 0, first.output
    other = runner.invoke(main, ["train", str(tiny), "--data", str(b), "--out", str(out),
                                 "--resume"])  # fmt: skip
    assert other.exit_code == 1
    assert "training images differ" in other.output and "Traceback" not in other.output
    same = runner.invoke(main, ["train", str(tiny), "--data", str(a), "--out", str(out),
                                "--resume", "--stop-after", "1"])  # fmt: skip
    assert same.exit_code == 0, same.output


def test_evaluate_and_predict_a_run(learned, tmp_path):
    source, trained = learned
    run = trained.path
    folder = _image_folder(tmp_path / "imgs", source)
    runner = CliRunner()
    result = runner.invoke(main, ["evaluate", str(run), "--data", str(folder), "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    assert report["images"] == 48
    assert set(report["per_class"]) == {"a", "b", "c", "d"}
    assert sum(c["images"] for c in report["per_class"].values()) == 48
    assert (run / "confusion.png").is_file()
    assert np.array(report["confusion"]).sum() == 48
    # the same figure through Keras's own evaluate on the same pipeline
    import keras

    from nincompile.data import pipeline, sources

    raw = sources.read_source(folder, classes=["a", "b", "c", "d"], cache_dir=False)
    model = keras.saving.load_model(run / runs.MODEL, compile=False)
    wrapper = pipeline.wrap(model, raw.images.shape[1:], source.spec.data, augment=False)
    wrapper.compile(loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    loss, acc = wrapper.evaluate(raw.images, raw.labels, verbose=0)
    assert report["accuracy"] == pytest.approx(acc, abs=1e-6)
    assert report["loss"] == pytest.approx(loss, rel=1e-4)

    pred = runner.invoke(main, ["predict", str(run), str(folder / "a"), "--top", "2", "--json"])
    assert pred.exit_code == 0, pred.output
    items = json.loads(pred.output)
    assert len(items) == len(list((folder / "a").iterdir()))
    for item in items:
        assert len(item["top"]) == 2
        assert item["top"][0]["probability"] >= item["top"][1]["probability"]
        assert {t["class"] for t in item["top"]} <= {"a", "b", "c", "d"}
    text = runner.invoke(main, ["predict", str(run / runs.BEST), str(folder / "b")])
    assert text.exit_code == 0 and str(folder / "b") in text.output


def test_evaluate_refuses_bad_inputs(tmp_path):
    runner = CliRunner()
    result = runner.invoke(main, ["evaluate", str(tmp_path), "--data", str(tmp_path)])
    assert result.exit_code == 1 and "not a run folder" in result.output
    h5 = tmp_path / "m.h5"
    h5.write_bytes(b"\x89HDF\r\n\x1a\n")
    result = runner.invoke(main, ["predict", str(h5), str(tmp_path)])
    assert result.exit_code == 1 and "HDF5" in result.output


def test_a_trained_run_exports_to_onnx(learned, tmp_path):
    run = learned[1].path
    target = tmp_path / "tiny.onnx"
    result = CliRunner().invoke(main, ["export", str(run), "-o", str(target)])
    assert result.exit_code == 0, result.output
    assert target.is_file()
    # RUN/best.keras takes its classes from the spec.yaml beside it, as evaluate does
    from nincompile.export import export_onnx

    report = export_onnx(run / runs.BEST, tmp_path / "best.onnx")
    assert json.loads(report.metadata["classes"]) == ["a", "b", "c", "d"]


def test_label_smoothing_and_step_schedule_train(tiny, tmp_path):
    source = apply_overrides(
        load_spec(tiny),
        ["train.label_smoothing=0.1", "train.lr_schedule={0: 0.02, 1: 0.002}",
         "train.warmup_epochs=0", "train.epochs=2"],
    )  # fmt: skip
    result = train(source, out=tmp_path / "r")
    lrs = [r["learning_rate"] for r in result.history]
    assert lrs == pytest.approx([0.02, 0.002])


def _write_idx(folder: Path, prefix: str, images: np.ndarray, labels: np.ndarray) -> None:
    import gzip
    import struct

    folder.mkdir(parents=True, exist_ok=True)
    n, h, w = images.shape
    head = struct.pack(">IIII", 0x803, n, h, w)
    with gzip.open(folder / f"{prefix}-images-idx3-ubyte.gz", "wb") as f:
        f.write(head + images.astype(np.uint8).tobytes())
    with gzip.open(folder / f"{prefix}-labels-idx1-ubyte.gz", "wb") as f:
        f.write(struct.pack(">II", 0x801, n) + labels.astype(np.uint8).tobytes())


def test_idx_files_grey_to_rgb_and_resized_on_the_device(spec_file, tmp_path):
    """As the d2l NiN: 28x28 grey idx files into a larger RGB input (resize + pad)."""
    from nincompile.data import sources

    raw = sources.synthetic(96, (28, 28, 1), 4, seed=1)
    _write_idx(tmp_path / "fmnist", "train", raw.images[..., 0], raw.labels)
    _write_idx(tmp_path / "fmnist", "t10k", raw.images[:40, ..., 0], raw.labels[:40])
    spec = spec_file(
        TINY.replace("input: [12, 12, 3]", "input: [36, 36, 3]")
        .replace("dataset: synthetic", "dataset: fashion_mnist")
        .replace("  augment:", "  mean: [127.5, 127.5, 127.5]\n  std: [64, 64, 64]\n  augment:"),
        "grey.yaml",
    )
    runner = CliRunner()
    out = tmp_path / "r"
    data = str(tmp_path / "fmnist")
    result = runner.invoke(main, ["train", str(spec), "--data", data, "--out", str(out),
                                  "--epochs", "1", "--json"])  # fmt: skip
    assert result.exit_code == 0, result.output
    metrics = json.loads(result.output[result.output.index("{") :])
    assert "idx" in metrics["data"][0] and "28x28x3" in metrics["data"][0]
    assert metrics["train_images"] + metrics["val_images"] == 96
    ev = runner.invoke(main, ["evaluate", str(out), "--data", data, "--json"])
    assert ev.exit_code == 0, ev.output
    assert json.loads(ev.output)["images"] == 40  # the t10k split


def _lines_starting(log: Path, prefix: str) -> int:
    return sum(line.startswith(prefix) for line in log.read_text(errors="replace").splitlines())


def _await_training(proc, log: Path, epochs: int, timeout: float = 600.0) -> None:
    """Wait until the process ``proc`` (its output in ``log``) trains: its epoch loop
    has begun and ``epochs`` epochs have ended in it; or until it has exited."""
    deadline = time.monotonic() + timeout
    while proc.poll() is None and time.monotonic() < deadline:
        if "data fed from the host" in log.read_text(errors="replace") and (
            _lines_starting(log, "epoch ") >= epochs
        ):
            return
        time.sleep(0.05)


def test_random_kills_then_resumes_finish_exactly_the_schedule(learned, tmp_path):
    """kill -9 at random moments, several times; every resume loses at most the epoch
    in progress, and the run ends with the epochs scheduled, no gap or duplicate, and
    with the weights of the same spec trained in one call (``learned``).

    Each kill comes while the process trains: after 0, 1 or 2 of its epochs have ended
    (an epoch's line is printed just before it is committed), a random moment later,
    within 1.5 s: in an epoch, in its commit or between the two.  Time the process
    spends starting is not spent waiting for a kill."""
    import random

    source, straight = learned
    spec = tmp_path / "tiny.yaml"
    spec.write_text(source.text, encoding="utf-8")
    run = tmp_path / "run"
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "PYTHONUNBUFFERED": "1"}
    base = [sys.executable, "-m", "nincompile.cli", "train", str(spec), "--out", str(run)]
    rng = random.Random(7)
    state = run / runs.CHECKPOINT / runs.STATE
    kills = 0
    for attempt in range(4):  # three kills, then a process that may finish
        done_before = json.loads(state.read_text())["epoch"] if state.is_file() else 0
        cmd = base + (["--resume"] if run.exists() else [])
        log = tmp_path / f"attempt{attempt}.log"
        with open(log, "w") as out:
            proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=out,
                                    stderr=subprocess.STDOUT)  # fmt: skip
        try:
            if attempt < 3:
                _await_training(proc, log, epochs=rng.randrange(3))
                proc.wait(timeout=rng.uniform(0.0, 1.5))
            else:
                proc.wait(timeout=600)
        except subprocess.TimeoutExpired:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait()
            kills += 1
        else:
            assert proc.returncode == 0, log.read_text()[-3000:]
            break
        if state.is_file():
            assert json.loads(state.read_text())["epoch"] >= done_before  # nothing undone
    else:
        pytest.fail("the run did not finish")
    assert kills >= 1
    assert [r["epoch"] for r in _history(run)] == [str(i) for i in range(6)]
    assert _same_weights(run / runs.MODEL, straight.path / runs.MODEL) < 1e-6


def test_a_corrupt_latest_checkpoint_falls_back_to_the_previous(tiny, straight, tmp_path):
    source = load_spec(tiny)
    run = tmp_path / "r"
    train(source, out=run, stop_after=2)
    state = json.loads((run / runs.CHECKPOINT / runs.STATE).read_text())
    assert state["epoch"] == 2 and state["previous"]["epoch"] == 1
    latest = run / runs.CHECKPOINT / state["checkpoint"]
    latest.write_bytes(latest.read_bytes()[: latest.stat().st_size // 2])  # truncated
    result = CliRunner().invoke(main, ["train", str(run), "--resume"])
    assert result.exit_code == 0, result.output
    assert "unreadable" in result.output and "epoch 1" in result.output
    assert [r["epoch"] for r in _history(run)] == ["0", "1", "2"]
    assert _same_weights(straight / runs.MODEL, run / runs.MODEL) == 0


def test_a_live_run_folder_is_not_shared(first_epoch):
    run = first_epoch  # trained with stop_after=1
    holder = subprocess.Popen(
        [sys.executable, "-c", "import fcntl, sys, time; f = open(sys.argv[1], 'a+'); "
         "fcntl.flock(f, fcntl.LOCK_EX); f.write('4242'); f.flush(); print('locked', "
         "flush=True); time.sleep(60)", str(run / runs.LOCK)],
        stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert holder.stdout.readline().strip() == "locked"
        result = CliRunner().invoke(main, ["train", str(run), "--resume"])
        assert result.exit_code == 1
        assert "in use by another live run" in result.output
    finally:
        holder.kill()
        holder.wait()
    ok = CliRunner().invoke(main, ["train", str(run), "--resume"])  # the lock died with it
    assert ok.exit_code == 0, ok.output


def test_data_placement_rules(monkeypatch):
    from nincompile.data import feed
    from nincompile.errors import TrainError

    x = np.zeros((1000, 32, 32, 3), np.uint8)  # 3.07 MB
    y = np.zeros(1000, np.int32)
    arrays = (x, y, None, None)
    # TensorFlow (this process): the host always; forcing the device is a clear error
    assert not feed.placement("auto", arrays, distributed=False, device_kind="gpu").on_device
    with pytest.raises(TrainError, match="KERAS_BACKEND=tensorflow"):
        feed.placement(True, arrays, distributed=False, device_kind="gpu")
    assert not feed.placement(False, arrays, distributed=False, device_kind="gpu").on_device

    monkeypatch.setattr(feed.keras.backend, "backend", lambda: "jax")
    free = {"bytes": 100_000_000}
    monkeypatch.setattr(feed, "_free_device_memory", lambda: free["bytes"])
    auto = feed.placement("auto", arrays, distributed=False, device_kind="gpu")
    assert auto.on_device and "3.1 MB" in auto.reason
    free["bytes"] = 6_000_000  # 3.07 MB > half of 6 MB
    assert not feed.placement("auto", arrays, distributed=False, device_kind="gpu").on_device
    free["bytes"] = None
    assert not feed.placement("auto", arrays, distributed=False, device_kind="gpu").on_device
    free["bytes"] = 10**12
    assert not feed.placement("auto", arrays, distributed=False, device_kind="cpu").on_device
    assert not feed.placement("auto", arrays, distributed=True, device_kind="gpu").on_device
    assert feed.placement(True, arrays, distributed=False, device_kind="cpu").on_device
    with pytest.raises(TrainError, match="--devices"):
        feed.placement(True, arrays, distributed=True, device_kind="gpu")


def test_device_batches_follow_the_epoch_order():
    from nincompile.data import feed

    x = np.arange(10, dtype=np.uint8).reshape(10, 1, 1, 1)
    y = np.arange(10, dtype=np.int32)
    batches = feed.DeviceBatches(feed.to_device(x), feed.to_device(y), 4)
    order = np.array([9, 3, 1, 0, 8, 2, 7, 6, 5, 4])
    batches.set_order(order)
    got = [np.asarray(batches[i][1]) for i in range(len(batches))]
    assert [list(b) for b in got] == [[9, 3, 1, 0], [8, 2, 7, 6], [5, 4]]
    assert np.asarray(batches[0][0]).dtype == np.uint8


def test_data_on_device_refused_before_anything_is_written(tiny, tmp_path):
    out = tmp_path / "r"
    result = CliRunner().invoke(main, ["train", str(tiny), "--out", str(out),
                                       "--set", "data.on_device=true"])  # fmt: skip
    assert result.exit_code == 1
    assert "needs the JAX or PyTorch backend" in result.output
    assert not out.exists()
