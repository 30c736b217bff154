"""``--set key.path=value`` overrides of a spec, validated like the file itself.

``apply_overrides(source, ["train.learning_rate=0.01", "data.validation_split=0"])``
returns a new :class:`SpecSource` whose text is the resolved spec (what a run folder
stores as ``spec.yaml``).  Values are read as YAML (``0.01``, ``true``, ``[1, 2]``,
``{flip: horizontal}``) with the same safe loader as spec files.  A problem caused by
an override is reported against the override (``--set train.learning_rate=abc: ...``);
any other problem keeps its place in the original file.
"""

from __future__ import annotations

import copy

import yaml

from ..errors import SpecError, SpecProblem, did_you_mean
from .load import SpecSource, parse_spec
from .yaml_loader import _Loader, load_yaml


def _parse_one(raw: str) -> tuple[tuple[str | int, ...], object]:
    key, sep, value = raw.partition("=")
    key = key.strip()
    if not sep or not key:
        raise SpecError(
            [SpecProblem(f"expected KEY.PATH=VALUE, e.g. train.epochs=5; received {raw!r}",
                         (), "--set")]
        )  # fmt: skip
    parts: list[str | int] = []
    for part in key.split("."):
        if not part:
            raise SpecError([SpecProblem(f"empty name in key path {key!r}", (), f"--set {raw}")])
        parts.append(int(part) if part.isdigit() else part)
    if not isinstance(parts[0], str):
        raise SpecError([SpecProblem("a key path starts with a name", (), f"--set {raw}")])
    try:
        parsed = yaml.load(value, Loader=_Loader) if value.strip() else None
    except yaml.YAMLError as err:
        first = str(err).strip().splitlines()[0]
        problem = SpecProblem(f"value is not valid YAML ({first})", (), f"--set {raw}")
        raise SpecError([problem]) from None
    return tuple(parts), parsed


def _assign(data: dict, path: tuple, value, raw: str) -> None:
    node = data
    for i, part in enumerate(path[:-1]):
        if isinstance(node, dict):
            if part not in node or node[part] is None:
                node[part] = {}
            node = node[part]
        elif isinstance(node, list) and isinstance(part, int):
            if part >= len(node):
                raise SpecError(
                    [SpecProblem(f"index {part} is out of range: {'.'.join(map(str, path[:i]))} "
                                 f"has {len(node)} items", (), f"--set {raw}")]
                )  # fmt: skip
            node = node[part]
        else:
            raise SpecError(
                [SpecProblem(f"cannot set {part!r} inside a {type(node).__name__}", (),
                             f"--set {raw}")]
            )  # fmt: skip
    last = path[-1]
    if isinstance(node, list):
        if not isinstance(last, int) or last >= len(node):
            raise SpecError(
                [SpecProblem(f"expected an index below {len(node)}", (), f"--set {raw}")]
            )
        node[last] = value
    elif isinstance(node, dict):
        node[last] = value
    else:
        raise SpecError(
            [SpecProblem(f"cannot set {last!r} inside a {type(node).__name__}", (), f"--set {raw}")]
        )


def apply_overrides(source: SpecSource, overrides: list[str] | tuple[str, ...]) -> SpecSource:
    """The spec with every override applied, validated; ``source`` when there are none."""
    if not overrides:
        return source
    data, _ = load_yaml(source.text, source.file)
    data = copy.deepcopy(data)
    parsed = []
    for raw in overrides:
        path, value = _parse_one(raw)
        if path[0] not in _TOP_LEVEL:
            raise SpecError(
                [SpecProblem(f"unknown key '{path[0]}'{did_you_mean(str(path[0]), _TOP_LEVEL)}"
                             f"; expected one of: {', '.join(_TOP_LEVEL)}", (), f"--set {raw}")]
            )  # fmt: skip
        _assign(data, path, value, raw)
        parsed.append((path, raw))
    header = f"# {source.file} with " + " ".join(f"--set {raw}" for _, raw in parsed)
    text = (
        header.replace("\n", " ")
        + "\n"
        + yaml.safe_dump(
            data, sort_keys=False, allow_unicode=True, default_flow_style=None, width=100
        )
    )
    try:
        return parse_spec(text, source.file)
    except SpecError as err:
        problems = []
        for p in err.problems:
            culprit = next(
                (raw for path, raw in parsed if tuple(p.path[: len(path)]) == path
                 or tuple(path[: len(p.path)]) == tuple(p.path) and p.path), None
            )  # fmt: skip
            if culprit is not None:
                problems.append(SpecProblem(p.message, p.path, f"--set {culprit}"))
            else:
                line, col = source.locate(p.path)
                problems.append(SpecProblem(p.message, p.path, source.file, line, col))
        raise SpecError(problems) from None


def _top_level() -> tuple[str, ...]:
    from .schema import Spec

    return tuple(f.alias or k for k, f in Spec.model_fields.items())


_TOP_LEVEL = _top_level()
