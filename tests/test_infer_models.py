"""evaluate, predict and export refuse a saved model that is not an image classifier
(one fixed-size NHWC input, one (batch, classes) output) with one clear error, before
any image is read (they printed tracebacks for these)."""

import pytest
from click.testing import CliRunner
from PIL import Image

from nincompile.cli import main
from nincompile.keras_import import import_keras
from nincompile.runs.model import classifier_problem

keras = import_keras()


def _flat():
    x = keras.Input((10,))
    return keras.Model(x, keras.layers.Dense(3, activation="softmax")(x))


def _any_size():
    x = keras.Input((None, None, 3))
    y = keras.layers.Dense(3, activation="softmax")(keras.layers.GlobalAveragePooling2D()(x))
    return keras.Model(x, y)


def _two_inputs():
    a, b = keras.Input((8, 8, 3)), keras.Input((8, 8, 3))
    y = keras.layers.GlobalAveragePooling2D()(keras.layers.Add()([a, b]))
    return keras.Model([a, b], keras.layers.Dense(3)(y))


def _two_outputs():
    x = keras.Input((8, 8, 3))
    y = keras.layers.GlobalAveragePooling2D()(x)
    return keras.Model(x, [keras.layers.Dense(3)(y), keras.layers.Dense(2)(y)])


def _image_output():
    x = keras.Input((8, 8, 3))
    return keras.Model(x, keras.layers.Conv2D(3, 1)(x))


MODELS = {
    "flat-input": (_flat, "expected an NHWC image input"),
    "any-size-input": (_any_size, "with fixed height, width and channels"),
    "two-inputs": (_two_inputs, "the model has 2 inputs and 1 outputs"),
    "two-outputs": (_two_outputs, "the model has 1 inputs and 2 outputs"),
    "image-output": (_image_output, "expected a (batch, classes) output; received (None, 8, 8, 3)"),
}


@pytest.fixture(scope="module")
def images(tmp_path_factory):
    root = tmp_path_factory.mktemp("images")
    for cls in ("a", "b"):
        (root / cls).mkdir()
        Image.new("RGB", (8, 8), (10, 200, 30)).save(root / cls / "0.png")
    return root


@pytest.mark.parametrize("name", MODELS)
def test_not_an_image_classifier_is_refused(name, images, tmp_path):
    make, expected = MODELS[name]
    model = make()
    assert expected in classifier_problem(model)
    path = tmp_path / f"{name}.keras"
    model.save(path)
    for args in (["predict", str(path), str(images / "a" / "0.png")],
                 ["evaluate", str(path), "--data", str(images)]):  # fmt: skip
        result = CliRunner().invoke(main, args)
        assert result.exit_code == 1, (args, result.output)
        assert isinstance(result.exception, SystemExit), result.exception
        assert f"cannot run '{path}' on images: " in result.output
        assert expected in result.output
        assert "Traceback" not in result.output
    assert not (tmp_path / f"{name}.confusion.png").exists()


def test_an_image_classifier_passes():
    x = keras.Input((8, 8, 3))
    y = keras.layers.Dense(3)(keras.layers.GlobalAveragePooling2D()(x))
    assert classifier_problem(keras.Model(x, y)) is None


def test_outputs_past_the_named_classes_are_numbered(tmp_path, images):
    """A model trained on fewer classes than it has outputs (the README's fine-tuning
    walk-through trains CIFAR's 10-way baseline on 5 classes): predict and evaluate
    name the outputs past the spec's classes by number (predict raised IndexError, and
    evaluate did when such an output won)."""
    import nincompile

    spec = tmp_path / "wide.yaml"
    spec.write_text(
        "name: wide\ninput: [8, 8, 3]\nstages: [{conv: [4, 3], padding: same}]\n"
        "head: [gap, {dense: 4, activation: softmax}]\n"
        "train: {optimizer: adam, learning_rate: 0.01, batch_size: 16, epochs: 1}\n"
        "data: {dataset: synthetic, classes: [a, b], limit: 32}\n",
        "utf-8",
    )
    run = tmp_path / "run"
    nincompile.train(spec, out=run)
    (top,) = nincompile.predict(run, images / "a" / "0.png", top=4)
    assert sorted(t["class"] for t in top["top"]) == ["2", "3", "a", "b"]
    result = nincompile.evaluate(run, images)
    assert result["classes"] == ["a", "b", "2", "3"]
    assert len(result["confusion"]) == 4 and result["images"] == 2
    # export names them alike in the ONNX metadata (it refused such a run)
    import json

    import onnx

    nincompile.export(run, tmp_path / "wide.onnx")
    meta = {p.key: p.value for p in onnx.load(tmp_path / "wide.onnx").metadata_props}
    assert json.loads(meta["classes"]) == ["a", "b", "2", "3"]


def test_evaluate_writes_the_confusion_png_beside_a_keras_file(tmp_path, images):
    x = keras.Input((8, 8, 3))
    y = keras.layers.Dense(2, activation="softmax")(keras.layers.GlobalAveragePooling2D()(x))
    path = tmp_path / "good.keras"
    keras.Model(x, y).save(path)
    result = CliRunner().invoke(main, ["evaluate", str(path), "--data", str(images)])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "good.confusion.png").is_file()


def test_a_run_trained_on_folder_names_keeps_them(tmp_path, images):
    """A run whose spec names no classes (the training folder's sub-folders did) keeps
    those names from its metrics.json: predict names them, and evaluate maps a folder
    by them (a folder holding only 'b' was labelled 0, the model's 'a', and scored as
    such, exit 0)."""
    import shutil

    import nincompile

    spec = tmp_path / "plain.yaml"
    spec.write_text(
        "name: plain\ninput: [8, 8, 3]\nstages: [{conv: [4, 3], padding: same}]\n"
        "head: [gap, {dense: 2, activation: softmax}]\n"
        "train: {optimizer: adam, learning_rate: 0.01, batch_size: 2, epochs: 1}\n"
        "data: {validation_split: 0}\n",
        "utf-8",
    )
    run = tmp_path / "run"
    nincompile.train(spec, data=images, out=run)
    (top,) = nincompile.predict(run, images / "b" / "0.png", top=2)
    assert sorted(t["class"] for t in top["top"]) == ["a", "b"]
    assert nincompile.evaluate(run, images)["classes"] == ["a", "b"]
    only_b = tmp_path / "only_b"
    shutil.copytree(images / "b", only_b / "b")
    result = CliRunner().invoke(main, ["evaluate", str(run), "--data", str(only_b)])
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert "Expected classes [a, b]; found [b]" in result.output


def test_confusion_png_of_odd_class_names_warns_of_nothing(tmp_path):
    """Class names with control characters or a script the font lacks: the PNG is
    written, with no matplotlib warning reaching the user."""
    import warnings

    from nincompile.train import report

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        report.confusion_png([[1, 0], [0, 1]], ["a\x1b[31m", "猫"], tmp_path / "c.png", "t")
    assert (tmp_path / "c.png").stat().st_size > 0


def test_training_on_one_class_is_refused(tmp_path, images):
    """One class folder: every prediction is right by construction (it trained to a
    val accuracy of 1.0 at exit 0)."""
    import shutil

    only = tmp_path / "only"
    shutil.copytree(images / "a", only / "a")
    spec = tmp_path / "one.yaml"
    spec.write_text(
        "name: one\ninput: [8, 8, 3]\nstages: [{conv: [4, 3]}]\nhead: [gap, {dense: 2}]\n"
        "train: {epochs: 1, batch_size: 2}\ndata: {validation_split: 0}\n",
        "utf-8",
    )
    result = CliRunner().invoke(main, ["train", str(spec), "--data", str(only),
                                       "--out", str(tmp_path / "run")])  # fmt: skip
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert "1 class (a); a classifier needs at least 2 classes" in result.output


def test_validating_on_the_training_data_is_warned_of(tmp_path, images):
    spec = tmp_path / "two.yaml"
    spec.write_text(
        "name: two\ninput: [8, 8, 3]\nstages: [{conv: [4, 3]}]\nhead: [gap, {dense: 2}]\n"
        "train: {epochs: 1, batch_size: 2}\n",
        "utf-8",
    )
    result = CliRunner().invoke(main, ["train", str(spec), "--data", str(images), "--val",
                                       str(images), "--out", str(tmp_path / "run")])  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "warning: --val is the training data itself" in result.output
