"""Hostile input (issue 11): specs, sizes, names and files that try to break the tool.

* Specs: any text or bytes gives a valid spec or the tool's own SpecError (property
  tests); valid specs survive dump -> load; size, depth and alias limits are checked
  before parsing and say how to raise them; no YAML tag ever runs code.
* Resource guard: a model that cannot fit is refused by check and build, before
  TensorFlow is imported, with the estimate and the limit.
* Files: names never leave their folder; a save killed at any moment leaves the old
  complete file or the new one; a truncated or random .keras is a clear error.
"""

from __future__ import annotations

import copy
import os
import random
import signal
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner
from conftest import ROOT, SPECS
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from nincompile import api, guard
from nincompile.cli import main
from nincompile.errors import NincompileError, SpecError
from nincompile.files import UnsafePathError, atomic_write, safe_child
from nincompile.spec import load_spec, parse_spec
from nincompile.spec import yaml_loader as yl
from nincompile.spec.load import parse_spec_bytes
from nincompile.spec.overrides import apply_overrides, dump

FUZZ = settings(
    max_examples=250,
    deadline=None,
    database=None,  # nothing written into the checkout
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)

MANY = settings(FUZZ, max_examples=1000)  # for the cheap ones: text and bytes

TINY = "name: tiny\ninput: [8, 8, 3]\nstages:\n  - {conv: [4, 3]}\nhead: [gap, {dense: 2}]\n"


def loads_or_spec_error(load, arg):
    """``load(arg)`` must give a spec or a SpecError; anything else fails the test."""
    try:
        return load(arg)
    except SpecError as err:
        assert err.problems and str(err).startswith(f"{len(err.problems)} problem")
        return None


# ------------------------------------------------------------ any text or bytes

# Pieces of YAML and of specs, with control characters, odd line breaks, a BOM, tags,
# anchors, directives and a 5,000-digit number, shuffled into documents.
TOKENS = [
    "name: m\n", "input: [8, 8, 3]\n", "stages:\n", "  - ", "{conv: [4, 3]}", "head: [gap]\n",
    "- ", ": ", "[", "]", "{", "}", ", ", "&a ", "*a", "<<: ", "? ", "|\n", ">\n", "'", '"',
    "# c\n", "%YAML 1.1\n", "%TAG !p! tag:yaml.org,2002:python/\n", "---\n", "...\n",
    "!!python/object/apply:os.system ", "!!binary ", "!!set ", "!p!name:os.system ", "!x ",
    "\t", "\r\n", "\r", "\n", "  ", "\x00", "\x07", "\x1b", "\x7f", "\ufeff", "\u2028", "\x85",
    "\ufffe", "\ud800", "\udfff", "1e5", "0x1F", "1:20", "~", "null", "yes", "=", "\\", "é",
    "\U0001f600", "2024-13-45", "1" * 5000, "x" * 300,
]  # fmt: skip
yaml_ish = st.lists(st.sampled_from(TOKENS), max_size=40).map("".join)
odd_chars = st.characters(categories=["Cc", "Cf", "Cs", "Co", "Zl", "Zp"])  # controls, surrogates
any_text = st.one_of(
    st.text(),
    st.text(st.characters(max_codepoint=0x7F)),
    st.text(st.one_of(st.characters(), odd_chars)),
    yaml_ish,
)


@MANY
@given(any_text)
def test_any_text_gives_a_spec_or_a_spec_error(text):
    loads_or_spec_error(lambda t: parse_spec(t, "s.yaml"), text)


@MANY
@given(
    st.one_of(
        st.binary(),
        yaml_ish.map(lambda t: t.encode("utf-8", "surrogatepass")),
        yaml_ish.map(lambda t: t.encode("utf-16", "surrogatepass")),
        any_text.map(lambda t: t.encode("utf-8", "surrogatepass")),
        yaml_ish.map(lambda t: t.encode("utf-8", "surrogatepass") + b"\xff\xfe\xc3"),
        yaml_ish.map(
            lambda t: b"\xef\xbb\xbf" + t.replace("\n", "\r\n").encode("utf-8", "surrogatepass")
        ),
    )
)
def test_any_bytes_give_a_spec_or_a_spec_error(data):
    loads_or_spec_error(lambda d: parse_spec_bytes(d, "s.yaml"), data)


def _paths(node, prefix=()):
    yield prefix
    if isinstance(node, dict):
        items = node.items()
    else:
        items = enumerate(node) if isinstance(node, list) else ()
    for key, value in items:
        yield from _paths(value, (*prefix, key))


_SPEC_DATA = [yl.load_yaml(p.read_text())[0] for p in SPECS]
_ODD = [
    0, -1, 0.5, 1e30, float("nan"), float("inf"), "x", "$ch", "$nope", "${ch}", None, True,
    [], {}, [1, 2, 3], {"a": 1}, "same", "max", "concat", "gap", {"conv": [4, 3]},
    {"start": 1, "mul": 2}, {"first": 2, "rest": 1}, "int", "dabm", "", 2**40, "é\x07",
]  # fmt: skip


@st.composite
def mutated_specs(draw):
    """A spec from specs/ with one to three values replaced, removed or inserted."""
    data = copy.deepcopy(draw(st.sampled_from(_SPEC_DATA)))
    for _ in range(draw(st.integers(1, 3))):
        path = draw(st.sampled_from([p for p in _paths(data) if p]))
        parent = data
        for key in path[:-1]:
            parent = parent[key]
        how = draw(st.integers(0, 4))
        value = copy.deepcopy(draw(st.sampled_from(_ODD)))
        if how == 0 and isinstance(parent, dict):
            del parent[path[-1]]
        elif how == 1 and isinstance(parent, list):
            parent.insert(path[-1], value)
        else:
            parent[path[-1]] = value
    return yaml.safe_dump(data, allow_unicode=draw(st.booleans()))


@FUZZ
@given(mutated_specs())
def test_near_valid_specs_give_a_spec_or_a_spec_error(text):
    loads_or_spec_error(lambda t: parse_spec(t, "s.yaml"), text)


# ------------------------------------------------------------ dump -> load

ident = st.from_regex(r"[a-z][a-z0-9_]{0,11}", fullmatch=True).filter(
    lambda s: s not in {"and", "as", "if", "in", "is", "or", "not", "for", "def", "del"}
)
printable = st.text(st.characters(blacklist_categories=("Cs",)), max_size=40)


@st.composite
def valid_specs(draw):
    size = draw(st.integers(8, 32))
    stages = []
    for _ in range(draw(st.integers(1, 4))):
        stage = {"conv": [draw(st.integers(1, 16)), draw(st.sampled_from([1, 3]))]}
        stage["padding"] = "same"
        if draw(st.booleans()):
            stage["batch_norm"] = True
        if draw(st.booleans()):
            stage["activation"] = draw(st.sampled_from(["relu", "sigmoid", "tanh"]))
        if draw(st.booleans()):
            stage["dropout"] = draw(st.floats(0, 0.9, allow_nan=False))
        stages.append(stage)
    data = {
        "name": draw(ident),
        "description": draw(printable),
        "input": [size, size, draw(st.sampled_from([1, 3]))],
        "stages": stages,
        "head": [draw(st.sampled_from(["gap", "flatten"])), {"dense": draw(st.integers(1, 10))}],
    }
    if draw(st.booleans()):
        data["train"] = {"batch_size": draw(st.integers(1, 512)), "epochs": 1}
    return data


@FUZZ
@given(valid_specs(), st.booleans(), st.booleans())
def test_valid_specs_survive_dump_and_load(data, bom, crlf):
    first = parse_spec(yaml.safe_dump(data, sort_keys=False), "a.yaml")
    again = parse_spec(yl.dump_yaml(yl.load_yaml(first.text)[0]), "b.yaml")
    assert again.spec == first.spec and again.spec.model_dump() == first.spec.model_dump()
    text = yl.dump_yaml(data)
    raw = ("\ufeff" if bom else "") + (text.replace("\n", "\r\n") if crlf else text)
    assert parse_spec_bytes(raw.encode("utf-8"), "c.yaml").spec == first.spec


plain_data = st.recursive(
    st.one_of(
        st.text(st.characters(exclude_categories=["Cs"])),
        st.integers(-(10**30), 10**30),
        st.floats(allow_nan=False),
        st.booleans(),
        st.none(),
        st.sampled_from(["1e5", "-2E3", "2024-01-31", "=", "<<", "yes", "~", "0x1F", "1:20"]),
    ),
    lambda inner: st.one_of(
        st.lists(inner, max_size=4),
        st.dictionaries(st.one_of(st.text(max_size=8), st.integers(-5, 5)), inner, max_size=4),
    ),
    max_leaves=25,
)


@FUZZ
@given(st.dictionaries(st.text(max_size=8), plain_data, max_size=5))
def test_plain_data_survives_dump_and_load(data):
    assert yl.load_yaml(yl.dump_yaml(data))[0] == data


@pytest.mark.parametrize("path", SPECS, ids=lambda p: p.stem)
def test_every_spec_file_survives_dump_and_load(path):
    src = load_spec(path)
    for text in (yl.dump_yaml(yl.load_yaml(src.text)[0]), dump(yl.load_yaml(src.text)[0], "x")):
        assert parse_spec(text, "d.yaml").spec == src.spec


@pytest.mark.parametrize("description", ["1e5", "a\x85b"])
def test_overrides_keep_odd_strings(description):
    src = parse_spec(TINY + f"description: {yl.dump_yaml(description)}", "t.yaml")
    assert src.spec.description == description
    assert apply_overrides(src, ["input=[9, 9, 3]"]).spec.description == description


def test_bom_and_crlf_are_accepted(tmp_path):
    text = (ROOT / "specs" / "lenet5.yaml").read_text()
    plain = load_spec(ROOT / "specs" / "lenet5.yaml")
    for name, raw in [
        ("bom.yaml", b"\xef\xbb\xbf" + text.encode()),
        ("crlf.yaml", text.replace("\n", "\r\n").encode()),
        ("both.yaml", b"\xef\xbb\xbf" + text.replace("\n", "\r\n").encode()),
        ("cr.yaml", text.replace("\n", "\r").encode()),
    ]:
        (tmp_path / name).write_bytes(raw)
        src = load_spec(tmp_path / name)
        assert src.spec == plain.spec and src.text == plain.text, name
        assert src.positions == plain.positions, name  # errors point at the same lines


@pytest.mark.parametrize(
    ("raw", "fragment"),
    [
        (TINY.encode("utf-16"), "the file is UTF-16 text; save it as UTF-8"),
        (TINY.encode("utf-32"), "the file is UTF-32 text; save it as UTF-8"),
        (TINY.encode("utf-16-le"), "NUL bytes: is it UTF-16 text without a byte-order mark"),
        (TINY.replace("tiny", "t\xefny").encode("latin-1"), "s.yaml:1:8: not UTF-8 text: 0xEF"),
        (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR", "not UTF-8 text: 0x89 at byte offset 0"),
    ],
)  # fmt: skip
def test_other_encodings_are_clear_errors(raw, fragment):
    with pytest.raises(SpecError, match="problem in spec") as info:
        parse_spec_bytes(raw, "s.yaml")
    assert fragment in str(info.value)


@pytest.mark.parametrize("char", ["\x00", "\x07", "\x1b", "\x7f", "\x9b", "\ufffe", "\ud800"])
def test_control_characters_are_located(char):
    with pytest.raises(SpecError) as info:
        parse_spec(f"name: tiny\ninput: [8, 8, 3]\nstages: [fl{char}atten]\n", "s.yaml")
    (problem,) = info.value.problems
    assert (problem.line, problem.column) == (3, 12)
    assert f"character U+{ord(char):04X}" in problem.message


def test_long_lines_are_fine():
    src = parse_spec(TINY + f"description: {'x' * 500_000}\n", "s.yaml")
    assert len(src.spec.description) == 500_000


@pytest.mark.parametrize(
    ("value", "fragment"),
    [
        ("!!int x", "cannot read 'x' as an integer"),
        ("!!bool maybe", "cannot read 'maybe' as a boolean"),
        ("!!float one", "cannot read 'one' as a number"),
        ("1" * 5000, "a number of 5,000 digits is too long"),
        ("!!timestamp 2024-01-01", "unsupported YAML tag 'tag:yaml.org,2002:timestamp'"),
        ("!!binary aGk=", "unsupported YAML tag 'tag:yaml.org,2002:binary'"),
        ("!!set {a}", "unsupported YAML tag 'tag:yaml.org,2002:set'"),
        ("!!omap [a: 1]", "unsupported YAML tag 'tag:yaml.org,2002:omap'"),
        ("!local 1", "unsupported YAML tag '!local'"),
    ],
)
def test_bad_scalars_and_tags_are_located_spec_errors(value, fragment):
    with pytest.raises(SpecError) as info:
        parse_spec(f"name: tiny\ninput: [8, 8, 3]\nstages: [flatten]\nx: {value}\n", "s.yaml")
    assert fragment in str(info.value) and "s.yaml:4:4: x: " in str(info.value)


def test_dates_and_odd_plain_scalars_are_strings():
    data, _ = yl.load_yaml("a: 2024-01-31\nb: 2024-13-45\nc: <<\n=: 1\n")
    assert data == {"a": "2024-01-31", "b": "2024-13-45", "c": "<<", "=": 1}


def test_merge_keys_are_overridden_by_written_keys():
    data, _ = yl.load_yaml("d: &d {a: 1, b: 2}\nx: {<<: *d, a: 3}\n")
    assert data["x"] == {"a": 3, "b": 2}
    with pytest.raises(SpecError, match="duplicate key 'a'"):
        yl.load_yaml("d: &d {a: 1}\nx: {<<: *d, a: 3, a: 4}\n")


# ------------------------------------------------------------------- limits


@pytest.mark.parametrize(
    "make",
    [
        lambda n: "a: " + "[" * n + "]" * n,
        lambda n: "a: " + "{b: " * n + "1" + "}" * n,
        lambda n: "".join("  " * i + f"k{i}:\n" for i in range(n)) + "  " * n + "x",
        lambda n: "a:\n" + "".join("  " * i + "- \n" for i in range(n)),
    ],
    ids=["flow-lists", "flow-maps", "block-maps", "block-lists"],
)
def test_deep_nesting_is_refused_before_composing(make):
    # 64 levels read (as YAML; not a valid spec), 65 do not
    loads_or_spec_error(yl.load_yaml, make(60))
    for depth in (70, 700):  # 700 levels of block indentation is ~0.5 MB
        with pytest.raises(SpecError, match="nested more than 64 levels deep") as info:
            yl.load_yaml(make(depth))
        assert "NINCOMPILE_SPEC_MAX_DEPTH" in str(info.value)


def test_depth_limit_can_be_raised(monkeypatch):
    text = "a: " + "[" * 100 + "]" * 100
    with pytest.raises(SpecError, match="64 levels"):
        yl.load_yaml(text)
    monkeypatch.setenv("NINCOMPILE_SPEC_MAX_DEPTH", "200")
    node, depth = yl.load_yaml(text)[0]["a"], 1
    while node:
        node, depth = node[0], depth + 1
    assert depth == 100


def test_deep_nesting_through_aliases_is_refused():
    lines = ["a0: &a0 " + "[" * 40 + "1" + "]" * 40]
    lines += [f"a{i}: &a{i} " + "[" * 40 + f"*a{i - 1}" + "]" * 40 for i in range(1, 30)]
    with pytest.raises(SpecError) as info:
        yl.load_yaml("\n".join(lines))
    (problem,) = info.value.problems
    assert "nested more than 64 levels deep once YAML aliases are expanded" in problem.message


def test_the_composer_stops_deep_nesting_even_past_the_scan(monkeypatch):
    monkeypatch.setattr(yl, "_scan", lambda *args: None)  # as if the pre-scan missed it
    with pytest.raises(SpecError, match="nested more than 64 levels deep"):
        yl.load_yaml("a: " + "[" * 20_000 + "]" * 20_000)


def test_recursion_is_a_spec_error_even_past_every_limit(monkeypatch):
    monkeypatch.setenv("NINCOMPILE_SPEC_MAX_DEPTH", "1000000")  # raised far too far
    with pytest.raises(SpecError, match="nested too deeply to read"):
        yl.load_yaml("a: " + "[" * 20_000 + "]" * 20_000)


def test_deep_override_values_are_spec_errors():
    src = parse_spec(TINY, "t.yaml")
    with pytest.raises(SpecError, match="nested more than 64 levels deep"):
        apply_overrides(src, ["description=" + "[" * 5_000 + "]" * 5_000])


def test_alias_count_is_limited(monkeypatch):
    text = "a: &a 1\nb: [" + ", ".join(["*a"] * 1001) + "]\n"
    with pytest.raises(SpecError, match="more than 1,000 YAML aliases") as info:
        yl.load_yaml(text)
    assert "NINCOMPILE_SPEC_MAX_ALIASES" in str(info.value)
    monkeypatch.setenv("NINCOMPILE_SPEC_MAX_ALIASES", "2000")
    assert len(yl.load_yaml(text)[0]["b"]) == 1001


def test_alias_bomb_says_how_to_raise_the_limit():
    lines = ["a0: &a0 [x, x, x, x, x, x, x, x, x]"]
    lines += [f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 9)}]" for i in range(1, 9)]
    with pytest.raises(SpecError, match="NINCOMPILE_SPEC_MAX_VALUES"):
        yl.load_yaml("\n".join(lines))


def test_file_size_is_checked_before_reading(tmp_path, monkeypatch):
    big = tmp_path / "big.yaml"
    with open(big, "wb") as f:
        f.truncate(8 << 30)  # 8 GiB, sparse: reading it would take minutes
    t = time.perf_counter()
    with pytest.raises(SpecError, match="8,589,934,592 bytes, over the limit of 1,048,576"):
        load_spec(big)
    assert time.perf_counter() - t < 1
    if Path("/dev/zero").exists():  # a device: refused before it is opened
        with pytest.raises(SpecError, match="not a regular file .a character device"):
            load_spec("/dev/zero")
    spec = tmp_path / "long.yaml"
    spec.write_text(TINY + f"description: {'x' * (1 << 20)}\n")
    with pytest.raises(SpecError, match="NINCOMPILE_SPEC_MAX_BYTES"):
        load_spec(spec)
    monkeypatch.setenv("NINCOMPILE_SPEC_MAX_BYTES", "2_000_000")
    assert load_spec(spec).spec.name == "tiny"
    monkeypatch.setenv("NINCOMPILE_SPEC_MAX_BYTES", "lots")
    with pytest.raises(SpecError, match="NINCOMPILE_SPEC_MAX_BYTES='lots' is not a whole"):
        load_spec(spec)


def test_limits_are_refused_by_the_cli_without_traceback(tmp_path):
    deep = tmp_path / "deep.yaml"
    deep.write_text("name: x\ninput: " + "[" * 10_000 + "]" * 10_000 + "\n")
    result = CliRunner().invoke(main, ["check", str(deep)])
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert f"{deep}:2:" in result.output and "NINCOMPILE_SPEC_MAX_DEPTH" in result.output


# --------------------------------------------------------------- tags never run code

PAYLOADS = [
    "!!python/object/apply:os.system ['touch {m}']",
    "!!python/object/apply:subprocess.call [[touch, '{m}']]",
    "!!python/object/new:subprocess.Popen [[touch, '{m}']]",
    "!!python/object/apply:builtins.exec [\"open('{m}', 'w')\"]",
    "!!python/name:os.system",
    "!!python/module:os",
    "!<tag:yaml.org,2002:python/object/apply:os.system> ['touch {m}']",
    "!p!object/apply:os.system ['touch {m}']",
]


@pytest.mark.parametrize("payload", PAYLOADS)
@pytest.mark.parametrize("where", ["root", "value", "stage", "key"])
def test_python_tags_are_refused_and_run_no_code(tmp_path, payload, where):
    marker = tmp_path / "marker"
    value = payload.format(m=marker)
    head = "%TAG !p! tag:yaml.org,2002:python/\n---\n" if "!p!" in value else ""
    body = {
        "root": f"{value}\n",
        "value": f"name: {value}\ninput: [8, 8, 3]\nstages: [flatten]\n",
        "stage": f"name: x\ninput: [8, 8, 3]\nstages:\n  - {value}\n",
        "key": f"name: x\ninput: [8, 8, 3]\nstages: [flatten]\n? {value}\n: 1\n",
    }[where]
    spec = tmp_path / "evil.yaml"
    spec.write_text(head + body)
    with pytest.raises(SpecError, match="tag"):
        load_spec(spec)
    result = CliRunner().invoke(main, ["check", str(spec)])
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert not marker.exists()


def test_python_tags_in_overrides_run_no_code(tmp_path):
    marker = tmp_path / "marker"
    src = parse_spec(TINY, "t.yaml")
    for payload in PAYLOADS[:4]:
        with pytest.raises(SpecError):
            apply_overrides(src, [f"description={payload.format(m=marker)}"])
    for other in ("!!binary aGk=", "!!set {a}"):  # plain PyYAML types, still refused
        with pytest.raises(SpecError, match="unsupported YAML tag"):
            apply_overrides(src, [f"description={other}"])
    assert not marker.exists()


# ------------------------------------------------------------- resource guard

HUGE = {
    "filters": "name: huge\ninput: [32, 32, 3]\nstages:\n  - {conv: [2000000000, 3]}\n",
    "dense": "name: huge\ninput: [1000, 1000, 1]\nstages: [flatten]\nhead:\n  - {dense: 1000000}\n",
    "repeat": (
        "name: huge\ninput: [64, 64, 3]\nstages:\n"
        "  - {repeat: 1000, stages: [{conv: [4096, 3], padding: same}]}\n"
    ),
    "activation": "name: huge\ninput: [100000, 100000, 3]\nstages:\n  - {conv: [64, 3]}\n",
}  # fmt: skip


@pytest.mark.parametrize("kind", HUGE)
def test_check_refuses_a_model_that_cannot_fit(tmp_path, kind, monkeypatch):
    monkeypatch.setenv("NINCOMPILE_MAX_MEMORY", "16GiB")  # the default is this machine's
    spec = tmp_path / "huge.yaml"
    spec.write_text(HUGE[kind])
    result = CliRunner().invoke(main, ["check", str(spec)])
    assert result.exit_code == 1 and "Traceback" not in result.output, result.output
    out = result.output
    assert f"{spec}:4:" in out or f"{spec}:5:" in out  # located at the layer responsible
    assert "does not fit in memory" in out and "over the limit of 16.0 GiB" in out
    assert "--max-memory" in out and "NINCOMPILE_MAX_MEMORY" in out
    if kind != "activation":
        assert "parameters, over the limit of 2,000,000,000" in out and "--max-params" in out


def test_build_refuses_before_tensorflow_is_imported(tmp_path):
    spec = tmp_path / "huge.yaml"
    spec.write_text(HUGE["dense"])
    code = (
        "import sys\n"
        "from nincompile.cli import main\n"
        "try:\n"
        f"    main(['build', {str(spec)!r}, '-o', {str(tmp_path / 'out')!r}])\n"
        "except SystemExit as e:\n"
        "    assert e.code == 1, e.code\n"
        "bad = [m for m in ('tensorflow', 'keras', 'jax', 'torch') if m in sys.modules]\n"
        "assert not bad, bad\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert "1,000,001,000,000 parameters" in proc.stderr and "Traceback" not in proc.stderr
    assert not (tmp_path / "out").exists()


def test_api_build_applies_the_guard(tmp_path):
    spec = tmp_path / "huge.yaml"
    spec.write_text(HUGE["filters"])
    with pytest.raises(guard.ResourceError, match="56,000,000,000 parameters"):
        api.build(api.compile_spec(spec))  # what train and export call


def test_limits_can_be_raised_deliberately(tmp_path, monkeypatch):
    spec = tmp_path / "huge.yaml"
    spec.write_text(HUGE["dense"])
    runner = CliRunner()
    args = ["check", str(spec), "--max-params", "2e12", "--max-memory", "8TiB"]
    result = runner.invoke(main, args)
    assert result.exit_code == 0, result.output
    assert "weights 3.6 TiB (1,000,001,000,000 parameters)" in result.output
    monkeypatch.setenv("NINCOMPILE_MAX_PARAMS", "2T")
    monkeypatch.setenv("NINCOMPILE_MAX_MEMORY", "5 TiB")
    assert runner.invoke(main, ["check", str(spec)]).exit_code == 0
    result = runner.invoke(main, ["check", str(spec), "--max-memory", "1TiB"])
    assert result.exit_code == 1 and "over the limit of 1.0 TiB" in result.output


@pytest.mark.parametrize("value", ["lots", "-5GiB", "0", "12xyz", "1e400"])
def test_bad_limit_options_are_usage_errors(tmp_path, value):
    spec = tmp_path / "t.yaml"
    spec.write_text(TINY)
    for option in ("--max-params", "--max-memory"):
        result = CliRunner().invoke(main, ["check", str(spec), option, value])
        assert result.exit_code == 2 and "Traceback" not in result.output
        assert f"Invalid value for '{option}'" in result.output


def test_batch_size_counts_in_the_activation(tmp_path):
    spec = tmp_path / "b.yaml"
    text = "name: b\ninput: [224, 224, 3]\nstages:\n  - {conv: [64, 3], padding: same}\n"
    spec.write_text(text + "head: [gap, {dense: 10}]\ntrain: {batch_size: 32}\n")
    assert CliRunner().invoke(main, ["check", str(spec)]).exit_code == 0
    spec.write_text(text + "head: [gap, {dense: 10}]\ntrain: {batch_size: 2048}\n")
    result = CliRunner().invoke(main, ["check", str(spec)])
    assert result.exit_code == 1
    assert "batch 2048" in result.output and "lower train.batch_size" in result.output


@pytest.mark.parametrize("name", ["vgg16", "resnet18"])
def test_big_classics_at_224_pass_the_guard(name, monkeypatch):
    monkeypatch.setenv("NINCOMPILE_MAX_MEMORY", "16GiB")  # the default is this machine's
    text = (ROOT / "specs" / f"{name}.yaml").read_text()
    text = text.replace("input: [32, 32, 3]", "input: [224, 224, 3]")
    compiled = api.compile_source(parse_spec(text, f"{name}.yaml"))
    assert list(compiled.spec.input) == [224, 224, 3]
    est = guard.check(compiled)  # training, batch 32, Adam: 6.4 and 12.8 GiB
    assert est.training and est.total_bytes < guard.DEFAULT_MAX_MEMORY
    inference = guard.estimate(compiled.graph, 1)
    assert inference.total_bytes < guard.DEFAULT_MAX_MEMORY / 16


def test_quantities():
    assert guard.parse_size("32GiB") == 32 * 2**30
    assert guard.parse_size("500 MB") == 500 * 10**6
    assert guard.parse_size("2g") == 2 * 2**30 and guard.parse_size("1e9") == 10**9
    assert guard.parse_count("3e9") == 3 * 10**9 == guard.parse_count("3G")
    assert guard.parse_count("2_000_000") == 2 * 10**6 == guard.parse_count("2,000,000")
    assert guard.format_bytes(10**400).endswith(" TiB")  # no float overflow


# ---------------------------------------------------------------------- names


@pytest.mark.parametrize(
    "name",
    ["../x", "..", ".", "", "/etc/passwd", "a/b", "a\\b", "x\x00y", "x\ny", "../../tmp/evil"],
)
def test_safe_child_refuses_names_that_leave_the_folder(tmp_path, name):
    with pytest.raises(UnsafePathError, match="refusing"):
        safe_child(tmp_path, name, "run name")
    assert issubclass(UnsafePathError, NincompileError)


@pytest.mark.parametrize("name", ["nin_badm", "run-2", "seed.3", "ünïcode", "a b", "..x"])
def test_safe_child_accepts_plain_names(tmp_path, name):
    assert safe_child(tmp_path, name) == tmp_path / name


def test_symbolic_links_planted_in_the_output_folder_are_refused(tmp_path):
    out, outside = tmp_path / "out", tmp_path / "outside"
    out.mkdir()
    outside.mkdir()
    (out / "run").symlink_to(outside)  # a folder elsewhere
    (out / "tiny.keras").symlink_to(outside / "victim")  # a file elsewhere, not there yet
    (out / "dangling").symlink_to(tmp_path / "nowhere")
    for name in ("run", "tiny.keras", "dangling"):
        with pytest.raises(UnsafePathError, match="symbolic link"):
            safe_child(out, name)
    with pytest.raises(NincompileError, match="symbolic link"):
        atomic_write(out / "tiny.keras", lambda tmp: tmp.write_text("x"))
    assert list(outside.iterdir()) == []


def test_a_failed_write_leaves_the_old_file(tmp_path):
    target = tmp_path / "m.keras"
    target.write_text("old")

    def half(tmp):
        tmp.write_text("new, but")
        raise OSError(28, "No space left on device")

    with pytest.raises(OSError):
        atomic_write(target, half)
    assert target.read_text() == "old" and [p.name for p in tmp_path.iterdir()] == ["m.keras"]


_WRITER = """
import sys
from pathlib import Path
from nincompile.files import atomic_write
target, size, gen = Path(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])

def write(gen):
    def to(tmp):
        block = b"%015d\\n" % gen * 4096  # 64 KiB
        with open(tmp, "wb") as f:
            for _ in range(size // len(block)):
                f.write(block)
    return to

print("ready", flush=True)
while True:
    gen += 1
    atomic_write(target, write(gen))
"""


def _generation(data: bytes, size: int) -> int:
    """The generation a complete file holds; fails on a torn or short one."""
    assert len(data) == size, f"{len(data)} bytes, expected {size}"
    first = data[:16]
    assert data.count(first) == size // 16, "mixed generations: a torn write"
    return int(first)


def test_kill_during_save_leaves_the_old_or_the_new_file(tmp_path):
    size = 4 << 20
    target = tmp_path / "model.keras"
    target.write_bytes(b"%015d\n" % 0 * (size // 16))
    rng = random.Random(11)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    last, interrupted = 0, 0
    for _ in range(10):
        proc = subprocess.Popen(
            [sys.executable, "-c", _WRITER, str(target), str(size), str(last)],
            stdout=subprocess.PIPE,
            env=env,
        )
        assert proc.stdout.readline() == b"ready\n"
        time.sleep(rng.uniform(0.02, 0.3))
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        proc.stdout.close()
        gen = _generation(target.read_bytes(), size)
        assert gen >= last  # never an older file than one already seen
        last = gen
        leftovers = [p for p in tmp_path.iterdir() if p != target]
        interrupted += bool(leftovers)  # killed mid-write: its temporary file stays
        for p in leftovers:
            p.unlink()
    assert last > 0, "the writer never finished a write: the test proves nothing"
    assert interrupted > 0, "no kill landed during a write: the test proves nothing"


# ------------------------------------------------------------------ .keras files


@pytest.fixture(scope="module")
def saved_keras(tmp_path_factory):
    d = tmp_path_factory.mktemp("keras_files")
    spec = d / "tiny.yaml"
    spec.write_text(TINY)
    _, model = api.build_spec(spec)
    model.save(d / "tiny.keras")
    return d / "tiny.keras"


def test_truncated_and_random_keras_files_are_clear_errors(saved_keras, tmp_path):
    from nincompile.runs.model import load_keras_model

    good = saved_keras.read_bytes()
    assert load_keras_model(saved_keras) is not None
    bad = {f"cut{n}.keras": good[: len(good) * n // 8] for n in (0, 1, 4, 7)}
    bad["tail.keras"] = good[:-1]
    bad["random.keras"] = random.Random(3).randbytes(len(good))
    with zipfile.ZipFile(saved_keras) as zin:  # whole zips with a broken or missing member
        members = {i.filename: zin.read(i) for i in zin.infolist()}
    rng = random.Random(5)
    for broken in ("config.json", "model.weights.h5"):  # metadata.json is only informative
        content = members[broken]
        for how, replaced in [
            ("cut", content[: len(content) // 3]),
            ("noise", rng.randbytes(len(content))),
            ("gone", None),
        ]:
            with zipfile.ZipFile(tmp_path / f"{how}_{broken}.keras", "w") as zout:
                for name, data in members.items():
                    if name != broken:
                        zout.writestr(name, data)
                    elif replaced is not None:
                        zout.writestr(name, replaced)
    for name, content in bad.items():
        (tmp_path / name).write_bytes(content)
    for path in sorted(tmp_path.glob("*.keras")):
        with pytest.raises(NincompileError, match=r"cannot load|refusing") as info:
            load_keras_model(path)
        assert str(path) in str(info.value), path.name
