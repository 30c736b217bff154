"""The one loader of a trained model with its spec: :func:`load_saved`, used by
``train`` (the run folder or file that ``--weights`` names, :func:`run_model_file`),
``evaluate``, ``predict``, ``export`` and ``sweep``.

A model comes from one of three places:

* a **spec** (``*.yaml``/``*.yml``): compiled and built with fresh, untrained weights,
  seeded with ``keras.utils.set_random_seed(spec.train.seed or 0)`` so two loads of
  one spec are identical;
* a **saved model** (``*.keras``; with the ``spec.yaml`` beside it when there is one,
  as for ``RUN/best.keras``): loaded by :func:`load_keras_model`, with
  ``keras.saving.load_model(path, safe_mode=True, compile=False)``.  Legacy ``.h5``
  files are refused (Keras's safe mode does not protect them), even renamed to
  ``.keras``, and so is any model holding a ``Lambda`` layer (arbitrary Python code).
  Before Keras sees the file, :func:`nincompile.guard.check_keras_file` sizes it from
  its config and its weights' metadata and refuses one that would not fit in the
  memory limit (``--max-memory``, ``NINCOMPILE_MAX_MEMORY``); a path that is not a
  regular file (a FIFO, a device) is refused without being opened;
* a **training run** folder (:mod:`nincompile.runs.folder`): ``model.keras`` (required)
  and ``spec.yaml`` (optional: the name, classes and normalisation come from it).
  These, the ``spec.yaml`` beside a ``.keras`` file and a ``.keras`` file that belongs
  to a run (``RUN/best.keras``) are found as ``train --resume`` finds a run's files
  (:meth:`~nincompile.runs.folder.RunFolder.file`, :func:`~nincompile.files.regular_or_missing`):
  a symbolic link, FIFO or device there is refused in one line, never followed.

A spec found with a model must describe the model's input, or the two are refused as
not belonging together.  Every problem is a :class:`~nincompile.errors.ModelLoadError`
naming the file.  Keras is imported only when a model is loaded.
"""

from __future__ import annotations

import os
import types
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

from .. import guard
from ..errors import ModelLoadError, first_line
from ..files import regular_or_missing, sha256_file
from . import folder as runs

SPEC_SUFFIXES = (".yaml", ".yml")
HDF5_SUFFIXES = (".h5", ".hdf5")


@dataclass
class SavedModel:
    """A loaded model, with what is known about where it came from."""

    kind: str  # "spec" | "keras" | "run"
    path: Path
    model: object
    name: str
    source_sha256: str
    spec: object | None = None  # nincompile.spec.schema.Spec
    spec_sha256: str | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def data(self):
        return self.spec.data if self.spec is not None else None

    @property
    def classes(self) -> list[str] | None:
        return list(self.data.classes) if self.data and self.data.classes else None

    @property
    def mean(self) -> list[float] | None:
        return list(self.data.mean) if self.data and self.data.mean is not None else None

    @property
    def std(self) -> list[float] | None:
        return list(self.data.std) if self.data and self.data.std is not None else None

    @property
    def from_logits(self) -> bool | None:
        """Whether the model outputs logits, as its spec says (None without one)."""
        train = self.spec.train if self.spec is not None else None
        return train.from_logits if train is not None else None

    @property
    def input_shape(self) -> tuple[int, ...]:
        """``(height, width, channels)`` of the model's image input."""
        return tuple(int(d) for d in self.model.input_shape[1:])

    @property
    def labels(self) -> list[str]:
        """A name for each output: the spec's class names, else (and for outputs past
        them: a model trained on fewer classes than it has outputs) its number."""
        names = self.classes or []
        return names + [str(i) for i in range(len(names), int(self.model.output_shape[-1]))]

    @property
    def described(self):
        """The spec, or without one a stand-in holding the model's input and name (no
        ``data:``, no ``train:``): what reading images for the model needs."""
        if self.spec is not None:
            return self.spec
        return types.SimpleNamespace(input=self.input_shape, data=None, train=None,
                                     name=self.name)  # fmt: skip


def _run_file(folder: Path, name: str) -> Path | None:
    """``folder / name`` read as a run folder's file is read (as ``train --resume`` reads
    them): a symbolic link there, a FIFO, a device or a folder is refused with
    :class:`~nincompile.files.UnsafePathError` without being opened or followed; None
    when there is nothing."""
    path = runs.RunFolder(folder).file(name)
    return path if regular_or_missing(path, runs.WHAT) else None


def run_model_file(folder: str | os.PathLike, *, best: bool = False) -> Path | None:
    """A run folder's ``model.keras`` (with ``best``, its ``best.keras`` before it),
    read as every run file is (a link, FIFO or device refused with
    :class:`~nincompile.files.UnsafePathError`); None when the folder holds none."""
    for name in (runs.BEST, runs.MODEL) if best else (runs.MODEL,):
        if (path := _run_file(Path(folder), name)) is not None:
            return path
    return None


def _check_run_folder(path: Path) -> Path:
    model = run_model_file(path)
    if model is None:
        raise ModelLoadError(
            f"cannot load '{path}': it is not a run folder, which must hold {runs.MODEL} "
            f"(and optionally {runs.SPEC}); train one with nincompile train, or pass a "
            ".keras file"
        )
    return model


def model_files(path: str | os.PathLike) -> tuple[Path, Path | None]:
    """``(model, spec or None)`` of a run folder (``model.keras``, ``spec.yaml``) or of
    a ``.keras`` file (the ``spec.yaml`` beside it, as for ``RUN/best.keras``).

    The folder named (or the one holding the named file) is the user's choice and may
    be a link; what is found in it is not: ``model.keras`` and ``spec.yaml`` of a run
    folder, the ``spec.yaml`` beside a ``.keras`` file, and a ``.keras`` file that is
    part of a run (``model.keras``, ``best.keras``, or any with a ``spec.yaml``
    beside it) are refused when they are links (or FIFOs, devices), as ``train
    --resume`` refuses them."""
    path = Path(path)
    if path.is_dir():
        return _check_run_folder(path), _run_file(path, runs.SPEC)
    if not (os.path.lexists(path) or path.suffix.lower() in (".keras", *HDF5_SUFFIXES)):
        raise ModelLoadError(
            f"cannot load '{path}': no such file or folder; expected a run folder or a .keras file"
        )
    spec = _run_file(path.parent, runs.SPEC)
    if spec is not None or path.name in (runs.MODEL, runs.BEST):
        _run_file(path.parent, path.name)  # part of a run: not a link
    return path, spec


def source_kind(path: Path) -> str:
    """The kind of ``path`` (spec, keras, run); raise ModelLoadError if unusable."""
    suffix = path.suffix.lower()
    if suffix in HDF5_SUFFIXES:
        raise ModelLoadError(
            f"refusing '{path}': legacy HDF5 (.h5) models are not loaded because Keras's "
            "safe mode does not protect them; re-save the model as .keras"
        )
    if not os.path.lexists(path):
        raise ModelLoadError(f"cannot load '{path}': no such file or folder")
    if path.is_dir():
        _check_run_folder(path)
        return "run"
    if suffix in SPEC_SUFFIXES:
        return "spec"
    if suffix == ".keras":
        return "keras"
    raise ModelLoadError(
        f"cannot load '{path}': expected a spec (.yaml), a saved model (.keras) "
        f"or a training run folder holding {runs.MODEL}"
    )


def check_regular(path: Path) -> None:
    """A :class:`ModelLoadError` unless ``path`` is a regular file (a FIFO or a device
    is refused without being opened)."""
    try:
        kind = guard.not_regular(path)
    except FileNotFoundError:
        raise ModelLoadError(f"cannot load '{path}': no such file") from None
    except OSError as err:
        raise ModelLoadError(f"cannot load '{path}': {err.strerror or err}") from None
    if kind is not None:
        raise ModelLoadError(
            f"cannot load '{path}': it is not a regular file ({kind}); expected a .keras file"
        )


def load_keras_model(
    path: str | os.PathLike, *, limits: guard.Limits | None = None, batch: int = 1
):
    """Load a ``.keras`` file in safe mode, turning Keras's errors into clear ones.

    The file is sized first (:func:`nincompile.guard.check_keras_file`: its config's
    and its weights' declared sizes, plus one batch of ``batch`` through it) and refused
    with :class:`~nincompile.errors.ModelTooLarge` over ``limits`` (default: the
    environment's, else the memory available), before Keras is even imported."""
    from ..keras_import import import_keras

    path = Path(path)
    check_regular(path)
    try:
        with guard.open_regular(path) as f:
            magic = f.read(8)
    except guard.NotRegularFile as err:
        raise ModelLoadError(
            f"cannot load '{path}': it is not a regular file ({err.kind})"
        ) from None
    except OSError as err:
        raise ModelLoadError(f"cannot load '{path}': {err.strerror or err}") from None
    if not zipfile.is_zipfile(path):
        if magic.startswith(b"\x89HDF"):
            raise ModelLoadError(
                f"refusing '{path}': it is a legacy HDF5 model, which Keras's safe mode "
                "does not protect; re-save the model as .keras"
            )
        raise ModelLoadError(f"cannot load '{path}': not a valid .keras file (not a zip archive)")
    guard.check_keras_file(path, limits, batch)
    keras = import_keras()
    try:
        model = keras.saving.load_model(path, safe_mode=True, compile=False)
    except Exception as err:  # Keras raises ValueError/TypeError/KeyError/OSError here
        text = str(err)
        if "Lambda" in text or "safe_mode" in text or "unsafe_deserialization" in text:
            raise ModelLoadError(
                f"refusing '{path}': it holds a Lambda layer (arbitrary Python code), which "
                "Keras's safe mode will not load; rebuild the model without Lambda layers"
            ) from None
        raise ModelLoadError(
            f"cannot load '{path}': corrupt or unsupported .keras file ({first_line(err)})"
        ) from None
    if not isinstance(model, keras.Model):
        raise ModelLoadError(
            f"cannot load '{path}': it holds a {type(model).__name__}, not a model"
        )
    return model


def load_saved(path: str | os.PathLike, *, limits: guard.Limits | None = None, batch: int = 1,
               untrained: bool = True) -> SavedModel:  # fmt: skip
    """Load a run folder, a ``.keras`` file or (with ``untrained``) a spec with fresh
    weights (see the module docstring), with the spec that describes it.  A model that
    with a batch of ``batch`` would not fit in the memory ``limits`` (default: the
    environment's, else the memory available) is refused before anything is
    allocated."""
    from ..compiler import build_checked, compile_spec
    from ..keras_import import import_keras

    path = Path(path)
    kind = source_kind(path) if untrained else "run" if path.is_dir() else "keras"
    if kind == "spec":
        compiled = compile_spec(path)
        spec = compiled.spec
        seed = spec.train.seed if spec.train is not None else 0
        import_keras().utils.set_random_seed(seed)
        model = build_checked(compiled, limits)
        sha = compiled.source.sha256
        loaded = SavedModel(kind, path, model, spec.name, sha, spec, sha)
        loaded.notes.append(f"fresh untrained weights (seed {seed})")
        return loaded
    model_path, spec_path = model_files(path)  # a .keras file: the spec.yaml beside it
    model = load_keras_model(model_path, limits=limits, batch=batch)
    spec = spec_sha = None
    name = path.stem if kind == "keras" else path.resolve().name
    notes = []
    if spec_path is not None:
        compiled = compile_spec(spec_path)
        spec, spec_sha, name = compiled.spec, compiled.source.sha256, compiled.spec.name
        check_belongs(model, model_path, spec, spec_path)
        if kind == "keras":
            notes.append(f"classes and normalisation from {spec_path}")
        spec = _with_trained_classes(spec, spec_path.parent, notes)
    return SavedModel(kind, path, model, name, sha256_file(model_path), spec, spec_sha, notes)


def _with_trained_classes(spec, folder: Path, notes: list[str]):
    """``spec`` with the class names its run trained on (``metrics.json``'s
    ``classes``) where it names none (``data.classes`` unset: the training folder's
    sub-folders named them), so that evaluate maps a folder's classes by name and
    predict names them, as training did."""
    if spec.data is not None and spec.data.classes:
        return spec
    metrics = runs.RunFolder(folder).metrics() if (folder / runs.METRICS).exists() else None
    classes = (metrics or {}).get("classes")
    if not (isinstance(classes, list) and classes and all(isinstance(c, str) for c in classes)):
        return spec
    from ..spec.schema import Data

    data = (spec.data.model_copy(update={"classes": classes}) if spec.data is not None
            else Data(classes=classes))  # fmt: skip
    notes.append(f"classes from {folder / runs.METRICS}")
    return spec.model_copy(update={"data": data})


def classifier_problem(model, classes: list[str] | None = None) -> str | None:
    """What keeps ``model`` from being an image classifier that evaluate, predict and
    export can run (one NHWC image input of fixed size, one ``(batch, classes)``
    output, at least as many outputs as its spec's ``classes`` name), or None."""
    try:
        inputs, outputs = model.inputs, model.outputs
    except (AttributeError, ValueError):
        inputs = outputs = None
    if not inputs or not outputs:
        return "the model has no defined inputs/outputs"
    if len(inputs) != 1 or len(outputs) != 1:
        return (
            f"expected one image input and one output; the model has {len(inputs)} inputs "
            f"and {len(outputs)} outputs"
        )
    shape = tuple(inputs[0].shape)
    if len(shape) != 4 or any(d is None for d in shape[1:]):
        return (
            "expected an NHWC image input (batch, height, width, channels) with fixed "
            f"height, width and channels; received {shape}"
        )
    if len(tuple(outputs[0].shape)) != 2 or outputs[0].shape[-1] is None:
        return f"expected a (batch, classes) output; received {tuple(outputs[0].shape)}"
    n_out = int(outputs[0].shape[-1])
    if classes and len(classes) > n_out:  # fewer: the outputs past them are numbered
        return f"data.classes names {len(classes)} classes but the model has {n_out} outputs"
    return None


def check_belongs(model, model_path: Path, spec, spec_path: Path) -> None:
    """A :class:`ModelLoadError` when the model's one image input is not the one its
    spec describes (a model with other inputs is left to whoever needs one image)."""
    try:
        inputs = model.inputs
    except (AttributeError, ValueError):
        return
    if not inputs or len(inputs) != 1:
        return
    shape = [None if d is None else int(d) for d in tuple(inputs[0].shape)[1:]]
    if shape != list(spec.input):
        raise ModelLoadError(
            f"cannot load '{model_path}': the model's input {shape} differs from its spec's "
            f"input {list(spec.input)} ('{spec_path}'); they do not belong together"
        )
