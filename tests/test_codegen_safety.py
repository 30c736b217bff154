"""Nothing from a spec lands in generated Python raw.

Names must pass the schema's identifier check (a regex plus keyword checks); every
other string becomes a literal or escaped docstring text; the Jinja environment is
strict and does not autoescape.  Hostile specs end in a clear SpecError, or in a
module whose AST holds only the template's imports and calls and which, when run,
creates no marker file."""

import ast
import json
import keyword
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import jinja2
import pytest

from nincompile.codegen import render_source, render_specs
from nincompile.codegen.render import environment
from nincompile.errors import SpecError
from nincompile.spec import parse_spec
from nincompile.spec.schema import is_identifier
from nincompile.train.recipe import OWN_CLASSES

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

HOSTILE_NAMES = [
    "x\nimport os",
    "'); import os; os.system('touch PWNED') #",
    "class",
    "match",  # a soft keyword
    "1abc",
    "a b",
    "a-b",
    "ä",
    "",
    "x" * 65,
    "__import__('os').system('touch PWNED')",
]
PAYLOAD = "'); import os; os.system('touch PWNED') #"
HOSTILE_TEXT = [
    '""" + __import__("os").system("touch PWNED") + """',
    'ends with a quote"',
    "ends with a backslash \\",
    "back\\slashes \\n \\x00 \\N{BULLET} \\u0041 and \\\\",
    "{{ 7 * 7 }} {% for x in range(3) %}{{ x }}{% endfor %} {# comment #}",
    "nul\x00 bell\x07 escape\x1b tab\t cr\r line\u2028 sep\x85 end",
    PAYLOAD,
    "\n\n  \n",
    "'''\"\"\"'''\"\"\"",
]

BASE = """\
name: {name}
description: {description}
input: [8, 8, 3]
blocks:
  {block}:
    description: {description}
    params: {{{param}: 4, tag: {tag}}}
    stages: [{{conv: [{ref}, 1], name: {item}}}]
stages:
  - {{block: {block}, with: {{{param}: 2}}}}
  - {{conv: [2, 3], padding: same, activation: relu, name: {item}}}
head: [gap]
train: {{optimizer: adam}}
"""


def spec_text(**fields) -> str:
    values = {
        "name": "safe",
        "description": "fine",
        "block": "blk",
        "param": "ch",
        "item": "unit",
        "tag": "hello",
    }
    values.update(fields)
    values["ref"] = "$" + values["param"]
    return BASE.format(**{k: json.dumps(v) for k, v in values.items()})  # JSON is YAML


# ------------------------------------------------------------------ the rules


def test_environment_is_strict_and_does_not_autoescape():
    env = environment()
    assert env.undefined is jinja2.StrictUndefined
    assert env.autoescape is False
    with pytest.raises(jinja2.UndefinedError):
        env.get_template("module.py.j2").render({})


@pytest.mark.parametrize("name", HOSTILE_NAMES)
def test_identifier_check_rejects(name):
    assert not is_identifier(name)


@pytest.mark.parametrize("name", ["x", "_private", "stage1", "inception", "a" * 64])
def test_identifier_check_accepts(name):
    assert is_identifier(name)


def test_identifier_check_covers_every_keyword():
    assert not any(is_identifier(k) for k in keyword.kwlist + keyword.softkwlist)


# ---------------------------------------------------------- hostile names


@pytest.mark.parametrize("where", ["name", "block", "param", "item"])
@pytest.mark.parametrize("bad", HOSTILE_NAMES, ids=range(len(HOSTILE_NAMES)))
def test_hostile_names_are_spec_errors(where, bad):
    with pytest.raises(SpecError):
        render_source(parse_spec(spec_text(**{where: bad}), "hostile.yaml"))


def test_hostile_with_key_is_a_spec_error():
    text = spec_text().replace('with: {"ch": 2}', 'with: {"x\\nimport os": 2}')
    assert "import os" in text
    with pytest.raises(SpecError):
        render_source(parse_spec(text, "hostile.yaml"))


# ------------------------------------------------------- hostile free text


ALLOWED_IMPORTS = {"keras", "keras.layers", "keras.regularizers", "math"}
ALLOWED_CALL_PREFIXES = ("layers.", "keras.optimizers.", "keras.losses.", "keras.metrics.")
ALLOWED_CALLS = {"keras.Input", "keras.Model", "regularizers.L2", "model.compile", "float"}
ALLOWED_CALLS |= set(OWN_CLASSES)  # compile_model's schedule (and loss) class
FORBIDDEN = {"exec", "eval", "__import__", "compile", "open", "system", "os.system", "getattr"}
SCHEDULE_FILE = Path(__file__).resolve().parent.parent / "nincompile" / "train" / "schedule.py"


def _library_class(name: str) -> str:
    text = SCHEDULE_FILE.read_text(encoding="utf-8")
    (node,) = [c for c in ast.parse(text).body if getattr(c, "name", None) == name]
    return ast.get_source_segment(text, node)


def dotted(node: ast.AST) -> str:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        return f"{dotted(node.value)}.{node.attr}"
    if isinstance(node, ast.Call):
        return f"{dotted(node.func)}()"
    return type(node).__name__


def check_module(text: str) -> ast.Module:
    """Only the template's imports and calls; helpers are the module's own functions."""
    tree = ast.parse(text)
    imports = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            imports |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            imports |= {f"{node.module}.{a.name}" for a in node.names}
    assert imports <= ALLOWED_IMPORTS and "keras" in imports
    helpers = {f.name for f in tree.body if isinstance(f, ast.FunctionDef)}
    assert not helpers & FORBIDDEN
    # compile_model's classes are nincompile/train/schedule.py's, copied verbatim
    copied = [c for c in tree.body if isinstance(c, ast.ClassDef)]
    for cls in copied:
        assert cls.name in OWN_CLASSES
        assert ast.get_source_segment(text, cls) == _library_class(cls.name)
    rest = ast.Module([n for n in tree.body if n not in copied], [])
    for node in ast.walk(rest):
        if not isinstance(node, ast.Call):
            continue
        name = dotted(node.func)
        assert name not in FORBIDDEN, name
        ok = (
            name in ALLOWED_CALLS
            or name in helpers
            or name.startswith(ALLOWED_CALL_PREFIXES)
            or name == "build_model().summary"
            or (name.startswith("layers.") and name.endswith("()"))
        )
        assert ok, f"unexpected call {name}"
    return tree


HOSTILE_CASES = {
    **{f"description{i}": {"description": text} for i, text in enumerate(HOSTILE_TEXT)},
    **{f"tag{i}": {"tag": text} for i, text in enumerate(HOSTILE_TEXT)},
    # Block names that are Python or module names become `<name>_block`.
    **{f"block_{b}": {"block": b} for b in ("exec", "eval", "print", "keras", "layers")},
    "block_dunder": {"block": "__import__"},
    "block_build_model": {"block": "build_model"},
    "param_name": {"param": "name"},
    "param_layers": {"param": "layers"},
    "param_exec": {"param": "exec"},
}


@pytest.fixture(scope="module")
def hostile(tmp_path_factory):
    """Every hostile case rendered to a module in one folder: {case: (text, path)}."""
    folder = tmp_path_factory.mktemp("hostile")
    out = {}
    for case, fields in HOSTILE_CASES.items():
        text = render_source(parse_spec(spec_text(**fields), f"specs/{case}.yaml"))
        path = folder / f"{case}.py"
        path.write_text(text, encoding="utf-8")
        out[case] = (text, path)
    return out


@pytest.mark.parametrize("case", sorted(HOSTILE_CASES))
def test_hostile_text_stays_inert(hostile, case):
    text, _ = hostile[case]
    tree = check_module(text)
    fields = HOSTILE_CASES[case]
    doc = ast.get_docstring(tree, clean=False)
    if "description" in fields:  # in the docstring, escaped: its value holds the words
        assert " ".join(fields["description"].split()) in " ".join(doc.split())
    if "tag" in fields:  # a string value reaches the source only as a literal
        literals = [
            n.value for n in ast.walk(tree) if isinstance(n, ast.Constant) and n.value is not None
        ]
        assert fields["tag"] in literals
    assert "PWNED" not in {n.id for n in ast.walk(tree) if isinstance(n, ast.Name)}


def test_hostile_spec_path_stays_inert(tmp_path):
    folder = tmp_path / 'we"""ird\nname \\ {{ x }}'
    folder.mkdir()
    spec = folder / "safe.yaml"
    spec.write_text(spec_text(), encoding="utf-8")
    (generated,), errors = render_specs([str(spec)], tmp_path / "out")
    assert not errors
    tree = check_module(generated.text)
    assert 'we"""ird\nname \\ {{ x }}/safe.yaml' in ast.get_docstring(tree, clean=False)


def test_nul_from_a_yaml_escape_is_escaped():
    text = spec_text().replace('description: "fine"', 'description: "a\\0b \\x00 c"')
    source = render_source(parse_spec(text, "nul.yaml"))
    assert "\x00" not in source and "a\\x00b" in source
    assert "a\x00b \x00 c" in ast.get_docstring(check_module(source))


def test_hostile_modules_pass_ruff(hostile):
    beside = Path(sys.executable).parent / "ruff"
    ruff = str(beside) if beside.exists() else shutil.which("ruff")
    if ruff is None:
        pytest.skip("ruff is not installed")
    files = [str(path) for _, path in hostile.values()]
    for args in (["format", "--check"], ["check"]):
        result = subprocess.run(
            [ruff, *args, "--isolated", "--no-force-exclude", *files],
            capture_output=True,
            text=True,
        )
        assert result.returncode == 0, result.stdout + result.stderr


def test_hostile_modules_run_and_create_no_marker(hostile, tmp_path):
    """Run every hostile module as __main__ (builds and summarises its model) in one
    subprocess whose current folder is tmp_path; no PWNED file may appear."""
    paths = [str(path) for _, path in hostile.values()]
    code = textwrap.dedent(
        f"""
        import contextlib, io, runpy
        for path in {paths!r}:
            with contextlib.redirect_stdout(io.StringIO()):
                runpy.run_path(path, run_name="__main__")
            module = runpy.run_path(path)
            module["compile_model"](module["build_model"](), 1)
        print("ran", len({paths!r}))
        """
    )
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, env=env
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert f"ran {len(paths)}" in result.stdout
    assert not (tmp_path / "PWNED").exists()
    assert not any(p.name == "PWNED" for p in tmp_path.rglob("*"))
