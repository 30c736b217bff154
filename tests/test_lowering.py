"""Blocks, repeats, variables, defaults and the CBAPD order, on the IR alone."""

import numpy as np
import pytest

from nincompile.errors import SpecError
from nincompile.ir import lower
from nincompile.spec import parse_spec
from nincompile.spec import schema as s


def graph(text):
    return lower(parse_spec(text, "t.yaml"))


def kinds_and_names(g):
    return [(n.kind, n.name) for n in g.nodes[1:]]


@pytest.mark.parametrize(
    "order, expected",
    [
        ("bamd", ["conv2d", "batch_norm", "activation", "pool2d", "dropout"]),
        ("badm", ["conv2d", "batch_norm", "activation", "dropout", "pool2d"]),
        ("dbam", ["conv2d", "dropout", "batch_norm", "activation", "pool2d"]),
        ("bdam", ["conv2d", "batch_norm", "dropout", "activation", "pool2d"]),
        ("pdab", ["conv2d", "pool2d", "dropout", "activation", "batch_norm"]),
    ],
)
def test_order_is_one_word(order, expected):
    g = graph(
        f"""name: m
input: [8, 8, 3]
defaults: {{batch_norm: true, activation: relu, order: {order}}}
stages:
  - {{conv: [4, 3], pool: {{max: 2}}, dropout: 0.5}}
"""
    )
    assert [n.kind for n in g.nodes[1:]] == expected


def test_stage_overrides_defaults_and_null_removes_activation():
    g = graph(
        """name: m
input: [8, 8, 3]
defaults: {padding: same, activation: relu, batch_norm: true, weight_decay: 0.001}
stages:
  - {conv: [4, 3]}
  - {conv: [4, 3], padding: valid, activation: null, batch_norm: false, weight_decay: 0}
"""
    )
    assert kinds_and_names(g) == [
        ("conv2d", "stage1_conv"),
        ("batch_norm", "stage1_bn"),
        ("activation", "stage1_relu"),
        ("conv2d", "stage2_conv"),
    ]
    first, second = g.nodes[1], g.nodes[4]
    assert (first.padding, first.weight_decay) == ("same", 0.001)
    assert (second.padding, second.weight_decay) == ("valid", 0)
    assert g.shapes["stage2_conv"] == (6, 6, 4)


def test_repeat_progressions_and_names():
    g = graph(
        """name: m
input: [32, 32, 3]
defaults: {padding: same}
stages:
  - repeat: 3
    with: {ch: {start: 8, mul: 2}, s: {first: 2, rest: 1}, k: {each: [3, 5, 1]}}
    stages:
      - {conv: [$ch, $k], strides: $s}
"""
    )
    convs = [n for n in g.nodes if n.kind == "conv2d"]
    assert [(c.name, c.filters, c.strides, c.kernel) for c in convs] == [
        ("stage1_1_conv", 8, 2, 3),
        ("stage1_2_conv", 16, 1, 5),
        ("stage1_3_conv", 32, 1, 1),
    ]


def test_block_when_and_scope():
    g = graph(
        """name: m
input: [16, 16, 4]
defaults: {padding: same}
blocks:
  res:
    params: {ch: int, strides: 1, project: false}
    branches:
      - [{conv: [$ch, 3], strides: $strides}]
      - [{name: proj, conv: [$ch, 1], strides: $strides, when: $project}]
    merge: add
    then: [relu]
stages:
  - block: res
    repeat: 2
    with: {ch: 8, strides: {first: 2, rest: 1}, project: {first: true, rest: false}}
"""
    )
    assert kinds_and_names(g) == [
        ("conv2d", "stage1_1_b1_conv"),
        ("conv2d", "stage1_1_b2_proj_conv"),
        ("add", "stage1_1_add"),
        ("activation", "stage1_1_relu"),
        ("conv2d", "stage1_2_b1_conv"),
        ("add", "stage1_2_add"),
        ("activation", "stage1_2_relu"),
    ]
    assert g.nodes[-2].inputs == ("stage1_2_b1_conv", "stage1_1_relu")  # identity shortcut
    scope = g.nodes[1].scope[0]
    assert (scope.block, scope.prefix) == ("res", "stage1_1")
    assert dict(scope.args) == {"ch": 8, "strides": 2, "project": True}


def test_block_bodies_see_only_their_parameters():
    with pytest.raises(SpecError, match="unknown variable '\\$ch'"):
        graph(
            """name: m
input: [8, 8, 3]
blocks:
  b:
    params: {k: 3}
    stages: [{conv: [$ch, $k]}]
stages:
  - repeat: 1
    with: {ch: 4}
    stages: [{block: b}]
"""
        )


def test_variables_outside_blocks_are_errors():
    with pytest.raises(SpecError, match="unknown variable '\\$x'.*variables in scope: none"):
        graph("name: m\ninput: [8, 8, 3]\nstages: [{conv: [$x, 3]}]\n")


def test_duplicate_layer_names_are_errors():
    with pytest.raises(SpecError, match="layer name 'a_conv' is used twice"):
        graph(
            "name: m\ninput: [8, 8, 3]\n"
            "stages: [{name: a, conv: [4, 1]}, {name: a, conv: [4, 1]}]\n"
        )


def test_head_names_and_dense_order():
    g = graph(
        """name: m
input: [4, 4, 2]
stages: [flatten]
head:
  - {dense: 8, activation: relu, batch_norm: true, dropout: 0.1, order: dba}
  - {dense: 2, activation: softmax}
"""
    )
    assert kinds_and_names(g) == [
        ("flatten", "stage1_flatten"),
        ("dense", "head1_dense"),
        ("dropout", "head1_dropout"),
        ("batch_norm", "head1_bn"),
        ("activation", "head1_relu"),
        ("dense", "head2_dense"),
        ("activation", "head2_softmax"),
    ]


def test_dense_order_rejects_pooling_letter():
    with pytest.raises(SpecError, match="not allowed here"):
        graph("name: m\ninput: [4, 4, 2]\nstages: [flatten, {dense: 3, order: bapd}]\n")


def test_spec_imports_no_tensorflow():
    import subprocess
    import sys

    code = (
        "import sys, nincompile.api as a, glob\n"
        "[a.compile_spec(p) for p in glob.glob('specs/*.yaml')]\n"
        "bad = [m for m in ('tensorflow', 'keras', 'jax', 'torch') if m in sys.modules]\n"
        "assert not bad, bad\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=_root())


def _root():
    from pathlib import Path

    return Path(__file__).resolve().parent.parent


def test_linear_activation_in_a_stage_adds_no_layer():
    g = graph(
        "name: m\ninput: [8, 8, 3]\nstages: [{conv: [4, 3], activation: linear}]\n"
        "head: [flatten, {dense: 3, activation: linear}]\n"
    )
    assert [n.kind for n in g.nodes[1:]] == ["conv2d", "flatten", "dense"]


def test_every_item_kind_has_one_handler():
    """The lowering's dispatch table covers every item model of the schema."""
    from nincompile.ir import Lowerer
    from nincompile.spec import schema

    lowerer = Lowerer(parse_spec("name: m\ninput: [8, 8, 3]\nstages: [flatten]\n", "t.yaml"))
    assert set(lowerer.item_handlers) == set(schema.ITEM_KINDS.values())


def test_a_shape_error_is_a_spec_shape_error_and_stops_lowering():
    from nincompile.errors import SpecShapeError
    from nincompile.ir import Lowerer

    src = parse_spec("name: m\ninput: [8, 8, 3]\nstages: [flatten]\n", "t.yaml")
    assert isinstance(Lowerer(src).fail("too big", (), shape=True), SpecShapeError)
    assert not isinstance(Lowerer(src).fail("unknown", ()), SpecShapeError)
    # Reference errors are all reported; after a shape error, later stages are not.
    with pytest.raises(SpecError) as info:
        graph("name: m\ninput: [8, 8, 3]\nstages: [{conv: [$a, 3]}, {conv: [$b, 3]}]\n")
    assert len(info.value.problems) == 2
    with pytest.raises(SpecError) as info:
        graph("name: m\ninput: [8, 8, 3]\nstages: [{dense: 3}, {conv: [$b, 3]}]\n")
    assert len(info.value.problems) == 1 and "flat input" in str(info.value)


def test_pool_padding_defaults_to_the_keras_default():
    from nincompile.ir import LAYER_KINDS

    g = graph("name: m\ninput: [8, 8, 3]\nstages: [{pool: {max: 2}}]\n")
    assert g.nodes[1].padding == LAYER_KINDS["pool2d"].default("padding") == "valid"


# ------------------------------------------------------------ the newer language


def test_last_per_repeat_value_and_repeat_zero():
    g = graph(
        "name: t\ninput: [16, 16, 3]\nstages:\n"
        "  - {repeat: 3, with: {s: {last: 2, rest: 1}}, stages: [{conv: [4, 1], strides: $s}]}\n"
        "  - {repeat: 0, stages: [{conv: [8, 1]}]}\n"
        "  - {block: b, repeat: 0}\n"
        "blocks: {b: {stages: [{conv: [8, 1]}]}}\n"
    )
    convs = [n for n in g.nodes if n.kind == "conv2d"]
    assert [c.strides for c in convs] == [1, 1, 2]
    assert g.shapes[g.output.name] == (8, 8, 4)


def test_kernel_of_variables_and_declared_parameter_types():
    g = graph(
        "name: t\ninput: [16, 16, 3]\n"
        "blocks:\n"
        "  cbr:\n"
        "    params: {f: int, k: {type: size, default: 1}}\n"
        "    stages: [{conv: [$f, $k], padding: same}]\n"
        "  pair:\n"
        "    params: {f: int, kh: 1, kw: 7}\n"
        "    stages: [{conv: [$f, [$kh, $kw]], padding: same}]\n"
        "stages:\n"
        "  - {block: cbr, with: {f: 4}}\n"
        "  - {block: cbr, with: {f: 4, k: [1, 7]}}\n"
        "  - {block: pair, with: {f: 4}}\n"
    )
    assert [n.kernel for n in g.nodes if n.kind == "conv2d"] == [1, (1, 7), (1, 7)]
    with pytest.raises(SpecError, match=r"expects an integer or \[height, width\] \(type size\)"):
        graph(
            "name: t\ninput: [16, 16, 3]\n"
            "blocks: {cbr: {params: {k: {type: size, default: 1}}, stages: [{conv: [4, $k]}]}}\n"
            "stages: [{block: cbr, with: {k: [1, 2, 3]}}]\n"
        )


def test_expressions_and_spec_params():
    g = graph(
        "name: t\nparams: {alpha: 0.5, res: 32}\ninput: [$res, '$res // 2', 3]\n"
        "stages:\n"
        "  - {repeat: 2, with: {f: {each: [16, 40]}},\n"
        "     stages: [{conv: ['divisible($f * $alpha, 8)', 1], when: '$f > 8 and $alpha < 1'}]}\n"
        "  - {conv: ['max(1, round($alpha * 3))', 3],\n"
        "     padding: \"if($res > 16, 'same', 'valid')\"}\n"
    )
    assert g.input.shape == (32, 16, 3)
    assert [n.filters for n in g.nodes if n.kind == "conv2d"] == [8, 24, 2]
    assert [n.padding for n in g.nodes if n.kind == "conv2d"][-1] == "same"


def test_expression_errors_are_located():
    with pytest.raises(SpecError) as info:
        graph("name: t\ninput: [8, 8, 3]\nstages: [{conv: ['$f * 4', 1]}]\n")
    (p,) = info.value.problems
    assert p.line == 3 and "unknown variable $f" in p.message and "column 1" in p.message
    with pytest.raises(SpecError) as info:
        graph("name: t\ninput: [8, 8, 3]\nstages: [{conv: ['$a * (3 +', 1]}]\n")
    assert "at column 10" in str(info.value) and "stages[0].conv.filters" in str(info.value)


def test_a_hint_fits_how_an_add_differs():
    def add_error(gate: str) -> str:
        with pytest.raises(SpecError) as info:
            graph(
                "name: t\ninput: [8, 8, 3]\n"
                f"blocks: {{g: {{branches: [[], [{gate}]], merge: add}}}}\n"
                "stages: [{block: g}]\n"
            )
        return str(info.value)

    gate = add_error("{global_pool: avg, keepdims: true}, {conv: [3, 1]}")
    assert "use 'merge: multiply'" in gate and "projection" not in gate
    assert "1x1 projection to the same channels" in add_error("{conv: [6, 1]}")
    assert "same strides" in add_error("{conv: [3, 1], strides: 2}")


def test_every_keras_activation_is_accepted():
    """ACTIVATIONS is every name keras.activations knows but threshold (which needs
    arguments) and glu (Keras's Activation layer gets its output shape wrong), and each
    builds."""
    from keras.src import activations

    from nincompile.spec.schema import ACTIVATIONS

    assert set(ACTIVATIONS) == set(activations.ALL_OBJECTS_DICT) - {"threshold", "glu"}
    for name in ACTIVATIONS:
        assert callable(activations.get(name))


def test_initializer_with_arguments_reaches_keras():
    from nincompile.keras_builder import build_model

    g = graph(
        "name: t\ninput: [8, 8, 3]\nstages:\n"
        "  - {conv: [4, 3], initializer: {variance_scaling: {scale: 2.0, mode: fan_out,\n"
        "      distribution: truncated_normal}}}\n"
        "  - {separable: [4, 3], initializer: he_normal}\n"
    )
    conv, sep = (layer for layer in build_model(g).layers if layer.weights)
    config = conv.kernel_initializer.get_config()
    assert type(conv.kernel_initializer).__name__ == "VarianceScaling"
    assert (config["scale"], config["mode"], config["distribution"]) == (
        2.0,
        "fan_out",
        "truncated_normal",
    )
    assert type(sep.pointwise_initializer).__name__ == "HeNormal"
    with pytest.raises(SpecError, match="variance_scaling has no argument 'mod'"):
        graph(
            "name: t\ninput: [8, 8, 3]\n"
            "stages: [{conv: [4, 3], initializer: {variance_scaling: {mod: fan_out}}}]\n"
        )


#: per initializer argument: values check accepts, values it refuses
INITIALIZER_VALUES = {
    "seed": ([0, 7, 2**31 - 1], [-1, 2**31, 1.5, "abc", True]),
    "scale": ([0.5, 2], [0, -1, float("inf"), "x"]),
    "mode": (["fan_in", "fan_out", "fan_avg"], ["bogus", 1]),
    "distribution": (["truncated_normal", "untruncated_normal", "normal", "uniform"], ["x"]),
    "mean": ([0, -1.5], [float("inf"), float("nan"), "abc"]),
    "stddev": ([0.01, 1], [0, -1, float("inf")]),
    "minval": ([-1], [float("-inf"), "abc"]),
    "maxval": ([1], [float("inf")]),
    "value": ([0, 0.5, -3], ["abc", float("nan")]),
    "gain": ([1.0, -2], [float("inf"), "abc"]),
}


@pytest.mark.parametrize("name", sorted(s.INITIALIZER_ARGS))
def test_initializer_argument_values_are_checked_where_keras_would_fail(name):
    """Every argument of every initializer: the values check accepts build the Keras
    initializer and draw finite weights; the ones it refuses are refused with the
    argument named (build printed Keras's traceback for them)."""
    from nincompile.keras_builder import build_model

    assert set(s.INITIALIZER_ARG_VALUES) == set(INITIALIZER_VALUES)
    assert set(INITIALIZER_VALUES) == {a for args in s.INITIALIZER_ARGS.values() for a in args}
    for arg in s.INITIALIZER_ARGS[name]:
        good, bad = INITIALIZER_VALUES[arg]
        for value in good:
            if name == "random_uniform" and arg == "minval":
                value = min(value, 0.0)
            g = graph(
                "name: t\ninput: [4, 4, 2]\n"
                f"stages: [{{conv: [3, 3], initializer: {{{name}: {{{arg}: {value!r}}}}}}}]\n"
            )
            (layer,) = (la for la in build_model(g).layers if la.weights)
            assert np.isfinite(np.asarray(layer.kernel)).all(), (name, arg, value)
        for value in bad:
            text = repr(value).replace("inf", ".inf").replace("nan", ".nan")
            with pytest.raises(SpecError, match=f"for {name}.{arg}; received"):
                graph(
                    "name: t\ninput: [4, 4, 2]\n"
                    f"stages: [{{conv: [3, 3], initializer: {{{name}: {{{arg}: {text}}}}}}}]\n"
                )
