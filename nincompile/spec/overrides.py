"""``--set key.path=value`` overrides of a spec, validated like the file itself.

``apply_overrides(source, ["train.learning_rate=0.01", "data.validation_split=0"])``
returns a new :class:`SpecSource` whose text is the resolved spec (what a run folder
stores as ``spec.yaml``).  Values are read as YAML (``0.01``, ``true``, ``[1, 2]``,
``{flip: horizontal}``) with the same safe loader as spec files.  A problem caused by
an override is reported against the override (``--set train.learning_rate=abc: ...``,
or the ``variants:`` entry that made it); any other problem keeps its place in the
original file.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import PurePath

import yaml

from ..errors import SpecError, SpecProblem, did_you_mean, first_line
from .load import SpecSource, parse_spec
from .yaml_loader import (
    Limits,
    _Builder,
    _Loader,
    _raise_hint,
    _scan,
    _TooDeep,
    _TooLarge,
    dump_yaml,
    load_yaml,
)

KeyPath = tuple[str | int, ...]


@dataclass(frozen=True)
class Override:
    """Set ``path`` to ``value``; ``label`` says where it came from (for messages),
    ``problem`` makes a located problem for it and ``setting`` is the ``KEY.PATH=VALUE``
    it stands for (what the resolved spec's first line names)."""

    path: KeyPath
    value: object
    label: str
    problem: Callable[[str, KeyPath], SpecProblem]
    setting: str = ""


def parse_key(key: str, where: Callable[[str, KeyPath], SpecProblem]) -> KeyPath:
    parts: list[str | int] = []
    for part in key.strip().split("."):
        if not part:
            raise SpecError([where(f"empty name in key path {key!r}", ())])
        parts.append(int(part) if part.isdigit() else part)
    if not isinstance(parts[0], str):
        raise SpecError([where("a key path starts with a name", ())])
    if parts[0] not in _top_level():
        top = _top_level()
        raise SpecError(
            [where(f"unknown key '{parts[0]}'{did_you_mean(str(parts[0]), top)}; expected one "
                   f"of: {', '.join(top)}", ())]
        )  # fmt: skip
    return tuple(parts)


def from_cli(raw: str) -> Override:
    """An override from ``--set KEY.PATH=VALUE``."""
    return _parse_setting(raw, f"--set {raw}", "--set")


def _parse_setting(raw: str, label: str, bare: str) -> Override:
    """The override ``KEY.PATH=VALUE`` whose problems name ``label`` (``bare`` when the
    text is not even of that form)."""

    def where(message: str, path: KeyPath) -> SpecProblem:
        return SpecProblem(message, path, label)

    key, sep, value = raw.partition("=")
    if not sep or not key.strip():
        raise SpecError(
            [SpecProblem(f"expected KEY.PATH=VALUE, e.g. train.epochs=5; received {raw!r}",
                         (), bare)]
        )  # fmt: skip
    path = parse_key(key, where)
    parsed = _parse_value(value, label, where) if value.strip() else None
    return Override(path, parsed, label, where, raw)


def from_value(key: str, value: object) -> Override:
    """An override from a Python mapping's item, ``{"train.epochs": 5}``: the value is
    written as the YAML that ``--set`` would take (``train.epochs=5``) and read back
    exactly as ``--set`` reads it, so both are validated alike and a run resolved from
    either stores the same spec text."""
    label = f"overrides[{key!r}]"
    if not isinstance(key, str) or "=" in key or not key.strip():
        raise SpecError(
            [SpecProblem(f"expected a key path such as 'train.epochs'; received {key!r}", (),
                         label)]
        )  # fmt: skip
    try:
        text = yaml.safe_dump(value, default_flow_style=True, width=float("inf"))
    except yaml.YAMLError:
        raise SpecError(
            [SpecProblem("expected plain data (str, int, float, bool, None, or lists and "
                         f"dicts of them); received {type(value).__name__}", (), label)]
        ) from None  # fmt: skip
    text = text.strip().removesuffix("...").strip()  # the end marker after a plain scalar
    return _parse_setting(f"{key}={text}", label, label)


def parse_overrides(overrides) -> list[Override]:
    """Overrides given as ``--set`` strings (``["train.epochs=5"]``) or as a mapping
    (``{"train.epochs": 5}``); None is none."""
    if overrides is None:
        return []
    if isinstance(overrides, Mapping):
        return [from_value(k, v) for k, v in overrides.items()]
    if isinstance(overrides, str | bytes):
        raise SpecError(
            [SpecProblem(f"expected a mapping such as {{'train.epochs': 5}} or a list of "
                         f"KEY.PATH=VALUE strings; received the string {overrides!r}", (),
                         "overrides")]
        )  # fmt: skip
    return [item if isinstance(item, Override) else from_cli(item) for item in overrides]


def _parse_value(value: str, label: str, where) -> object:
    """An override's value, read as a spec file is: safe YAML, plain data only, with the
    spec's limits on depth, aliases and values once aliases are expanded, each problem
    reported against the override (an alias bomb in ``--set`` names the ``--set``)."""
    limits = Limits.from_env()
    if len(value) > limits.bytes:
        raise SpecError(
            [where(f"the value is {len(value):,} characters, over the limit of "
                   f"{limits.bytes:,} for a spec. " + _raise_hint("NINCOMPILE_SPEC_MAX_BYTES",
                                                                 limits.bytes), ())]
        )  # fmt: skip
    try:
        _scan(value, label, limits)
        loader = _Loader(value, limits.depth)
        try:
            root = loader.get_single_node()
            if root is None:
                return None
            builder = _Builder(loader, label, limits)
            parsed = builder.build(root, ())
        finally:
            loader.dispose()
    except yaml.YAMLError as err:
        raise SpecError([where(f"value is not valid YAML ({first_line(err)})", ())]) from None
    except _TooLarge:
        raise SpecError(
            [where(f"the value holds more than {limits.values:,} values once YAML aliases are "
                   "expanded. " + _raise_hint("NINCOMPILE_SPEC_MAX_VALUES", limits.values), ())]
        ) from None  # fmt: skip
    except _TooDeep:
        raise SpecError(
            [where(f"the value nests lists and mappings more than {limits.depth} levels deep "
                   "once YAML aliases are expanded. "
                   + _raise_hint("NINCOMPILE_SPEC_MAX_DEPTH", limits.depth), ())]
        ) from None  # fmt: skip
    except RecursionError:
        raise SpecError(
            [where("the value is nested too deeply to read. "
                   + _raise_hint("NINCOMPILE_SPEC_MAX_DEPTH", limits.depth), ())]
        ) from None  # fmt: skip
    if builder.problems:
        raise SpecError(builder.problems)
    return parsed


def _assign(data: dict, item: Override) -> None:
    node = data
    path = item.path
    for i, part in enumerate(path[:-1]):
        if isinstance(node, dict):
            if part not in node or node[part] is None:
                node[part] = {}
            node = node[part]
        elif isinstance(node, list) and isinstance(part, int) and part < len(node):
            node = node[part]
        else:
            where = ".".join(map(str, path[:i])) or "the document"
            size = f" of {len(node)} items" if isinstance(node, list) else ""
            raise SpecError(
                [item.problem(f"cannot set {part!r} inside {where} (a {type(node).__name__}"
                              f"{size})", ())]
            )  # fmt: skip
    last = path[-1]
    if isinstance(node, list) and isinstance(last, int) and last < len(node):
        node[last] = copy.deepcopy(item.value)
    elif isinstance(node, dict) and isinstance(last, str):
        node[last] = copy.deepcopy(item.value)
    else:
        raise SpecError([item.problem(f"cannot set {last!r} inside a {type(node).__name__}", ())])


def with_overrides(data: dict, items: list[Override]) -> dict:
    """A copy of ``data`` with every item set (not validated)."""
    data = copy.deepcopy(data)
    for item in items:
        _assign(data, item)
    return data


def dump(data: dict, header: str) -> str:
    """Spec text for ``data`` (what a run folder stores), with a one-line header."""
    return "# " + header.replace("\n", " ") + "\n" + dump_yaml(data)


def apply(
    source: SpecSource, items: list[Override], header: str, data: dict | None = None
) -> SpecSource:
    """``source`` (or its already loaded ``data``) with ``items`` applied, validated."""
    if data is None:
        data, _ = load_yaml(source.text, source.file)
    data = with_overrides(data, items)
    text = dump(data, header)
    try:
        return parse_spec(text, source.file)
    except SpecError as err:
        problems = []
        for p in err.problems:
            culprit = next(
                (item for item in items if tuple(p.path[: len(item.path)]) == item.path
                 or (p.path and tuple(item.path[: len(p.path)]) == tuple(p.path))), None
            )  # fmt: skip
            if culprit is None and not p.path and items:
                # a problem of the whole document (too many values, too deep) that the
                # file alone did not have: the overrides made it
                culprit = _Joint(items)
            if culprit is not None:
                problems.append(culprit.problem(p.message, p.path))
            else:
                line, col = source.locate(p.path)
                problems.append(SpecProblem(p.message, p.path, source.file, line, col))
        raise SpecError(problems) from None


class _Joint:
    """Several overrides that together caused a problem of the whole document."""

    def __init__(self, items: list[Override]):
        self.items = items

    def problem(self, message: str, path: KeyPath) -> SpecProblem:
        label = "; ".join(item.label for item in self.items)
        return SpecProblem(message, path, label)


def apply_overrides(source: SpecSource, overrides) -> SpecSource:
    """The spec with every override applied, validated; ``source`` itself when there
    are none.  ``overrides``: ``--set`` strings, a mapping or :class:`Override` items
    (see :func:`parse_overrides`)."""
    items = parse_overrides(overrides)
    if not items:
        return source
    name = PurePath(source.file).name  # the resolved text must not depend on the path typed
    header = f"{name} with " + " ".join(f"--set {i.setting}" for i in items)
    return apply(source, items, header)


def _top_level() -> tuple[str, ...]:
    from .schema import Spec

    return tuple(f.alias or k for k, f in Spec.model_fields.items())
