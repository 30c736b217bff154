"""The table from a spec's ``train:`` section to Keras, as data: which classes (Keras
paths, or the classes of :mod:`.schedule`) ``model.compile`` gets, with which
arguments, in which order.  It imports no Keras.

It is the one translation of ``train:``, read twice so the two cannot drift apart:

* :mod:`.recipe` makes ``nincompile train``'s objects from it;
* the code generator (``nincompile/codegen/render.py``) writes the same calls, in the
  same order and with the same arguments, into a generated module's
  ``compile_model(model, steps_per_epoch)``, with the source of the classes of
  :mod:`.schedule` it names.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..spec.schema import LOSSES, OPTIMIZERS

#: The classes of :mod:`.schedule` a recipe may name (a generated module copies them).
OWN_CLASSES = ("EpochLearningRate", "SmoothedSparseCategoricalCrossentropy")


@dataclass(frozen=True)
class Ref:
    """An argument that is a name in ``compile_model``: the ``steps_per_epoch``
    argument, or an object made earlier in the recipe (``learning_rate``)."""

    name: str


@dataclass(frozen=True)
class Obj:
    """``cls(*args, **kwargs)`` as data.  ``cls`` is a Keras path
    (``"keras.optimizers.SGD"``) or one of :data:`OWN_CLASSES`; the arguments are
    plain values or :class:`Ref`."""

    cls: str
    args: tuple = ()
    kwargs: tuple[tuple[str, object], ...] = ()


@dataclass(frozen=True)
class Recipe:
    """What ``train:`` compiles a model with, made in this order: ``learning_rate``
    (the schedule), ``optimizer`` (using it), ``loss``, ``metrics``; and the dtype
    policy the model is built under."""

    learning_rate: Obj
    optimizer: Obj
    loss: Obj
    metrics: tuple[Obj, ...]
    dtype_policy: str

    def objects(self) -> list[tuple[str, Obj | tuple[Obj, ...]]]:
        """``(name, object or list of objects)`` in the order they are made."""
        return [
            ("learning_rate", self.learning_rate),
            ("optimizer", self.optimizer),
            ("loss", self.loss),
            ("metrics", self.metrics),
        ]


def dtype_policy(setting) -> str:
    """``train.mixed_precision`` as a Keras dtype policy name."""
    if setting is True or setting == "float16":
        return "mixed_float16"
    if setting == "bfloat16":
        return "mixed_bfloat16"
    return "float32"


def _schedule(train) -> Obj:
    kwargs: dict[str, object] = {"learning_rate": float(train.learning_rate)}
    kwargs["epochs"] = int(train.epochs)
    kind = train.lr_schedule
    if isinstance(kind, dict):
        kwargs["boundaries"] = {int(e): float(lr) for e, lr in sorted(kind.items())}
    elif kind in ("cosine", "onecycle"):  # one-cycle: the warm-up, then a straight line
        kwargs["decay"] = "cosine" if kind == "cosine" else "linear"
        kwargs["min_learning_rate"] = float(train.min_learning_rate)
    warmup = train.warmup_epochs
    if warmup is None:
        warmup = 0.3 * train.epochs if kind == "onecycle" else 0.0
    warmup = min(float(warmup), float(train.epochs))
    if warmup > 0:
        kwargs["warmup_epochs"] = warmup
    return Obj("EpochLearningRate", (Ref("steps_per_epoch"),), tuple(kwargs.items()))


def _optimizer(train) -> Obj:
    kwargs: list[tuple[str, object]] = [("learning_rate", Ref("learning_rate"))]
    for key in ("momentum", "nesterov", "weight_decay"):
        value = getattr(train, key)
        if value is not None:
            kwargs.append((key, value))
    return Obj(f"keras.optimizers.{OPTIMIZERS[train.optimizer]}", kwargs=tuple(kwargs))


def _loss(train) -> Obj:
    """Keras's sparse cross-entropy has no label smoothing: with smoothing, ours."""
    ls = float(train.label_smoothing or 0.0)
    if train.loss == "mean_squared_error":
        return Obj(f"keras.losses.{LOSSES[train.loss]}")
    kwargs: list[tuple[str, object]] = [("from_logits", train.from_logits)]
    if ls > 0:
        kwargs.append(("label_smoothing", ls))
        if train.loss == "sparse_categorical_crossentropy":
            return Obj("SmoothedSparseCategoricalCrossentropy", kwargs=tuple(kwargs))
    return Obj(f"keras.losses.{LOSSES[train.loss]}", kwargs=tuple(kwargs))


def _metrics(train) -> tuple[Obj, ...]:
    sparse = train.loss == "sparse_categorical_crossentropy"
    accuracy = {
        "sparse_categorical_crossentropy": "SparseCategoricalAccuracy",
        "categorical_crossentropy": "CategoricalAccuracy",
        "binary_crossentropy": "BinaryAccuracy",
    }.get(train.loss, "Accuracy")
    top_k = "SparseTopKCategoricalAccuracy" if sparse else "TopKCategoricalAccuracy"
    out = []
    for m in train.metrics:
        if m == "accuracy":
            kwargs: tuple[tuple[str, object], ...] = (("name", "accuracy"),)
            if accuracy == "BinaryAccuracy" and train.from_logits:
                kwargs += (("threshold", 0.0),)  # a logit above 0: probability above 0.5
            out.append(Obj(f"keras.metrics.{accuracy}", kwargs=kwargs))
        elif m == "top_5_accuracy":
            out.append(Obj(f"keras.metrics.{top_k}", kwargs=(("k", 5), ("name", m))))
    return tuple(out)


def table(train) -> Recipe:
    """The recipe of a ``train:`` section (a :class:`~nincompile.spec.schema.Train`)."""
    return Recipe(
        learning_rate=_schedule(train),
        optimizer=_optimizer(train),
        loss=_loss(train),
        metrics=_metrics(train),
        dtype_policy=dtype_policy(train.mixed_precision),
    )


def arguments(obj: Obj, steps_per_epoch: int | None = None, **made) -> tuple[list, dict]:
    """The positional and keyword arguments of ``obj``, each :class:`Ref` replaced by
    its value: ``steps_per_epoch``, or an object made earlier (``learning_rate=...``)."""
    names = {"steps_per_epoch": steps_per_epoch, **made}

    def value(v):
        return names[v.name] if isinstance(v, Ref) else v

    return [value(v) for v in obj.args], {k: value(v) for k, v in obj.kwargs}
