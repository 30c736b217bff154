"""Seeded, stratified subsets and splits, and the per-epoch data order.

Everything here is a pure function of its arguments (labels, fraction, seed, epoch),
so a run that is killed and resumed sees exactly the same batches as one that never
stopped.
"""

from __future__ import annotations

import numpy as np


def _rng(*key: int) -> np.random.Generator:
    return np.random.default_rng([abs(int(k)) for k in key])


def stratified_split(labels: np.ndarray, fraction: float, seed: int):
    """``(train_idx, val_idx)``: ``fraction`` of each class held out, chosen by ``seed``.

    Each class gives ``round(fraction * n_class)`` images (at least one when the class
    has two or more and ``fraction > 0``).  Indices are sorted.
    """
    labels = np.asarray(labels)
    if fraction <= 0:
        return np.arange(len(labels)), np.arange(0)
    rng = _rng(seed, 0x5A11)
    val = []
    for cls in np.unique(labels):
        idx = np.flatnonzero(labels == cls)
        k = int(round(fraction * len(idx)))
        if k == 0 and len(idx) >= 2:
            k = 1
        k = min(k, len(idx) - 1) if len(idx) > 1 else 0
        val.append(rng.permutation(idx)[:k])
    val_idx = np.sort(np.concatenate(val)) if val else np.arange(0)
    mask = np.ones(len(labels), dtype=bool)
    mask[val_idx] = False
    return np.flatnonzero(mask), val_idx


def stratified_subset(labels: np.ndarray, limit: int, seed: int) -> np.ndarray:
    """Sorted indices of exactly ``min(limit, len(labels))`` items, classes in
    proportion, chosen by seed."""
    labels = np.asarray(labels)
    n = len(labels)
    if limit >= n:
        return np.arange(n)
    rest, keep = stratified_split(labels, limit / n, seed)
    if len(keep) > limit:  # rounding per class can overshoot by a few
        keep = np.sort(_rng(seed, 0x11).permutation(keep)[:limit])
    elif len(keep) < limit:  # ... or fall short: top up from the others
        extra = _rng(seed, 0x12).permutation(rest)[: limit - len(keep)]
        keep = np.sort(np.concatenate([keep, extra]))
    return keep


def epoch_order(n: int, seed: int, epoch: int) -> np.ndarray:
    """The order in which epoch ``epoch`` visits ``n`` training images."""
    return _rng(seed, epoch, 0xE90C).permutation(n)
