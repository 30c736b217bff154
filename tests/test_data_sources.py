"""Data sources: class folders, CIFAR-10 batches and archive, idx files, the decode
cache, Keras's loaders, synthetic data and loose image files."""

from __future__ import annotations

import gzip
import io
import os
import pickle
import struct
import tarfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from nincompile.data import cache, images
from nincompile.data.sources import (
    RawData,
    convert_channels,
    detect,
    list_image_files,
    load_keras_dataset,
    read_images,
    read_source,
    synthetic,
)
from nincompile.errors import DataError, NincompileError

# ------------------------------------------------------------------------ helpers


def _write_folder(root: Path, classes=("cat", "dog", "frog"), per_class=4, size=(12, 10)):
    """PNG files (exact pixels) in class sub-folders; returns {path: pixels}."""
    rng = np.random.default_rng(0)
    pixels = {}
    for c in classes:
        (root / c).mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            img = rng.integers(0, 256, (*size, 3), dtype=np.uint8)
            path = root / c / f"{i:03d}.png"
            Image.fromarray(img).save(path)
            pixels[path] = img
    (root / "README.txt").write_text("not an image")
    (root / classes[0] / "notes.txt").write_text("ignored")
    return pixels


def _cifar_batch(n: int, seed: int) -> dict:
    rng = np.random.default_rng(seed)
    return {
        b"batch_label": b"test batch",
        b"labels": [int(v) for v in rng.integers(0, 10, n)],
        b"data": rng.integers(0, 256, (n, 3072), dtype=np.uint8),
        b"filenames": [f"img_{i}.png".encode() for i in range(n)],
    }


CIFAR_NAMES = [
    "airplane",
    "automobile",
    "bird",
    "cat",
    "deer",
    "dog",
    "frog",
    "horse",
    "ship",
    "truck",
]


def _cifar_members(per_batch=3) -> dict[str, bytes]:
    members = {
        f"data_batch_{i}": pickle.dumps(_cifar_batch(per_batch, i), protocol=2) for i in range(1, 6)
    }
    members["test_batch"] = pickle.dumps(_cifar_batch(per_batch, 99), protocol=2)
    meta = {b"label_names": [n.encode() for n in CIFAR_NAMES], b"num_vis": 3072}
    members["batches.meta"] = pickle.dumps(meta, protocol=2)
    return members


def _write_cifar_dir(parent: Path, per_batch=3) -> Path:
    folder = parent / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    for name, data in _cifar_members(per_batch).items():
        (folder / name).write_bytes(data)
    return folder


def _write_cifar_tar(path: Path, members: dict[str, bytes]) -> Path:
    with tarfile.open(path, "w:gz") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(f"cifar-10-batches-py/{name}")
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return path


def _expected_cifar(member: bytes) -> tuple[np.ndarray, np.ndarray]:
    d = pickle.loads(member, encoding="bytes")
    x = d[b"data"]
    # CHW rows: pixel (row r, col c, channel k) is x[i, k*1024 + r*32 + c]
    img = np.empty((x.shape[0], 32, 32, 3), np.uint8)
    for k in range(3):
        for r in range(32):
            img[:, r, :, k] = x[:, k * 1024 + r * 32 : k * 1024 + r * 32 + 32]
    return img, np.asarray(d[b"labels"])


def _idx_bytes(array: np.ndarray, magic: int) -> bytes:
    return struct.pack(">I", magic) + struct.pack(f">{array.ndim}I", *array.shape) + array.tobytes()


def _write_idx(folder: Path, prefix: str, n: int, gz: bool, seed=0) -> tuple:
    rng = np.random.default_rng(seed)
    x = rng.integers(0, 256, (n, 28, 28), dtype=np.uint8)
    y = rng.integers(0, 10, n, dtype=np.uint8)
    folder.mkdir(parents=True, exist_ok=True)
    for what, arr, magic in (("images-idx3", x, 0x803), ("labels-idx1", y, 0x801)):
        data = _idx_bytes(arr, magic)
        name = f"{prefix}-{what}-ubyte"
        if gz:
            (folder / (name + ".gz")).write_bytes(gzip.compress(data))
        else:
            (folder / name).write_bytes(data)
    return x, y


# ------------------------------------------------------------------------ folders


def test_folder_reads_pixels_labels_and_classes(tmp_path):
    pixels = _write_folder(tmp_path / "train")
    calls = []
    raw = read_source(
        tmp_path / "train", cache_dir=False, progress=lambda d, t: calls.append((d, t))
    )
    assert isinstance(raw, RawData) and raw.kind == "folder"
    assert raw.classes == ["cat", "dog", "frog"]
    assert raw.images.shape == (12, 12, 10, 3) and raw.images.dtype == np.uint8
    assert raw.labels.dtype == np.int32 and raw.labels.tolist() == [0] * 4 + [1] * 4 + [2] * 4
    for i, (_path, img) in enumerate(sorted(pixels.items())):
        np.testing.assert_array_equal(raw.images[i], img)
    assert calls[-1] == (12, 12)
    assert raw.describe() == f"folder '{tmp_path / 'train'}': 12 images, 3 classes, 12x10x3"
    assert detect(tmp_path / "train") == "folder"


def test_folder_labels_follow_the_given_class_order(tmp_path):
    _write_folder(tmp_path / "d", per_class=2)
    raw = read_source(tmp_path / "d", classes=["frog", "cat", "dog"], cache_dir=False)
    assert raw.classes == ["frog", "cat", "dog"]
    assert raw.labels.tolist() == [0, 0, 1, 1, 2, 2]


def test_folder_class_mismatch_names_both_lists(tmp_path):
    _write_folder(tmp_path / "d", per_class=1)
    with pytest.raises(DataError) as err:
        read_source(tmp_path / "d", classes=["cat", "dog", "horse"], cache_dir=False)
    msg = str(err.value)
    assert "[cat, dog, horse]" in msg and "[cat, dog, frog]" in msg
    assert "missing: horse" in msg and "not in the class list: frog" in msg
    assert str(tmp_path / "d") in msg


@pytest.mark.parametrize("content", [b"", b"\x89PNG\r\n\x1a\n this is not a png at all"])
def test_bad_image_file_is_named(tmp_path, content):
    _write_folder(tmp_path / "d", per_class=2)
    bad = tmp_path / "d" / "dog" / "bad.jpg"
    bad.write_bytes(content)
    with pytest.raises(DataError, match="bad.jpg") as err:
        read_source(tmp_path / "d", cache_dir=False)
    assert str(bad) in str(err.value)
    assert ("empty" in str(err.value)) == (content == b"")


def test_truncated_jpeg_is_named(tmp_path):
    _write_folder(tmp_path / "d", per_class=1)
    buf = io.BytesIO()
    Image.fromarray(np.full((32, 32, 3), 90, np.uint8)).save(buf, "JPEG")
    (tmp_path / "d" / "cat" / "cut.jpg").write_bytes(buf.getvalue()[:100])
    with pytest.raises(DataError, match="cut.jpg"):
        read_source(tmp_path / "d", cache_dir=False)


def test_mixed_sizes_are_resized_or_refused(tmp_path):
    _write_folder(tmp_path / "d", per_class=2, size=(12, 10))
    Image.fromarray(np.full((20, 30, 3), 200, np.uint8)).save(tmp_path / "d" / "dog" / "big.jpg")
    with pytest.raises(DataError, match="2 different sizes") as err:
        read_source(tmp_path / "d", cache_dir=False)
    assert "12x10" in str(err.value) and "20x30" in str(err.value)
    raw = read_source(tmp_path / "d", size=(8, 9), cache_dir=False)
    assert raw.images.shape == (7, 8, 9, 3)
    big = raw.images[raw.labels == 1][-1]  # dog/big.jpg sorts after dog/00*.png
    assert abs(int(big.mean()) - 200) <= 3


def test_one_size_kept_even_with_size_given(tmp_path):
    _write_folder(tmp_path / "d", per_class=1, size=(12, 10))
    raw = read_source(tmp_path / "d", size=(32, 32), cache_dir=False)
    assert raw.images.shape[1:] == (12, 10, 3)


def test_grayscale_and_rgb_conversion(tmp_path):
    root = tmp_path / "d"
    for c in ("a", "b"):
        (root / c).mkdir(parents=True)
    rgb = np.random.default_rng(1).integers(0, 256, (6, 5, 3), dtype=np.uint8)
    gray = np.random.default_rng(2).integers(0, 256, (6, 5), dtype=np.uint8)
    Image.fromarray(rgb).save(root / "a" / "rgb.png")
    Image.fromarray(gray).save(root / "b" / "gray.png")
    one = read_source(root, channels=1, cache_dir=False)
    assert one.images.shape == (2, 6, 5, 1)
    np.testing.assert_array_equal(
        one.images[0, :, :, 0], np.asarray(Image.fromarray(rgb).convert("L"))
    )
    np.testing.assert_array_equal(one.images[1, :, :, 0], gray)
    three = read_source(root, channels=3, cache_dir=False)
    np.testing.assert_array_equal(three.images[1], np.repeat(gray[:, :, None], 3, axis=2))


def test_convert_channels_matches_pillow():
    rgba = np.random.default_rng(3).integers(0, 256, (2, 7, 9, 4), dtype=np.uint8)
    rgb = convert_channels(rgba, 3)
    np.testing.assert_array_equal(rgb, rgba[..., :3])
    lum = convert_channels(rgb, 1)
    for i in range(2):
        np.testing.assert_array_equal(
            lum[i, :, :, 0], np.asarray(Image.fromarray(rgb[i]).convert("L"))
        )
    assert convert_channels(lum, 3).shape == (2, 7, 9, 3)
    assert convert_channels(rgb, 3) is rgb
    with pytest.raises(DataError):
        convert_channels(rgb, 2)


# -------------------------------------------------------------------------- cache


def test_cache_hit_skips_decoding(tmp_path, monkeypatch):
    _write_folder(tmp_path / "d")
    first = read_source(tmp_path / "d", cache_dir=tmp_path / "cache")
    assert len(list((tmp_path / "cache").glob("*.npz"))) == 1

    def boom(path, mode):
        raise AssertionError("decoded although cached")

    monkeypatch.setattr(images, "_decode_one", boom)
    second = read_source(tmp_path / "d", cache_dir=tmp_path / "cache")
    np.testing.assert_array_equal(first.images, second.images)
    np.testing.assert_array_equal(first.labels, second.labels)
    assert second.classes == first.classes and second.labels.dtype == np.int32
    # another channel count or class order is another key: it decodes again
    with pytest.raises(AssertionError, match="decoded although cached"):
        read_source(tmp_path / "d", channels=1, cache_dir=tmp_path / "cache")
    with pytest.raises(AssertionError, match="decoded although cached"):
        read_source(tmp_path / "d", classes=["dog", "cat", "frog"], cache_dir=tmp_path / "cache")


def test_cache_notices_changed_files(tmp_path, monkeypatch):
    _write_folder(tmp_path / "d", per_class=1)
    read_source(tmp_path / "d", cache_dir=tmp_path / "cache")
    Image.fromarray(np.zeros((12, 10, 3), np.uint8)).save(tmp_path / "d" / "dog" / "new.png")
    raw = read_source(tmp_path / "d", cache_dir=tmp_path / "cache")
    assert len(raw.images) == 4


def test_corrupt_cache_file_is_ignored_and_rewritten(tmp_path, monkeypatch):
    _write_folder(tmp_path / "d", per_class=2)
    first = read_source(tmp_path / "d", cache_dir=tmp_path / "cache")
    (entry,) = (tmp_path / "cache").glob("*.npz")
    entry.write_bytes(b"PK\x03\x04 garbage")
    again = read_source(tmp_path / "d", cache_dir=tmp_path / "cache")
    np.testing.assert_array_equal(first.images, again.images)
    assert entry.stat().st_size > 100  # rewritten
    monkeypatch.setattr(images, "_decode_one", lambda p, m: 1 / 0)
    read_source(tmp_path / "d", cache_dir=tmp_path / "cache")  # a hit again


def test_unwritable_cache_dir_only_skips_caching(tmp_path):
    _write_folder(tmp_path / "d", per_class=1)
    blocker = tmp_path / "file"
    blocker.write_text("a file where the cache folder should be")
    raw = read_source(tmp_path / "d", cache_dir=blocker / "cache")
    assert len(raw.images) == 3


def test_default_cache_dir_from_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("NINCOMPILE_CACHE", str(tmp_path / "envcache"))
    assert cache.resolve_cache_dir(None) == tmp_path / "envcache"
    assert cache.resolve_cache_dir(False) is None
    _write_folder(tmp_path / "d", per_class=1)
    read_source(tmp_path / "d")
    assert list((tmp_path / "envcache").glob("*.npz"))


# ----------------------------------------------------------------------- CIFAR-10


def test_cifar_batches_folder(tmp_path):
    folder = _write_cifar_dir(tmp_path)
    members = _cifar_members()
    for path in (folder, tmp_path):  # the folder itself or its parent
        assert detect(path) == "cifar10-batches"
        raw = read_source(path, classes=CIFAR_NAMES)
        assert raw.kind == "cifar10-batches" and raw.classes == CIFAR_NAMES
        assert raw.images.shape == (15, 32, 32, 3) and raw.labels.dtype == np.int32
        x, y = _expected_cifar(members["data_batch_1"])
        np.testing.assert_array_equal(raw.images[:3], x)
        np.testing.assert_array_equal(raw.labels[:3], y)
    test = read_source(folder, split="test")
    x, y = _expected_cifar(members["test_batch"])
    np.testing.assert_array_equal(test.images, x)
    np.testing.assert_array_equal(test.labels, y)
    gray = read_source(folder, split="test", channels=1)
    assert gray.images.shape == (3, 32, 32, 1)


def test_cifar_class_mismatch(tmp_path):
    folder = _write_cifar_dir(tmp_path)
    with pytest.raises(DataError) as err:
        read_source(folder, classes=list(reversed(CIFAR_NAMES)))
    assert "different order" in str(err.value) and "truck, ship" in str(err.value)
    assert "airplane, automobile" in str(err.value)


def test_cifar_missing_batch(tmp_path):
    folder = _write_cifar_dir(tmp_path)
    (folder / "data_batch_3").unlink()
    with pytest.raises(DataError, match="lacks data_batch_3"):
        read_source(folder)
    read_source(folder, split="test")


def test_cifar_tar(tmp_path):
    members = _cifar_members()
    path = _write_cifar_tar(tmp_path / "cifar-10-python.tar.gz", members)
    assert detect(path) == "cifar10-tar"
    raw = read_source(path)
    assert raw.kind == "cifar10-tar" and raw.classes == CIFAR_NAMES
    x, y = _expected_cifar(members["data_batch_5"])
    np.testing.assert_array_equal(raw.images[-3:], x)
    np.testing.assert_array_equal(raw.labels[-3:], y)
    test = read_source(path, split="test")
    np.testing.assert_array_equal(test.images, _expected_cifar(members["test_batch"])[0])
    assert not (tmp_path / "cifar-10-batches-py").exists()  # nothing extracted


def test_broken_cifar_tar(tmp_path):
    bad = tmp_path / "cifar-10-python.tar.gz"
    bad.write_bytes(b"\x1f\x8b\x08\x00 definitely not gzip")
    with pytest.raises(DataError, match="cannot read archive"):
        read_source(bad)
    members = _cifar_members()
    del members["batches.meta"]
    _write_cifar_tar(bad, members)
    with pytest.raises(DataError, match="lacks cifar-10-batches-py/batches.meta"):
        read_source(bad)


class _Evil:
    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


class _EvilWrite:
    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (Path.write_text, (self.marker, "pwned"))


@pytest.mark.parametrize("evil", [_Evil, _EvilWrite])
def test_malicious_pickle_is_refused(tmp_path, evil):
    folder = _write_cifar_dir(tmp_path)
    marker = tmp_path / "marker"
    batch = _cifar_batch(2, 1)
    batch[b"labels"] = evil(marker)
    (folder / "data_batch_2").write_bytes(pickle.dumps(batch, protocol=2))
    with pytest.raises(DataError, match="refusing to unpickle") as err:
        read_source(folder)
    assert "data_batch_2" in str(err.value)
    assert "wants to load posix.system" in str(err.value) or "getattr" in str(err.value)
    assert not marker.exists()
    # the same pickle inside an archive
    members = _cifar_members()
    members["data_batch_2"] = (folder / "data_batch_2").read_bytes()
    tar = _write_cifar_tar(tmp_path / "evil.tar.gz", members)
    with pytest.raises(DataError, match="refusing to unpickle"):
        read_source(tar)
    assert not marker.exists()


def test_cifar_batch_with_wrong_content(tmp_path):
    folder = _write_cifar_dir(tmp_path)
    (folder / "test_batch").write_bytes(pickle.dumps({b"data": np.zeros((2, 100), np.uint8)}))
    with pytest.raises(DataError, match=r"\(N, 3072\)"):
        read_source(folder, split="test")
    (folder / "test_batch").write_bytes(b"not a pickle")
    with pytest.raises(DataError, match="cannot unpickle"):
        read_source(folder, split="test")


# ---------------------------------------------------------------------------- idx


@pytest.mark.parametrize("gz", [False, True])
def test_idx_files(tmp_path, gz):
    x, y = _write_idx(tmp_path / "mnist", "train", 7, gz)
    xt, yt = _write_idx(tmp_path / "mnist", "t10k", 3, gz, seed=1)
    assert detect(tmp_path / "mnist") == "idx"
    raw = read_source(tmp_path / "mnist", channels=1)
    assert raw.kind == "idx" and raw.classes == [str(i) for i in range(10)]
    assert raw.images.shape == (7, 28, 28, 1) and raw.labels.dtype == np.int32
    np.testing.assert_array_equal(raw.images[..., 0], x)
    np.testing.assert_array_equal(raw.labels, y)
    test = read_source(tmp_path / "mnist", split="test", channels=3)
    assert test.images.shape == (3, 28, 28, 3)
    np.testing.assert_array_equal(test.images[..., 2], xt)
    names = list("abcdefghij")
    assert read_source(tmp_path / "mnist", classes=names).classes == names
    with pytest.raises(DataError, match="only 3 classes"):
        read_source(tmp_path / "mnist", classes=["a", "b", "c"])


def test_idx_errors(tmp_path):
    _write_idx(tmp_path / "m", "train", 4, gz=False)
    images = tmp_path / "m" / "train-images-idx3-ubyte"
    data = images.read_bytes()
    images.write_bytes(struct.pack(">I", 0x801) + data[4:])
    with pytest.raises(DataError, match="magic number 0x00000801") as err:
        read_source(tmp_path / "m")
    assert str(images) in str(err.value)
    images.write_bytes(data[:-5])
    with pytest.raises(DataError, match="header"):
        read_source(tmp_path / "m")
    images.write_bytes(data)
    labels = tmp_path / "m" / "train-labels-idx1-ubyte"
    labels.write_bytes(_idx_bytes(np.zeros(3, np.uint8), 0x801))
    with pytest.raises(DataError, match="4 images but 3 labels"):
        read_source(tmp_path / "m")
    with pytest.raises(DataError, match="no test split"):
        read_source(tmp_path / "m", split="test")
    (tmp_path / "g").mkdir()
    (tmp_path / "g" / "train-images-idx3-ubyte.gz").write_bytes(b"\x1f\x8b not gzip")
    (tmp_path / "g" / "train-labels-idx1-ubyte.gz").write_bytes(b"\x1f\x8b not gzip")
    with pytest.raises(DataError, match="cannot read idx file"):
        read_source(tmp_path / "g")


# ------------------------------------------------------------------------- detect


def test_detect_refuses_with_accepted_forms(tmp_path):
    (tmp_path / "empty").mkdir()
    (tmp_path / "random.bin").write_bytes(os.urandom(64))
    (tmp_path / "loose").mkdir()
    Image.fromarray(np.zeros((4, 4, 3), np.uint8)).save(tmp_path / "loose" / "a.png")
    cases = {
        "empty": "it is empty",
        "random.bin": "is a file",
        "missing": "does not exist",
        "loose": "not sorted into class sub-folders",
    }
    for name, found in cases.items():
        with pytest.raises(DataError) as err:
            detect(tmp_path / name)
        msg = str(err.value)
        assert found in msg and str(tmp_path / name) in msg
        assert "cifar-10-batches-py" in msg and "idx" in msg and "class sub-folders" in msg
        assert isinstance(err.value, NincompileError)


def test_bad_arguments(tmp_path):
    _write_folder(tmp_path / "d", per_class=1)
    with pytest.raises(DataError, match="split"):
        read_source(tmp_path / "d", split="validation")
    with pytest.raises(DataError, match="channels"):
        read_source(tmp_path / "d", channels=2)


# ------------------------------------------------------------- keras, synthetic


def test_load_keras_dataset_without_network(monkeypatch):
    import keras

    def offline():
        raise OSError("URL fetch failure on https://example.invalid: [Errno -3]\nmore detail")

    monkeypatch.setattr(keras.datasets.cifar10, "load_data", offline)
    with pytest.raises(DataError) as err:
        load_keras_dataset("cifar10")
    msg = str(err.value)
    assert msg.startswith("could not load cifar10 through keras.datasets (no network?): URL fetch")
    assert "more detail" not in msg and "--data PATH" in msg and "cifar-10-python.tar.gz" in msg
    with pytest.raises(DataError, match="unknown Keras data set"):
        load_keras_dataset("imagenet")


def test_load_keras_dataset_splits(monkeypatch):
    import keras

    rng = np.random.default_rng(0)
    train = (rng.integers(0, 256, (5, 28, 28), dtype=np.uint8), np.arange(5) % 10)
    test = (rng.integers(0, 256, (2, 28, 28), dtype=np.uint8), np.array([3, 4]))
    monkeypatch.setattr(keras.datasets.mnist, "load_data", lambda: (train, test))
    raw = load_keras_dataset("mnist", channels=1)
    assert raw.kind == "keras:mnist" and raw.images.shape == (5, 28, 28, 1)
    assert raw.classes == [str(i) for i in range(10)]
    raw = load_keras_dataset("mnist", split="test", channels=3)
    assert raw.images.shape == (2, 28, 28, 3) and raw.labels.tolist() == [3, 4]


def test_synthetic_is_deterministic_and_balanced():
    a = synthetic(103, (16, 12, 3), 4, seed=5)
    b = synthetic(103, (16, 12, 3), 4, seed=5)
    c = synthetic(103, (16, 12, 3), 4, seed=6)
    np.testing.assert_array_equal(a.images, b.images)
    np.testing.assert_array_equal(a.labels, b.labels)
    assert not np.array_equal(a.images, c.images)
    assert a.images.shape == (103, 16, 12, 3) and a.images.dtype == np.uint8
    assert a.labels.dtype == np.int32 and a.classes == ["0", "1", "2", "3"]
    counts = np.bincount(a.labels, minlength=4)
    assert counts.max() - counts.min() <= 1
    assert a.labels[:8].tolist() != sorted(a.labels[:8].tolist())  # shuffled
    named = synthetic(10, (8, 8, 1), ["x", "y"])
    assert named.classes == ["x", "y"] and named.images.shape == (10, 8, 8, 1)
    assert named.describe().startswith("synthetic: 10 images, 2 classes, 8x8x1")


def test_synthetic_classes_are_separable():
    """A nearest-class-mean classifier (what a tiny conv net easily beats) is accurate."""
    train = synthetic(400, (16, 16, 3), 5, seed=0)
    test = synthetic(200, (16, 16, 3), 5, seed=0)  # same templates, fresh noise below
    x = train.images.reshape(len(train.images), -1).astype(np.float32)
    means = np.stack([x[train.labels == k].mean(0) for k in range(5)])
    xt = test.images.reshape(len(test.images), -1).astype(np.float32)
    pred = np.argmin(((xt[:, None, :] - means[None]) ** 2).sum(-1), axis=1)
    assert (pred == test.labels).mean() > 0.9


# ----------------------------------------------------------------- loose images


def test_list_and_read_images(tmp_path):
    _write_folder(tmp_path / "d", per_class=2)
    (tmp_path / "d" / "cat" / ".hidden.png").write_bytes(b"")
    one = tmp_path / "d" / "dog" / "000.png"
    files = list_image_files([tmp_path / "d", one])
    assert len(files) == 6 and files == sorted(files)
    assert list_image_files(one) == [one]
    imgs = read_images(files, channels=3)
    assert imgs.shape == (6, 12, 10, 3) and imgs.dtype == np.uint8
    small = read_images(files[:2], channels=1, size=(4, 5))
    assert small.shape == (2, 4, 5, 1)
    with pytest.raises(DataError, match="not an image file"):
        list_image_files([tmp_path / "d" / "README.txt"])
    with pytest.raises(DataError, match="does not exist"):
        list_image_files([tmp_path / "nope"])
    (tmp_path / "e").mkdir()
    with pytest.raises(DataError, match="holds no image files"):
        list_image_files([tmp_path / "e"])
    Image.fromarray(np.zeros((3, 3), np.uint8)).save(tmp_path / "small.png")
    with pytest.raises(DataError, match="different sizes"):
        read_images([one, tmp_path / "small.png"], channels=3)
    (tmp_path / "bad.png").write_bytes(b"junk")
    with pytest.raises(DataError, match="cannot read image") as err:
        read_images([one, tmp_path / "bad.png"], channels=3, size=(4, 4))
    assert str(tmp_path / "bad.png") in str(err.value)
    # Pillow's text for it names a Python object (<_io.BufferedReader name=4>)
    assert "no image format Pillow knows" in str(err.value) and "<_io" not in str(err.value)


@pytest.mark.parametrize("channels", [1, 3])
def test_a_16_bit_grey_png_is_scaled_not_clipped(tmp_path, channels):
    """Pillow opens a 16-bit grey PNG as I;16 and its convert() clips at 255: such an
    image read almost white.  Its values are scaled to 8 bits, as the same image saved
    with 8 bits reads."""
    from PIL import Image

    from nincompile.data.sources import read_images

    grey8 = np.arange(64, dtype=np.uint8).reshape(8, 8) * 4
    Image.fromarray(grey8.astype(np.uint16) * 257).save(tmp_path / "g16.png")
    Image.fromarray(grey8, "L").save(tmp_path / "g8.png")
    assert Image.open(tmp_path / "g16.png").mode.startswith("I")
    got16, got8 = (np.asarray(read_images([tmp_path / f], channels=channels))
                   for f in ("g16.png", "g8.png"))  # fmt: skip
    np.testing.assert_array_equal(got16, got8)
    assert got16.reshape(-1, channels)[:, 0].tolist() == grey8.ravel().tolist()
