"""``build --weights`` and :mod:`nincompile.weights`: weights from a .keras file, a
.weights.h5 file or ``keras:NAME`` land in the right variables, or a clean error says
why not and nothing is assigned or written."""

import json
import zipfile

import numpy as np
import pytest
from click.testing import CliRunner

from nincompile import api
from nincompile.cli import main
from nincompile.errors import WeightsError
from nincompile.weights import WeightsReport, load_weights, read_weights

keras = pytest.importorskip("keras")

# conv + BN + ReLU + max pool, global average pooling, dense softmax: 3 weight-bearing
# layers (Conv2D kernel and bias; BN gamma, beta, moving mean, moving variance; Dense)
SPEC = """\
name: small
input: [8, 8, 3]
defaults: {padding: same, activation: relu, batch_norm: true}
stages:
  - {conv: [4, 3], pool: {max: 2}}
head: [gap, {dense: 3, activation: softmax}]
expect: {params: 143, trainable: 135, non_trainable: 8}
"""


def reference(filters=4, units=3, extra_dense=False, seed=0):
    """A hand-written Keras model of the spec's architecture (other layer names), with
    random weights (positive moving variances)."""
    layers = [
        keras.Input((8, 8, 3)),
        keras.layers.Conv2D(filters, 3, padding="same", name="conv1_conv"),
        keras.layers.BatchNormalization(name="conv1_bn"),
        keras.layers.Activation("relu"),
        keras.layers.MaxPooling2D(2),
        keras.layers.GlobalAveragePooling2D(),
    ]
    if extra_dense:
        layers.append(keras.layers.Dense(5, name="fc0"))
    layers.append(keras.layers.Dense(units, activation="softmax", name="predictions"))
    model = keras.Sequential(layers)
    rng = np.random.default_rng(seed)
    for v in model.weights:
        v.assign(rng.uniform(0.5, 1.5, v.shape).astype("float32"))
    return model


def weights_of(model):
    return [np.asarray(w) for w in model.get_weights()]


def assert_same_model(got, want):
    assert len(got.weights) == len(want.weights)
    for a, b in zip(weights_of(got), weights_of(want), strict=True):
        np.testing.assert_array_equal(a, b)
    shape = [d or 64 for d in want.input_shape[1:]]  # a size for dimensions left open
    x = np.random.default_rng(1).normal(size=(2, *shape)).astype("float32")
    np.testing.assert_allclose(
        np.asarray(got(x, training=False)), np.asarray(want(x, training=False)), rtol=1e-5
    )


@pytest.fixture
def runner():
    return CliRunner()


@pytest.fixture
def spec(spec_file):
    return spec_file(SPEC)


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    """The reference model saved as .keras, .weights.h5 and legacy .h5."""
    folder = tmp_path_factory.mktemp("weights")
    model = reference()
    model.save(folder / "ref.keras")
    model.save_weights(folder / "ref.weights.h5")
    return model, folder


@pytest.mark.parametrize("name", ["ref.keras", "ref.weights.h5"])
def test_build_with_weights_loads_every_tensor(runner, spec, saved, tmp_path, name):
    ref, folder = saved
    out = tmp_path / "out"
    result = runner.invoke(
        main, ["build", str(spec), "-o", str(out), "--weights", str(folder / name)]
    )
    assert result.exit_code == 0, result.output
    assert f"small: loaded 8 tensors (143 parameters) from {folder / name}" in result.output
    assert_same_model(keras.saving.load_model(out / "small.keras"), ref)


def test_library_load_weights_reports_what_it_loaded(spec, saved):
    ref, folder = saved
    model = api.build(api.compile_spec(spec))
    names = [layer.name for layer in model.layers if layer.weights]
    assert names == ["stage1_conv", "stage1_bn", "head2_dense"]  # not the source's names
    report = api.load_weights(model, folder / "ref.keras")
    assert report == WeightsReport(str(folder / "ref.keras"), layers=3, tensors=8, params=143)
    assert_same_model(model, ref)
    bn = model.get_layer("stage1_bn")  # gamma, beta, moving mean, moving variance in order
    src = ref.get_layer("conv1_bn")
    for a, b in zip(bn.weights, src.weights, strict=True):
        assert a.name == b.name
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))


def test_json_summary_has_the_weights(runner, spec, saved):
    _, folder = saved
    source = str(folder / "ref.weights.h5")
    result = runner.invoke(main, ["build", str(spec), "--json", "--no-save", "--weights", source])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["ok"] is True
    assert summary["weights"] == {
        "source": source,
        "layers": 3,
        "tensors": 8,
        "params": 143,
        "skipped": [],
    }


def test_weights_apply_to_every_model(runner, spec_file, saved, tmp_path):
    _, folder = saved
    specs = [spec_file(SPEC, "a.yaml"), spec_file(SPEC.replace("name: small", "name: b"), "b.yaml")]
    out, source = str(tmp_path / "o"), str(folder / "ref.keras")
    result = runner.invoke(main, ["build", *map(str, specs), "-o", out, "--weights", source])
    assert result.exit_code == 0, result.output
    assert result.output.count("loaded 8 tensors") == 2
    assert sorted(p.name for p in (tmp_path / "o").iterdir()) == ["b.keras", "small.keras"]


@pytest.mark.parametrize("suffix", [".keras", ".weights.h5"])
def test_shape_mismatch_names_both_layers_and_assigns_nothing(runner, spec, tmp_path, suffix):
    source = tmp_path / f"wide{suffix}"
    wide = reference(units=4)  # only the last layer differs
    wide.save(source) if suffix == ".keras" else wide.save_weights(source)
    model = api.build(api.compile_spec(spec))
    before = weights_of(model)
    with pytest.raises(WeightsError) as info:
        load_weights(model, source)
    assert str(info.value).splitlines()[0] == (
        "weights do not fit: source layer 'predictions' has shapes [(4, 4), (4,)], "
        "target layer 'head2_dense' has [(4, 3), (3,)]"
    )
    for a, b in zip(weights_of(model), before, strict=True):  # the conv and BN too
        np.testing.assert_array_equal(a, b)
    out = tmp_path / "out"
    result = runner.invoke(main, ["build", str(spec), "-o", str(out), "--weights", str(source)])
    assert result.exit_code == 1
    assert "Traceback" not in result.output
    assert "small: weights do not fit: source layer 'predictions'" in result.output
    assert "not saved, because its --weights were not loaded" in result.output
    assert not (out / "small.keras").exists()


RESIDUAL = """\
name: res
input: [8, 8, 4]
blocks:
  res:
    branches:
      - - {conv: [4, 1], activation: relu}
        - {conv: [4, 1]}
      - - {conv: [4, 1]}
    merge: add
stages:
  - {block: res}
head: [gap, {dense: 2}]
"""


def test_parallel_branches_are_paired_by_graph_not_creation_order(spec_file, tmp_path):
    """The source builds the shortcut before the main path and adds them the other way
    round; all three convs have the same shapes, so pairing by ``model.layers`` would
    swap weights silently.  Pairing by the graph gets the same outputs."""
    x = keras.Input((8, 8, 4))
    shortcut = keras.layers.Conv2D(4, 1, name="shortcut")(x)
    main = keras.layers.Conv2D(4, 1, activation="relu", name="main1")(x)
    main = keras.layers.Conv2D(4, 1, name="main2")(main)
    y = keras.layers.Add()([shortcut, main])
    source = keras.Model(x, keras.layers.Dense(2)(keras.layers.GlobalAveragePooling2D()(y)))
    rng = np.random.default_rng(4)
    for v in source.weights:
        v.assign(rng.normal(size=v.shape).astype("float32"))
    source.save(tmp_path / "res.keras")
    model = api.build(api.compile_spec(spec_file(RESIDUAL)))
    naive = keras.models.clone_model(model)
    naive.set_weights(source.get_weights())  # model.layers order: shapes fit, weights swapped
    load_weights(model, tmp_path / "res.keras")
    batch = rng.normal(size=(2, 8, 8, 4)).astype("float32")
    want = np.asarray(source(batch))
    np.testing.assert_allclose(np.asarray(model(batch)), want, rtol=1e-5, atol=1e-6)
    assert not np.allclose(np.asarray(naive(batch)), want, atol=1e-3)


def test_conv_shape_mismatch_message(spec, tmp_path):
    source = tmp_path / "c.keras"
    reference(filters=5).save(source)
    with pytest.raises(WeightsError, match=r"source layer 'conv1_conv' has shapes "
                       r"\[\(3, 3, 3, 5\), \(5,\)\], target layer 'stage1_conv' has "
                       r"\[\(3, 3, 3, 4\), \(4,\)\] \(and 2 more layers\)"):  # fmt: skip
        load_weights(api.build(api.compile_spec(spec)), source)


@pytest.mark.parametrize("suffix", [".keras", ".weights.h5"])
def test_layer_count_mismatch(spec, tmp_path, suffix):
    source = tmp_path / f"deep{suffix}"
    deep = reference(extra_dense=True)
    deep.save(source) if suffix == ".keras" else deep.save_weights(source)
    with pytest.raises(WeightsError) as info:
        load_weights(api.build(api.compile_spec(spec)), source)
    assert "the file has 4 weight-bearing layers, the model 3" in str(info.value)
    if suffix == ".weights.h5":  # matched by path: says which layer has no counterpart
        assert "the file's layer 'predictions' (layers/dense_1) is not in the model" in str(
            info.value
        )


def test_unreadable_sources_are_clean_errors(runner, spec, tmp_path):
    garbage = tmp_path / "garbage.keras"
    garbage.write_bytes(b"this is not a model" * 10)
    broken_zip = tmp_path / "broken.keras"
    broken_zip.write_bytes(b"PK\x03\x04" + b"\0" * 40)
    no_weights = tmp_path / "empty.keras"
    with zipfile.ZipFile(no_weights, "w") as z:
        z.writestr("config.json", "{}")
    broken_h5 = tmp_path / "broken.weights.h5"
    broken_h5.write_bytes(b"\x89HDF\r\n\x1a\n" + b"\0" * 40)
    cases = {
        tmp_path / "missing.keras": "does not exist",
        tmp_path: "is a directory",
        garbage: "is neither a .keras file (zip) nor a .weights.h5 file (HDF5)",
        broken_zip: "cannot read",
        no_weights: "has no model.weights.h5",
        broken_h5: "cannot read",
    }
    model = api.build(api.compile_spec(spec))
    for path, message in cases.items():
        with pytest.raises(WeightsError) as info:
            load_weights(model, path)
        assert str(path) in str(info.value) and message in str(info.value)
    out = tmp_path / "out"
    result = runner.invoke(main, ["build", str(spec), "-o", str(out), "--weights", str(garbage)])
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert "is neither a .keras file" in result.output and not out.exists()


def test_a_model_keras_cannot_rebuild_is_named_with_why(runner, spec, tmp_path):
    """A .keras whose weights are there but whose config Keras cannot rebuild (here a
    list) says so with the error's kind; it printed Keras's bare message."""
    saved = tmp_path / "saved.keras"
    api.build(api.compile_spec(spec)).save(saved)
    odd = tmp_path / "odd.keras"
    with zipfile.ZipFile(saved) as src, zipfile.ZipFile(odd, "w") as dst:
        for item in src.infolist():
            data = b"[1, 2]" if item.filename == "config.json" else src.read(item)
            dst.writestr(item, data)
    out = tmp_path / "out"
    result = runner.invoke(main, ["build", str(spec), "-o", str(out), "--weights", str(odd)])
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert f"cannot load the model in '{odd}': Keras could not rebuild it from its config (" in (
        "".join(result.output.split("\n"))
    )
    assert "not saved, because its --weights were not loaded" in result.output
    assert not out.exists()


def test_offline_keras_application_is_a_clean_error(runner, spec, monkeypatch):
    from keras.src.utils import file_utils

    def offline(*args, **kwargs):  # what get_file raises when the name does not resolve
        raise Exception("URL fetch failure on https://x/resnet50.h5: None -- [Errno -2] "
                        "Name or service not known")  # fmt: skip

    monkeypatch.setattr(file_utils, "get_file", offline)
    with pytest.raises(WeightsError) as info:
        read_weights("keras:ResNet50")
    assert str(info.value).startswith("could not download Keras's ResNet50 weights: URL fetch")
    assert "this machine may be offline — pass a .keras or .weights.h5 file instead" in str(
        info.value
    )
    result = runner.invoke(main, ["build", str(spec), "--no-save", "--weights", "keras:ResNet50"])
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert "small: could not download Keras's ResNet50 weights" in result.output


@pytest.mark.filterwarnings("ignore:`input_shape` is undefined")
def test_keras_application_weights_are_loaded(tmp_path, monkeypatch):
    """keras:NAME builds keras.applications.NAME(weights="imagenet"); the download is
    replaced by a file of the same layout (this machine is offline)."""
    from keras.src.utils import file_utils

    app = keras.applications.MobileNetV3Small(weights=None)
    rng = np.random.default_rng(5)
    for v in app.weights:
        v.assign(rng.uniform(0.5, 1.5, v.shape).astype("float32"))
    app.save(tmp_path / "imagenet.h5")  # Keras ships the ImageNet weights in Keras 2's format
    monkeypatch.setattr(file_utils, "get_file", lambda *a, **k: str(tmp_path / "imagenet.h5"))
    clone = keras.models.clone_model(app)
    report = load_weights(clone, "keras:MobileNetV3Small")
    assert report.source == "keras:MobileNetV3Small" and report.params == app.count_params()
    assert_same_model(clone, app)


def test_unknown_keras_application_suggests_the_name():
    with pytest.raises(WeightsError) as info:
        read_weights("keras:Resnet50")
    assert "unknown Keras application 'Resnet50' (did you mean 'ResNet50'?)" in str(info.value)
    assert "MobileNetV2" in str(info.value)


def test_keras_application_round_trip(tmp_path):
    """A real application (MobileNetV2: depthwise convs, BN, ZeroPadding, Add): from a
    .keras, a .weights.h5 and a legacy .h5 file into a fresh clone, outputs equal."""
    app = keras.applications.MobileNetV2(weights=None, input_shape=(96, 96, 3), alpha=0.35)
    rng = np.random.default_rng(2)
    for v in app.weights:
        v.assign(rng.uniform(0.5, 1.5, v.shape).astype("float32"))
    app.save(tmp_path / "m.keras")
    app.save_weights(tmp_path / "m.weights.h5")
    app.save(tmp_path / "m.h5")  # Keras 2's format (layer_names in order)
    for name in ("m.keras", "m.weights.h5", "m.h5"):
        clone = keras.models.clone_model(app)
        report = load_weights(clone, tmp_path / name)
        assert report.layers == sum(1 for layer in app.layers if layer.weights)
        assert report.params == app.count_params()
        assert_same_model(clone, app)


def test_nested_model_round_trip(tmp_path):
    inner = keras.Sequential(
        [keras.Input((8,)), keras.layers.Dense(4), keras.layers.BatchNormalization()]
    )
    x = keras.Input((8,))
    model = keras.Model(x, keras.layers.Dense(3)(inner(keras.layers.Dense(8)(x))))
    for v in model.weights:
        v.assign(np.random.default_rng(3).uniform(0.5, 1.5, v.shape).astype("float32"))
    model.save(tmp_path / "n.keras")
    model.save_weights(tmp_path / "n.weights.h5")
    for name in ("n.keras", "n.weights.h5"):
        clone = keras.models.clone_model(model)
        assert load_weights(clone, tmp_path / name).layers == 4
        assert_same_model(clone, model)
