"""Learnable random images for smoke tests and benchmarks."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ...errors import DataError
from ..raw import MODES, RawData


def synthetic(
    n: int,
    shape: Sequence[int],
    classes: int | Sequence[str],
    seed: int = 0,
) -> RawData:
    """``n`` seeded images of ``shape`` = (h, w, c) whose labels a small conv net learns
    in an epoch or two, even through global pooling and flips or shifts: each class
    has a colour (brightness levels spread evenly over the classes in channel 0,
    random in the others) and a fixed random low-frequency texture;
    image = clip(128 + colour + 40 * texture + 20 * noise).  Labels are balanced
    (``i % k``, shuffled).  The same arguments give the same data."""
    try:
        h, w, c = (int(s) for s in shape)
    except (TypeError, ValueError):
        raise DataError(
            f"synthetic shape must be (height, width, channels); got {shape!r}"
        ) from None
    if h < 1 or w < 1 or c not in MODES:
        raise DataError(
            f"synthetic shape must be positive (height, width, channels) with 1, 3 or 4 "
            f"channels; got {tuple(shape)!r}"
        )
    if isinstance(classes, int) and not isinstance(classes, bool):
        names = [str(i) for i in range(classes)]
    else:
        names = [str(x) for x in classes]
    k = len(names)
    if k < 1:
        raise DataError("synthetic data needs at least one class")
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1:
        raise DataError(f"synthetic data needs a positive number of images; got {n!r}")

    rng = np.random.default_rng(seed)
    # Templates: a few random low-frequency waves per class and channel, unit std.
    yy = np.linspace(0.0, 1.0, h, dtype=np.float32)[:, None]
    xx = np.linspace(0.0, 1.0, w, dtype=np.float32)[None, :]
    templates = np.zeros((k, h, w, c), dtype=np.float32)
    for j in range(k):
        for ch in range(c):
            t = np.zeros((h, w), dtype=np.float32)
            for _ in range(4):
                fy, fx = rng.uniform(0.0, 2.0, 2)
                phase = rng.uniform(0.0, 2 * np.pi)
                amp = rng.normal()
                t += amp * np.sin(2 * np.pi * (fy * yy + fx * xx) + phase).astype(np.float32)
            t -= t.mean()
            t /= t.std() + 1e-6
            templates[j, :, :, ch] = t
    colours = rng.uniform(-40.0, 40.0, (k, c)).astype(np.float32)
    colours[:, 0] = rng.permutation(np.linspace(-60.0, 60.0, k, dtype=np.float32))
    labels = (np.arange(n) % k).astype(np.int32)
    rng.shuffle(labels)
    images = np.empty((n, h, w, c), dtype=np.uint8)
    step = max(1, (1 << 22) // (h * w * c))  # ~4M values (16 MB of float32) at a time
    for i in range(0, n, step):
        lab = labels[i : i + step]
        noise = rng.standard_normal((len(lab), h, w, c), dtype=np.float32)
        x = 128.0 + colours[lab][:, None, None, :] + 40.0 * templates[lab] + 20.0 * noise
        images[i : i + step] = np.clip(np.rint(x), 0, 255).astype(np.uint8)
    return RawData(images, labels, names, "synthetic", f"synthetic, seed {seed}")
