"""The twelve ``keras.applications`` models written as specs (``specs/applications/``).

For each: ``check`` counts exactly Keras's parameters without building anything; the
compiled model has Keras's layer sequence (the classes of its weight-bearing layers,
in order, and every weight shape); and ``build --weights`` of a ``.keras`` file saved
from Keras's own model (``weights=None``, batch norms given non-trivial statistics)
computes Keras's function: the outputs and the classifier's inputs agree to a
relative difference of 1e-4 on the same image.  That last check is left out for
VGG19 alone, whose layer kinds VGG16's full check covers (``NUMERIC_TWIN``).
"""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from doctext import docs_text

from nincompile.api import compile_spec
from nincompile.cli import main
from nincompile.codegen.render import render_source

ROOT = Path(__file__).resolve().parent.parent
APPLICATIONS = ROOT / "specs" / "applications"

#: spec name -> the keras.applications function it writes
KERAS = {
    "vgg16": "VGG16",
    "vgg19": "VGG19",
    "resnet50": "ResNet50",
    "resnet50v2": "ResNet50V2",
    "mobilenet": "MobileNet",
    "mobilenetv2": "MobileNetV2",
    "densenet121": "DenseNet121",
    "xception": "Xception",
    "inceptionv3": "InceptionV3",
    "efficientnetb0": "EfficientNetB0",
    "convnexttiny": "ConvNeXtTiny",
    "mobilenetv3small": "MobileNetV3Small",
}


#: applications whose ``--weights`` outputs are not computed: another application,
#: checked in full, is built of the same IR node kinds (VGG19 is VGG16 with three more
#: convolutions; saving, reading and running its 143 M weights was a fifth of this
#: module's time).  Their counts, layer sequence and emitted module are still checked.
NUMERIC_TWIN = {"vgg19": "vgg16"}
#: Keras's models that several tests compare with: built once for the module (the
#: others are not kept: all of them together would hold gigabytes)
SHARED = {("EfficientNetB0", ()), ("MobileNetV3Small", ())}


@pytest.fixture(scope="module")
def reference():
    """``reference(function, **kwargs)``: ``keras.applications.<function>(weights=None,
    **kwargs)``; the ones in ``SHARED`` built once.  A test may change the weights of
    what it receives (each test that reads weights sets them first), not its layers."""
    import keras

    kept = {}

    def get(function: str, **kwargs):
        key = (function, tuple(sorted(kwargs.items())))
        if key in kept:
            return kept[key]
        model = getattr(keras.applications, function)(weights=None, **kwargs)
        if key in SHARED:
            kept[key] = model
        return model

    yield get
    kept.clear()


def weight_layers(model) -> list:
    """The layers with weights, in order; a nested model's (ConvNeXt's stem) in its
    place."""
    import keras

    out = []
    for layer in model.layers:
        if isinstance(layer, keras.Model):
            out.extend(weight_layers(layer))
        elif layer.weights:
            out.append(layer)
    return out


def _counts(model) -> dict[str, int]:
    trainable = sum(int(np.prod(w.shape)) for w in model.trainable_weights)
    frozen = sum(int(np.prod(w.shape)) for w in model.non_trainable_weights)
    return {"params": trainable + frozen, "trainable": trainable, "non_trainable": frozen}


def test_every_application_has_a_spec():
    assert {p.stem for p in APPLICATIONS.glob("*.yaml")} >= set(KERAS)


def _randomise(model, rng) -> None:
    """Non-trivial weights everywhere, batch norm statistics included, so that a
    model computing another function cannot agree by accident."""
    for layer in weight_layers(model):
        values = []
        for w in layer.weights:
            name = w.path.rsplit("/", 1)[-1]
            shape = tuple(w.shape)
            if name in ("moving_variance", "variance"):
                v = rng.uniform(0.5, 1.5, shape)
            elif name in ("moving_mean", "mean"):
                v = rng.normal(0.0, 0.1, shape)
            elif name == "count":
                v = np.zeros(shape)
            elif name in ("gamma",):
                v = rng.uniform(0.8, 1.2, shape)
            elif name in ("beta", "bias"):
                v = rng.normal(0.0, 0.05, shape)
            else:
                v = np.asarray(w.numpy())  # kernels: Keras's own initialisation
            values.append(v.astype("float32"))
        layer.set_weights(values)
        if type(layer).__name__ == "Normalization":
            layer.finalize_state()  # it computes with mean and variance made from these


def _classifier_input(model):
    """A model giving ``model``'s output and the input of its last weight-bearing
    layer (the classifier's input)."""
    import keras

    last = weight_layers(model)[-1]
    return keras.Model(model.inputs, [model.output, last.input])


def _kinds(name: str) -> set[str]:
    return {x.kind for x in compile_spec(APPLICATIONS / f"{name}.yaml").graph.layers()}


def test_numeric_twins_have_no_kind_of_their_own():
    """An application left out of the numeric check has no IR node kind that its
    twin, checked in full, does not have."""
    for name, twin in NUMERIC_TWIN.items():
        assert twin not in NUMERIC_TWIN
        assert _kinds(name) <= _kinds(twin), name


@pytest.mark.parametrize("name", sorted(KERAS))
def test_application_equals_keras(name, tmp_path, reference):
    """``expect:`` equals Keras's counts and the IR's counts equal them (no
    TensorFlow involved in counting); the weight-bearing layers match class for class
    and shape for shape, in order; the emitted module builds the same model; Keras's
    weights, loaded from a ``.keras`` file, make our model compute Keras's function
    (but for ``NUMERIC_TWIN``), and the emitted module's the same outputs."""
    from nincompile.api import build, load_weights

    ref = reference(KERAS[name])
    compiled = compile_spec(APPLICATIONS / f"{name}.yaml")
    counts = _counts(ref)
    expect = compiled.spec.expect
    assert (expect.params, expect.trainable, expect.non_trainable) == tuple(counts.values())
    p = compiled.graph.params
    assert (p.total, p.trainable, p.non_trainable) == tuple(counts.values())

    ours = build(compiled)
    ref_layers, our_layers = weight_layers(ref), weight_layers(ours)
    assert [type(x).__name__ for x in our_layers] == [type(x).__name__ for x in ref_layers]
    for a, b in zip(ref_layers, our_layers, strict=True):
        assert [tuple(w.shape) for w in a.weights] == [tuple(w.shape) for w in b.weights], (
            a.name,
            b.name,
        )
    assert tuple(ours.output.shape) == tuple(ref.output.shape)

    # The emitted module builds the same model: layer names, classes, weight shapes
    # (and below, given the same weights, the same outputs).
    path = tmp_path / f"{name}.py"
    path.write_text(render_source(compiled.source), encoding="utf-8")
    spec = importlib.util.spec_from_file_location(f"generated_app_{name}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    gen = module.build_model()
    assert [(x.name, type(x).__name__) for x in gen.layers] == [
        (x.name, type(x).__name__) for x in ours.layers
    ]
    assert [tuple(w.shape) for w in gen.weights] == [tuple(w.shape) for w in ours.weights]
    if name in NUMERIC_TWIN:
        return

    rng = np.random.default_rng(0)
    _randomise(ref, rng)
    source = tmp_path / f"{name}_keras.keras"
    ref.save(source)
    report = load_weights(ours, source)
    assert report.params == counts["params"]
    size = compiled.spec.input
    # one image: at inference every layer computes each image on its own, so a second
    # one would double the time of the three forward passes, not what they show
    x = rng.uniform(0.0, 255.0, (1, *size)).astype("float32")
    want = [np.asarray(t) for t in _classifier_input(ref)(x, training=False)]
    got = [np.asarray(t) for t in _classifier_input(ours)(x, training=False)]
    for what, a, b in zip(("output", "classifier input"), want, got, strict=True):
        assert a.shape == b.shape, what
        rel = float(np.max(np.abs(a - b)) / max(float(np.max(np.abs(a))), 1e-12))
        assert rel <= 1e-4, f"{name} {what}: relative difference {rel:.3g}"

    gen.set_weights(ours.get_weights())
    for layer in gen.layers:
        if type(layer).__name__ == "Normalization":
            layer.finalize_state()
    np.testing.assert_array_equal(np.asarray(gen(x, training=False)), got[0])


def test_build_weights_cli_writes_the_loaded_model(tmp_path, reference):
    """The command line: ``build SPEC --weights FILE`` saves a model that holds the
    file's weights (MobileNetV3Small: small, and with our every newer layer kind but
    layer scale)."""
    import keras

    ref = reference(KERAS["mobilenetv3small"])
    _randomise(ref, np.random.default_rng(1))
    source = tmp_path / "keras.keras"
    ref.save(source)
    spec = APPLICATIONS / "mobilenetv3small.yaml"
    result = CliRunner().invoke(
        main, ["build", str(spec), "--weights", str(source), "-o", str(tmp_path), "--json"]
    )
    assert result.exit_code == 0, result.output
    ours = keras.saving.load_model(tmp_path / "mobilenetv3small.keras", compile=False)
    for a, b in zip(weight_layers(ref), weight_layers(ours), strict=True):
        for u, v in zip(a.get_weights(), b.get_weights(), strict=True):
            np.testing.assert_array_equal(u, v)


#: (family spec, member) -> the Keras function and arguments it equals
FAMILY_MEMBERS = {
    ("mobilenet_family", "mobilenet_a050"): ("MobileNet", {"alpha": 0.5}),
    ("mobilenet_family", "mobilenet_a075"): ("MobileNet", {"alpha": 0.75}),
    ("efficientnet", "efficientnet_b0"): ("EfficientNetB0", {}),
    ("efficientnet", "efficientnet_b1"): ("EfficientNetB1", {}),
    ("efficientnet", "efficientnet_b2"): ("EfficientNetB2", {}),
}


@pytest.mark.parametrize("family, member", sorted(FAMILY_MEMBERS))
def test_family_member_equals_keras(family, member, reference):
    """A family member (one spec, its ``params`` set per member) has Keras's counts,
    in its own ``expect:`` and in the IR, and Keras's weight-layer sequence."""
    from nincompile.api import compile_all
    from nincompile.keras_builder import build_model

    compiled = {c.name: c for c in compile_all(APPLICATIONS / f"{family}.yaml")}[member]
    function, kwargs = FAMILY_MEMBERS[(family, member)]
    ref = reference(function, **kwargs)
    counts = _counts(ref)
    expect = compiled.spec.expect
    assert (expect.params, expect.trainable, expect.non_trainable) == tuple(counts.values())
    p = compiled.graph.params
    assert (p.total, p.trainable, p.non_trainable) == tuple(counts.values())
    ours = build_model(compiled.graph)
    assert [
        (type(x).__name__, [tuple(w.shape) for w in x.weights]) for x in weight_layers(ours)
    ] == [(type(x).__name__, [tuple(w.shape) for w in x.weights]) for x in weight_layers(ref)]


@pytest.mark.parametrize("name", sorted(KERAS))
def test_each_application_builds_on_its_own(name, tmp_path):
    """``nincompile check specs/applications/<name>.yaml`` gives one model named
    ``<name>`` whose counts match ``expect:`` (families live in files of their own)."""
    result = CliRunner().invoke(main, ["check", str(APPLICATIONS / f"{name}.yaml"), "--json"])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.output)
    assert summary["name"] == name and summary["ok"]


def test_readme_table_holds_the_compiled_counts():
    """The README's table of Keras's models: one row per application, its figures
    those the compiler counts."""
    readme = docs_text()
    rows = {
        line.split("|")[1].strip(" `"): [c.strip() for c in line.split("|")[2:-1]]
        for line in readme.splitlines()
        if line.startswith("| `") and "keras.applications." in line
    }
    assert set(rows) == set(KERAS)
    for name, cells in rows.items():
        c = compile_spec(APPLICATIONS / f"{name}.yaml")
        p = c.graph.params
        h, w, ch = c.spec.input
        assert cells == [
            f"`keras.applications.{KERAS[name]}`",
            f"{h}×{w}×{ch}",
            f"{p.total:,}",
            f"{p.trainable:,}",
            f"{p.non_trainable:,}",
            f"{c.graph.macs / 1e9:.3f} G",
        ], name
