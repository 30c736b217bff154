"""What check and build say: a JSON entry for every spec (invalid ones with their
problems), what --no-save reports when counts differ, and only close suggestions."""

import json

import pytest
from click.testing import CliRunner

from nincompile import api
from nincompile.cli import main
from nincompile.errors import close_matches, did_you_mean

TINY = """\
name: tiny
input: [8, 8, 3]
defaults: {padding: same, activation: relu, batch_norm: true}
stages:
  - {conv: [4, 3], pool: {max: 2}}
head: [gap, {dense: 3, activation: softmax}]
expect: {params: 143, trainable: 135, non_trainable: 8}
"""
INVALID = "name: bad\ninput: [8, 8, 3]\nstages: [{conv: [4, 9]}]\n"
PROBLEM = {"line": 3, "path": "stages[0].conv"}


@pytest.fixture
def runner():
    return CliRunner()


def assert_invalid_entry(entry, path):
    assert entry["spec"] == str(path) and entry["ok"] is False
    (problem,) = entry["problems"]
    assert set(problem) == {"file", "line", "column", "path", "message"}
    assert problem["file"] == str(path) and isinstance(problem["column"], int)
    assert {k: problem[k] for k in PROBLEM} == PROBLEM
    assert problem["message"].startswith("conv window 9 is larger than the input height 8")


@pytest.mark.parametrize("command", [["check"], ["build", "--no-save"]])
def test_json_of_one_invalid_spec_is_its_problems(runner, spec_file, command):
    bad = spec_file(INVALID, "bad.yaml")
    result = runner.invoke(main, [*command, "--json", str(bad)])
    assert result.exit_code == 1
    assert_invalid_entry(json.loads(result.stdout), bad)


@pytest.mark.parametrize("command", [["check"], ["build", "--no-save"]])
def test_json_keeps_an_entry_for_every_spec(runner, spec_file, command):
    good = spec_file(TINY, "good.yaml")
    bad = spec_file(INVALID, "bad.yaml")
    result = runner.invoke(main, [*command, "--json", str(good), str(bad)])
    assert result.exit_code == 1
    first, second = json.loads(result.stdout)
    assert first == api.compile_spec(good).summary()
    assert first["ok"] is True and first["problems"] == [] and first["name"] == "tiny"
    assert_invalid_entry(second, bad)


def test_json_expect_mismatch_is_a_located_problem(runner, spec_file):
    path = spec_file(TINY.replace("params: 143", "params: 142"))
    result = runner.invoke(main, ["check", "--json", str(path)])
    assert result.exit_code == 1
    summary = json.loads(result.stdout)
    assert summary["ok"] is False and summary["expect_ok"] is False
    assert summary["problems"] == [
        {
            "file": str(path),
            "line": 7,
            "column": 10,
            "path": "expect.params",
            "message": "expected 142, actual 143 (+1)",
        }
    ]


def test_json_resource_refusal_is_a_problem(runner, spec_file):
    path = spec_file(TINY)
    result = runner.invoke(main, ["check", "--json", "--max-params", "100", str(path)])
    assert result.exit_code == 1
    summary = json.loads(result.stdout)
    assert summary["ok"] is False and summary["name"] == "tiny"
    (problem,) = summary["problems"]
    assert problem["file"] == str(path) and "100" in problem["message"]


def test_no_save_says_counts_differ_not_that_it_did_not_save(runner, spec_file, tmp_path):
    path = spec_file(TINY.replace("params: 143", "params: 142"))
    result = runner.invoke(main, ["build", "--no-save", str(path)])
    assert result.exit_code == 1
    assert "tiny: counts differ from 'expect:' (see above)" in result.output
    assert "not saved" not in result.output
    result = runner.invoke(main, ["build", "-o", str(tmp_path / "out"), str(path)])
    assert result.exit_code == 1
    assert "tiny: not saved, because its counts differ from 'expect:'" in result.output


@pytest.mark.parametrize(
    "word, choices, expected",
    [
        ("dilation", ["activation", "padding", "filters"], ""),
        ("dilaton", ["dilation", "activation"], "dilation"),
        ("activaton", ["activation", "dilation"], "activation"),
        ("paddding", ["padding", "pool"], "padding"),
        ("filter", ["filters", "kernel"], "filters"),
        ("stride", ["strides"], "strides"),
        ("trian", ["train", "data"], "train"),
        ("chan", ["ch"], "ch"),
        ("kk", ["k", "ch"], "k"),
        ("Resnet50", ["ResNet50", "ResNet101"], "ResNet50"),
        ("colour", ["conv", "dense", "pool"], ""),
        ("x", ["y", "z"], ""),
    ],
)
def test_did_you_mean_suggests_only_close_matches(word, choices, expected):
    assert did_you_mean(word, choices) == (f" (did you mean '{expected}'?)" if expected else "")


def test_close_matches_closest_first():
    assert close_matches("paddng", ["padding", "pad", "adding", "pool"], n=3) == [
        "padding",
        "adding",
        "pad",
    ]


def test_unknown_key_far_from_every_key_gets_no_suggestion(runner, spec_file):
    path = spec_file(TINY.replace("{conv: [4, 3],", "{conv: [4, 3], colour: red,"))
    result = runner.invoke(main, ["check", str(path)])
    assert result.exit_code == 1
    assert "unknown key 'colour'" in result.output and "did you mean" not in result.output
    path = spec_file(TINY.replace("{conv: [4, 3],", "{conv: [4, 3], paddding: same,"))
    result = runner.invoke(main, ["check", str(path)])
    assert "unknown key 'paddding' (did you mean 'padding'?)" in result.output


def test_variant_picks_one_family_member(tmp_path):
    """``check --variant`` takes one member of a family, by its suffix or full name;
    an unknown one is a clean error listing the members."""
    spec = tmp_path / "fam.yaml"
    spec.write_text(
        "name: fam\nparams: {width: 1.0}\n"
        "family: {small: {width: 0.5}, big: {width: 2.0}}\n"
        "input: [8, 8, 3]\nstages: [{conv: ['divisible(16 * $width, 8)', 3]}]\n",
        encoding="utf-8",
    )
    for name in ("small", "fam_small"):
        result = CliRunner().invoke(main, ["check", str(spec), "--variant", name, "--json"])
        assert result.exit_code == 0, result.output
        assert json.loads(result.output)["name"] == "fam_small"
    result = CliRunner().invoke(main, ["check", str(spec), "--json"])
    assert [m["name"] for m in json.loads(result.stdout)] == ["fam_small", "fam_big"]
    result = CliRunner().invoke(main, ["check", str(spec), "--variant", "huge"])
    assert result.exit_code == 1
    assert "no variant named 'huge'; expected one of: fam_small, fam_big" in result.output


def test_build_table_prints_the_spec_path_as_text(runner, spec_file):
    """A spec's path reaches the table's title with its control characters written
    out and its brackets as brackets (it printed the escape sequence raw, and rich
    read '[bold]' as markup)."""
    path = spec_file(TINY, "esc\x1b[31mred[bold].yaml")
    result = runner.invoke(main, ["build", "--no-save", str(path)])
    assert result.exit_code == 0, result.output
    assert "\x1b" not in result.output
    assert "esc\\x1b[31mred[bold].yaml" in "".join(result.output.split())  # title wraps


@pytest.mark.parametrize(
    "text, expected",
    [
        (  # members whose model does not compile: both, each naming its model
            "name: fam\nparams: {alpha: 1.0}\n"
            "family: {ok: {alpha: 0.5}, s1: {alpha: wide}, s2: {alpha: nope}}\n"
            "input: [16, 16, 3]\nstages: [{conv: ['divisible(32 * $alpha, 8)', 3]}]\n",
            ["2 problems in spec", "received string 'wide'", "(in fam_s1)",
             "received string 'nope'", "(in fam_s2)"],
        ),
        (  # members whose values make the spec invalid (here its input)
            "name: fam\nparams: {r: 16}\nfamily: {ok: {r: 16}, neg: {r: -1}, zero: {r: 0}}\n"
            "input: [$r, $r, 3]\nstages: [{conv: [8, 3]}]\n",
            ["received -1 (in family member neg)", "received 0 (in family member zero)"],
        ),
    ],
    ids=["models", "values"],
)  # fmt: skip
def test_every_bad_family_member_is_reported_at_once(runner, tmp_path, text, expected):
    """A family with several bad members lists every problem, each naming its member
    (only the first was reported)."""
    path = tmp_path / "fam.yaml"
    path.write_text(text, "utf-8")
    result = runner.invoke(main, ["check", str(path)])
    assert result.exit_code == 1 and "Traceback" not in result.output
    for words in expected:
        assert words in result.output, (words, result.output)


def test_every_bad_family_value_and_variant_key_is_reported_at_once():
    """Unknown params in several family members, and several bad variant keys, are
    all listed (the first stopped the check)."""
    from nincompile.errors import SpecError
    from nincompile.spec import parse_spec
    from nincompile.spec.variants import expand

    family = parse_spec(
        "name: fam\nparams: {r: 16}\nfamily: {a: {q: 1, z: 2}, b: {rr: 3}, c: {r: 8}}\n"
        "input: [$r, $r, 3]\nstages: [{conv: [8, 3]}]\n",
        "fam.yaml",
    )
    with pytest.raises(SpecError) as info:
        expand(family)
    found = [(p.path, p.message.endswith(f"(in family member {p.path[1]})"))
             for p in info.value.problems]  # fmt: skip
    assert found == [(("family", "a", "q"), True), (("family", "a", "z"), True),
                     (("family", "b", "rr"), True)]  # fmt: skip
    variants = parse_spec(
        "name: v\ninput: [8, 8, 3]\nvariants: {zzz: [1], yyy: [2], defaults.order: [bamd]}\n"
        "stages: [{conv: [8, 3]}]\n",
        "v.yaml",
    )
    with pytest.raises(SpecError) as info:
        expand(variants)
    assert [p.path for p in info.value.problems] == [("variants", "zzz"), ("variants", "yyy")]
