"""Preprocessing and augmentation on the device, as Keras layers built from a spec.

A batch of raw ``uint8`` images of the data's own size goes through

1. :class:`Preprocess`: cast to float32, resize to the model's input (keeping the
   aspect ratio and padding, stretching or cropping, as ``data.resize`` says) and
   normalise, ``(x - mean) / std`` with pixels in 0..255 (``x / 255`` without
   mean/std, as seed 001 does);
2. the augmentation layers of ``data.augment`` (flip, shift, crop, cutout), which act
   only when called with ``training=True``, so validation, evaluation and prediction
   see plain images;
3. the model itself.

These layers wrap the compiled model for training (:func:`wrap`) and are never saved
with it: ``model.keras`` holds the model alone, whose input is the normalised image,
and ``export --include-preprocessing`` folds the normalisation into ONNX from the
spec's mean/std.  Only ``keras.ops`` and ``keras.random`` are used, so the pipeline
runs on the TensorFlow, JAX and PyTorch backends, on CPU or GPU, with no host round
trip per batch.
"""

from __future__ import annotations

from ..keras_import import import_keras
from .prepare import normalisation

keras = import_keras()
ops = keras.ops


class Preprocess(keras.layers.Layer):
    """uint8 pixels of any size -> the model's normalised float input."""

    def __init__(self, size, mean, std, resize="pad", **kwargs):
        super().__init__(dtype="float32", **kwargs)
        self.size = tuple(int(s) for s in size)
        self.mean = [float(m) for m in mean]
        self.std = [float(s) for s in std]
        self.resize = resize

    def call(self, x):
        x = ops.cast(x, "float32")
        if tuple(x.shape[1:3]) != self.size:
            x = ops.image.resize(
                x,
                self.size,
                interpolation="bilinear",
                pad_to_aspect_ratio=self.resize == "pad",
                crop_to_aspect_ratio=self.resize == "crop",
            )
        mean = ops.convert_to_tensor(self.mean, dtype="float32")
        std = ops.convert_to_tensor(self.std, dtype="float32")
        return (x - mean) / std

    def compute_output_shape(self, input_shape):
        return (input_shape[0], *self.size, input_shape[3])


class _Augmentation(keras.layers.Layer):
    """A random image transformation that acts only while training, drawing from its
    own seed generator (which :func:`reseed` sets per epoch)."""

    def __init__(self, seed=None, **kwargs):
        super().__init__(**kwargs)
        self.generator = keras.random.SeedGenerator(seed)

    def call(self, x, training=None):
        return self.transform(x) if training else x

    def transform(self, x):
        raise NotImplementedError

    def compute_output_shape(self, input_shape):
        return input_shape


def _shift_axis(x, offset, axis: int):
    """Translate every image of ``x`` (b, h, w, c) by ``offset`` (b,) pixels along
    ``axis`` (1: rows, 2: columns), sub-pixel by linear interpolation, zero outside.

    Output position ``i`` reads input position ``s = i - offset``; linear interpolation
    weighs input ``j`` by ``max(0, 1 - |j - s|)`` (``1 - frac`` and ``frac`` for the two
    neighbours, 0 for every other ``j`` and past the edge), so the shift is one batched
    product with that (b, n, n) matrix.  A whole-pixel offset gives weights of exactly
    0 and 1, so pixels are copied exactly.  Float arithmetic and a matrix product only:
    XLA compiles it on every backend, and nothing is gathered by integer index (Keras's
    ``take_along_axis`` under TensorFlow casts indices to int64, which oneDNN's kernels
    do not take on CPUs without AVX-512 and log an error for)."""
    n = x.shape[axis]
    source = ops.reshape(ops.arange(n, dtype="float32"), (1, 1, n))
    pos = ops.expand_dims(ops.arange(n, dtype="float32"), 0) - ops.expand_dims(offset, 1)
    weights = ops.relu(1.0 - ops.abs(source - ops.expand_dims(pos, 2)))  # (b, out, in)
    weights = ops.cast(weights, x.dtype)
    if axis == 1:
        return ops.einsum("bij,bjwc->biwc", weights, x)
    return ops.einsum("bij,bhjc->bhic", weights, x)


class RandomShift(_Augmentation):
    """Translate each image by up to ``factor`` of its height and width (uniform,
    sub-pixel, bilinear), filling with 0: the NIN seed's ``width_shift_range`` /
    ``height_shift_range`` with ``fill_mode='constant', cval=0``.  Bilinear
    interpolation of a translation is separable, so it is written as one product with
    an interpolation matrix per axis (:func:`_shift_axis`), which XLA compiles under
    every backend; Keras's
    ``RandomTranslation`` turns off jit compilation of the whole training step
    (``supports_jit = False``) and ``ops.image.affine_transform`` is an op XLA cannot
    compile under TensorFlow (``ImageProjectiveTransformV3``)."""

    def __init__(self, factor, seed=None, **kwargs):
        super().__init__(seed, **kwargs)
        self.factor = float(factor)

    def transform(self, x):
        b = ops.shape(x)[0]
        _, h, w, _ = x.shape
        f = self.factor
        dy = keras.random.uniform((b,), -f, f, seed=self.generator) * h
        dx = keras.random.uniform((b,), -f, f, seed=self.generator) * w
        return _shift_axis(_shift_axis(x, dy, 1), dx, 2)


class RandomFlip(_Augmentation):
    """Mirror each image with probability 1/2: left-right (``horizontal``), up-down
    (``vertical``) or each of the two on its own (``horizontal_and_vertical``), as
    Keras's ``RandomFlip``; written with ``keras.ops`` only, so the whole augmentation
    stack is one graph for XLA and ``torch.compile``."""

    def __init__(self, mode, seed=None, **kwargs):
        super().__init__(seed, **kwargs)
        self.mode = mode

    def transform(self, x):
        b = ops.shape(x)[0]
        for axis, word in ((2, "horizontal"), (1, "vertical")):
            if word in self.mode:
                flip = keras.random.uniform((b, 1, 1, 1), seed=self.generator) < 0.5
                x = ops.where(flip, ops.flip(x, axis=axis), x)
        return x


class RandomPadCrop(_Augmentation):
    """Zero-pad ``padding`` pixels on each side, then crop a random window of the
    original size (whole-pixel shifts, the usual CIFAR recipe)."""

    def __init__(self, padding, seed=None, **kwargs):
        super().__init__(seed, **kwargs)
        self.padding = int(padding)

    def transform(self, x):
        p = self.padding
        b = ops.shape(x)[0]
        # the window at offset o of the padded image is the image shifted by p - o
        oy = keras.random.randint((b,), 0, 2 * p + 1, seed=self.generator)
        ox = keras.random.randint((b,), 0, 2 * p + 1, seed=self.generator)
        dy = float(p) - ops.cast(oy, "float32")
        dx = float(p) - ops.cast(ox, "float32")
        return _shift_axis(_shift_axis(x, dy, 1), dx, 2)


class Cutout(_Augmentation):
    """Set a random ``size`` x ``size`` square of each image to 0 (DeVries & Taylor,
    2017); the square may hang over the edge."""

    def __init__(self, size, seed=None, **kwargs):
        super().__init__(seed, **kwargs)
        self.size = int(size)

    def transform(self, x):
        b = ops.shape(x)[0]
        _, h, w, _ = x.shape
        cy = keras.random.randint((b, 1, 1, 1), 0, h, seed=self.generator)
        cx = keras.random.randint((b, 1, 1, 1), 0, w, seed=self.generator)
        half = self.size // 2
        ys = ops.reshape(ops.arange(h, dtype=cy.dtype), (1, h, 1, 1))
        xs = ops.reshape(ops.arange(w, dtype=cx.dtype), (1, 1, w, 1))
        inside = (
            (ys >= cy - half)
            & (ys < cy - half + self.size)
            & (xs >= cx - half)
            & (xs < cx - half + self.size)
        )
        return ops.where(inside, ops.zeros_like(x), x)


def augment_layers(augment) -> list:
    """The Keras layers of a spec's ``data.augment`` (empty when it has none)."""
    if augment is None:
        return []
    layers = []
    if augment.flip:
        layers.append(RandomFlip(augment.flip, name="augment_flip"))
    if augment.shift:
        layers.append(RandomShift(augment.shift, name="augment_shift"))
    if augment.crop:
        layers.append(RandomPadCrop(augment.crop, name="augment_crop"))
    if augment.cutout:
        layers.append(Cutout(augment.cutout, name="augment_cutout"))
    return layers


def wrap(model, raw_shape, data, *, augment: bool = True):
    """``model`` behind :class:`Preprocess` (and, when ``augment``, the spec's
    augmentation): a model that takes uint8 images of ``raw_shape`` (h, w, c)."""
    h, w, c = (int(d) for d in model.input_shape[1:])
    if raw_shape[2] != c:
        raise ValueError(f"images have {raw_shape[2]} channels but the model takes {c}")
    mean, std = normalisation(data, c)
    inputs = keras.Input(tuple(raw_shape), dtype="uint8", name="pixels")
    resize = data.resize if data is not None else "pad"
    x = Preprocess((h, w), mean, std, resize, name="preprocess")(inputs)
    if augment and data is not None:
        for layer in augment_layers(data.augment):
            x = layer(x)
    outputs = model(x)
    return keras.Model(inputs, outputs, name=f"{model.name}_pipeline")


def reseed(model, seed: int, epoch: int) -> None:
    """Set every random state an epoch draws from, from ``(seed, epoch)``, so an
    epoch's randomness does not depend on earlier epochs: the seed state of every
    layer in ``model`` (augmentation, dropout), and the global generators (Python,
    NumPy, TensorFlow, PyTorch), since Keras's PyTorch dropout draws from PyTorch's
    global generator when a layer has no explicit seed, and so does PyTorch's
    DataLoader when ``fit`` starts an epoch.  Training calls it as each epoch begins
    (``on_epoch_begin``), after what ``fit`` does only on its first call in a process,
    so a resumed run draws what an uninterrupted one would."""
    import numpy as np

    keras.utils.set_random_seed((seed * 1_000_003 + 7_919 * (epoch + 1)) % (2**31))
    for i, layer in enumerate(model._flatten_layers(include_self=True, recursive=True)):
        for j, gen in enumerate(getattr(layer, "_seed_generators", [])):
            state = np.array(
                [(seed * 1_000_003 + i * 101 + j) % (2**31), epoch + 1],
                dtype=keras.backend.standardize_dtype(gen.state.dtype),
            )
            gen.state.assign(state)
