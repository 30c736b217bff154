"""The CLI through click's CliRunner, results checked through the library."""

import json
import re
import subprocess
import sys

import click
import pytest
from click.testing import CliRunner
from conftest import ROOT
from doctext import docs_text

from nincompile import api
from nincompile.cli import main

NIN = str(ROOT / "specs" / "nin_badm.yaml")
TINY = """\
name: tiny
input: [8, 8, 3]
defaults: {padding: same, activation: relu, batch_norm: true}
stages:
  - {conv: [4, 3], pool: {max: 2}}
head: [gap, {dense: 3, activation: softmax}]
expect: {params: 143, trainable: 135, non_trainable: 8}
"""


@pytest.fixture
def runner():
    return CliRunner()


def test_build_writes_keras_model_and_table(runner, spec_file, tmp_path):
    path = spec_file(TINY)
    result = runner.invoke(main, ["build", str(path), "-o", str(tmp_path / "out")])
    assert result.exit_code == 0, result.output
    assert "stage1_conv" in result.output and "head2_softmax" in result.output
    assert "parameter counts match 'expect:'" in result.output
    import keras

    model = keras.saving.load_model(tmp_path / "out" / "tiny.keras")
    assert model.count_params() == 143
    assert [p.name for p in (tmp_path / "out").iterdir()] == ["tiny.keras"]  # no temp left


def test_build_json_summary(runner, spec_file, tmp_path):
    path = spec_file(TINY)
    result = runner.invoke(main, ["build", str(path), "--json", "--no-save"])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.output)
    assert summary["name"] == "tiny"
    assert summary["params"] == {"total": 143, "trainable": 135, "non_trainable": 8}
    layer = summary["layers"][1]
    assert {"name", "kind", "output_shape", "params"} <= set(layer)
    assert summary == api.compile_spec(path).summary()


def test_expect_mismatch_exits_1_and_reports_each_category(runner, spec_file):
    path = spec_file(
        TINY.replace("params: 143", "params: 142").replace("trainable: 135", "trainable: 134")
    )
    result = runner.invoke(main, ["check", str(path)])
    assert result.exit_code == 1
    assert "params: expected 142, actual 143 (+1)" in result.output
    assert "trainable: expected 134, actual 135 (+1)" in result.output
    out = path.parent / "out"
    result = runner.invoke(main, ["build", str(path), "-o", str(out)])
    assert result.exit_code == 1
    assert "not saved" in result.output and not (out / "tiny.keras").exists()


def test_invalid_spec_exits_1_without_traceback(runner, spec_file, tmp_path):
    path = spec_file("name: x\ninput: [8, 8, 3]\nstages: [{conv: [4, 9]}]\n")
    for cmd in (["check", str(path)], ["build", str(path), "-o", str(tmp_path / "o")]):
        result = runner.invoke(main, cmd)
        assert result.exit_code == 1
        assert "Traceback" not in result.output
        assert "stages[0].conv: conv window 9 is larger than the input height 8" in result.output
    assert not (tmp_path / "o").exists()


def test_check_all_specs(runner):
    specs = sorted(str(p) for p in (ROOT / "specs").glob("*.yaml"))
    result = runner.invoke(main, ["check", *specs])
    assert result.exit_code == 0, result.output
    models = sum(len(api.compile_all(p)) for p in specs)  # nin_bn_orders has 4 variants
    assert models == len(specs) + 3
    assert result.output.count("parameter counts match 'expect:'") == models


def test_check_json_lists_every_spec(runner):
    specs = [NIN, str(ROOT / "specs" / "lenet5.yaml")]
    result = runner.invoke(main, ["check", "--json", *specs])
    data = json.loads(result.output)
    assert [d["name"] for d in data] == ["nin_badm", "lenet5"]
    assert data[0]["params"]["total"] == 972658


def test_check_never_imports_tensorflow():
    code = (
        "import sys\n"
        "from nincompile.cli import main\n"
        "try:\n"
        f"    main(['check', {NIN!r}])\n"
        "except SystemExit as e:\n"
        "    assert e.code == 0, e.code\n"
        "bad = [m for m in ('tensorflow', 'keras', 'jax', 'torch') if m in sys.modules]\n"
        "assert not bad, bad\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_schema_is_json_schema_and_matches_model(runner, tmp_path):
    result = runner.invoke(main, ["schema"])
    assert result.exit_code == 0
    schema = json.loads(result.output)
    assert schema["title"] == "nincompile spec"
    assert {"name", "input", "stages", "head", "expect", "train", "data"} <= set(
        schema["properties"]
    )
    out = tmp_path / "schema.json"
    assert runner.invoke(main, ["schema", "-o", str(out)]).exit_code == 0
    assert json.loads(out.read_text()) == schema
    result = runner.invoke(main, ["schema", "-o", str(tmp_path / "missing" / "s.json")])
    assert result.exit_code == 1 and "does not exist" in result.output


def test_build_refuses_output_that_is_a_file(runner, spec_file, tmp_path):
    path = spec_file(TINY)
    blocker = tmp_path / "file"
    blocker.write_text("keep me")
    result = runner.invoke(main, ["build", str(path), "-o", str(blocker)])
    assert result.exit_code != 0
    assert blocker.read_text() == "keep me"


def test_readme_documents_every_command_and_option():
    readme = docs_text()
    ctx = click.Context(main)
    for name in main.list_commands(ctx):
        command = main.get_command(ctx, name)
        assert f"### `nincompile {name}" in readme, name
        for param in command.params:
            if isinstance(param, click.Option) and param.name != "help":
                assert any(opt in readme for opt in param.opts), f"{name} {param.opts}"


def test_readme_test_command_is_the_ci_command():
    readme = (ROOT / "README.md").read_text()
    marker = re.search(r"<!-- test-command: (.+) -->", readme).group(1)
    assert f"&& {marker}\n```" in readme  # the visible set-up line ends with it
    assert "test-command" in (ROOT / ".ci" / "run").read_text()


def test_readme_layer_name_example_exists():
    readme = docs_text()
    name = re.search(r"For example `(\w+)` in `resnet18`", readme).group(1)
    graph = api.compile_spec(ROOT / "specs" / "resnet18.yaml").graph
    assert name in graph.shapes


def test_generated_module_runs_as_a_script():
    proc = subprocess.run(
        [sys.executable, str(ROOT / "generated" / "lenet5.py")],
        capture_output=True,
        text=True,
        env={**__import__("os").environ, "TF_CPP_MIN_LOG_LEVEL": "2"},
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "Total params: 62,006" in proc.stdout
    assert "stage1_conv" in proc.stdout


def test_schema_accepts_every_spec_and_rejects_typos():
    import jsonschema
    import yaml

    from nincompile.spec import json_schema

    validator = jsonschema.Draft202012Validator(json_schema())
    validator.check_schema(validator.schema)
    for path in sorted((ROOT / "specs").glob("*.yaml")):
        errors = list(validator.iter_errors(yaml.safe_load(path.read_text())))
        assert errors == [], f"{path.name}: {errors[0].message}"
    golden = ROOT / "tests" / "golden" / "invalid"
    for name in ("unknown_key_typo", "many_problems"):
        data = yaml.safe_load((golden / f"{name}.yaml").read_text())
        assert list(validator.iter_errors(data)), name


def test_unwritable_output_is_a_clean_error(runner, spec_file, tmp_path):
    path = spec_file(TINY)
    blocker = tmp_path / "file"
    blocker.write_text("x")
    result = runner.invoke(main, ["build", str(path), "-o", str(blocker / "sub")])
    assert result.exit_code == 1
    assert "Traceback" not in result.output and "sub" in result.output
