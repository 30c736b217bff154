"""The library at the package's top level (``nincompile.load``, ``check``, ``build``,
``emit``, ``train``, ``evaluate``, ``predict``, ``export``), the built-in specs, the
README's Python example, and the shape of the package: no import cycle."""

import ast
import inspect
import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from conftest import ROOT
from test_cli import TINY as CLI_TINY

import nincompile
from nincompile import api, guard
from nincompile.cli import main
from nincompile.errors import NincompileError, SpecError

TINY = (  # test_cli's tiny model (143 parameters), with a recipe and synthetic data
    CLI_TINY
    + "train: {optimizer: adam, learning_rate: 0.02, batch_size: 16, epochs: 3, seed: 1}\n"
    + "data: {dataset: synthetic, limit: 96, classes: [a, b, c]}\n"
)


@pytest.fixture
def tiny(spec_file):
    return spec_file(TINY, "tiny.yaml")


def test_load_applies_a_mapping_of_overrides_as_set_does(tiny):
    source = nincompile.load(
        tiny, overrides={"train.epochs": 2, "data.augment": {"flip": "horizontal"}}
    )
    assert source.spec.train.epochs == 2
    assert source.spec.data.augment.flip == "horizontal"
    as_set = nincompile.load(tiny, overrides=["train.epochs=2", "data.augment={flip: horizontal}"])
    assert source.text == as_set.text  # one resolved text, so a run resumes from either
    assert nincompile.load(source) is source


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (
            {"train.epochs": "many"},
            "overrides['train.epochs']: train.epochs: expected a valid integer",
        ),
        ({"trian.epochs": 2}, "unknown key 'trian' (did you mean 'train'?)"),
        ({"train.epochs": object()}, "expected plain data"),
        ("train.epochs=2", "expected a mapping such as"),
    ],
)
def test_a_bad_override_names_itself(tiny, overrides, message):
    with pytest.raises(SpecError) as err:
        nincompile.load(tiny, overrides=overrides)
    assert message in str(err.value)


def test_builtin_specs_by_name_and_an_own_file_wins(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert Path(nincompile.load("nin_badm").file) == ROOT / "specs" / "nin_badm.yaml"
    assert nincompile.load("applications/vgg16").spec.input == (224, 224, 3)
    assert nincompile.check("resnet18").counts["total"] == 11_183_562
    with pytest.raises(SpecError, match=r"did you mean 'resnet18'\?"):
        nincompile.load("resnt18")
    # the CLI takes the names too, and `list` counts every built-in model as check does
    runner = CliRunner()
    result = runner.invoke(main, ["check", "resnet18", "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["params"]["total"] == 11_183_562
    listed = runner.invoke(main, ["list", "--json"])
    assert listed.exit_code == 0, listed.output
    listing = json.loads(listed.output)
    rows = {r["name"]: r for r in listing}
    assert rows["nin_badm"]["counts"] == nincompile.check("nin_badm").counts
    assert rows["efficientnet_b7"]["spec"] == "efficientnet"
    assert {"vgg16", "applications/vgg16"} <= {r["spec"] for r in listing}
    (tmp_path / "nin_badm").write_text(TINY)  # a user's own file of that name wins
    assert nincompile.load("nin_badm").spec.name == "tiny"


def test_check_returns_counts_and_problems(tiny, spec_file):
    result = nincompile.check(tiny)
    assert result.ok and result.problems == []
    assert result.counts == {"total": 143, "trainable": 135, "non_trainable": 8}
    assert result.estimate is not None and result.estimate.params == 143
    assert result.summary() == json.loads(
        CliRunner().invoke(main, ["check", str(tiny), "--json"]).output
    )
    off = nincompile.check(spec_file(TINY.replace("params: 143", "params: 140"), "off.yaml"))
    assert not off.ok and off.mismatches == [("params", 140, 143)]
    assert off.problems[0]["path"] == "expect.params" and off.problems[0]["line"] == 7
    big = nincompile.check(tiny, max_params=100)
    assert not big.ok and big.estimate is None and isinstance(big.error, guard.ResourceError)
    assert "over the limit of 100" in big.problems[0]["message"]


def test_check_of_a_spec_with_variants_needs_one(spec_file):
    path = spec_file(TINY + "variants: {train.learning_rate: [0.1, 0.01]}\n", "v.yaml")
    with pytest.raises(NincompileError, match="holds 2 models"):
        nincompile.check(path)
    assert [r.name for r in nincompile.check_all(path)] == [
        "tiny_learning_rate0p1",
        "tiny_learning_rate0p01",
    ]
    assert nincompile.check(path, variant="learning_rate0p01").name == "tiny_learning_rate0p01"


def test_build_a_checked_spec_runs_the_guard_once(tiny, tmp_path, monkeypatch):
    result = nincompile.check(tiny)
    calls = []
    monkeypatch.setattr(guard, "check", lambda *a, **k: calls.append(a) or result.estimate)
    model = nincompile.build(result, out=tmp_path / "out")
    assert calls == [] and model.count_params() == 143
    assert (tmp_path / "out" / "tiny.keras").is_file()
    nincompile.build(tiny, overrides={"head.1.dense": 5})
    assert len(calls) == 1


def test_emit_renders_and_checks(tiny, tmp_path):
    text = nincompile.emit(tiny).text()
    assert "def build_model" in text and "def compile_model" in text
    out = tmp_path / "gen"
    out.mkdir()
    written = nincompile.emit([tiny], out)
    assert written.changed == {out / "tiny.py": True}
    assert nincompile.emit([tiny], out, check=True).ok
    (out / "tiny.py").write_text("# edited\n")
    assert nincompile.emit([tiny], out, check=True).stale == [(out / "tiny.py", "stale")]


def _image_folder(root: Path, classes: list[str], shape, n: int) -> Path:
    from PIL import Image

    from nincompile.data import sources

    raw = sources.synthetic(n, tuple(shape), classes, 1)
    for i, (img, label) in enumerate(zip(raw.images, raw.labels, strict=True)):
        folder = root / raw.classes[label]
        folder.mkdir(parents=True, exist_ok=True)
        Image.fromarray(img.squeeze()).save(folder / f"{i:03d}.png")
    return root


def test_train_evaluate_predict_export(tiny, tmp_path):
    run = nincompile.train(tiny, out=tmp_path / "run", epochs=2, batch_size=32,
                           overrides={"train.learning_rate": 0.01})  # fmt: skip
    assert isinstance(run, nincompile.Run) and run.path == tmp_path / "run"
    assert [row["epoch"] for row in run.history] == [0, 1]
    assert run.metrics["epochs_completed"] == 2 and run.finished
    assert run.best["epoch"] in (0, 1) and run.model_path.is_file() and run.best_path.is_file()
    assert nincompile.load(run).spec.train.learning_rate == 0.01
    again = nincompile.Run.open(run.path)
    assert again.history == run.history and again.metrics == run.metrics
    # resuming a finished run trains nothing more
    resumed = nincompile.train(run, resume=True)
    assert resumed.path == run.path and len(resumed.history) == 2

    folder = _image_folder(tmp_path / "images", ["a", "b", "c"], (8, 8, 3), 24)
    report = nincompile.evaluate(run, data=folder)
    cli = CliRunner().invoke(main, ["evaluate", str(run.path), "--data", str(folder), "--json"])
    assert cli.exit_code == 0, cli.output
    assert report == json.loads(cli.output)  # the dict `evaluate --json` prints
    assert report["images"] == 24 and set(report["per_class"]) <= {"a", "b", "c"}

    guesses = nincompile.predict(run, folder / "a", top=2)
    assert len(guesses) == len(list((folder / "a").iterdir()))
    assert all(len(g["top"]) == 2 for g in guesses)

    target = tmp_path / "tiny.onnx"
    exported = nincompile.export(run, target)
    assert exported.ok and exported.written and target.is_file()
    import keras
    import onnxruntime as ort

    model = keras.saving.load_model(run.model_path, compile=False)
    x = np.random.default_rng(0).normal(size=(4, 8, 8, 3)).astype(np.float32)
    session = ort.InferenceSession(str(target), providers=["CPUExecutionProvider"])
    got = session.run(None, {session.get_inputs()[0].name: x})[0]
    assert np.abs(got - np.asarray(model(x))).max() < 1e-5
    with pytest.raises(NincompileError, match="only apply with quantize='int8'"):
        nincompile.export(run, tmp_path / "x.onnx", calibration=10)


def test_the_packages_named_like_api_functions_call_them():
    import nincompile.export.report  # noqa: F401  (binds the packages as attributes)
    import nincompile.runs.folder  # noqa: F401
    import nincompile.sweep.members  # noqa: F401

    for name in ("train", "export", "sweep"):
        package = getattr(nincompile, name)
        assert callable(package)
        assert inspect.signature(package) == inspect.signature(getattr(api, name))
    with pytest.raises(SpecError, match="no such file"):
        nincompile.train("no-such-spec.yaml")


def test_import_nincompile_loads_no_keras():
    code = "import sys, nincompile; nincompile.check; print('keras' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert out.returncode == 0 and out.stdout.strip() == "False", out.stderr


def test_readme_python_example_runs(tmp_path, monkeypatch):
    """The README's "Use it from Python" example, run as written on a small image
    folder in place of the CIFAR-10 archive."""
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    section = readme.split("## Use it from Python", 1)[1]
    code = re.search(r"```python\n(.*?)```", section, re.S).group(1)
    classes = nincompile.load("baseline").spec.data.classes
    _image_folder(tmp_path / "data" / "train", list(classes), (32, 32, 3), 40)
    monkeypatch.chdir(tmp_path)
    namespace: dict = {}
    exec(compile(code, "README.md", "exec"), namespace)  # noqa: S102
    assert (tmp_path / "runs" / "quick" / "model.keras").is_file()
    assert (tmp_path / "build" / "baseline.onnx").is_file()


# ------------------------------------------------------------------ import cycles


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _module_imports(path: Path, name: str, functions: bool = False) -> set[str]:
    """What ``name`` imports when it is imported: every import outside a function
    (``if TYPE_CHECKING:`` blocks included; with ``functions``, inside them too), each
    with the packages above it."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()

    def walk(nodes):
        for node in nodes:
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda):
                if functions and not isinstance(node, ast.Lambda):
                    walk(node.body)
                continue
            if isinstance(node, ast.Import):
                found.update(a.name for a in node.names)
            elif isinstance(node, ast.ImportFrom):
                base = package.split(".")
                if node.level:
                    base = base[: len(base) - node.level + 1]
                    module = ".".join(base + ([node.module] if node.module else []))
                else:
                    module = node.module
                found.add(module)
                found.update(f"{module}.{a.name}" for a in node.names)
            for child in ("body", "orelse", "handlers", "finalbody"):
                walk(getattr(node, child, []))

    walk(ast.parse(path.read_text(encoding="utf-8")).body)
    ancestors = {".".join(name.split(".")[:i]) for i in range(1, name.count(".") + 1)}
    out = set()
    for module in found:
        parts = module.split(".")
        out.update(".".join(parts[:i]) for i in range(1, len(parts) + 1))
    return out - ancestors - {name}


def test_no_import_cycle_in_the_package():
    """Following the imports each module runs when it is imported (not those inside
    functions, which run later), no module of nincompile/ comes back to itself."""
    files = {_module_name(p): p for p in (ROOT / "nincompile").rglob("*.py")}
    graph = {m: _module_imports(p, m) & set(files) for m, p in files.items()}
    cycles = []
    state: dict[str, int] = {}  # 1 on the path, 2 done

    def visit(module, path):
        state[module] = 1
        for dep in sorted(graph[module]):
            if state.get(dep) == 1:
                cycles.append(path[path.index(dep) :] + [dep])
            elif dep not in state:
                visit(dep, path + [dep])
        state[module] = 2

    for module in sorted(graph):
        if module not in state:
            visit(module, [module])
    assert not cycles, "import cycles: " + "; ".join(" -> ".join(c) for c in cycles)


def test_only_the_command_line_reaches_up_to_the_library_module():
    """``api.py`` is the top of the package: the click shells (``cli.py``, each
    ``command.py``) and the package's top level call it; nothing below it (compiler,
    training, run folders, export, data) imports it, not even inside a function."""
    files = {_module_name(p): p for p in (ROOT / "nincompile").rglob("*.py")}
    shells = {"nincompile", "nincompile.cli", "nincompile.api", "nincompile.callable_package"}
    up = sorted(
        m
        for m, p in files.items()
        if m not in shells
        and not m.endswith(".command")
        and "nincompile.api" in _module_imports(p, m, functions=True)
    )
    assert not up, f"modules below the library that import nincompile.api: {up}"
