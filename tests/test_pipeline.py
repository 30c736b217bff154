"""The data pipeline's pure parts: split, data order, schedules, preprocessing and
augmentation layers (training only, seeded, jit-safe)."""

import numpy as np
import pytest

from nincompile.data import pipeline
from nincompile.data.split import epoch_order, stratified_split, stratified_subset
from nincompile.spec.schema import Data, Train
from nincompile.train.schedule import EpochSchedule

keras = pipeline.keras


def test_stratified_split_is_seeded_and_per_class():
    labels = np.repeat(np.arange(4), [100, 50, 30, 20])
    tr, va = stratified_split(labels, 0.1, seed=1)
    assert len(np.intersect1d(tr, va)) == 0 and len(tr) + len(va) == 200
    assert np.bincount(labels[va]).tolist() == [10, 5, 3, 2]
    tr2, va2 = stratified_split(labels, 0.1, seed=1)
    assert np.array_equal(va, va2)
    assert not np.array_equal(va, stratified_split(labels, 0.1, seed=2)[1])
    assert len(stratified_split(labels, 0, seed=1)[1]) == 0


def test_subset_keeps_class_proportions():
    labels = np.repeat(np.arange(2), [300, 100])
    keep = stratified_subset(labels, 40, seed=0)
    assert len(keep) == 40 and np.bincount(labels[keep]).tolist() == [30, 10]


@pytest.mark.parametrize("limit", [1, 7, 512, 999, 1001])
def test_subset_has_exactly_the_limit(limit):
    labels = np.repeat(np.arange(10), 110)  # 512 / 1100 of each class rounds down
    keep = stratified_subset(labels, limit, seed=0)
    assert len(keep) == min(limit, len(labels)) == len(set(keep.tolist()))
    assert np.array_equal(keep, stratified_subset(labels, limit, seed=0))


def test_epoch_order_depends_on_seed_and_epoch_only():
    a = epoch_order(50, seed=3, epoch=7)
    assert sorted(a) == list(range(50))
    assert np.array_equal(a, epoch_order(50, seed=3, epoch=7))
    assert not np.array_equal(a, epoch_order(50, seed=3, epoch=8))
    assert not np.array_equal(a, epoch_order(50, seed=4, epoch=7))


def _lr(train, step, steps_per_epoch=10):
    sched = EpochSchedule(train, steps_per_epoch)
    return float(keras.ops.convert_to_numpy(sched(step)))


def test_step_schedule_follows_the_seed():
    train = Train(epochs=200, learning_rate=0.05,
                  lr_schedule={0: 0.05, 61: 0.01, 121: 0.002, 161: 0.0004})  # fmt: skip
    for epoch, want in ((0, 0.05), (60, 0.05), (61, 0.01), (120, 0.01), (121, 0.002),
                        (161, 0.0004), (199, 0.0004)):  # fmt: skip
        assert _lr(train, epoch * 10) == pytest.approx(want), epoch
        assert _lr(train, epoch * 10 + 9) == pytest.approx(want), epoch


def test_cosine_onecycle_and_warmup():
    cos = Train(epochs=10, learning_rate=0.1, lr_schedule="cosine", min_learning_rate=0.001)
    assert _lr(cos, 0) == pytest.approx(0.1)
    assert _lr(cos, 50) == pytest.approx(0.0505)
    assert _lr(cos, 100) == pytest.approx(0.001)
    one = Train(epochs=10, learning_rate=0.1, lr_schedule="onecycle")
    assert _lr(one, 0) == pytest.approx(0.1 / 25)
    assert _lr(one, 30) == pytest.approx(0.1)  # peak after 30 % of the epochs
    assert _lr(one, 65) == pytest.approx(0.05)
    assert _lr(one, 100) == pytest.approx(0.0, abs=1e-9)
    warm = Train(epochs=10, learning_rate=0.1, warmup_epochs=2)
    assert _lr(warm, 10) == pytest.approx(0.1 * (1 / 25 + (24 / 25) * 0.5))
    assert _lr(warm, 20) == pytest.approx(0.1)


def _model(h=8, w=8, c=3):
    inp = keras.Input((h, w, c))
    return keras.Model(inp, keras.layers.Identity()(inp))


def test_preprocess_normalises_and_resizes_with_padding():
    data = Data(mean=[10.0], std=[2.0])
    wrapper = pipeline.wrap(_model(8, 16, 1), (4, 4, 1), data, augment=False)
    x = np.full((2, 4, 4, 1), 30, dtype=np.uint8)
    out = np.asarray(wrapper(x))
    assert out.shape == (2, 8, 16, 1)
    # 4x4 into 8x16 keeping the aspect ratio: an 8x8 image centred, padded with 0
    # pixels, which normalise to (0 - 10) / 2 (bilinear blends the seam)
    assert np.allclose(out[:, :, 5:11], (30 - 10) / 2)
    assert np.allclose(out[:, :, :3], -5.0) and np.allclose(out[:, :, 13:], -5.0)


def test_without_mean_and_std_pixels_are_divided_by_255():
    wrapper = pipeline.wrap(_model(), (8, 8, 3), None, augment=False)
    x = np.full((1, 8, 8, 3), 255, dtype=np.uint8)
    assert np.allclose(np.asarray(wrapper(x)), 1.0)


AUG = {"flip": "horizontal", "shift": 0.25, "crop": 2, "cutout": 3}


@pytest.mark.parametrize("kind", list(AUG))
def test_augmentation_acts_only_in_training_and_is_seeded(kind):
    data = Data(augment={kind: AUG[kind]})
    wrapper = pipeline.wrap(_model(), (8, 8, 3), data)
    rng = np.random.default_rng(0)
    x = rng.integers(1, 255, (16, 8, 8, 3)).astype(np.uint8)
    plain = np.asarray(wrapper(x, training=False))
    assert np.allclose(plain, x / 255.0, atol=1e-6)
    pipeline.reseed(wrapper, 5, 0)
    a = np.asarray(wrapper(x, training=True))
    pipeline.reseed(wrapper, 5, 0)
    b = np.asarray(wrapper(x, training=True))
    pipeline.reseed(wrapper, 5, 1)
    c = np.asarray(wrapper(x, training=True))
    assert np.array_equal(a, b)
    assert not np.allclose(a, plain) and not np.array_equal(a, c)
    assert all(layer.supports_jit for layer in wrapper._flatten_layers())


def test_shift_fills_with_zero_and_crop_keeps_whole_pixels():
    x = np.full((32, 8, 8, 1), 255, dtype=np.uint8)
    for kind in ("shift", "crop"):
        wrapper = pipeline.wrap(_model(8, 8, 1), (8, 8, 1), Data(augment={kind: AUG[kind]}))
        pipeline.reseed(wrapper, 0, 0)
        out = np.asarray(wrapper(x, training=True))
        assert out.min() >= 0.0 and out.max() <= 1.0 + 1e-6
        assert (out == 0).any(), kind  # the filled border
        if kind == "crop":
            assert set(np.unique(out)) <= {0.0, 1.0}


def test_shift_by_interpolation_matrix_equals_the_affine_transform():
    """The jit-safe shift (one interpolation matrix per axis) computes what Keras's bilinear
    ``affine_transform`` with a zero fill computes, sub-pixel and past the edge."""
    from keras import ops

    rng = np.random.default_rng(0)
    x = rng.normal(size=(4, 12, 10, 3)).astype("float32")
    dy = np.array([0.0, 1.5, -2.25, 11.7], "float32")
    dx = np.array([0.3, -1.0, 4.5, -9.9], "float32")
    ours = pipeline._shift_axis(pipeline._shift_axis(x, ops.convert_to_tensor(dy), 1), dx, 2)
    one, zero = np.ones(4, "float32"), np.zeros(4, "float32")
    transform = np.stack([one, zero, -dx, zero, one, -dy, zero, zero], 1)
    keras_shift = ops.image.affine_transform(
        x, transform, interpolation="bilinear", fill_mode="constant", fill_value=0.0
    )
    np.testing.assert_allclose(np.asarray(ours), np.asarray(keras_shift), atol=1e-5)


def test_crop_copies_a_window_of_the_padded_image_exactly():
    """Each cropped image is, bit for bit, one window of the zero-padded image."""
    rng = np.random.default_rng(1)
    x = rng.integers(0, 256, (16, 6, 7, 2), dtype=np.uint8)
    wrapper = pipeline.wrap(_model(6, 7, 2), (6, 7, 2), Data(augment={"crop": 2}))
    pipeline.reseed(wrapper, 0, 0)
    out = np.asarray(wrapper(x, training=True))
    padded = np.pad(x.astype("float32") / 255.0, ((0, 0), (2, 2), (2, 2), (0, 0)))
    offsets = set()
    for image, source in zip(out, padded, strict=True):
        found = [(i, j) for i in range(5) for j in range(5)
                 if np.array_equal(image, source[i:i + 6, j:j + 7])]  # fmt: skip
        assert found, "no window of the padded image matches"
        offsets.add(found[0])
    assert len(offsets) > 1  # the windows are drawn, not fixed
