"""`nincompile emit`: generated modules are current, ruff-clean, and build the same
model as the compiler (layer names, configs, weights, outputs) for every spec."""

import ast
import dataclasses
import hashlib
import importlib.util
import os
import random
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from click.testing import CliRunner

from nincompile import api
from nincompile.cli import main
from nincompile.codegen import HANDLERS, CodegenError, render_source, render_specs
from nincompile.codegen.pysrc import Atom, Call, Kw, List, layout, py_lit, py_str
from nincompile.ir import NODE_KINDS
from nincompile.spec import load_spec, parse_spec
from nincompile.spec.variants import variant_names

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

ROOT = Path(__file__).resolve().parent.parent
SPECS = sorted((ROOT / "specs").glob("*.yaml"))
# (spec, variant index, model name): a spec with `variants:` makes one module per variant
MODELS = [
    (spec, k, name)
    for spec in SPECS
    for k, name in enumerate(variant_names(load_spec(spec)))
]  # fmt: skip
GENERATED = ROOT / "generated"

# Every block feature in one small model: parameters as activation, batch norm, bias,
# padding, initializer, weight decay, kernel, pool size; `when` on layers, parts and
# nested calls; nested and recursive blocks; repeats inside blocks; names that clash
# with Python names; blocks a helper cannot express (written inline); a dense block.
ZOO = r"""
name: zoo
description: "Every block feature: parameters as activation, BN, bias, padding; when."
input: [16, 16, 3]
defaults: {padding: same, activation: relu, batch_norm: true, weight_decay: 1.0e-4}
blocks:
  unit:
    description: One conv stage whose every option is a parameter.
    params: {ch: int, act: relu, bn: true, wd: 0.0, bias: true, pad: same,
             init: glorot_uniform, k: 3, drop: null}
    stages:
      - {conv: [$ch, $k], activation: $act, batch_norm: $bn, weight_decay: $wd,
         bias: $bias, padding: $pad, initializer: $init, dropout: $drop}
  res:
    params: {ch: int, strides: 1, project: false, act: relu, extra: false}
    branches:
      - - {name: a, block: unit, with: {ch: $ch, act: $act, k: 3}}
        - {name: b, conv: [$ch, [3, 1]], strides: $strides, activation: null}
        - {name: c, dropout: 0.1, when: $extra}
      - - {name: proj, conv: [$ch, 1], strides: $strides, activation: null, when: $project}
      - []
    merge: add
    then: [{activation: $act}, {layer: bn, when: $extra}]
  layers:
    params: {x: int, name: 2, layers: 3, branch1: true}
    branches:
      - [{conv: [$x, 1]}]
      - [{conv: [$layers, 1], when: $branch1},
         {pool: {max: $name, strides: 1, padding: same}}]
    merge: concat
  t1:
    params: {ch: 4}
    stages:
      - {repeat: 2, with: {c: {each: [$ch, 6]}},
         stages: [{conv: [$c, 3]}, {conv: [$c, 1], activation: null}]}
      - {block: unit, repeat: 2, with: {ch: {first: $ch, rest: 8}, act: {each: [tanh, linear]}}}
  deep:
    params: {more: true, tag: "it's a \"tag\" \\ ok"}
    stages:
      - {conv: [4, 3]}
      - {block: deep, with: {more: false}, when: $more}
  scaled:
    params: {ch: 4}
    stages:
      - {block: unit, repeat: 2, with: {ch: {start: $ch, mul: 2}}}
  counted:
    params: {n: 2}
    stages:
      - {repeat: $n, stages: [{conv: [4, 1]}]}
  wide:
    params: {n: 1}
    branches:
      - [{repeat: $n, stages: [{conv: [4, 1]}]}]
      - []
    merge: concat
  outer:
    stages: [{block: counted}, {block: unit, with: {ch: 4}}]
  dense_blk:
    params: {units: int, bn: false, act: relu}
    stages:
      - {dense: $units, batch_norm: $bn, activation: $act, dropout: 0.2, order: bda}
stages:
  - {conv: [8, 3], strides: [2, 1], pool: {avg: 2}}
  - {block: res, with: {ch: 8}}
  - {block: res, with: {ch: 8, strides: 1, project: true, act: elu, extra: true}}
  - {block: layers, with: {x: 4}}
  - {block: layers, with: {x: 4, branch1: false, layers: 5}, name: named_call}
  - {block: t1}
  - {block: deep}
  - {block: scaled, repeat: 2}
  - {block: counted}
  - {conv: [4, 1], when: false}
  - {block: wide}
  - {block: outer}
  - {block: unit, with: {ch: 4, act: linear, bn: false, wd: 0.001, bias: false,
                         pad: valid, init: he_normal, k: 1}}
head:
  - gmp
  - {block: dense_blk, with: {units: 12, bn: true}}
  - {dense: 10, batch_norm: true, dropout: 0.3, order: bda, weight_decay: 0.01, bias: false}
  - softmax
train:
  optimizer: sgd
  learning_rate: 0.05
  momentum: 0.9
  nesterov: true
  weight_decay: 0.0005
  metrics: [accuracy, top_5_accuracy]
"""
ZOO_HELPERS = {"unit", "res", "layers_block", "t1_block", "deep", "dense_blk"}
ZOO_INLINE = {"scaled", "counted", "wide", "outer"}


def _ruff() -> str | None:
    beside = Path(sys.executable).parent / "ruff"
    return str(beside) if beside.exists() else shutil.which("ruff")


def _import(path: Path):
    spec = importlib.util.spec_from_file_location(f"generated_{path.stem}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def zoo(tmp_path_factory):
    """The zoo spec and its generated module in a temporary folder."""
    folder = tmp_path_factory.mktemp("zoo")
    spec = folder / "zoo.yaml"
    spec.write_text(textwrap.dedent(ZOO), encoding="utf-8")
    (generated,), errors = render_specs([str(spec)], folder)
    assert not errors
    generated.target.write_text(generated.text, encoding="utf-8")
    return spec, generated.target


@pytest.fixture(scope="module", params=[*MODELS, "zoo"], ids=lambda p: p if p == "zoo" else p[2])
def pair(request):
    """(compiled, compiler's model, generated module, generated model) per model."""
    if request.param == "zoo":
        spec, module_path = request.getfixturevalue("zoo")
        compiled = api.compile_spec(spec)
    else:
        spec, k, name = request.param
        module_path = GENERATED / f"{name}.py"
        compiled = api.compile_all(spec)[k]
    assert module_path.is_file(), f"{module_path} is missing: run `nincompile emit`"
    module = _import(module_path)
    return compiled, api.build(compiled), module, module.build_model()


# ------------------------------------------------------------------ freshness


@pytest.mark.parametrize("spec", SPECS, ids=lambda p: p.stem)
def test_generated_file_is_current(spec):
    done, errors = render_specs([str(spec)], GENERATED)
    assert not errors
    assert [g.name for g in done] == [name for s, _, name in MODELS if s == spec]
    for generated in done:
        assert generated.target.read_text(encoding="utf-8") == generated.text, (
            f"{generated.target} is stale: run `nincompile emit`"
        )


def test_header_names_spec_and_hash():
    for spec, _, name in MODELS:
        doc = ast.get_docstring(ast.parse((GENERATED / f"{name}.py").read_text("utf-8")))
        sha = hashlib.sha256(spec.read_text(encoding="utf-8").encode()).hexdigest()
        assert f"specs/{spec.name}" in doc and sha in doc
        assert "generated by nincompile" in doc and "do not edit" in doc


# ---------------------------------------------------------------- equivalence


def test_same_layers_weight_shapes_and_counts(pair):
    from nincompile.keras_builder import count_params

    compiled, model, _, gen = pair
    assert [layer.name for layer in gen.layers] == [layer.name for layer in model.layers]
    assert gen.name == model.name == compiled.name
    for layer in model.layers:
        ours = gen.get_layer(layer.name)
        assert type(ours) is type(layer), layer.name
        assert [w.shape for w in ours.weights] == [w.shape for w in layer.weights], layer.name
    assert count_params(gen) == count_params(model) == compiled.counts()


def test_same_config_and_wiring(pair):
    """Every layer's config (filters, strides, padding, regularizer, ...) and inbound
    connections are those of the compiler's model."""
    _, model, _, gen = pair
    assert gen.get_config() == model.get_config()


def test_same_outputs_with_the_same_weights(pair):
    import numpy as np

    compiled, model, _, gen = pair
    for layer in model.layers:
        gen.get_layer(layer.name).set_weights(layer.get_weights())
    x = np.random.default_rng(0).normal(size=(2, *compiled.spec.input)).astype("float32")
    want = np.asarray(model(x, training=False))
    got = np.asarray(gen(x, training=False))
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-6)


def test_blocks_are_helper_functions(pair):
    compiled, _, module, _ = pair
    tree = ast.parse(Path(module.__file__).read_text(encoding="utf-8"))
    functions = {f.name for f in tree.body if isinstance(f, ast.FunctionDef)}
    used = {node.scope[0].block for node in compiled.graph.nodes if node.scope}
    if compiled.name == "zoo":
        assert ZOO_HELPERS <= functions and not functions & ZOO_INLINE
        return
    assert used <= functions  # every real spec's blocks are helpers, none inline
    assert "written out layer by layer" not in Path(module.__file__).read_text("utf-8")


def test_compile_model_applies_train_section(pair):
    compiled, _, module, gen = pair
    train = compiled.spec.train
    if train is None:
        assert not hasattr(module, "compile_model")
        return
    module.compile_model(gen, steps_per_epoch=10)
    opt = gen.optimizer
    names = {"sgd": "SGD", "adam": "Adam", "adamw": "AdamW", "rmsprop": "RMSprop"}
    assert type(opt).__name__ == names.get(train.optimizer, "Nadam")
    assert float(opt.learning_rate) == pytest.approx(train.learning_rate)
    if train.momentum is not None:
        assert opt.momentum == pytest.approx(train.momentum)
    if train.nesterov is not None:
        assert opt.nesterov == train.nesterov
    if train.weight_decay is not None:
        assert opt.weight_decay == pytest.approx(train.weight_decay)
    assert type(gen.loss).__name__.lower() == train.loss.replace("_", "")
    assert gen.loss.get_config().get("from_logits", False) == train.from_logits


def test_zoo_metrics_evaluate(zoo):
    import numpy as np

    module = _import(zoo[1])
    gen = module.compile_model(module.build_model(), steps_per_epoch=1)
    x = np.zeros((2, 16, 16, 3), "float32")
    result = gen.evaluate(x, np.array([1, 2]), verbose=0, return_dict=True)
    assert {"accuracy", "top_5_accuracy"} <= set(result)


@pytest.mark.parametrize(
    "train",
    [
        "{optimizer: adamw, learning_rate: 0.002, weight_decay: 0.01}",
        "{optimizer: rmsprop, loss: categorical_crossentropy, from_logits: true}",
        "{optimizer: nadam, loss: binary_crossentropy, metrics: []}",
        "{optimizer: adam, loss: mean_squared_error, metrics: [top_5_accuracy]}",
    ],
)
def test_compile_model_for_each_optimizer_and_loss(tmp_path, train):
    spec = tmp_path / "opt.yaml"
    spec.write_text(f"name: opt\ninput: [4, 4, 1]\nstages: [gap]\ntrain: {train}\n", "utf-8")
    (generated,), errors = render_specs([str(spec)], tmp_path)
    assert not errors
    generated.target.write_text(generated.text, encoding="utf-8")
    module = _import(generated.target)
    model = module.compile_model(module.build_model(), steps_per_epoch=1)
    t = api.compile_spec(spec).spec.train
    assert type(model.optimizer).__name__.lower() == t.optimizer
    assert float(model.optimizer.learning_rate) == pytest.approx(t.learning_rate)
    assert type(model.loss).__name__.lower() == t.loss.replace("_", "")
    if t.weight_decay is not None:
        assert model.optimizer.weight_decay == pytest.approx(t.weight_decay)


# ---------------------------------------------------------------------- style


def test_generated_files_pass_ruff(zoo):
    ruff = _ruff()
    if ruff is None:
        pytest.skip("ruff is not installed")
    files = [str(GENERATED / f"{name}.py") for _, _, name in MODELS] + [str(zoo[1])]
    for args in (
        ["format", "--check", "--isolated", "--no-force-exclude"],
        ["check", "--isolated", "--no-force-exclude"],
        ["check", "--isolated", "--no-force-exclude", "--select", "E,F,W,I,B,UP"],
    ):
        result = subprocess.run([ruff, *args, *files], capture_output=True, text=True)
        assert result.returncode == 0, result.stdout + result.stderr


def test_layout_equals_ruff_format():
    """Random statements of the shapes the generator writes, laid out by us, are
    already what ruff formats them to."""
    ruff = _ruff()
    if ruff is None:
        pytest.skip("ruff is not installed")
    rnd = random.Random(3)
    source = []
    for _ in range(300):
        indent = rnd.choice([1, 2, 3])
        args = [Atom(str(rnd.choice([3, 64, "(3, 1)"]))) for _ in range(rnd.randint(0, 2))]
        for _ in range(rnd.randint(1, 6)):
            key = rnd.choice(["padding", "strides", "kernel_regularizer", "use_bias", "name"])
            value = py_str("a" * rnd.randint(1, 80)) if key == "name" else '"same"'
            args.append(Kw(key, Atom(value)))
        call = Call(Atom(rnd.choice(["layers.Conv2D", "inception"])), tuple(args))
        kind = rnd.random()
        if kind < 0.35:
            expr = Call(call, (Atom(rnd.choice(["x", "branch1"])),))
        elif kind < 0.6:
            expr = Call(call, (List(tuple(Atom(f"b{i}") for i in range(rnd.randint(2, 30)))),))
        elif kind < 0.8:
            expr = call
        else:
            expr = List(tuple(Atom(py_str("m" * rnd.randint(1, 30))) for _ in range(4)))
        prefix = rnd.choice(["x = ", "branch1 = ", "return ", ""])
        lines = layout(prefix, expr, "", indent)
        source += [f"{'    ' * i}if a:" for i in range(indent)] + lines
    for _ in range(60):  # helper signatures
        params = tuple(Atom("p" * rnd.randint(1, 20)) for _ in range(rnd.randint(1, 8)))
        lines = layout("def ", Call(Atom("f" * rnd.randint(1, 60)), params), ":", 0)
        source += ["", "", *lines, "    pass"]
    text = "\n".join(source) + "\n"
    result = subprocess.run(
        [ruff, "format", "--isolated", "-"], input=text, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout == text


@pytest.mark.parametrize(
    "value",
    ["plain", "it's", 'say "hi"', "both ' and \"", "two \"\" one '", "back\\slash",
     "tab\tnew\nline\r", "nul\x00", "\u2028sep", "ünï", 1e20, 1e-5, 1e-4, 5e-4, 1.2345e-4, 0.001,
     -0.5, 3, True, None,
     (3, 1), [1, "a"], {"k": 1}],
)  # fmt: skip
def test_literals_round_trip_and_are_ruff_formatted(value):
    text = py_lit(value)
    assert ast.literal_eval(text) == value
    ruff = _ruff()
    if ruff is not None:
        source = f"v = {text}\n"
        result = subprocess.run(
            [ruff, "format", "--isolated", "-"], input=source, capture_output=True, text=True
        )
        assert result.stdout == source


def test_helper_that_does_not_reproduce_the_ir_is_an_error(monkeypatch):
    """The renderer runs each helper on every call's arguments and compares the nodes
    with the compiled IR before writing it; a difference is a loud error."""
    from nincompile.codegen import render

    source = parse_spec(textwrap.dedent(ZOO), "zoo.yaml")
    assert "def res(" in render_source(source)
    monkeypatch.setattr(render, "expand", lambda *args: ([], "nothing"))
    with pytest.raises(CodegenError, match="does not reproduce"):
        render_source(source)


def test_every_layer_kind_has_a_handler():
    assert set(NODE_KINDS) - {"input"} <= set(HANDLERS)


def test_handlers_leave_out_the_keras_defaults_of_the_table():
    from nincompile.codegen.layers import keras_call
    from nincompile.codegen.pysrc import flat
    from nincompile.codegen.render import ConcreteValues
    from nincompile.ir import LAYER_KINDS
    from nincompile.ir import nodes as n

    conv = LAYER_KINDS["conv2d"]
    node = n.Conv2D(
        name="c", filters=8, kernel=3, strides=1, padding="same", bias=True,
        initializer="glorot_uniform", weight_decay=0.0,
    )  # fmt: skip
    uses = set()
    assert flat(keras_call(conv, node, ConcreteValues(uses))) == (
        'layers.Conv2D(8, 3, padding="same", name="c")'
    )
    node = dataclasses.replace(node, strides=(1, 1), weight_decay=1e-4, bias=False)
    assert flat(keras_call(conv, node, ConcreteValues(uses))) == (
        'layers.Conv2D(8, 3, strides=(1, 1), padding="same", use_bias=False, '
        'kernel_regularizer=regularizers.L2(1e-4), name="c")'
    )
    assert uses == {"regularizers"}
    pool = n.Pool2D(name="p", mode="avg", size=2, strides=None, padding="valid")
    assert flat(HANDLERS["pool2d"](pool, ConcreteValues(uses))) == (
        'layers.AveragePooling2D(2, name="p")'
    )
    inp = n.Input(name="input", shape=(4,))
    want = 'keras.Input(shape=(4,), name="input")'
    assert flat(HANDLERS["input"](inp, ConcreteValues(uses))) == want


def test_a_block_part_left_out_of_its_order_is_written_inline():
    """The tracer applies the lowering's own check for order letters: a batch norm
    given by a parameter but missing from the order cannot become a helper."""
    source = parse_spec(
        textwrap.dedent(
            """\
            name: m
            input: [8, 8, 3]
            blocks:
              u:
                params: {bn: false}
                stages: [{conv: [4, 3], batch_norm: $bn, activation: relu, order: ap}]
            stages: [{block: u}]
            """
        ),
        "m.yaml",
    )
    text = render_source(source)
    assert "def u(" not in text
    assert "written out layer by layer (order 'ap' leaves out 'b'" in text


# ------------------------------------------------------------------------ CLI


@pytest.fixture
def project(tmp_path, monkeypatch):
    """A copy of specs/ and generated/ in a temporary folder, made the current folder."""
    shutil.copytree(ROOT / "specs", tmp_path / "specs")
    shutil.copytree(GENERATED, tmp_path / "generated")
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_emit_check_passes_then_finds_stale_and_missing(project):
    runner = CliRunner()
    result = runner.invoke(main, ["emit", "--check"])
    assert result.exit_code == 0, result.output
    names = sorted(p.stem for p in (project / "generated").glob("*.py"))
    stale, missing, fine = names[0], names[1], names[2]
    (project / "generated" / f"{stale}.py").write_text("# edited by hand\n", encoding="utf-8")
    (project / "generated" / f"{missing}.py").unlink()
    result = runner.invoke(main, ["emit", "--check"])
    assert result.exit_code == 1
    assert f"generated/{stale}.py: stale" in result.output
    assert f"generated/{missing}.py: missing" in result.output
    assert f"generated/{fine}.py" not in result.output
    assert not (project / "generated" / f"{missing}.py").exists()  # --check writes nothing
    # A changed spec makes its file stale too.
    spec = project / "specs" / f"{fine}.yaml"
    spec.write_text(spec.read_text(encoding="utf-8") + "\n# changed\n", encoding="utf-8")
    result = runner.invoke(main, ["emit", "--check", str(spec)])
    assert result.exit_code == 1 and f"generated/{fine}.py: stale" in result.output
    # A file no spec generates any more is reported when checking all specs.
    (project / "generated" / "retired_model.py").write_text("x = 1\n", encoding="utf-8")
    result = runner.invoke(main, ["emit", "--check"])
    assert result.exit_code == 1 and "generated/retired_model.py: orphan" in result.output
    (project / "generated" / "retired_model.py").unlink()
    # emit repairs everything, and the check passes again.
    result = runner.invoke(main, ["emit"])
    assert result.exit_code == 0, result.output
    assert runner.invoke(main, ["emit", "--check"]).exit_code == 0


def test_emit_writes_parseable_modules_and_creates_default_folder(project):
    shutil.rmtree(project / "generated")
    spec = "specs/nin_badm.yaml"
    result = CliRunner().invoke(main, ["emit", spec])
    assert result.exit_code == 0, result.output
    target = project / "generated" / "nin_badm.py"
    tree = ast.parse(target.read_text(encoding="utf-8"))
    functions = [f.name for f in tree.body if isinstance(f, ast.FunctionDef)]
    assert "build_model" in functions
    assert "wrote generated/nin_badm.py" in result.output
    again = CliRunner().invoke(main, ["emit", spec])
    assert again.exit_code == 0 and "unchanged" in again.output
    assert target.read_text(encoding="utf-8") == (GENERATED / "nin_badm.py").read_text("utf-8")


def test_emit_to_missing_folder_is_a_clean_error(project):
    result = CliRunner().invoke(main, ["emit", "specs/nin.yaml", "-o", "nowhere"])
    assert result.exit_code == 1
    assert "output folder 'nowhere' does not exist" in result.output
    assert "Traceback" not in result.output and not (project / "nowhere").exists()


def test_emit_reports_bad_spec_and_writes_the_others(project, tmp_path):
    bad = project / "bad.yaml"
    bad.write_text("name: bad\ninput: [8, 8, 3]\nstages: [{conv: [4, 9]}]\n", "utf-8")
    out = project / "out"
    out.mkdir()
    result = CliRunner().invoke(main, ["emit", str(bad), "specs/lenet5.yaml", "-o", str(out)])
    assert result.exit_code == 1
    assert "bad.yaml" in result.output and "Traceback" not in result.output
    assert sorted(p.name for p in out.iterdir()) == ["lenet5.py"]


def test_emit_refuses_a_model_over_the_resource_limits(project, monkeypatch):
    """emit applies the limits build and check apply: no module of a model that could
    not be built here (a module of 3e13 parameters ran out of memory when imported)."""
    big = project / "big.yaml"
    big.write_text(
        "name: big\ninput: [8, 8, 3]\nstages: [{depthwise: 3, depth_multiplier: 1000000}]\n",
        "utf-8",
    )
    out = project / "out"
    out.mkdir()
    monkeypatch.setenv("NINCOMPILE_MAX_PARAMS", "1000000")
    result = CliRunner().invoke(main, ["emit", str(big), "specs/lenet5.yaml", "-o", str(out)])
    assert result.exit_code == 1
    assert "big is too large: 30,000,000 parameters, over the limit of 1,000,000" in result.output
    assert "Traceback" not in result.output
    assert sorted(p.name for p in out.iterdir()) == ["lenet5.py"]
    monkeypatch.setenv("NINCOMPILE_MAX_PARAMS", "100000000")
    result = CliRunner().invoke(main, ["emit", str(big), "-o", str(out)])
    assert result.exit_code == 0, result.output
    assert (out / "big.py").is_file()


def test_emit_check_needs_no_tensorflow():
    code = (
        "import sys\n"
        "from nincompile.codegen import render_specs\n"
        f"done, errors = render_specs({[str(s) for s in SPECS]!r}, {str(GENERATED)!r})\n"
        "assert done and not errors\n"
        "assert 'tensorflow' not in sys.modules and 'keras' not in sys.modules\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


COMPUTED = r"""
name: computed
params: {alpha: 0.5}
input: [16, 16, 3]
defaults: {padding: same, batch_norm: true, activation: relu6}
blocks:
  ir:
    description: Inverted residual whose widths, padding and shortcut are computed.
    params: {cin: int, t: 6, c: int, s: 1}
    branches:
      - - {name: expand, conv: ["divisible($cin * $t * $alpha, 8)", 1]}
        - {name: pad, pad: [[0, 1], [0, 1]], when: "$s == 2"}
        - {name: dw, depthwise: 3, strides: $s, padding: "if($s == 2, 'valid', 'same')"}
        - {name: project, conv: ["ceil($c * $alpha)", 1], activation: null}
      - - {name: skip, conv: ["ceil($c * $alpha)", 1], strides: $s, when: "$s > 1 or $cin != $c"}
    merge: add
stages:
  - {block: ir, with: {cin: 3, c: 16, s: 2}}
  - {block: ir, with: {cin: 16, c: 16}}
  - {block: ir, with: {cin: 16, t: 4, c: 24, s: 1}}
head: [gap]
"""


def test_computed_values_are_written_as_python_in_helpers(tmp_path):
    """A block whose values are expressions of its parameters (and of the spec's own
    params) becomes a helper that computes them (``make_divisible``, ``math.ceil``,
    conditions), and that helper builds exactly the compiled model."""
    from nincompile.api import compile_source
    from nincompile.keras_builder import build_model

    source = parse_spec(textwrap.dedent(COMPUTED), "computed.yaml")
    text = render_source(source)
    assert "def ir(x, cin, t, c, s, name):" in text
    assert "written out layer by layer" not in text
    assert "def make_divisible(" in text and "import math" in text
    assert "make_divisible(cin * t * 0.5, 8)" in text and "math.ceil(c * 0.5)" in text
    assert 'padding="valid" if s == 2 else "same"' in text and "if s > 1 or cin != c:" in text
    path = tmp_path / "computed.py"
    path.write_text(text, encoding="utf-8")
    gen = _import(path).build_model()
    model = build_model(compile_source(source).graph)
    assert [(x.name, type(x).__name__, [w.shape for w in x.weights]) for x in gen.layers] == [
        (x.name, type(x).__name__, [w.shape for w in x.weights]) for x in model.layers
    ]
