"""One test per layer kind, and the rule that a layer kind is complete everywhere.

Each IR node kind must have: a Keras builder, a code generator handler, and a spec
form that lowers to it (exercised in KIND_SPECS below).  Adding a node class without
the rest fails ``test_every_kind_is_complete``."""

import pytest

from nincompile.ir import NODE_KINDS, lower
from nincompile.keras_builder import BUILDERS, build_model, count_params
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
}
BLOCKS = """
blocks:
  two:
    branches: [[{conv: [4, 1]}], [{conv: [6, 3], padding: same}]]
    merge: concat
  res:
    branches: [[{conv: [3, 3], padding: same}], []]
    merge: add
"""


def graph_for(kind):
    shape, items = KIND_SPECS[kind]
    if len(shape) == 1:  # dense needs a flat input: start from an image and flatten
        shape, items = [1, 1, shape[0]], ["flatten", *items]
    text = f"name: t_{kind}\ninput: {shape}\nstages: [{', '.join(items)}]\n{BLOCKS}"
    return lower(parse_spec(text))


def test_every_kind_is_complete():
    from nincompile.codegen import HANDLERS  # code generation: one handler per kind

    assert set(NODE_KINDS) == set(BUILDERS), "Keras builder missing"
    assert set(NODE_KINDS) - {"input"} <= set(HANDLERS), "codegen handler missing"
    assert set(NODE_KINDS) == set(KIND_SPECS), "spec form (test case) missing"


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
