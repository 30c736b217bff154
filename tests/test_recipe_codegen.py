"""One recipe: a generated module's ``compile_model(model, steps_per_epoch)`` compiles
a model as ``nincompile train`` does, for every spec of ``specs/`` (each variant) and
for variants of ``train:`` covering every optimiser, loss, schedule, warm-up, label
smoothing and mixed precision: the same optimiser config, learning rate at every epoch
boundary, loss config and value, metrics, and, trained 3 steps on the same data from
the same weights, the same weights."""

import ast
import importlib.util
import math
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from nincompile import api
from nincompile.codegen import render_specs
from nincompile.keras_import import import_keras
from nincompile.spec import load_spec
from nincompile.spec.variants import expand
from nincompile.train import recipe, schedule

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
keras = import_keras()

ROOT = Path(__file__).resolve().parent.parent
GENERATED = ROOT / "generated"

# (model name, train section, generated module path) of every spec in specs/
SPEC_CASES = [
    (source.spec.name, source.spec.train, GENERATED / f"{source.spec.name}.py")
    for path in sorted((ROOT / "specs").glob("*.yaml"))
    for source in expand(load_spec(path))
    if source.spec.train is not None
]

TINY = """\
name: {name}
input: [6, 6, 3]
stages: [{{conv: [4, 3]}}]
head: [gap, {{dense: 5}}{softmax}]
train: {train}
"""

# Every optimiser, loss and schedule kind; warm-up (also longer than the run), label
# smoothing on each cross-entropy (sparse: our own loss class), logits, binary and
# top-5 metrics, mixed precision, unsorted boundaries and a schedule too long for one
# line (written as a list of pairs).
LONG_STEPS = "{" + ", ".join(f"{e}: {0.1 / (e + 1):.4g}" for e in range(0, 24, 2)) + "}"
TRAIN_VARIANTS = {
    "cosine_warmup": "{optimizer: sgd, learning_rate: 0.1, momentum: 0.9, epochs: 10, "
    "lr_schedule: cosine, min_learning_rate: 0.001, warmup_epochs: 2}",
    "onecycle_smooth": "{optimizer: adamw, learning_rate: 0.002, weight_decay: 0.01, "
    "epochs: 10, lr_schedule: onecycle, label_smoothing: 0.1}",
    "steps_logits": "{optimizer: sgd, learning_rate: 0.05, momentum: 0.5, "
    "nesterov: true, epochs: 4, lr_schedule: {3: 0.01, 0: 0.05, 1: 0.02}, "
    "warmup_epochs: 1.5, label_smoothing: 0.05, from_logits: true}",
    "categorical": "{optimizer: rmsprop, loss: categorical_crossentropy, "
    "from_logits: true, label_smoothing: 0.2, metrics: [accuracy, top_5_accuracy]}",
    "binary_steps": "{optimizer: nadam, loss: binary_crossentropy, epochs: 3, "
    "lr_schedule: {0: 0.01, 1: 0.001}, warmup_epochs: 0.5}",
    "binary_logits": "{optimizer: adam, loss: binary_crossentropy, from_logits: true}",
    "mse_bfloat16": "{optimizer: adam, loss: mean_squared_error, metrics: [top_5_accuracy], "
    "mixed_precision: bfloat16, lr_schedule: constant}",
    "float16_warmup": "{optimizer: adam, epochs: 3, warmup_epochs: 50, mixed_precision: true}",
    "long_steps": "{optimizer: sgd, epochs: 30, lr_schedule: " + LONG_STEPS + "}",
}


def _import(path: Path, name: str):
    spec = importlib.util.spec_from_file_location(f"recipe_generated_{name}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def variants(tmp_path_factory):
    """name -> (train section, generated module path) for the tiny spec of each variant."""
    folder = tmp_path_factory.mktemp("recipes")
    paths = []
    for name, train in TRAIN_VARIANTS.items():
        path = folder / f"{name}.yaml"
        softmax = "" if "from_logits: true" in train else ", softmax"
        path.write_text(TINY.format(name=name, train=train, softmax=softmax), encoding="utf-8")
        paths.append(str(path))
    done, errors = render_specs(paths, folder)
    assert not errors, errors
    out = {}
    for generated in done:
        generated.target.write_text(generated.text, encoding="utf-8")
        train = load_spec(generated.spec).spec.train
        out[generated.name] = (train, generated.target)
    return out


CASES = [(name, "spec") for name, _, _ in SPEC_CASES] + [(n, "variant") for n in TRAIN_VARIANTS]


@pytest.fixture(params=CASES, ids=[name for name, _ in CASES])
def case(request, variants):
    """(name, train section, generated module) of one spec or train variant."""
    name, kind = request.param
    if kind == "spec":
        train, path = {n: (t, p) for n, t, p in SPEC_CASES}[name]
        assert path.is_file(), f"{path} is missing: run `nincompile emit`"
    else:
        train, path = variants[name]
    return name, train, _import(path, name)


class _Capture:
    """A stand-in model: what ``compile_model`` passes to ``model.compile``."""

    def compile(self, **kwargs):
        self.kwargs = kwargs


def _generated(module, steps_per_epoch: int) -> dict:
    model = _Capture()
    assert module.compile_model(model, steps_per_epoch) is model
    assert set(model.kwargs) == {"optimizer", "loss", "metrics"}
    return model.kwargs


def _library(train, steps_per_epoch: int, n_classes: int = 10) -> dict:
    """What ``nincompile train`` (train/loop.py) compiles with."""
    lr = schedule.EpochSchedule(train, steps_per_epoch)
    return {
        "optimizer": recipe.optimizer(train, lr),
        "loss": recipe.loss(train, n_classes),
        "metrics": recipe.metrics(train),
    }


def _optimizer_config(optimizer) -> dict:
    config = dict(optimizer.get_config())
    del config["name"]  # sgd, sgd_1, ...
    lr = config["learning_rate"]
    config["learning_rate"] = lr["config"]  # the class is named apart from its module
    return config


def _objects(args: dict) -> list:
    return [(type(m).__name__, m.get_config()) for m in args["metrics"]]


# -------------------------------------------------------------------- the recipe


def _class_text(path: Path, name: str) -> str:
    text = path.read_text(encoding="utf-8")
    (node,) = [c for c in ast.parse(text).body if getattr(c, "name", None) == name]
    return ast.get_source_segment(text, node)


def test_the_generated_classes_are_the_librarys_source(case):
    """The schedule (and smoothed loss) class of a generated module is the text of
    ``nincompile/train/schedule.py``, which ``nincompile train`` runs."""
    name, train, module = case
    own = [c for c in recipe.OWN_CLASSES if hasattr(module, c)]
    assert "EpochLearningRate" in own
    want = ["EpochLearningRate"]
    if train.label_smoothing and train.loss == "sparse_categorical_crossentropy":
        want.append("SmoothedSparseCategoricalCrossentropy")
    assert own == want
    for cls in own:
        assert _class_text(Path(module.__file__), cls) == _class_text(Path(schedule.__file__), cls)
    text = Path(module.__file__).read_text(encoding="utf-8")
    imports = {line for line in text.splitlines() if line.startswith(("import ", "from "))}
    assert imports <= {"import math", "import keras"} | {
        line for line in imports if line.startswith("from keras import ")
    }
    assert "nincompile" not in "\n".join(imports)


def test_same_optimizer_config(case):
    name, train, module = case
    gen, lib = _generated(module, 7), _library(train, 7)
    assert type(gen["optimizer"]) is type(lib["optimizer"])
    assert _optimizer_config(gen["optimizer"]) == _optimizer_config(lib["optimizer"])
    assert _optimizer_config(gen["optimizer"]) == _optimizer_config(
        recipe.compile_args(train, 7)["optimizer"]
    )
    assert type(gen["optimizer"]._learning_rate).__name__ == "EpochLearningRate"


def _reference_lr(train, step: int, steps_per_epoch: int) -> float:
    """The rate the spec format documents, in plain Python."""
    epoch = step / steps_per_epoch
    base, kind, epochs = train.learning_rate, train.lr_schedule, train.epochs
    lr = base
    if isinstance(kind, dict):
        for first, rate in sorted(kind.items()):
            lr = rate if epoch >= first else lr
    warmup = train.warmup_epochs
    if warmup is None:
        warmup = 0.3 * epochs if kind == "onecycle" else 0.0
    warmup = min(warmup, epochs)
    t = min(max((epoch - warmup) / max(epochs - warmup, 1e-9), 0.0), 1.0)
    low = train.min_learning_rate
    if kind == "cosine":
        lr = low + (base - low) * 0.5 * (1 + math.cos(math.pi * t))
    elif kind == "onecycle":
        lr = base + (low - base) * t
    if warmup > 0:
        lr *= 1 / 25 + (24 / 25) * min(max(epoch / warmup, 0.0), 1.0)
    return lr


@pytest.mark.parametrize("steps_per_epoch", [1, 7])
def test_same_learning_rate_at_every_epoch_boundary(case, steps_per_epoch):
    """At each epoch's first and last step and in its middle, through the epochs and
    beyond: the generated schedule, the library's, and the documented rate."""
    name, train, module = case
    n = steps_per_epoch
    ends = range(train.epochs + 3)
    steps = sorted({s for e in ends for s in (e * n, e * n - 1, e * n + n // 2) if s >= 0})
    steps = np.array(steps, dtype="int64")
    gen = _generated(module, n)["optimizer"]._learning_rate
    lib = _library(train, n)["optimizer"]._learning_rate
    got = keras.ops.convert_to_numpy(gen(steps))
    np.testing.assert_array_equal(got, keras.ops.convert_to_numpy(lib(steps)))
    want = [_reference_lr(train, int(s), n) for s in steps]
    np.testing.assert_allclose(got, want, rtol=2e-6, atol=1e-6 * train.learning_rate)  # float32
    # the optimiser reads it at its own step
    for step in (0, n * (train.epochs // 2) + n // 2, n * train.epochs):
        optimizer = _generated(module, n)["optimizer"]
        optimizer.iterations.assign(step)
        assert float(optimizer.learning_rate) == pytest.approx(
            _reference_lr(train, step, n), rel=2e-6, abs=1e-6 * train.learning_rate
        )


def test_nin_steps_down_at_epochs_81_and_141():
    """The bug this file guards: generated/nin.py trained at a constant 0.01."""
    module = _import(GENERATED / "nin.py", "nin_steps")
    lr = _generated(module, 391)["optimizer"]._learning_rate
    epochs = np.array([0, 80, 81, 140, 141, 199]) * 391
    got = keras.ops.convert_to_numpy(lr(epochs))
    np.testing.assert_allclose(got, [0.01, 0.01, 0.005, 0.005, 0.001, 0.001], rtol=1e-6)


def _batch(train, width: int):
    rng = np.random.default_rng(0)
    logits = rng.normal(size=(4, width)).astype("float32")
    labels = np.array([0, 3, 1, width - 1])
    if train.from_logits:
        y_pred = logits
    else:
        e = np.exp(logits - logits.max(axis=1, keepdims=True))
        y_pred = (e / e.sum(axis=1, keepdims=True)).astype("float32")
    if train.loss == "sparse_categorical_crossentropy":
        return labels, y_pred
    return np.eye(width, dtype="float32")[labels], y_pred


def test_same_loss_config_and_value(case):
    name, train, module = case
    gen, lib = _generated(module, 7)["loss"], _library(train, 7)["loss"]
    assert type(gen).__name__ == type(lib).__name__
    assert gen.get_config() == lib.get_config()
    y_true, y_pred = _batch(train, 10)
    value = float(keras.ops.convert_to_numpy(gen(y_true, y_pred)))
    assert value == float(keras.ops.convert_to_numpy(lib(y_true, y_pred)))
    assert np.isfinite(value)
    if train.label_smoothing and train.loss == "sparse_categorical_crossentropy":
        # smoothing of sparse labels is categorical smoothing of their one-hot rows
        plain = keras.losses.CategoricalCrossentropy(
            from_logits=train.from_logits, label_smoothing=train.label_smoothing
        )
        want = plain(np.eye(10, dtype="float32")[y_true], y_pred)
        assert value == pytest.approx(float(keras.ops.convert_to_numpy(want)), rel=1e-6)


def test_same_metrics_and_precision(case):
    name, train, module = case
    gen, lib = _generated(module, 7), _library(train, 7)
    assert _objects(gen) == _objects(lib)
    assert [m.name for m in gen["metrics"]] == list(train.metrics)
    policy = recipe.table(train).dtype_policy
    doc = module.compile_model.__doc__
    assert (policy in doc) == (policy != "float32")


# ---------------------------------------------------------------------- training

TRAINED = {
    # a spec of specs/: Adam, dropout
    "lenet5": (GENERATED / "lenet5.py", ROOT / "specs" / "lenet5.yaml"),
    # a rate that changes at every step (warm-up, boundaries), smoothed sparse labels
    "steps_logits": None,
}


@pytest.mark.parametrize("name", list(TRAINED))
def test_training_reaches_the_same_weights(name, variants, tmp_path):
    """Both recipes, the same initial weights, seed and data order: after 3 steps the
    generated module's model holds the library's weights (within 1e-6)."""
    if TRAINED[name] is None:
        train, module_path = variants[name]
        spec_path = module_path.with_suffix(".yaml")
    else:
        module_path, spec_path = TRAINED[name]
        train = load_spec(spec_path).spec.train
    module = _import(module_path, f"{name}_fit")
    compiled = api.compile_spec(spec_path)
    keras.utils.set_random_seed(train.seed)
    library = api.build(compiled)
    width = library.outputs[0].shape[-1]
    library.compile(**_library(train, 1, width))
    keras.utils.set_random_seed(train.seed)
    generated = module.compile_model(module.build_model(), 1)
    generated.set_weights(library.get_weights())
    rng = np.random.default_rng(1)
    x = rng.normal(size=(12, *compiled.spec.input)).astype("float32")
    y = rng.integers(0, width, size=12)
    before = [w.copy() for w in library.get_weights()]

    for model in (library, generated):
        model.run_eagerly = True  # 3 steps: tracing a graph would take most of the time
        keras.utils.set_random_seed(train.seed)
        model.fit(x, y, batch_size=4, epochs=1, shuffle=False, verbose=0)
    assert int(generated.optimizer.iterations) == int(library.optimizer.iterations) == 3
    moved = False
    for lib_w, gen_w, start in zip(
        library.get_weights(), generated.get_weights(), before, strict=True
    ):
        np.testing.assert_allclose(gen_w, lib_w, rtol=0, atol=1e-6)
        moved |= not np.array_equal(lib_w, start)
    assert moved


# ------------------------------------------------------------------------- style


def _ruff() -> str | None:
    beside = Path(sys.executable).parent / "ruff"
    return str(beside) if beside.exists() else shutil.which("ruff")


def test_variant_modules_pass_ruff(variants):
    """The recipe's calls are laid out as ruff formats them, a long step schedule too."""
    ruff = _ruff()
    if ruff is None:
        pytest.skip("ruff is not installed")
    files = [str(path) for _, path in variants.values()]
    text = Path(variants["long_steps"][1]).read_text(encoding="utf-8")
    assert "boundaries=[\n" in text  # too long as a dict on one line: a list of pairs
    for args in (
        ["format", "--check", "--isolated", "--no-force-exclude"],
        ["check", "--isolated", "--no-force-exclude", "--select", "E,F,W,I,B,UP"],
    ):
        result = subprocess.run([ruff, *args, *files], capture_output=True, text=True)
        assert result.returncode == 0, result.stdout + result.stderr


def test_compile_model_docstring_names_the_batch_and_epochs():
    text = textwrap.dedent(_import(GENERATED / "nin.py", "nin_doc").compile_model.__doc__)
    assert "200 epochs in batches of 128" in text
    assert "math.ceil(len(x_train) / 128)" in text
