"""Pictures and logs of a run: learning curves, confusion matrix, TensorBoard."""

from __future__ import annotations

import warnings
from pathlib import Path

from ..files import atomic_write


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def curves(history: list[dict], target: Path, title: str) -> None:
    """Training and validation accuracy (left) and loss (right), as the seeds plot."""
    plt = _pyplot()
    from matplotlib.ticker import MaxNLocator

    epochs = [r["epoch"] + 1 for r in history]
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    for ax, key, label in ((axes[0], "accuracy", "Accuracy"), (axes[1], "loss", "Loss")):
        for prefix, name in (("", "Training"), ("val_", "Validation")):
            values = [r.get(prefix + key) for r in history]
            if any(v is not None for v in values):
                ax.plot(epochs, values, marker="o" if len(epochs) < 30 else None, label=name)
        ax.set_title(f"Training and Validation {label}")
        ax.set_xlabel("epoch")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True, min_n_ticks=1))
        ax.grid(alpha=0.3)
        ax.legend()
    fig.suptitle(title)
    fig.tight_layout()
    atomic_write(Path(target), lambda tmp: fig.savefig(tmp, format="png", dpi=90))
    plt.close(fig)


def confusion_png(matrix, classes: list[str], target: Path, title: str) -> None:
    plt = _pyplot()
    import numpy as np

    from ..data.raw import printable

    m = np.asarray(matrix)
    n = len(classes)
    classes = [printable(c) for c in classes]  # control characters written out
    size = max(5, 0.5 * n + 2)
    fig, ax = plt.subplots(figsize=(size, size))
    ax.imshow(m, cmap="Blues")
    ax.set_xticks(range(n), classes, rotation=45, ha="right")
    ax.set_yticks(range(n), classes)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title)
    if n <= 20:
        top = m.max() if m.size else 0
        for i in range(n):
            for j in range(n):
                color = "white" if top and m[i, j] > top / 2 else "black"
                ax.text(j, i, str(int(m[i, j])), ha="center", va="center", color=color, fontsize=8)
    with warnings.catch_warnings():  # a class name in a script the font lacks: boxes
        warnings.filterwarnings("ignore", message=r"Glyph .* missing from", category=UserWarning)
        fig.tight_layout()
        atomic_write(Path(target), lambda tmp: fig.savefig(tmp, format="png", dpi=90))
    plt.close(fig)


class TensorBoardLog:
    """Per-epoch scalars through TensorBoard's own ``tensorboard.summary.Writer``, which
    needs no TensorFlow (it uses TensorFlow when installed, a stub otherwise, e.g. on a
    JAX-only GPU machine); silently nothing when TensorBoard itself is missing."""

    def __init__(self, folder: Path | None):
        self.writer = None
        if folder is None:
            return
        try:
            from tensorboard.summary import Writer

            self.writer = Writer(str(folder))
        except Exception:
            self.writer = None

    def epoch(self, row: dict) -> None:
        if self.writer is None:
            return
        try:
            for key, value in row.items():
                if key != "epoch" and value is not None:
                    self.writer.add_scalar(key, float(value), row["epoch"])
            self.writer.flush()
        except Exception:  # logging must never stop training
            self.writer = None

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
