"""Validation errors: located, complete, with expected/received and suggestions.

Golden pairs live in tests/golden/invalid: ``X.yaml`` and ``X.expected`` (the exact
message, with ``{file}`` standing for the spec's path)."""

from pathlib import Path

import pytest
from doctext import docs_text

from nincompile.api import compile_spec
from nincompile.errors import SpecError
from nincompile.spec import parse_spec

GOLDEN = sorted((Path(__file__).parent / "golden" / "invalid").glob("*.yaml"))


@pytest.mark.parametrize("path", GOLDEN, ids=lambda p: p.stem)
def test_golden_invalid_spec(path):
    expected = path.with_suffix(".expected").read_text(encoding="utf-8").rstrip("\n")
    with pytest.raises(SpecError) as info:
        compile_spec(path)
    assert str(info.value) == expected.replace("{file}", str(path))


def test_goldens_exist():
    assert len(GOLDEN) >= 8


def errors_of(text: str) -> list[str]:
    with pytest.raises(SpecError) as info:
        parse_spec(text, "s.yaml")
    return [str(p) for p in info.value.problems]


def test_all_problems_reported_at_once():
    problems = errors_of(
        "name: m\ninput: [8, 8, 1]\nstages:\n  - {conv: [0, 3]}\n  - {dropout: 2}\n"
    )
    assert len(problems) == 2
    assert problems[0].startswith("s.yaml:4:")
    assert "stages[0].conv.filters" in problems[0] and "received 0" in problems[0]
    assert problems[1].startswith("s.yaml:5:")
    assert "stages[1].dropout" in problems[1] and "[0, 1)" in problems[1]


def test_typo_suggests_closest_key():
    (problem,) = errors_of(
        "name: m\ninput: [8, 8, 1]\nstages:\n  - {conv: [4, 3], padidng: same}\n"
    )
    assert "unknown key 'padidng' (did you mean 'padding'?)" in problem
    assert problem.startswith("s.yaml:4:20: stages[0].padidng")


def test_unknown_top_level_key_is_an_error():
    (problem,) = errors_of("name: m\ninput: [8, 8, 1]\nstages: [flatten]\nstage: []\n")
    assert "unknown key 'stage' (did you mean 'stages'?)" in problem


def test_duplicate_keys_are_an_error():
    (problem,) = errors_of("name: m\ninput: [8, 8, 1]\nname: n\nstages: [flatten]\n")
    assert problem == "s.yaml:3:1: name: duplicate key 'name' (first given at line 1)"


@pytest.mark.parametrize(
    "text, fragment",
    [
        ("", "the file is empty"),
        ("- a\n- b\n", "expected a mapping"),
        ("42\n", "received a single value"),
        ("name: [unclosed\n", "invalid YAML"),
        ("a: !!python/object/apply:os.system [echo hi]\n", "unsupported YAML"),
        ("? [a, b]\n: 1\n", "mapping keys must be plain strings"),
    ],
)
def test_bad_documents(text, fragment):
    (problem,) = errors_of(text)
    assert fragment in problem


def test_yaml_exponent_without_dot_is_a_float():
    src = parse_spec(
        "name: m\ninput: [8, 8, 1]\ndefaults: {weight_decay: 1e-4}\nstages: [flatten]\n"
    )
    assert src.spec.defaults.weight_decay == pytest.approx(1e-4)


@pytest.mark.parametrize(
    "order, fragment",
    [
        ("bxad", "unknown letter(s) 'x'"),
        ("bbad", "repeated letter(s) 'b'"),
        ("bamp", "repeated letter(s) 'p'"),
    ],
)
def test_order_strings(order, fragment):
    (problem,) = errors_of(
        f"name: m\ninput: [8, 8, 1]\nstages:\n  - {{conv: [4, 3], order: {order}}}\n"
    )
    assert "stages[0].order" in problem and fragment in problem


@pytest.mark.parametrize("name", ["class", "1abc", "x y", "a-b", "x\nimport os", ""])
def test_names_must_be_identifiers(name):
    problems = errors_of(f"name: {name!r}\ninput: [8, 8, 1]\nstages: [flatten]\n".replace("'", '"'))
    assert any("name: expected a name" in p for p in problems)


def test_missing_file_is_a_clean_error(tmp_path):
    with pytest.raises(SpecError, match="no such file"):
        compile_spec(tmp_path / "nope.yaml")


def test_recursive_alias_is_an_error():
    (problem,) = errors_of("name: x\ninput: [8, 8, 3]\nstages: &s [*s]\n")
    assert "a YAML alias refers to a value that contains it" in problem


def test_alias_bomb_is_refused():
    lines = ["a0: &a0 [x, x, x, x, x, x, x, x, x]"]
    lines += [f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 9)}]" for i in range(1, 9)]
    (problem,) = errors_of("\n".join(lines) + "\n")
    assert "more than 100,000 values once YAML aliases are expanded" in problem


def test_repeat_count_is_bounded():
    (problem,) = errors_of(
        "name: x\ninput: [8, 8, 3]\nstages: [{repeat: 100000000, stages: [flatten]}]\n"
    )
    assert "stages[0].repeat: expected a count from 0 to 1000" in problem


def test_layer_count_is_bounded():
    text = (
        "name: x\ninput: [8, 8, 3]\nstages:\n"
        "  - {repeat: 1000, stages: [{repeat: 1000, stages: [relu]}]}\n"
    )
    with pytest.raises(SpecError, match="grows past 20,000 layers"):
        compile_spec_text(text)


@pytest.mark.parametrize(
    "body",
    ["{activation: relu, when: false}", "{repeat: 0, stages: [relu]}"],
    ids=["items-not-made", "empty-repeat"],
)
def test_expansion_without_layers_is_bounded(body):
    """Nested repeats whose items make no layer stay under MAX_LAYERS: the steps count."""
    nested = body
    for _ in range(4):
        nested = f"{{repeat: 1000, stages: [{nested}]}}"
    text = f"name: x\ninput: [8, 8, 3]\nstages: [{nested}, flatten]\n"
    with pytest.raises(SpecError, match="expands past 100,000 items and repeat iterations"):
        compile_spec_text(text)  # unbounded: 10**12 steps


def compile_spec_text(text):
    from nincompile.ir import lower

    return lower(parse_spec(text, "s.yaml"))


BASE = "name: m\ninput: [8, 8, 1]\nstages:\n  - {conv: [4, 3]}\nhead: [gap, {dense: 2}]\n"


@pytest.mark.parametrize(
    "extra, expected",
    [
        # a mapping given to a mapping-or-name field: only the error inside it
        ("train: {lr_schedule: {0: -1}}", ["s.yaml:6:23: train.lr_schedule[0]: expected "
                                           "greater than 0; received -1"]),
        # real keys spelled like pydantic's member tags stay unknown keys
        ("train: {int: 1, bool: 2}", ["unknown key 'int'", "unknown key 'bool'"]),
        ("data: {on_device: 1}", ["data.on_device: expected 'auto', or true or false; "
                                  "received 1"]),
    ],
)  # fmt: skip
def test_union_fields_report_what_the_user_wrote(extra, expected):
    problems = errors_of(BASE + extra + "\n")
    assert len(problems) == len(expected)
    for want in expected:
        assert any(want in p for p in problems), (want, problems)


def test_readme_expression_error_is_the_real_one():
    """The README's example of an expression error is what nincompile says."""
    from nincompile.api import compile_source

    text = (
        "name: x\nparams: {alpha: 1.0}\ninput: [32, 32, 3]\nstages:\n"
        '  - {conv: ["divisible(32 * $alpah, 8)", 3]}\n'
    )
    with pytest.raises(SpecError) as info:
        compile_source(parse_spec(text, "specs/x.yaml"))
    (problem,) = info.value.problems
    readme = docs_text()
    assert f"\n{problem}\n" in readme


@pytest.mark.parametrize(
    "kind", ["Conv2D", "Conv2DTranspose", "DepthwiseConv2D", "SeparableConv2D"]
)
def test_strided_dilation_is_refused_where_keras_refuses_it(kind):
    """check refuses strides > 1 with dilation > 1 exactly for the layers Keras refuses
    it for (tests/golden/invalid/strided_dilation.yaml holds the message)."""
    from nincompile.keras_import import import_keras

    keras = import_keras()
    item = {
        "Conv2D": "conv: [4, 3]",
        "Conv2DTranspose": "conv_transpose: [4, 3]",
        "DepthwiseConv2D": "depthwise: 3",
        "SeparableConv2D": "separable: [4, 3]",
    }[kind]
    text = (f"name: x\ninput: [16, 16, 4]\nstages: [{{{item}, dilation: [2, 1], "
            "strides: [1, 2]}]\nhead: [gap]\n")  # fmt: skip
    args = [4, 3] if kind in ("Conv2D", "Conv2DTranspose", "SeparableConv2D") else [3]
    try:
        getattr(keras.layers, kind)(*args, strides=(1, 2), dilation_rate=(2, 1)).build(
            (None, 16, 16, 4)
        )
        keras_refuses = False
    except ValueError:
        keras_refuses = True
    if keras_refuses:
        with pytest.raises(SpecError, match="both strides > 1 and dilation > 1"):
            compile_spec_text(text)
    else:
        compile_spec_text(text)
    assert keras_refuses == (kind in ("Conv2D", "Conv2DTranspose"))


@pytest.mark.parametrize(
    "stage, expected",
    [
        ("{conv: [4, 3], weight_decay: .inf}",
         "stages[0].weight_decay: expected a finite number >= 0; received inf"),
        ("{conv: [4, 3], batch_norm: {epsilon: .inf}}",
         "stages[0].batch_norm.epsilon: expected a finite number > 0; received inf"),
        ("{layer_norm: {epsilon: .nan}}",
         "stages[0].layer_norm.epsilon: expected a finite number > 0; received nan"),
        ("{rescale: .nan}", "stages[0].rescale: expected a finite number; received nan"),
        ("{normalize: {mean: [0, 0, 0], variance: [-1, 1, 1]}}",
         "stages[0].normalize.variance: expected a list of finite numbers >= 0"),
        ("{conv: [4, 3], batch_norm: {momentum: -5}}",
         "stages[0].batch_norm.momentum: expected a rate in [0, 1); received -5"),
        ("{conv: [4, 3], batch_norm: maybe}",
         "stages[0].batch_norm: expected true or false, or a mapping of options; "
         "received 'maybe'"),
    ],
    ids=["weight-decay-inf", "bn-epsilon-inf", "ln-epsilon-nan", "rescale-nan",
         "variance-negative", "bn-momentum-negative", "bn-neither"],
)  # fmt: skip
def test_numbers_are_finite_and_union_options_report_one_problem(stage, expected):
    """inf and nan mean nothing in any field (build printed Keras's traceback for an
    infinite weight decay); an option that is a flag or a mapping reports the mapping's
    own problem, located at its key, and no 'expected true or false' beside it."""
    (problem,) = errors_of(f"name: x\ninput: [8, 8, 3]\nstages: [{stage}]\n")
    assert expected in problem


def test_data_and_train_numbers_are_finite():
    problems = errors_of(
        "name: x\ninput: [8, 8, 3]\nstages: [gap]\n"
        "data: {mean: [.nan, 0, 0], std: [.inf, 1, 1]}\ntrain: {learning_rate: .inf}\n"
    )
    assert len(problems) == 3
    assert all("expected a finite number" in p for p in problems)


@pytest.mark.parametrize(
    "value, reason",
    [
        ("sqrt($f)", "expected one of the functions abs, ceil"),
        ("int($f * 1e300)", "expected a magnitude of at most 1e15 at column 10"),
    ],
    ids=["unknown-function", "huge-literal"],
)
def test_an_expression_that_does_not_parse_says_why(value, reason):
    """A value holding '$' was meant as an expression: its parse error is reported,
    not 'expected a positive integer'."""
    (problem,) = errors_of(
        f"name: x\ninput: [8, 8, 3]\nparams: {{f: 4}}\nstages: [{{conv: ['{value}', 3]}}]\n"
    )
    assert "stages[0].conv.filters" in problem and reason in problem


def test_an_empty_spec_path_is_not_the_current_folder():
    from nincompile.spec import load_spec

    with pytest.raises(SpecError, match="'': empty path; expected a .yaml file"):
        load_spec("")
