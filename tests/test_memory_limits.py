"""Memory is bounded for every input (issue 17, item 2) and nothing hangs on odd files
(item 5): ``.keras`` files are sized from their config and weights' metadata before
anything is allocated; the training estimate counts gradients, optimiser slots and
every activation kept for back-propagation, against a default limit of the memory the
machine has; CIFAR members, idx files and images are read with caps checked against
what their formats declare; images are resized as they are decoded, in bounded
batches; FIFOs and devices are refused; names from the data are printed escaped.

Every test keeps its own memory small: limits are lowered through the environment
(``NINCOMPILE_MAX_MEMORY``, ``NINCOMPILE_MAX_IMAGE_PIXELS``) rather than inputs raised.
"""

from __future__ import annotations

import gzip
import io
import json
import os
import pickle
import struct
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from nincompile import api, guard
from nincompile.cli import main
from nincompile.data import sources
from nincompile.data.formats import cifar
from nincompile.data.sources import read_source
from nincompile.errors import DataError, ModelLoadError, NincompileError, SpecError
from nincompile.spec import load_spec, parse_spec
from nincompile.spec.overrides import apply_overrides

TINY = "name: tiny\ninput: [8, 8, 3]\nstages:\n  - {conv: [4, 3]}\nhead: [gap, {dense: 2}]\n"


def _run_python(code: str, timeout: float = 120, env: dict | None = None):
    """Run ``code`` in a fresh interpreter; a hang is a failure, not a stuck suite."""
    full = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", **(env or {})}
    try:
        return subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, timeout=timeout, env=full
        )
    except subprocess.TimeoutExpired:
        pytest.fail(f"hung for {timeout} s: {code}")


# ------------------------------------------------------------------ .keras files


@pytest.fixture(scope="module")
def small_keras(tmp_path_factory) -> Path:
    """A real 837-parameter model saved as .keras."""
    import keras

    inp = keras.Input((8, 8, 3))
    x = keras.layers.Conv2D(4, 3, name="conv")(inp)
    x = keras.layers.Flatten(name="flat")(x)
    out = keras.layers.Dense(5, name="dense")(x)
    path = tmp_path_factory.mktemp("keras") / "small.keras"
    keras.Model(inp, out).save(path)
    return path


def _rewrite(src: Path, dst: Path, *, config=None, weights: bytes | None = None) -> Path:
    with zipfile.ZipFile(src) as z:
        members = {n: z.read(n) for n in z.namelist()}
    if config is not None:
        cfg = json.loads(members["config.json"])
        config(cfg)
        members["config.json"] = json.dumps(cfg).encode()
    if weights is not None:
        members["model.weights.h5"] = weights
    with zipfile.ZipFile(dst, "w") as z:
        for name, data in members.items():
            z.writestr(name, data)
    return dst


def _dense_units(units: int):
    def edit(cfg):
        for layer in cfg["config"]["layers"]:
            if layer["class_name"] == "Dense":
                layer["config"]["units"] = units

    return edit


def test_keras_estimate_of_a_real_file_is_its_weights(small_keras):
    est = guard.keras_file_estimate(small_keras)
    params = 3 * 3 * 3 * 4 + 4 + 6 * 6 * 4 * 5 + 5
    assert est.config_params == params
    assert est.declared_bytes == params * 4  # model.weights.h5, from metadata alone
    assert est.largest_layer == "'dense' (Dense)"


def test_keras_file_declaring_a_huge_layer_is_refused_before_loading(small_keras, tmp_path):
    big = _rewrite(small_keras, tmp_path / "big.keras", config=_dense_units(300_000))
    code = (
        "import sys\n"
        "from nincompile.runs.model import load_keras_model\n"
        "from nincompile.errors import ModelLoadError\n"
        "try:\n"
        f"    load_keras_model({str(big)!r})\n"
        "except ModelLoadError as err:\n"
        "    print(err)\n"
        "bad = [m for m in ('tensorflow', 'keras') if m in sys.modules]\n"
        "print('imported', bad)\n"
    )
    proc = _run_python(code, env={"NINCOMPILE_MAX_MEMORY": "64MiB"})
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    assert str(big) in out and "43,500,112 parameters" in out  # 145 x 300,000 + the conv's 112
    assert "over the memory limit of 64.0 MiB" in out and "--max-memory" in out
    assert "imported []" in out  # refused before TensorFlow was imported


def test_keras_weights_declaring_huge_arrays_are_refused(small_keras, tmp_path):
    import h5py

    buf = io.BytesIO()
    with h5py.File(buf, "w") as h5:  # declared, never written: a few KB on disk
        h5.create_dataset("layers/dense/vars/0", shape=(20_000, 5_000), dtype="float32")
    bomb = _rewrite(small_keras, tmp_path / "bomb.keras", weights=buf.getvalue())
    assert bomb.stat().st_size < 100_000
    est = guard.keras_file_estimate(bomb)
    assert est.declared_bytes == 20_000 * 5_000 * 4
    with pytest.raises(ModelLoadError, match="model.weights.h5 declares 381.5 MiB"):
        guard.check_keras_file(bomb, guard.Limits(max_memory=64 * 2**20))


def _model_args(command: str, model: Path, tmp_path: Path) -> list[str]:
    """``command`` of ``model`` on a folder of one 8x8 image (class ``a``)."""
    folder = tmp_path / "imgs"
    if not folder.is_dir():
        (folder / "a").mkdir(parents=True)
        Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(folder / "a" / "x.png")
    return {
        "predict": ["predict", str(model), str(folder)],
        "evaluate": [
            "evaluate",
            str(model),
            "--data",
            str(folder),
            "--confusion",
            str(tmp_path / "c.png"),
        ],  # fmt: skip
        "export": ["export", str(model), "-o", str(tmp_path / "x.onnx")],
    }[command]


@pytest.mark.parametrize("command", ["predict", "evaluate", "export"])
def test_commands_refuse_a_keras_file_over_the_limit(small_keras, tmp_path, monkeypatch, command):
    big = _rewrite(small_keras, tmp_path / "big.keras", config=_dense_units(300_000))
    monkeypatch.setenv("NINCOMPILE_MAX_MEMORY", "64MiB")
    result = CliRunner().invoke(main, _model_args(command, big, tmp_path))
    assert result.exit_code == 1 and "Traceback" not in result.output, result.output
    assert str(big) in result.output and "--max-memory" in result.output
    assert "does not fit" in result.output


# ------------------------------------------------------------- --max-memory


def _refused_by_the_option(result, size: str) -> str:
    """Exit 1, one clean last line naming the limit as the option's."""
    assert result.exit_code == 1, result.output
    assert isinstance(result.exception, SystemExit) and "Traceback" not in result.output
    last = result.output.strip().splitlines()[-1]
    assert f"limit of {size} (--max-memory)" in last, result.output
    return last


@pytest.mark.parametrize("command", ["predict", "evaluate", "export"])
def test_max_memory_option_limits_the_model_a_command_loads(
    small_keras, tmp_path, monkeypatch, command
):
    """--max-memory on predict, evaluate and export is the limit the model is sized
    against: above the environment's, whichever is lower or higher."""
    big = _rewrite(small_keras, tmp_path / "big.keras", config=_dense_units(300_000))
    monkeypatch.delenv("NINCOMPILE_MAX_MEMORY", raising=False)
    args = _model_args(command, big, tmp_path)
    last = _refused_by_the_option(CliRunner().invoke(main, [*args, "--max-memory", "64MiB"]),
                                  "64.0 MiB")  # fmt: skip
    assert str(big) in last and "does not fit" in last
    monkeypatch.setenv("NINCOMPILE_MAX_MEMORY", "1KiB")  # lower than the model needs
    args = _model_args(command, small_keras, tmp_path)
    result = CliRunner().invoke(main, [*args, "--max-memory", "64MiB"])
    assert result.exit_code == 0, result.output
    assert "memory limit" not in result.output


def test_max_memory_option_limits_training(tmp_path, monkeypatch):
    spec = tmp_path / "t.yaml"
    spec.write_text(TINY + "train: {batch_size: 8, epochs: 1}\n"
                    "data: {dataset: synthetic, limit: 16}\n")  # fmt: skip
    monkeypatch.delenv("NINCOMPILE_MAX_MEMORY", raising=False)
    args = ["train", str(spec), "--set", "stages.0.conv=[2000, 3]", "--max-memory", "8MiB"]
    last = _refused_by_the_option(CliRunner().invoke(main, [*args, "--out", str(tmp_path / "a")]),
                                  "8.0 MiB")  # fmt: skip
    assert "for training" in last
    monkeypatch.setenv("NINCOMPILE_MAX_MEMORY", "1KiB")
    args = ["train", str(spec), "--out", str(tmp_path / "b"), "--max-memory", "256MiB"]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    assert (tmp_path / "b" / "model.keras").is_file()


def test_max_memory_option_limits_the_data_too(small_keras, tmp_path, monkeypatch):
    """The option reaches the data readers: an idx test set declaring 2 MiB is refused
    under --max-memory 1MiB from its header, though the model fits."""
    folder = tmp_path / "mnist"
    folder.mkdir()
    (folder / "t10k-images-idx3-ubyte.gz").write_bytes(gzip.compress(_idx((2, 1024, 1024))))
    (folder / "t10k-labels-idx1-ubyte.gz").write_bytes(gzip.compress(_idx((2,), 0x801, b"\0\0")))
    monkeypatch.delenv("NINCOMPILE_MAX_MEMORY", raising=False)
    args = ["evaluate", str(small_keras), "--data", str(folder), "--batch-size", "2"]
    last = _refused_by_the_option(CliRunner().invoke(main, [*args, "--max-memory", "1MiB"]),
                                  "1.0 MiB")  # fmt: skip
    assert "t10k-images-idx3-ubyte.gz" in last and "2 x 1024 x 1024" in last


@pytest.mark.parametrize("command", ["train", "evaluate", "predict", "export", "build", "check"])
def test_max_memory_option_is_one_option_on_every_command_that_loads(command):
    """Every command that loads a model or data has the same --max-memory (its help,
    its parsing and its error)."""
    args = {"train": ["x.yaml"], "evaluate": ["m.keras", "--data", "d"],
            "predict": ["m.keras", "x.png"], "export": ["x.yaml"], "build": ["x.yaml"],
            "check": ["x.yaml"]}[command]  # fmt: skip
    result = CliRunner().invoke(main, [command, *args, "--max-memory", "lots"])
    assert result.exit_code == 2 and "--max-memory" in result.output, result.output
    assert "Traceback" not in result.output
    text = CliRunner().invoke(main, [command, "--help"]).output
    assert "--max-memory SIZE" in text and "$NINCOMPILE_MAX_MEMORY" in text


def test_keras_config_is_read_with_a_bound(small_keras, tmp_path, monkeypatch):
    monkeypatch.setattr(guard, "KERAS_CONFIG_MAX_BYTES", 1000)
    with pytest.raises(ModelLoadError, match="config.json is 3,"):
        guard.keras_file_estimate(small_keras)


def test_a_small_keras_file_still_loads(small_keras, monkeypatch):
    from nincompile.runs.model import load_keras_model

    monkeypatch.setenv("NINCOMPILE_MAX_MEMORY", "64MiB")
    assert load_keras_model(small_keras).count_params() == 837


# ------------------------------------------------------------- training estimate


def _compiled(text: str):
    return api.compile_source(parse_spec(text, "t.yaml"))


TRAINED = TINY + "train: {optimizer: OPT, batch_size: 16MORE}\n"


@pytest.mark.parametrize(
    ("optimizer", "more", "slots"),
    [("adam", "", 2), ("adamw", "", 2), ("sgd", "", 0), ("sgd", ", momentum: 0.9", 1),
     ("rmsprop", "", 1), ("nadam", "", 2)],
)  # fmt: skip
def test_training_estimate_counts_gradients_slots_and_activations(optimizer, more, slots):
    compiled = _compiled(TRAINED.replace("OPT", optimizer).replace("MORE", more))
    est = guard.estimate(compiled.graph, 16, compiled.spec.train)
    params = compiled.counts()["total"]
    trainable = compiled.counts()["trainable"]
    outputs = sum(int(np.prod(layer.output_shape)) for layer in compiled.graph.layers())
    assert est.weights_bytes == params * 4
    assert est.gradient_bytes == trainable * 4
    assert est.optimizer_bytes == slots * trainable * 4
    assert est.kept_activation_bytes == outputs * 16 * 4  # the input and every layer
    assert est.saving_bytes == (2 * params + slots * trainable) * 4  # checkpoint, .keras
    assert est.total_bytes >= (
        est.weights_bytes + est.gradient_bytes + est.optimizer_bytes + est.kept_activation_bytes
    )
    assert "gradients" in est.describe() and "every layer's output" in est.describe()


def test_inference_estimate_is_unchanged_without_train():
    compiled = _compiled(TINY)
    est = guard.estimate(compiled.graph, 1)
    assert est.gradient_bytes == est.optimizer_bytes == 0
    assert est.total_bytes == est.weights_bytes + est.activation_bytes


def test_the_issues_override_is_refused_by_its_honest_estimate(tmp_path, monkeypatch):
    """``--set stages.0.conv=[20000, 5]`` on Baseline was estimated at 4.9 GiB and
    killed at 23 GB; the honest estimate is over 20 GiB."""
    from conftest import ROOT

    source = apply_overrides(load_spec(ROOT / "specs" / "baseline.yaml"),
                             ["stages.0.conv=[20000, 5]"])  # fmt: skip
    compiled = api.compile_source(source)
    est = guard.estimate(compiled.graph, guard.batch_of(compiled.spec), compiled.spec.train)
    assert est.total_bytes > 20 * 2**30
    monkeypatch.setenv("NINCOMPILE_MAX_MEMORY", "16GiB")
    with pytest.raises(guard.ResourceError, match="does not fit in memory for training"):
        api.build(compiled)  # what train calls, before Keras allocates anything


def test_train_refuses_before_allocating(tmp_path, monkeypatch):
    spec = tmp_path / "t.yaml"
    spec.write_text(TINY + "train: {batch_size: 8, epochs: 1}\n"
                    "data: {dataset: synthetic, limit: 16}\n")  # fmt: skip
    monkeypatch.setenv("NINCOMPILE_MAX_MEMORY", "64MiB")
    args = ["train", str(spec), "--out", str(tmp_path / "r"), "--set", "stages.0.conv=[200000, 3]"]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 1 and "Traceback" not in result.output, result.output
    assert "for training" in result.output and "optimiser" in result.output


def test_default_memory_limit_is_what_the_machine_has(tmp_path, monkeypatch):
    meminfo = tmp_path / "meminfo"
    meminfo.write_text("MemTotal:       24683652 kB\nMemAvailable:    1048576 kB\n")
    monkeypatch.setattr(guard, "MEMINFO", str(meminfo))
    monkeypatch.setattr(guard, "CGROUP_FILES", ())
    monkeypatch.delenv("NINCOMPILE_MAX_MEMORY", raising=False)
    limits = guard.Limits.from_env()
    assert limits.max_memory == 2**30 and "available" in limits.memory_source
    monkeypatch.setenv("NINCOMPILE_MAX_MEMORY", "3GiB")
    assert guard.Limits.from_env().max_memory == 3 * 2**30
    assert guard.Limits.from_env(max_memory=5).max_memory == 5
    monkeypatch.delenv("NINCOMPILE_MAX_MEMORY")
    monkeypatch.setattr(guard, "MEMINFO", str(tmp_path / "none"))
    monkeypatch.setattr(guard, "_sysconf_available", lambda: None)
    assert guard.Limits.from_env().max_memory == guard.DEFAULT_MAX_MEMORY


def test_a_cgroup_limit_lowers_the_default(tmp_path, monkeypatch):
    meminfo = tmp_path / "meminfo"
    meminfo.write_text("MemAvailable:   16777216 kB\n")
    (tmp_path / "memory.max").write_text("2147483648\n")
    (tmp_path / "memory.current").write_text("1073741824\n")
    monkeypatch.setattr(guard, "MEMINFO", str(meminfo))
    monkeypatch.setattr(
        guard, "CGROUP_FILES", ((str(tmp_path / "memory.max"), str(tmp_path / "memory.current")),)
    )
    monkeypatch.delenv("NINCOMPILE_MAX_MEMORY", raising=False)
    assert guard.Limits.from_env().max_memory == 2**30


# --------------------------------------------------------------- decompression


def _cifar_meta() -> bytes:
    names = [n.encode() for n in ("airplane automobile bird cat deer dog frog horse ship "
                                  "truck").split()]  # fmt: skip
    return pickle.dumps({b"label_names": names}, protocol=2)


def _cifar_batch(n: int) -> bytes:
    return pickle.dumps(
        {b"data": np.zeros((n, 3072), np.uint8), b"labels": [0] * n,
         b"filenames": [b"x.png"] * n}, protocol=2,
    )  # fmt: skip


def _tar(path: Path, members: dict[str, bytes]) -> Path:
    with tarfile.open(path, "w:gz") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(f"cifar-10-batches-py/{name}")
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return path


def test_cifar_member_larger_than_the_format_allows_is_refused(tmp_path):
    members = {"batches.meta": _cifar_meta(), "test_batch": b"\0" * (72 << 20)}
    path = _tar(tmp_path / "cifar-10-python.tar.gz", members)
    del members
    assert path.stat().st_size < 1 << 20  # 72 MiB of zeros, gzipped
    with pytest.raises(DataError, match="test_batch is 75,497,472 bytes") as err:
        read_source(path, split="test")
    assert "a CIFAR-10 batch is at most" in str(err.value) and str(path) in str(err.value)


def test_a_batch_pickled_again_by_python_3_is_within_the_cap(tmp_path):
    """Protocol 2 from Python 3 writes bytes as latin-1 text: pixels >= 128 take 2 bytes,
    so a full batch of bright pixels is twice the original's size and still accepted."""
    batch = pickle.dumps(
        {b"data": np.full((10_000, 3072), 200, np.uint8), b"labels": [1] * 10_000}, protocol=2
    )
    assert len(batch) > 60_000_000
    assert len(batch) <= cifar.CIFAR_BATCH_MAX_BYTES


def test_cifar_archive_stream_is_capped(tmp_path, monkeypatch):
    members = {"batches.meta": _cifar_meta(), "readme.html": b"\0" * (8 << 20),
               "test_batch": _cifar_batch(10)}  # fmt: skip
    path = _tar(tmp_path / "cifar-10-python.tar.gz", members)
    monkeypatch.setattr(cifar, "CIFAR_ARCHIVE_MAX_BYTES", 4 << 20)
    with pytest.raises(DataError, match="decompresses to more than 4,194,304 bytes"):
        read_source(path, split="test")
    monkeypatch.undo()
    assert read_source(path, split="test").images.shape == (10, 32, 32, 3)


def test_cifar_training_set_is_held_once(tmp_path):
    """Reading an archive's five training batches holds the data set once, plus what
    unpickling one batch takes; not every member's bytes, their arrays, transposed
    copies and a concatenation of them (5.5 times the data set before)."""
    n = 1000
    members = {f"data_batch_{i}": _cifar_batch(n) for i in range(1, 6)}
    archive = _tar(tmp_path / "cifar-10-python.tar.gz", {"batches.meta": _cifar_meta(), **members})
    shapes = []
    peak = _tracemalloc_peak(lambda: shapes.append(read_source(archive).images.shape))
    assert shapes == [(5 * n, 32, 32, 3)]
    batch = n * 3072
    assert peak - 5 * batch < 8 * batch, f"{(peak - 5 * batch) / batch:.1f} batches beyond the set"


def test_cifar_batch_file_is_sized_before_reading(tmp_path):
    folder = tmp_path / "cifar-10-batches-py"
    folder.mkdir()
    (folder / "batches.meta").write_bytes(_cifar_meta())
    with open(folder / "test_batch", "wb") as f:
        f.truncate(4 << 30)  # sparse: 4 GiB that take no disk
    with pytest.raises(DataError, match="test_batch is 4,294,967,296 bytes"):
        read_source(folder, split="test")


def _idx(dims, magic=0x803, data=b"") -> bytes:
    return struct.pack(">I", magic) + struct.pack(f">{len(dims)}I", *dims) + data


def _idx_folder(tmp_path, images: bytes, gz: bool = True) -> Path:
    folder = tmp_path / "mnist"
    folder.mkdir(exist_ok=True)
    write = gzip.compress if gz else (lambda b: b)
    suffix = ".gz" if gz else ""
    (folder / f"train-images-idx3-ubyte{suffix}").write_bytes(write(images))
    labels = _idx((2,), 0x801, b"\0\0")
    (folder / f"train-labels-idx1-ubyte{suffix}").write_bytes(write(labels))
    return folder


@pytest.mark.parametrize("gz", [True, False])
def test_idx_header_overflow_is_a_clean_error(tmp_path, gz):
    folder = _idx_folder(tmp_path, _idx((2**32 - 1,) * 3, data=b"\0" * 10), gz)
    with pytest.raises(DataError, match="declares 4294967295 x 4294967295 x 4294967295") as err:
        read_source(folder)
    assert "79,228,162,458,924,105,385,300,197,375 bytes" in str(err.value)
    folder = _idx_folder(tmp_path, _idx((2**16, 2**16, 2**32 - 1)), gz)  # wraps in int64
    with pytest.raises(DataError, match="declares 65536 x 65536 x 4294967295 = 18,446,744,06"):
        read_source(folder)


def test_idx_gz_declared_size_is_checked_before_reading(tmp_path, monkeypatch):
    folder = _idx_folder(tmp_path, _idx((2, 2048, 2048), data=b"\0" * (2 * 2048 * 2048)))
    monkeypatch.setenv("NINCOMPILE_MAX_MEMORY", "4MiB")
    with pytest.raises(DataError, match="8,388,608 bytes, over the memory limit of 4.0 MiB"):
        read_source(folder, channels=1)
    monkeypatch.delenv("NINCOMPILE_MAX_MEMORY")
    assert read_source(folder, channels=1).images.shape == (2, 2048, 2048, 1)


def test_idx_gz_longer_than_its_header_is_refused_without_reading_it_all(tmp_path):
    folder = _idx_folder(tmp_path, _idx((2, 28, 28), data=b"\0" * (64 << 20)))
    with pytest.raises(DataError, match="more data than its header"):
        read_source(folder, channels=1)


def _png(path: Path, size: tuple[int, int]) -> Path:
    Image.new("RGB", size, (10, 20, 30)).save(path)  # one colour: a few KB
    return path


def test_images_over_the_pixel_limit_are_refused_before_decoding(tmp_path, monkeypatch):
    folder = tmp_path / "d"
    (folder / "a").mkdir(parents=True)
    _png(folder / "a" / "small.png", (20, 20))
    big = _png(folder / "a" / "big.png", (3000, 2000))
    monkeypatch.setenv("NINCOMPILE_MAX_IMAGE_PIXELS", "1000000")
    loaded = []
    real_load = Image.Image.load
    monkeypatch.setattr(Image.Image, "load", lambda im: loaded.append(im.size) or real_load(im))
    with pytest.raises(DataError, match="6,000,000 pixels") as err:
        read_source(folder, size=(16, 16), cache_dir=False)
    assert str(big) in str(err.value) and "NINCOMPILE_MAX_IMAGE_PIXELS" in str(err.value)
    assert (3000, 2000) not in loaded
    with pytest.raises(DataError, match="over the limit of 1,000,000 pixels"):
        sources.read_images([big], channels=3, size=(8, 8))
    monkeypatch.setenv("NINCOMPILE_MAX_IMAGE_PIXELS", "10000000")
    assert read_source(folder, size=(16, 16), cache_dir=False).images.shape == (2, 16, 16, 3)


def test_pillows_decompression_bomb_is_a_clean_error(tmp_path, monkeypatch):
    big = _png(tmp_path / "bomb.png", (3000, 2000))
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)  # Pillow's own check trips first
    monkeypatch.setenv("NINCOMPILE_MAX_IMAGE_PIXELS", "1000")
    with pytest.raises(DataError, match="over the limit of 1,000 pixels") as err:
        sources.read_images([big], channels=3, size=(8, 8))
    assert str(big) in str(err.value)


def test_folder_images_are_resized_as_decoded_and_cached_small(tmp_path):
    folder = tmp_path / "d"
    for c in ("a", "b"):
        (folder / c).mkdir(parents=True)
        for i in range(3):
            _png(folder / c / f"{i}.png", (300, 200))
    raw = read_source(folder, size=(16, 16), cache_dir=tmp_path / "cache")
    assert raw.images.shape == (6, 16, 16, 3)
    (entry,) = (tmp_path / "cache").glob("*.npz")
    assert entry.stat().st_size < 20_000  # 6 x 16 x 16 x 3, not 6 x 300 x 200 x 3
    again = read_source(folder, size=(16, 16), cache_dir=tmp_path / "cache")
    np.testing.assert_array_equal(raw.images, again.images)


@pytest.mark.parametrize(
    ("mode", "expected"),
    [("stretch", (10, 20, 30)), ("crop", (10, 20, 30)), ("pad", (0, 0, 0))],
)
def test_resize_at_decode_follows_data_resize(tmp_path, mode, expected):
    folder = tmp_path / "d"
    (folder / "a").mkdir(parents=True)
    _png(folder / "a" / "wide.png", (400, 100))  # width 400, height 100
    raw = read_source(folder, size=(20, 20), resize=mode, cache_dir=False)
    assert raw.images.shape == (1, 20, 20, 3)
    corner = tuple(int(v) for v in raw.images[0, 0, 0])
    assert corner == expected  # pad: black bars above and below
    centre = tuple(int(v) for v in raw.images[0, 10, 10])
    assert centre == (10, 20, 30)


def test_image_batches_are_bounded(tmp_path):
    folder = tmp_path / "d"
    (folder / "a").mkdir(parents=True)
    files = [_png(folder / "a" / f"{i:02d}.png", (120, 80)) for i in range(10)]
    batches = list(sources.iter_image_batches(files, channels=3, size=(8, 8), batch=4))
    assert [len(b) for b in batches] == [4, 4, 2]
    assert all(b.shape[1:] == (8, 8, 3) for b in batches)


def _tracemalloc_peak(fn) -> int:
    import tracemalloc

    tracemalloc.start()
    try:
        fn()
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_predict_and_evaluate_memory_depends_on_the_batch_not_the_folder(tmp_path):
    """numpy's allocations (traced) of predict and evaluate on 8 and on 48 photos of
    400x300: the decoded photos never pile up."""
    import keras

    from nincompile.train import infer

    inp = keras.Input((8, 8, 3))
    out = keras.layers.Dense(2, activation="softmax")(keras.layers.GlobalAveragePooling2D()(inp))
    model = tmp_path / "m.keras"
    keras.Model(inp, out).save(model)
    rng = np.random.default_rng(0)
    peaks = {}
    for n in (8, 48):
        folder = tmp_path / f"d{n}"
        for c in ("a", "b"):
            (folder / c).mkdir(parents=True)
        for i in range(n):
            img = rng.integers(0, 256, (300, 400, 3), dtype=np.uint8)
            Image.fromarray(img).save(folder / "ab"[i % 2] / f"{i:03d}.jpg", quality=90)
        infer.predict(model, [folder], batch_size=8)  # warm up Keras once
        peaks[n] = (
            _tracemalloc_peak(lambda f=folder: infer.predict(model, [f], batch_size=8)),
            _tracemalloc_peak(lambda f=folder: infer.evaluate(
                model, f, batch_size=8, cache_dir=False, confusion_png=tmp_path / "c.png")),
        )  # fmt: skip
    one_photo = 300 * 400 * 3
    for small, large in zip(peaks[8], peaks[48], strict=True):
        assert large - small < 8 * one_photo, peaks  # 40 more photos would be 40 x


# ---------------------------------------------------------------- FIFOs, devices


@pytest.fixture
def fifo(tmp_path):
    if not hasattr(os, "mkfifo"):
        pytest.skip("no FIFOs here")
    path = tmp_path / "spec.yaml"
    os.mkfifo(path)
    return path


def test_a_spec_that_is_a_fifo_is_refused_without_hanging(fifo):
    code = f"from nincompile.cli import main\nmain(['check', {str(fifo)!r}])\n"
    proc = _run_python(code, timeout=60)
    assert proc.returncode == 1, proc.stderr
    assert "not a regular file" in proc.stderr and "FIFO" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_a_device_spec_is_refused():
    if not Path("/dev/zero").exists():
        pytest.skip("no /dev/zero")
    with pytest.raises(SpecError, match="not a regular file .a character device"):
        load_spec("/dev/zero")


def test_data_that_is_a_fifo_is_refused_without_hanging(tmp_path):
    if not hasattr(os, "mkfifo"):
        pytest.skip("no FIFOs here")
    os.mkfifo(tmp_path / "cifar-10-python.tar.gz")
    (tmp_path / "imgs" / "a").mkdir(parents=True)
    os.mkfifo(tmp_path / "imgs" / "a" / "x.png")
    code = (
        "from nincompile.data import images, sources\n"
        "from nincompile.errors import DataError\n"
        f"for call in (lambda: sources.detect({str(tmp_path / 'cifar-10-python.tar.gz')!r}),\n"
        f"             lambda: sources.read_images([{str(tmp_path / 'imgs/a/x.png')!r}], "
        "channels=3),\n"
        f"             lambda: images._decode_one({str(tmp_path / 'imgs/a/x.png')!r}, 'RGB')):\n"
        "    try:\n"
        "        call()\n"
        "    except DataError as err:\n"
        "        print('refused:', err)\n"
    )
    proc = _run_python(code, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.count("refused:") == 3, proc.stdout
    assert proc.stdout.count("FIFO") == 3, proc.stdout


def test_a_model_file_that_is_a_fifo_is_refused(tmp_path):
    if not hasattr(os, "mkfifo"):
        pytest.skip("no FIFOs here")
    os.mkfifo(tmp_path / "m.keras")
    code = (
        "from nincompile.runs.model import load_keras_model\n"
        f"load_keras_model({str(tmp_path / 'm.keras')!r})\n"
    )
    proc = _run_python(code, timeout=60)
    assert "not a regular file" in proc.stderr and "FIFO" in proc.stderr


# ----------------------------------------------------------------- names, --set


def test_class_folder_names_are_shown_escaped(tmp_path):
    folder = tmp_path / "d"
    evil = "red\x1b[31m\x07"
    for c in ("ok", evil):
        (folder / c).mkdir(parents=True)
        _png(folder / c / "0.png", (8, 8))
    with pytest.raises(DataError) as err:
        read_source(folder, classes=["ok", "other"], cache_dir=False)
    text = str(err.value)
    assert "\x1b" not in text and "\x07" not in text
    assert "red\\x1b[31m\\x07" in text
    raw = read_source(folder, cache_dir=False)
    assert raw.classes == sorted(["ok", evil])  # the data keeps the real names
    assert "\x1b" not in raw.describe()
    assert sources.printable(evil) == "red\\x1b[31m\\x07"
    assert sources.printable("chat_été") == "chat_été"


def test_set_alias_bomb_names_the_override(tmp_path):
    spec = tmp_path / "t.yaml"
    spec.write_text(TINY)
    bomb = "[&a0 [x, x, x, x, x, x, x, x, x], " + ", ".join(
        f"&a{i} [{', '.join([f'*a{i - 1}'] * 9)}]" for i in range(1, 9)
    ) + "]"  # fmt: skip
    with pytest.raises(SpecError) as err:
        apply_overrides(load_spec(spec), ["description=" + bomb])
    text = str(err.value)
    assert "--set description=" in text and "NINCOMPILE_SPEC_MAX_VALUES" in text
    assert f"{spec}:" not in text
    result = CliRunner().invoke(main, ["train", str(spec), "--set", "description=" + bomb])
    assert result.exit_code == 1 and "--set description=" in result.output
    assert f"{spec}:" not in result.output


def test_errors_are_nincompile_errors():
    assert issubclass(guard.ResourceError, NincompileError)
