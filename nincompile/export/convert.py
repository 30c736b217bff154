"""Keras to ONNX: the opsets, the traced inference graph, the op check, the metadata.

The graph is made through ``tf2onnx.convert.from_function`` on a ``tf.function``
that calls the model with ``training=False`` (see :mod:`nincompile.export.onnx_export`).
"""

from __future__ import annotations

import contextlib
import logging
import os

from ..errors import ConversionError, OptionError

#: The opsets nincompile exports to: tf2onnx 1.17 knows IR versions up to opset 18
#: (``tf2onnx.constants.OPSET_TO_IR_VERSION``); below 13 several ops we rely on
#: (Softmax on the last axis, ReduceMean with axes input) change meaning.
MIN_OPSET = 13
MAX_OPSET = 18
DEFAULT_OPSET = 17
INPUT_NAME = "input"
#: ONNX ops that would make inference random; none may reach an exported graph.
TRAINING_ONLY_OPS = frozenset(
    {"RandomUniform", "RandomUniformLike", "RandomNormal", "RandomNormalLike",
     "Multinomial", "Bernoulli", "Dropout"}
)  # fmt: skip


def check_opset(opset: int) -> int:
    if isinstance(opset, bool) or not isinstance(opset, int):
        raise OptionError(f"opset must be an integer; received {opset!r}")
    if not MIN_OPSET <= opset <= MAX_OPSET:
        raise OptionError(
            f"unsupported opset {opset}: nincompile exports opsets {MIN_OPSET}..{MAX_OPSET} "
            f"(tf2onnx's maximum is {MAX_OPSET})"
        )
    return opset


def output_name(model) -> str:
    """``probabilities`` after a softmax/sigmoid head, else ``logits``."""
    layer = model.layers[-1]
    act = getattr(layer, "activation", None)
    name = getattr(act, "__name__", "") or ""
    return "probabilities" if name in ("softmax", "sigmoid") else "logits"


def to_onnx(
    model,
    shape,
    opset: int,
    batch: int | None,
    out_name: str,
    mean,
    std,
    notes: list[str] | None = None,
):
    """The ONNX ModelProto of ``model`` in inference mode (no file written); with
    ``mean``/``std``, ``(x - mean) / std`` is folded in front of the model.  Layers
    tf2onnx cannot convert are traced as equivalent ones (:mod:`.rewrite`; a note on
    them goes to ``notes``)."""
    import numpy as np
    import tensorflow as tf

    from .rewrite import graph_model

    traced = graph_model(model, notes)
    spec = [tf.TensorSpec((batch, *shape), tf.float32, name=INPUT_NAME)]
    if mean is not None:
        mean_a, std_a = np.asarray(mean, np.float32), np.asarray(std, np.float32)

        @tf.function(input_signature=spec)
        def serve(x):
            # constants made inside the function are graph constants, not captured inputs
            return {
                out_name: traced((x - tf.constant(mean_a)) / tf.constant(std_a), training=False)
            }

    else:

        @tf.function(input_signature=spec)
        def serve(x):
            return {out_name: traced(x, training=False)}

    logger = logging.getLogger("tf2onnx")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        proto = from_function(serve, spec, opset)
    except Exception as err:
        raise ConversionError(f"tf2onnx could not convert '{model.name}': {err}") from None
    finally:
        logger.setLevel(level)
    check_ops(proto, model.name)
    extra = [i.name for i in proto.graph.input if i.name != INPUT_NAME]
    if extra:
        raise ConversionError(
            f"tf2onnx made extra graph inputs for '{model.name}' ({', '.join(extra)}): "
            "values the model captured were not frozen into the graph"
        )
    if batch is None:
        for value in (*proto.graph.input, *proto.graph.output):
            dim = value.type.tensor_type.shape.dim[0]
            dim.dim_param = "batch"
    return proto


def from_function(function, spec, opset: int):
    """``tf2onnx.convert.from_function(function, spec, opset)``, with three changes
    (tf2onnx 1.17, pinned in pyproject; its steps are called one by one):

    * **the function's own inputs only.**  tf2onnx takes every non-resource input of
      the concrete function for a graph input, the tensors it captured included: a
      ``keras.layers.Normalization`` layer keeps its mean and variance as plain
      tensors, which the freezing step turns into constants, yet tf2onnx still listed
      them as graph inputs (``Sub/y:0``, ``Sqrt/x:0``) that onnxruntime then asked to be
      fed.
    * **freezing without re-importing.**  The variables become constants as in
      tf2onnx's ``large_model`` path (no concrete function rebuilt from the frozen
      graph, which held two more copies of the weights), then Grappler optimises the
      graph as tf2onnx's default path does.
    * **no copies left behind** (:func:`_lean_conversion`): VGG16 (553 MB of weights)
      peaked above 14 GB, since 0.55 GB was kept per optimiser pass; it now peaks
      below 8 GB (Grappler), the conversion itself near 4.5 GB.
    """
    import tensorflow as tf
    from tf2onnx import tf_loader
    from tf2onnx.convert import _convert_common, tensor_names_from_structed

    func = function.get_concrete_function(*spec)
    own = len(tf.nest.flatten(func.structured_input_signature))
    input_names = [t.name for t in func.inputs[:own]]
    output_names = [t.name for t in func.outputs if t.dtype != tf.dtypes.resource]
    renames = tensor_names_from_structed(func, input_names, output_names)
    with tf.device("/cpu:0"):
        graph_def = tf_loader.convert_variables_to_constants_large_model(func)
        graph_def = tf_loader.fix_freezing_errors_part2(graph_def)
        with tf.Graph().as_default():
            graph_def = tf_loader.tf_optimize(input_names, output_names, graph_def)
        for catch_errors in (False, True):
            try:
                with _lean_conversion(catch_errors):
                    proto, _ = _convert_common(
                        graph_def,
                        name=func.name,
                        continue_on_error=True,
                        opset=opset,
                        input_names=input_names,
                        output_names=output_names,
                        tensors_to_rename=renames,
                    )
                return proto
            except Exception:
                if catch_errors:
                    raise
                # an optimiser failed: again, with tf2onnx's default of skipping it
    raise AssertionError("unreachable")


@contextlib.contextmanager
def _lean_conversion(catch_errors: bool):
    """tf2onnx's conversion without the copies it keeps of every constant.

    After each optimiser pass tf2onnx rewrites every node's ``NodeProto`` in place
    (``Node.update_proto``: the attributes deleted, then extended again).  With
    protobuf's upb runtime a message's memory is an arena freed only with the whole
    message, so each pass left one more copy of every weight (0.55 GB per pass for
    VGG16, 24 passes).  Here each update writes a fresh ``NodeProto``, and the old
    one is freed.  With ``catch_errors`` False the optimisers run without tf2onnx's
    deep copy of the whole graph before each one (made to undo a failed optimiser;
    :func:`from_function` runs again with it on if one fails).
    """
    import onnx
    import tf2onnx.graph
    from tf2onnx import constants

    node = tf2onnx.graph.Node
    original = node.update_proto

    def update_proto(self, external_tensor_storage=None):
        old = self._op
        self._op = onnx.NodeProto(
            name=old.name, op_type=old.op_type, domain=old.domain, doc_string=old.doc_string
        )
        original(self, external_tensor_storage)

    key = constants.ENV_TF2ONNX_CATCH_ERRORS
    saved = os.environ.get(key)
    node.update_proto = update_proto
    # tf2onnx 1.17 reads this variable as "catch nothing" whatever its value (it compares
    # the variable's name with "TRUE"); unset, it catches (its default)
    if catch_errors:
        os.environ.pop(key, None)
    else:
        os.environ[key] = "FALSE"
    try:
        yield
    finally:
        node.update_proto = original
        if saved is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = saved


def check_ops(proto, name: str) -> None:
    """Raise ConversionError for ops ONNX does not know or that make inference random."""
    import onnx

    unknown, random = set(), set()
    for node in proto.graph.node:
        if not onnx.defs.has(node.op_type, node.domain):
            unknown.add(node.op_type if not node.domain else f"{node.domain}.{node.op_type}")
        if node.op_type in TRAINING_ONLY_OPS:
            random.add(node.op_type)
    if unknown:
        raise ConversionError(
            f"tf2onnx could not convert '{name}': no ONNX equivalent for "
            f"{', '.join(sorted(unknown))}"
        )
    if random:
        raise ConversionError(
            f"the ONNX graph of '{name}' holds training-only ops ({', '.join(sorted(random))}); "
            "inference must be deterministic"
        )
