"""Load trained weights into a model built from a spec (``nincompile build --weights``).

The spec's layer names (``stage1_conv``) need not match the source's (``conv1_conv``),
so layers are paired by position: the k-th weight-bearing layer of the source with the
k-th weight-bearing layer of the model, layers without weights skipped.  Where both
are Functional models whose graphs are known (a ``.keras`` file, ``keras:NAME``), the
order is a canonical walk of the graph (see "graph order" below), which does not
depend on the order parallel branches were built in; otherwise it is ``model.layers``
order, layers of a nested Functional or Sequential model in their place.  Every pair
must agree in the number of variables and every shape; all pairs are checked before
anything is assigned, so a model is never left half loaded.

Sources:

* a ``.keras`` file: its ``config.json`` gives the layer order and its
  ``model.weights.h5`` the arrays; nothing is deserialized or built.  A model whose
  config is not a Functional or Sequential model is loaded with
  ``keras.saving.load_model(compile=False, safe_mode=True)`` instead;
* a ``.weights.h5`` file (``model.save_weights``): it holds no architecture and HDF5
  keeps no order between Keras's layer groups, so its layers are matched the way
  Keras's own ``load_weights`` matches them, by path: the k-th layer of each class in
  the file (``layers/conv2d_3``) with the k-th layer of that class in the model;
* a legacy Keras 2 ``.h5`` file (``layer_names`` in file order);
* ``keras:NAME``: ``keras.applications.NAME(weights="imagenet")``, downloaded by Keras.

Within a layer the variables are in Keras's saving order (``save_own_variables``:
e.g. BatchNormalization gamma, beta, moving_mean, moving_variance; SeparableConv2D
depthwise, pointwise, bias), the order of ``layer.weights`` for a plain layer, and are
assigned with ``load_own_variables``, as Keras's loader does.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import socket
import sys
import tempfile
import zipfile
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .errors import WeightsError, WeightsMismatch, did_you_mean, first_line

KERAS_PREFIX = "keras:"
_ZIP_MAGIC = b"PK\x03\x04"
_H5_MAGIC = b"\x89HDF\r\n\x1a\n"
_CONTAINERS = ("Functional", "Sequential")
_DOWNLOAD_TIMEOUT_S = 60


@dataclass(frozen=True)
class WeightsReport:
    """What :func:`load_weights` loaded: from ``source``, ``tensors`` arrays of
    ``params`` numbers into ``layers`` layers; ``skipped``: the model's layers it was
    asked to leave as they were."""

    source: str
    layers: int
    tensors: int
    params: int
    skipped: tuple[str, ...] = ()


@dataclass(frozen=True)
class SourceLayer:
    """One weight-bearing layer of a source: its name, its Keras saving path and its
    arrays in saving order."""

    name: str
    path: str
    arrays: tuple[np.ndarray, ...]

    @property
    def shapes(self) -> list[tuple[int, ...]]:
        return [tuple(int(d) for d in a.shape) for a in self.arrays]


@dataclass(frozen=True)
class SourceWeights:
    """The weights of a source, read once (see :func:`read_weights`).  ``ordered`` is
    False for a ``.weights.h5`` file: its layers are matched by path, not position.
    ``graph`` is the names of ``layers`` in the order of :func:`_graph_order`, where the
    source is a Functional model whose graph is known."""

    source: str
    layers: tuple[SourceLayer, ...]
    ordered: bool = True
    graph: tuple[str, ...] | None = None

    @property
    def what(self) -> str:
        """How messages name the source: ``the file`` or ``Keras's ResNet50``."""
        if self.source.startswith(KERAS_PREFIX):
            return f"Keras's {self.source[len(KERAS_PREFIX) :]}"
        return "the file"


@dataclass
class _Target:
    name: str
    path: str
    kind: str
    layer: object
    shapes: list[tuple[int, ...]]


# ----------------------------------------------------------------------------- graph order
#
# ``model.layers`` of a Functional model is a topological order whose ties follow the
# order the layers were created in, so two builds of one graph can list the layers of
# parallel branches in different orders: keras.applications.ResNet50 creates a block's
# shortcut conv before its main path, a spec may write the main path first, and the
# shortcut conv and the last main-path conv of ResNet50's first block have the same
# shapes (1, 1, 64, 256); pairing by ``model.layers`` would swap them silently.  So
# where both graphs are known, layers are paired in a canonical order instead: a
# depth-first walk from the outputs that takes the inputs of a layer in argument order,
# except for the commutative merges (Add, Multiply, Average, Maximum, Minimum), whose
# inputs it sorts by a structural signature of the branch behind each.  Layers without
# weights are transparent to the signature (a ReLU layer, an activation argument or a
# zero padding do not matter); what counts is the weights' shapes and the merges.

_COMMUTATIVE = frozenset({"Add", "Multiply", "Average", "Maximum", "Minimum"})


@dataclass(frozen=True)
class _Node:
    cls: str
    parents: tuple[str, ...]
    shapes: tuple[tuple[int, ...], ...]  # the layer's own weights; () for none


def _digest(*parts) -> str:
    import hashlib

    return hashlib.sha1(repr(parts).encode()).hexdigest()


def _graph_order(
    nodes: dict[str, _Node], inputs: list[str], outputs: list[str]
) -> tuple[str, ...] | None:
    """The weight-bearing nodes in canonical order, or None if the graph is not one
    (a missing parent, a cycle, a weight-bearing node no output depends on)."""
    if any(p not in nodes for node in nodes.values() for p in node.parents):
        return None
    if any(name not in nodes for name in (*inputs, *outputs)):
        return None
    # signatures, parents first (Kahn's algorithm; no recursion for deep models)
    waiting = {name: len(set(node.parents)) for name, node in nodes.items()}
    children: dict[str, list[str]] = {name: [] for name in nodes}
    for name, node in nodes.items():
        for parent in set(node.parents):
            children[parent].append(name)
    ready = [name for name, n in waiting.items() if n == 0]
    sig: dict[str, tuple[str, str]] = {}
    while ready:
        name = ready.pop()
        node = nodes[name]
        below = [sig[p] for p in node.parents]
        if node.cls in _COMMUTATIVE:
            below.sort()
        if not node.parents:
            tag = f"input{inputs.index(name)}" if name in inputs else f"source {node.cls}"
            sig[name] = (tag, tag)
        elif node.shapes or len(node.parents) > 1:
            merge = node.cls if len(node.parents) > 1 and not node.shapes else ""
            sig[name] = (
                _digest("w" if node.shapes else merge, [b[0] for b in below]),
                _digest(node.shapes, merge, [b[1] for b in below]),
            )
        else:
            sig[name] = below[0]  # a layer without weights on one input: transparent
        for child in children[name]:
            waiting[child] -= 1
            if waiting[child] == 0:
                ready.append(child)
    if len(sig) != len(nodes):
        return None  # a cycle
    order: list[str] = []
    seen: set[str] = set()
    for out in outputs:
        stack = [(out, False)]
        while stack:
            name, expanded = stack.pop()
            if expanded:
                order.append(name)
                continue
            if name in seen:
                continue
            seen.add(name)
            stack.append((name, True))
            parents = list(nodes[name].parents)
            if nodes[name].cls in _COMMUTATIVE:
                parents.sort(key=lambda p: sig[p])
            stack.extend((p, False) for p in reversed(parents))
    weighted = [name for name in order if nodes[name].shapes]
    if len(weighted) != sum(1 for node in nodes.values() if node.shapes):
        return None
    return tuple(weighted)


def _model_graph(model, shapes: dict[str, tuple]) -> tuple[str, ...] | None:
    """:func:`_graph_order` of a Functional model in memory, or None (a Sequential or
    subclassed model, shared layers, nested models)."""
    try:
        if model._obj_type() != "Functional":
            return None
        nodes = {}
        for op in model.operations:
            if _is_container(op) or len(op._inbound_nodes) != 1:
                return None
            tensors = op._inbound_nodes[0].input_tensors
            parents = tuple(t._keras_history.operation.name for t in tensors)
            nodes[op.name] = _Node(type(op).__name__, parents, shapes.get(op.name, ()))
        inputs = [t._keras_history.operation.name for t in model.inputs]
        outputs = [t._keras_history.operation.name for t in model.outputs]
    except (AttributeError, TypeError):
        return None
    return _graph_order(nodes, inputs, outputs)


def _tensor_names(value) -> list[str]:
    """The layer names of the ``__keras_tensor__`` entries in a node's config, in order."""
    if isinstance(value, dict):
        if value.get("class_name") == "__keras_tensor__":
            history = (value.get("config") or {}).get("keras_history")
            return [str(history[0])] if isinstance(history, list) and history else []
        return [name for v in value.values() for name in _tensor_names(v)]
    if isinstance(value, list | tuple):
        return [name for v in value for name in _tensor_names(v)]
    return []


def _config_graph(config: dict, shapes: dict[str, tuple]) -> tuple[str, ...] | None:
    """:func:`_graph_order` of a Functional model's ``config.json``, or None."""
    if config.get("class_name") != "Functional":
        return None
    cfg = config.get("config") or {}
    nodes = {}
    for item in cfg.get("layers") or []:
        inbound = item.get("inbound_nodes") or []
        if item.get("class_name") in _CONTAINERS or len(inbound) > 1:
            return None
        name = str(item.get("name") or (item.get("config") or {}).get("name"))
        node = inbound[0] if inbound else {}
        parents = _tensor_names([node.get("args"), node.get("kwargs")]) if node else []
        nodes[name] = _Node(str(item.get("class_name")), tuple(parents), shapes.get(name, ()))
    ends = []
    for key in ("input_layers", "output_layers"):
        items = cfg.get(key) or []
        items = [items] if items and isinstance(items[0], str) else items
        ends.append([str(i[0]) for i in items if isinstance(i, list) and i])
    return _graph_order(nodes, *ends)


# ----------------------------------------------------------------------------- the model


def _snake(class_name: str) -> str:
    """Keras's ``naming.to_snake_case``: how a saved file names a layer's class."""
    name = re.sub(r"\W+", "", class_name)
    name = re.sub("(.)([A-Z][a-z]+)", r"\1_\2", name)
    return re.sub("([a-z])([A-Z])", r"\1_\2", name).lower()


def _unique(name: str, used: dict[str, int]) -> str:
    """Keras's ``_get_unique_name``: ``conv2d``, ``conv2d_1``, ``conv2d_2``, ..."""
    if name in used:
        used[name] += 1
        return f"{name}_{used[name]}"
    used[name] = 0
    return name


def _is_container(layer) -> bool:
    try:
        return layer._obj_type() in _CONTAINERS
    except Exception:
        return False


def _own_variables(layer) -> list:
    """The variables Keras saves for ``layer`` itself, in its saving order."""
    store: dict[str, object] = {}
    layer.save_own_variables(store)
    return [store[str(i)] for i in range(len(store))]


def _targets(model) -> list[_Target]:
    """The weight-bearing layers of ``model`` in order, each with its saving path."""
    out: list[_Target] = []

    def walk(layers, prefix: str) -> None:
        used: dict[str, int] = {}
        for layer in layers:
            path = f"{prefix}/{_unique(_snake(type(layer).__name__), used)}"
            if _is_container(layer):
                walk(layer.layers, f"{path}/layers")
                continue
            variables = _own_variables(layer)
            inner = [w for sub in getattr(layer, "_layers", []) for w in sub.weights]
            if inner:
                raise WeightsError(
                    f"cannot load weights into layer '{layer.name}' "
                    f"({type(layer).__name__}): it has weights in layers of its own"
                )
            if variables:
                shapes = [tuple(int(d) for d in v.shape) for v in variables]
                out.append(_Target(layer.name, path, type(layer).__name__, layer, shapes))

    walk(model.layers, "layers")
    return out


def _model_source(source: str, model) -> SourceWeights:
    """The weights of a Keras model in memory, as a source."""
    from keras import ops

    layers = tuple(
        SourceLayer(t.name, t.path, tuple(ops.convert_to_numpy(v) for v in _own_variables(t.layer)))
        for t in _targets(model)
    )
    graph = _model_graph(model, {layer.name: tuple(layer.shapes) for layer in layers})
    return SourceWeights(source, layers, graph=graph)


# ----------------------------------------------------------------------------- HDF5


def _h5py():
    import h5py

    return h5py


def _child(group, key: str, kind: str):
    """``group[key]`` if it is a hard-linked ``kind`` (``"group"``/``"dataset"``), else
    None; soft and external links (which could read another file) are refused."""
    h5py = _h5py()
    if key not in group:
        return None
    link = group.get(key, getlink=True)
    if not isinstance(link, h5py.HardLink):
        raise WeightsError(f"refusing an HDF5 {type(link).__name__} at '{group.name}/{key}'")
    obj = group[key]
    want = h5py.Group if kind == "group" else h5py.Dataset
    if not isinstance(obj, want):
        return None
    if kind == "dataset" and (obj.external or obj.is_virtual):
        raise WeightsError(f"refusing an HDF5 dataset stored outside the file: '{obj.name}'")
    return obj


def _array(dataset) -> np.ndarray:
    if dataset.attrs.get("dtype") == "bfloat16":
        import ml_dtypes

        return np.array(dataset, dtype=ml_dtypes.bfloat16)
    value = np.asarray(dataset[()])
    if value.dtype.kind not in "fiub":
        raise WeightsError(f"'{dataset.name}' holds {value.dtype}, not numbers")
    return value


def _vars(group) -> tuple[tuple[np.ndarray, ...], str | None]:
    """The arrays of ``group/vars`` (keys ``0``, ``1``, ...) and the layer name Keras
    stored beside them, if any."""
    if group is None:
        return (), None
    store = _child(group, "vars", "group")
    if store is None:
        return (), None
    name = store.attrs.get("name")
    if isinstance(name, bytes):
        name = name.decode("utf-8", "replace")
    keys = sorted(store.keys(), key=lambda k: int(k) if k.isdigit() else -1)
    if any(not k.isdigit() for k in keys) or keys != [str(i) for i in range(len(keys))]:
        raise WeightsError(f"'{store.name}' holds {sorted(store.keys())}, expected 0, 1, ...")
    arrays = []
    for key in keys:
        ds = _child(store, key, "dataset")
        if ds is None:
            raise WeightsError(f"'{store.name}/{key}' is not a dataset")
        arrays.append(_array(ds))
    return tuple(arrays), name if isinstance(name, str) else None


def _h5_by_path(h5) -> tuple[SourceLayer, ...]:
    """Every weight-bearing layer under ``layers/`` of a Keras 3 weights file, sorted by
    path (there is no order to keep; they are matched by path)."""
    out: list[SourceLayer] = []

    def walk(group, prefix: str) -> None:
        for key in sorted(group.keys()):
            sub = _child(group, key, "group")
            if sub is None:
                continue
            path = f"{prefix}/{key}"
            arrays, name = _vars(sub)
            if arrays:
                out.append(SourceLayer(name or path, path, arrays))
            inner = _child(sub, "layers", "group")
            if inner is not None:
                walk(inner, f"{path}/layers")

    walk(_child(h5, "layers", "group"), "layers")
    return tuple(out)


def _h5_from_config(h5, config: dict) -> tuple[SourceLayer, ...] | None:
    """The weight-bearing layers of a ``.keras`` file in ``config.json``'s order, or
    None where the config is not a Functional/Sequential model whose layer groups are
    where Keras's loader looks for them (then the model is loaded instead)."""
    if not isinstance(config, dict) or config.get("class_name") not in _CONTAINERS:
        return None
    out: list[SourceLayer] = []
    seen: set[str] = set()

    def walk(group, cfg: dict, prefix: str) -> bool:
        layers = (cfg.get("config") or {}).get("layers")
        if not isinstance(layers, list):
            return False
        used: dict[str, int] = {}
        for item in layers:
            if not isinstance(item, dict) or not isinstance(item.get("class_name"), str):
                return False
            if str(item.get("module", "")).startswith("keras.src.ops"):
                continue  # an operation (keras.ops.add), not a layer: not saved
            cls = item["class_name"]
            name = (item.get("config") or {}).get("name") or item.get("name")
            key = _unique(_snake(cls), used)
            path = f"{prefix}/{key}"
            sub = _child(group, key, "group") if group is not None else None
            if cls in _CONTAINERS:
                inner = _child(sub, "layers", "group") if sub is not None else None
                if not walk(inner, item, f"{path}/layers"):
                    return False
                continue
            arrays, stored = _vars(sub)
            if stored is not None and name is not None and stored != name:
                return False  # the groups are not where the config says: load the model
            if arrays:
                out.append(SourceLayer(str(name or path), path, arrays))
                seen.add(path)
        return True

    if not walk(_child(h5, "layers", "group"), config, "layers"):
        return None
    if {layer.path for layer in _h5_by_path(h5)} != seen:
        return None  # weights the config does not account for
    return tuple(out)


def _h5_legacy(h5) -> tuple[SourceLayer, ...] | None:
    """A Keras 2 style ``.h5`` file (``layer_names``, ``weight_names``), or None."""
    root = _child(h5, "model_weights", "group") or h5
    if "layer_names" not in root.attrs:
        return None

    def text(value) -> str:
        return value.decode("utf-8") if isinstance(value, bytes) else str(value)

    out = []
    for layer_name in map(text, root.attrs["layer_names"]):
        group = _child(root, layer_name, "group")
        if group is None:
            raise WeightsError(f"layer '{layer_name}' is listed but missing")
        arrays = []
        for weight in map(text, group.attrs.get("weight_names", [])):
            node = group
            for part in weight.split("/"):
                node = _child(node, part, "dataset" if part == weight.split("/")[-1] else "group")
                if node is None:
                    raise WeightsError(f"weight '{weight}' of layer '{layer_name}' is missing")
            arrays.append(_array(node))
        if arrays:
            out.append(SourceLayer(layer_name, layer_name, tuple(arrays)))
    return tuple(out)


# ----------------------------------------------------------------------------- sources


def _read_keras_file(path: Path, shown: str) -> SourceWeights:
    h5py = _h5py()
    try:
        with zipfile.ZipFile(path) as archive:
            names = set(archive.namelist())
            if "model.weights.h5" not in names:
                raise WeightsError(
                    f"'{shown}' has no model.weights.h5 (a sharded or unsupported .keras file)"
                )
            config = None
            if "config.json" in names:
                with contextlib.suppress(ValueError):
                    config = json.loads(archive.read("config.json").decode("utf-8"))
            # HDF5 reads a zip member through Python 20x slower than a file: unpack it
            with tempfile.TemporaryDirectory(prefix="nincompile-weights-") as tmp:
                unpacked = Path(tmp) / "model.weights.h5"
                with archive.open("model.weights.h5") as raw, open(unpacked, "wb") as out:
                    shutil.copyfileobj(raw, out, 1 << 20)
                with h5py.File(unpacked, "r") as h5:
                    layers = _h5_from_config(h5, config)
    except WeightsError as err:
        if shown in str(err):
            raise
        raise WeightsError(f"'{shown}': {err}") from None
    except (OSError, zipfile.BadZipFile, KeyError, ValueError, RuntimeError) as err:
        raise WeightsError(f"cannot read '{shown}' as a .keras file: {err}") from None
    if layers is not None:
        graph = _config_graph(config, {layer.name: tuple(layer.shapes) for layer in layers})
        return SourceWeights(shown, layers, graph=graph)
    return _model_source(shown, _load_model(path, shown))


def _load_model(path: Path, shown: str):
    from . import guard
    from .keras_import import import_keras

    guard.check_keras_file(path)  # sized from its config before Keras allocates it
    keras = import_keras()
    try:
        return keras.saving.load_model(path, compile=False, safe_mode=True)
    except Exception as err:  # Keras raises many kinds for a file it cannot rebuild
        raise WeightsError(
            f"cannot load the model in '{shown}': Keras could not rebuild it from its "
            f"config ({type(err).__name__}: {first_line(err)})"
        ) from None


def _read_h5_file(path: Path, shown: str) -> SourceWeights:
    h5py = _h5py()
    try:
        with h5py.File(path, "r") as h5:
            legacy = _h5_legacy(h5)
            if legacy is not None:
                return SourceWeights(shown, legacy)
            if _child(h5, "layers", "group") is None:
                raise WeightsError("no 'layers' group: not a Keras weights file")
            return SourceWeights(shown, _h5_by_path(h5), ordered=False)
    except WeightsError as err:
        raise WeightsError(f"'{shown}': {err}") from None
    except (OSError, KeyError, ValueError, RuntimeError) as err:
        raise WeightsError(f"cannot read '{shown}' as a .weights.h5 file: {err}") from None


def application_names() -> list[str]:
    """The model functions of ``keras.applications`` (``ResNet50``, ``MobileNetV2``...)."""
    from .keras_import import import_keras

    apps = import_keras().applications
    return sorted(n for n in dir(apps) if n[:1].isupper() and callable(getattr(apps, n)))


def _read_application(name: str) -> SourceWeights:
    names = application_names()
    if name not in names:
        raise WeightsError(
            f"unknown Keras application '{name}'{did_you_mean(name, names)}; "
            f"keras.applications has: {', '.join(names)}"
        )
    from .keras_import import import_keras

    fn = getattr(import_keras().applications, name)
    timeout = socket.getdefaulttimeout()
    try:
        if timeout is None:  # a dead network should fail, not hang
            socket.setdefaulttimeout(_DOWNLOAD_TIMEOUT_S)
        with contextlib.redirect_stdout(sys.stderr):  # Keras's progress bar; keep --json clean
            model = fn(weights="imagenet")
    except Exception as err:  # get_file raises a bare Exception for URL errors
        reason = str(err).strip() or type(err).__name__
        raise WeightsError(
            f"could not download Keras's {name} weights: {reason}; this machine may be "
            "offline — pass a .keras or .weights.h5 file instead"
        ) from None
    finally:
        socket.setdefaulttimeout(timeout)
    return _model_source(f"{KERAS_PREFIX}{name}", model)


def read_weights(source: str | os.PathLike) -> SourceWeights:
    """Read the weights of ``source`` (a ``.keras``, ``.weights.h5`` or Keras 2 ``.h5``
    file, told apart by content, or ``keras:NAME``); :class:`WeightsError` if it is
    missing, unreadable or not Keras weights."""
    if isinstance(source, SourceWeights):
        return source
    text = os.fspath(source)
    if isinstance(text, str) and text.startswith(KERAS_PREFIX):
        return _read_application(text[len(KERAS_PREFIX) :])
    path = Path(text)
    shown = str(text)
    if not path.exists():
        raise WeightsError(f"weights file '{shown}' does not exist")
    if path.is_dir():
        raise WeightsError(f"weights file '{shown}' is a directory, expected a file")
    try:
        with open(path, "rb") as f:
            head = f.read(8)
    except OSError as err:
        raise WeightsError(f"cannot read weights file '{shown}': {err.strerror}") from None
    if head.startswith(_ZIP_MAGIC):
        return _read_keras_file(path, shown)
    if head == _H5_MAGIC:
        from . import guard

        guard.check_weights_file(path)  # sized from its metadata before an array is read
        return _read_h5_file(path, shown)
    raise WeightsError(
        f"weights file '{shown}' is neither a .keras file (zip) nor a .weights.h5 file (HDF5)"
    )


# ----------------------------------------------------------------------------- matching


_BY_PATH = (
    "(a .weights.h5 file keeps no architecture, so it is matched as Keras matches it: the "
    "k-th layer of each class in the file with the k-th layer of that class in the model; "
    "a .keras file of the same weights is matched by its graph)"
)


def _fmt_shapes(shapes) -> str:
    return "[" + ", ".join(str(tuple(s)) for s in shapes) + "]"


def _pair(src: SourceWeights, model, targets: list[_Target]) -> list[tuple[SourceLayer, _Target]]:
    if src.ordered:
        if len(src.layers) != len(targets):
            raise WeightsError(
                f"weights do not fit: {src.what} has {len(src.layers)} weight-bearing "
                f"layers, the model {len(targets)}"
            )
        graph = None
        if src.graph is not None:
            graph = _model_graph(model, {t.name: tuple(t.shapes) for t in targets})
        by_name = {layer.name: layer for layer in src.layers}
        target_by_name = {t.name: t for t in targets}
        if graph is None or set(src.graph) != set(by_name) or set(graph) != set(target_by_name):
            return list(zip(src.layers, targets, strict=True))  # model.layers order
        pairs = [(by_name[s], target_by_name[t]) for s, t in zip(src.graph, graph, strict=True)]
        order = {id(t): i for i, t in enumerate(targets)}
        return sorted(pairs, key=lambda pair: order[id(pair[1])])  # report in model order
    by_path = {layer.path: layer for layer in src.layers}
    missing = [t for t in targets if t.path not in by_path]
    extra = sorted(set(by_path) - {t.path for t in targets})
    if missing or extra:
        lines = [
            f"weights do not fit: {src.what} has {len(src.layers)} weight-bearing layers, "
            f"the model {len(targets)}"
            if len(src.layers) != len(targets)
            else "weights do not fit: the layers of the file and the model differ"
        ]
        lines.append(f"  {_BY_PATH}")
        for t in missing[:5]:
            lines.append(f"  the model's layer '{t.name}' ({t.kind}, {t.path}) is not in the file")
        for path in extra[:5]:
            lines.append(f"  the file's layer '{by_path[path].name}' ({path}) is not in the model")
        hidden = max(0, len(missing) - 5) + max(0, len(extra) - 5)
        if hidden:
            lines.append(f"  ... and {hidden} more")
        raise WeightsError("\n".join(lines))
    return [(by_path[t.path], t) for t in targets]


def load_weights(
    model, source: str | os.PathLike | SourceWeights, skip: Iterable[str] = ()
) -> WeightsReport:
    """Assign the weights of ``source`` (see :func:`read_weights`, or a
    :class:`SourceWeights` it returned) to ``model``, layer by layer, after checking
    that every layer's variable count and shapes fit; :class:`WeightsError` naming
    both layers and both shape lists if one does not (then nothing is assigned).  The
    model's layers named in ``skip`` are paired as the others, but neither checked nor
    assigned: they keep their values (``train.init_skip``)."""
    src = read_weights(source)
    skip = set(skip)
    pairs = _pair(src, model, _targets(model))
    skipped = tuple(t.name for _, t in pairs if t.name in skip)
    pairs = [(s, t) for s, t in pairs if t.name not in skip]
    bad = [(s, t) for s, t in pairs if s.shapes != t.shapes]
    if bad:
        s, t = bad[0]
        more = ""
        if len(bad) > 1:
            names = ", ".join(f"'{t.name}'" for _, t in bad)
            more = f" (and {len(bad) - 1} more layers); the model's layers that do not fit: {names}"
        hint = "" if src.ordered else f"\n  {_BY_PATH}"
        raise WeightsMismatch(
            f"weights do not fit: source layer '{s.name}' has shapes {_fmt_shapes(s.shapes)}, "
            f"target layer '{t.name}' has {_fmt_shapes(t.shapes)}{more}{hint}",
            [t.name for _, t in bad],
        )
    for s, t in pairs:
        t.layer.load_own_variables({str(i): a for i, a in enumerate(s.arrays)})
    return WeightsReport(
        source=src.source,
        layers=len(pairs),
        tensors=sum(len(s.arrays) for s, _ in pairs),
        params=sum(int(a.size) for s, _ in pairs for a in s.arrays),
        skipped=skipped,
    )
