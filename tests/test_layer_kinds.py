"""One test per layer kind, and the rule that a layer kind is complete everywhere.

Each IR node kind must have: an entry in ``LAYER_KINDS`` (its Keras class and
arguments), from which the Keras builders and the code generator's handlers are
derived, and a spec form that lowers to it (exercised in KIND_SPECS below).  Adding a
node class without the rest fails ``test_every_kind_is_complete``."""

import dataclasses
import inspect

import pytest
from conftest import block_library
from doctext import docs_text

from nincompile.ir import LAYER_KINDS, NODE_KINDS, REQUIRED, lower
from nincompile.keras_builder import BUILDERS, build_model, count_params, keras_object
from nincompile.spec import parse_spec

# kind -> (input shape, stage items) whose last layer is of that kind
KIND_SPECS = {
    "input": ([8, 8, 3], ["flatten"]),
    "conv2d": ([9, 7, 3], ["{conv: [5, [3, 2]], strides: [2, 1], bias: false}"]),
    "dense": ([6], ["{dense: 4, weight_decay: 0.01}"]),
    "batch_norm": ([8, 8, 3], ["bn"]),
    "activation": ([8, 8, 3], ["tanh"]),
    "pool2d": ([9, 9, 3], ["{pool: {avg: 3, strides: 2, padding: same}}"]),
    "global_pool": ([8, 8, 3], ["gmp"]),
    "flatten": ([4, 5, 3], ["flatten"]),
    "dropout": ([8, 8, 3], ["{dropout: 0.3}"]),
    "concat": ([8, 8, 3], ["{block: two, with: {}}"]),
    "add": ([8, 8, 3], ["{block: res, with: {}}"]),
    "multiply": ([8, 8, 6], ["{block: se, with: {}}"]),
    "depthwise_conv2d": (
        [9, 9, 3],
        ["{depthwise: 3, depth_multiplier: 2, strides: 2, padding: same, dilation: 1}"],
    ),
    "separable_conv2d": ([9, 9, 4], ["{separable: [6, 3], depth_multiplier: 2, bias: false}"]),
    "conv2d_transpose": ([5, 5, 4], ["{conv_transpose: [3, 3], strides: 2}"]),
    "zero_pad": ([7, 7, 3], ["{pad: [[0, 1], [2, 3]]}"]),
    "layer_norm": ([4, 4, 6], ["{layer_norm: {epsilon: 1.0e-6}}"]),
    "layer_scale": ([4, 4, 6], ["{layer_scale: 1.0e-6}"]),
    "drop_path": ([4, 4, 6], ["{drop_path: 0.2}"]),
    "reshape": ([4, 4, 6], ["gap", "{reshape: [1, 1, -1]}"]),
    "upsample": ([4, 5, 2], ["{upsample: [2, 3], interpolation: bilinear}"]),
    "rescaling": ([4, 4, 3], ["{rescale: 0.0078431, offset: -1}"]),
    "normalization": ([4, 4, 3], ["{normalize: {}}"]),
}
BLOCKS = block_library(res=3, se=6)


def graph_for(kind):
    shape, items = KIND_SPECS[kind]
    if len(shape) == 1:  # dense needs a flat input: start from an image and flatten
        shape, items = [1, 1, shape[0]], ["flatten", *items]
    text = f"name: t_{kind}\ninput: {shape}\nstages: [{', '.join(items)}]\n{BLOCKS}"
    return lower(parse_spec(text))


def test_every_kind_is_complete():
    from nincompile.codegen import HANDLERS  # code generation: one handler per kind

    assert set(NODE_KINDS) == set(LAYER_KINDS), "layer kind table entry missing"
    assert set(NODE_KINDS) == set(BUILDERS), "Keras builder missing"
    assert set(NODE_KINDS) - {"input"} <= set(HANDLERS), "codegen handler missing"
    assert set(NODE_KINDS) == set(HANDLERS), "codegen handler missing"
    assert set(NODE_KINDS) == set(KIND_SPECS), "spec form (test case) missing"
    for kind, spec in LAYER_KINDS.items():
        assert spec.kind == kind
        fields = {f.name for f in dataclasses.fields(NODE_KINDS[kind])}
        assert {a.field for a in spec.args if a.field is not None} <= fields, kind
        if not isinstance(spec.keras, str):
            assert "mode" in fields, kind  # the Keras class is chosen by the node's mode


def test_every_item_kind_is_complete():
    """Each entry of the item registry has a schema class, a lowering handler, a line
    for the README's table, and a test case here (ITEM_SPECS); the tables derived from
    the registry hold every kind."""
    from nincompile.ir.lower import Lowerer
    from nincompile.spec import schema

    lowerer = Lowerer(parse_spec("name: t\ninput: [4, 4, 1]\nstages: [flatten]\n"))
    assert set(lowerer.item_handlers) == {k.model for k in schema.ITEMS.values()}
    assert set(schema.ITEM_KINDS) == set(schema.ITEMS)
    assert schema.STAGE_TAGS >= set(schema.ITEMS)
    assert set(ITEM_SPECS) == set(schema.ITEMS), "item kind test case missing"
    readme = docs_text()
    for key, kind in schema.ITEMS.items():
        assert callable(getattr(lowerer, kind.lower)), key
        assert kind.about in readme, f"README's item table misses '{key}'"
        item = parse_spec(
            f"name: t\ninput: [8, 8, 4]\nstages: [{ITEM_SPECS[key]}]\n{BLOCKS}"
        ).spec.stages[-1]
        assert schema.stage_kind(item) == key


#: item key -> one item of that kind (on an 8x8x4 input)
ITEM_SPECS = {
    "block": "{block: two, with: {}}",
    "repeat": "{repeat: 2, stages: [bn]}",
    "conv": "{conv: [4, 3], groups: 2}",
    "depthwise": "{depthwise: 3}",
    "separable": "{separable: [4, 3]}",
    "conv_transpose": "{conv_transpose: [4, 3]}",
    "dense": "{dense: 4, pointwise: true}",
    "pool": "{pool: {max: 2}}",
    "global_pool": "{global_pool: max, keepdims: true}",
    "pad": "{pad: 1}",
    "bn": "{bn: {epsilon: 1.001e-5, scale: false}}",
    "layer_norm": "{layer_norm: {}}",
    "layer_scale": "{layer_scale: 0.1}",
    "drop_path": "{drop_path: 0.1}",
    "dropout": "{dropout: 0.1}",
    "activation": "{activation: hard_swish}",
    "reshape": "{reshape: [-1]}",
    "upsample": "{upsample: 2}",
    "rescale": "{rescale: 2.0}",
    "normalize": "{normalize: {mean: [1, 2, 3, 4], variance: [1, 1, 2, 2]}}",
    "layer": "ln",
}


@pytest.mark.parametrize("key", sorted(ITEM_SPECS))
def test_item_kind_counts_equal_keras(key):
    """Every item kind, compiled: Keras's shapes and counts equal ours."""
    text = f"name: t_{key}\ninput: [8, 8, 4]\nstages: [{ITEM_SPECS[key]}]\n{BLOCKS}"
    graph = lower(parse_spec(text))
    model = build_model(graph)
    for layer in model.layers:
        assert tuple(layer.output.shape[1:]) == graph.shapes[layer.name], layer.name
    p = graph.params
    assert count_params(model)["total"] == p.total
    assert count_params(model)["trainable"] == p.trainable


def _keras_paths(spec):
    return [spec.keras] if isinstance(spec.keras, str) else list(spec.keras.values())


@pytest.mark.parametrize("kind", sorted(LAYER_KINDS))
def test_table_names_keras_arguments_and_their_defaults(kind):
    """Every argument is one the Keras callable takes, and a default the generated
    code relies on (to leave the argument out) is Keras's own."""
    spec = LAYER_KINDS[kind]
    for path in _keras_paths(spec):
        params = inspect.signature(keras_object(path)).parameters
        for arg in spec.args:
            assert arg.keras in params, (path, arg.keras)
            if arg.default is not REQUIRED:
                keras_default = params[arg.keras].default
                # Keras writes a 2-D default as a pair: strides=(1, 1)
                assert keras_default in (arg.default, (arg.default, arg.default)), (path, arg)
            if arg.wrap is not None:
                assert callable(keras_object(arg.wrap))


@pytest.mark.parametrize("kind", sorted(KIND_SPECS))
def test_kind_shape_and_params_equal_keras(kind):
    graph = graph_for(kind)
    if kind != "input":
        assert graph.output.kind == kind
    model = build_model(graph)
    for layer in model.layers:
        assert tuple(layer.output.shape[1:]) == graph.shapes[layer.name], layer.name
    p = graph.params
    assert count_params(model) == {
        "total": p.total,
        "trainable": p.trainable,
        "non_trainable": p.non_trainable,
    }


def test_conv_params_and_macs():
    graph = graph_for("conv2d")
    (info,) = [x for x in graph.layers() if x.kind == "conv2d"]
    assert info.output_shape == (4, 6, 5)  # (9-3)//2+1, (7-2)//1+1
    assert info.params.total == 3 * 2 * 3 * 5  # no bias
    assert info.macs == 4 * 6 * 3 * 2 * 3 * 5


def test_batch_norm_is_half_non_trainable():
    info = graph_for("batch_norm").layers()[-1]
    assert (info.params.trainable, info.params.non_trainable) == (6, 6)


def test_dense_counts_bias():
    info = graph_for("dense").layers()[-1]
    assert info.params.total == 6 * 4 + 4 and info.macs == 24


def test_concat_sums_channels_and_same_pooling_rounds_up():
    g = graph_for("concat")
    assert g.shapes[g.output.name] == (8, 8, 10)
    g = graph_for("pool2d")
    assert g.shapes[g.output.name] == (5, 5, 3)
