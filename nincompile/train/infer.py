"""``evaluate`` and ``predict``: a trained model (a run folder or a ``.keras`` file) on
images, through the same preprocessing as training (never the augmentation).

A run folder gives ``model.keras`` and, from ``spec.yaml``, the class names, the
normalisation and whether the model outputs logits.  A ``.keras`` file uses the
``spec.yaml`` beside it when there is one (``RUN/best.keras``); otherwise pixels are
fed as ``x / 255`` and classes are numbered.  A run's files are never read through a
link; the model is loaded by :func:`nincompile.runs.model.load_saved`, as export
loads it.

Memory is bounded: the model file is sized before it is loaded
(:func:`nincompile.guard.check_keras_file`, against ``max_memory`` or the default
limit), and images are decoded in batches of ``batch_size``, each brought to the
model's input (``data.resize``) as it is decoded, so a folder of large photos costs
a batch of them, not the folder.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .. import guard
from ..data import pipeline, sources
from ..data.prepare import evaluation_batches, resize_mode
from ..errors import ModelLoadError, NincompileError
from ..keras_import import import_keras
from ..runs.model import SavedModel, classifier_problem, load_saved
from . import report
from .channels_last import channels_last

keras = import_keras()


def load_trained(path, *, limits: guard.Limits | None = None, batch: int = 1) -> SavedModel:
    """A run folder (``model.keras``; ``spec.yaml``) or a ``.keras`` file, by the one
    loader of :mod:`nincompile.runs.model`, refused before it is loaded when it and a
    batch of ``batch`` would not fit in ``limits``, and after it is loaded unless it is
    an image classifier (:func:`~nincompile.runs.model.classifier_problem`)."""
    trained = load_saved(path, limits=limits, batch=batch, untrained=False)
    problem = classifier_problem(trained.model, trained.classes)
    if problem is not None:
        raise ModelLoadError(f"cannot run '{path}' on images: {problem}")
    return trained


def _probabilities(out: np.ndarray, from_logits: bool | None) -> np.ndarray:
    out = np.asarray(out, dtype=np.float64)
    if from_logits is None:  # no spec: softmax unless rows already look like probabilities
        from_logits = not (out.min() >= 0 and np.allclose(out.sum(axis=1), 1.0, atol=1e-3))
    if from_logits:
        e = np.exp(out - out.max(axis=1, keepdims=True))
        return e / e.sum(axis=1, keepdims=True)
    return out


def _outputs(trained: SavedModel, batches, batch_size: int, n_classes: int) -> np.ndarray:
    """The model's raw outputs for every batch of uint8 images, in order."""
    wrappers = {}  # one wrapper per raw image shape (one, in practice)
    outs = []
    with channels_last(trained.model):
        for part in batches:
            shape = tuple(part.shape[1:])
            if shape not in wrappers:
                wrappers[shape] = pipeline.wrap(trained.model, shape, trained.data, augment=False)
            out = wrappers[shape].predict(part, batch_size=batch_size, verbose=0)
            outs.append(np.asarray(out))
    if not outs:
        return np.zeros((0, n_classes), np.float32)
    return np.concatenate(outs)


def _limits(max_memory: int | None) -> guard.Limits:
    return guard.Limits.from_env(max_memory=max_memory)


def evaluate(
    path, data, *, batch_size: int = 256, confusion_png=None, cache_dir=None,
    max_memory: int | None = None,
) -> dict:  # fmt: skip
    """Loss, accuracy, per-class accuracy and confusion matrix of a trained model on
    ``data`` (the test split of a CIFAR/MNIST download, or a class folder), read in
    batches of ``batch_size``."""
    trained = load_trained(path, limits=_limits(max_memory), batch=batch_size)
    classes = trained.labels
    raw, batches = evaluation_batches(
        trained.described, data, batch=batch_size, n_outputs=len(classes), cache_dir=cache_dir
    )
    if trained.classes is None:  # no spec names them: the data's folders do
        classes = list(raw.classes) + classes[len(raw.classes) :]
    outputs = _outputs(trained, batches, batch_size, len(classes))
    probs = _probabilities(outputs, trained.from_logits)
    y = raw.labels.astype(np.int64)
    pred = probs.argmax(axis=1)
    picked = np.clip(probs[np.arange(len(y)), y], 1e-7, 1.0)
    k = len(classes)
    confusion = np.zeros((k, k), dtype=np.int64)
    np.add.at(confusion, (y, pred), 1)
    per_class = {}
    for i, name in enumerate(classes):
        n = int(confusion[i].sum())
        if n:
            per_class[name] = {"accuracy": float(confusion[i, i] / n), "images": n}
    target = Path(confusion_png) if confusion_png else _default_png(trained.path)
    report.confusion_png(confusion, classes, target, f"{trained.name} on {data}")
    return {
        "model": str(trained.path),
        "data": raw.describe(),
        "images": int(len(y)),
        "accuracy": float((pred == y).mean()),
        "loss": float(-np.log(picked).mean()),
        "per_class": per_class,
        "classes": classes,
        "confusion": confusion.tolist(),
        "confusion_png": str(target),
    }


def _default_png(path: Path) -> Path:
    if path.is_dir():
        return path / "confusion.png"
    return path.with_name(f"{path.stem}.confusion.png")


def predict(
    path, images, *, top: int = 5, batch_size: int = 256, max_memory: int | None = None
) -> list[dict]:
    """Top-``top`` classes and probabilities for each image file (folders are read
    recursively), decoded in batches of ``batch_size``, each image brought to the
    model's input as training brings it (``data.resize``)."""
    if top < 1:
        raise NincompileError(f"--top must be at least 1; received {top}")
    trained = load_trained(path, limits=_limits(max_memory), batch=batch_size)
    files = sources.list_image_files(images)
    h, w, c = trained.input_shape
    batches = sources.iter_image_batches(
        files, channels=c, size=(h, w), resize=resize_mode(trained.spec), batch=batch_size
    )
    classes = trained.labels
    outputs = _outputs(trained, batches, batch_size, len(classes))
    probs = _probabilities(outputs, trained.from_logits)
    k = min(top, probs.shape[1])
    out = []
    for f, p in zip(files, probs, strict=True):
        best = np.argsort(-p)[:k]
        out.append(
            {
                "file": str(f),
                "top": [{"class": classes[i], "probability": float(p[i])} for i in best],
            }
        )
    return out
