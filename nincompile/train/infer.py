"""``evaluate`` and ``predict``: a trained model (a run folder or a ``.keras`` file) on
images, through the same preprocessing as training (never the augmentation).

A run folder gives ``model.keras`` and, from ``spec.yaml``, the class names, the
normalisation and whether the model outputs logits.  A ``.keras`` file uses the
``spec.yaml`` beside it when there is one (``RUN/best.keras``); otherwise pixels are
fed as ``x / 255`` and classes are numbered.  A run's files are never read through a
link (:func:`nincompile.runs.model.model_files`).

Memory is bounded: the model file is sized before it is loaded
(:func:`nincompile.guard.check_keras_file`, against ``max_memory`` or the default
limit), and images are decoded in batches of ``batch_size``, each brought to the
model's input (``data.resize``) as it is decoded, so a folder of large photos costs
a batch of them, not the folder.
"""

from __future__ import annotations

import types
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .. import guard
from ..data import pipeline, sources
from ..data.prepare import evaluation_batches, resize_mode
from ..errors import NincompileError
from ..keras_import import import_keras
from ..runs.model import load_keras_model, model_files
from . import report

keras = import_keras()


@dataclass
class Trained:
    path: Path
    model: object
    spec: object  # a Spec, or a stand-in with input/data/train
    name: str
    classes: list[str]
    from_logits: bool | None

    @property
    def input_shape(self) -> tuple[int, int, int]:
        return tuple(int(d) for d in self.model.input_shape[1:])


def load_trained(path, *, limits: guard.Limits | None = None, batch: int = 1) -> Trained:
    """A run folder (``model.keras``; ``spec.yaml``) or a ``.keras`` file, refused
    before it is loaded when it and a batch of ``batch`` would not fit in ``limits``."""
    from .. import api

    path = Path(path)
    model_path, spec_path = model_files(path)
    model = load_keras_model(model_path, limits=limits, batch=batch)
    n_out = int(model.output_shape[-1])
    if spec_path is not None:
        spec = api.compile_spec(spec_path).spec
        if tuple(spec.input) != tuple(int(d) for d in model.input_shape[1:]):
            raise NincompileError(
                f"'{spec_path}' describes input {list(spec.input)} but '{model_path}' takes "
                f"{list(model.input_shape[1:])}; they do not belong together"
            )
        classes = list(spec.data.classes) if spec.data and spec.data.classes else None
        from_logits = spec.train.from_logits if spec.train is not None else None
        name = spec.name
    else:
        shape = tuple(int(d) for d in model.input_shape[1:])
        spec = types.SimpleNamespace(input=shape, data=None, train=None, name=model.name)
        classes, from_logits, name = None, None, model.name
    return Trained(path, model, spec, name, classes or [str(i) for i in range(n_out)], from_logits)


def _probabilities(out: np.ndarray, from_logits: bool | None) -> np.ndarray:
    out = np.asarray(out, dtype=np.float64)
    if from_logits is None:  # no spec: softmax unless rows already look like probabilities
        from_logits = not (out.min() >= 0 and np.allclose(out.sum(axis=1), 1.0, atol=1e-3))
    if from_logits:
        e = np.exp(out - out.max(axis=1, keepdims=True))
        return e / e.sum(axis=1, keepdims=True)
    return out


def _outputs(trained: Trained, batches, batch_size: int) -> np.ndarray:
    """The model's raw outputs for every batch of uint8 images, in order."""
    wrappers = {}  # one wrapper per raw image shape (one, in practice)
    outs = []
    for part in batches:
        shape = tuple(part.shape[1:])
        if shape not in wrappers:
            wrappers[shape] = pipeline.wrap(trained.model, shape, trained.spec.data, augment=False)
        outs.append(np.asarray(wrappers[shape].predict(part, batch_size=batch_size, verbose=0)))
    if not outs:
        return np.zeros((0, len(trained.classes)), np.float32)
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
    raw, batches = evaluation_batches(
        trained.spec, data, batch=batch_size, n_outputs=len(trained.classes), cache_dir=cache_dir
    )
    if trained.spec.data is None or not trained.spec.data.classes:
        trained.classes = list(raw.classes) + trained.classes[len(raw.classes) :]
    probs = _probabilities(_outputs(trained, batches, batch_size), trained.from_logits)
    y = raw.labels.astype(np.int64)
    pred = probs.argmax(axis=1)
    picked = np.clip(probs[np.arange(len(y)), y], 1e-7, 1.0)
    k = len(trained.classes)
    confusion = np.zeros((k, k), dtype=np.int64)
    np.add.at(confusion, (y, pred), 1)
    per_class = {}
    for i, name in enumerate(trained.classes):
        n = int(confusion[i].sum())
        if n:
            per_class[name] = {"accuracy": float(confusion[i, i] / n), "images": n}
    target = Path(confusion_png) if confusion_png else _default_png(trained.path)
    report.confusion_png(confusion, trained.classes, target, f"{trained.name} on {data}")
    return {
        "model": str(trained.path),
        "data": raw.describe(),
        "images": int(len(y)),
        "accuracy": float((pred == y).mean()),
        "loss": float(-np.log(picked).mean()),
        "per_class": per_class,
        "classes": trained.classes,
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
    probs = _probabilities(_outputs(trained, batches, batch_size), trained.from_logits)
    k = min(top, probs.shape[1])
    out = []
    for f, p in zip(files, probs, strict=True):
        best = np.argsort(-p)[:k]
        out.append(
            {
                "file": str(f),
                "top": [{"class": trained.classes[i], "probability": float(p[i])} for i in best],
            }
        )
    return out
