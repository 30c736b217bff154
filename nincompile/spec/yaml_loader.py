"""Safe YAML loading that remembers where every value came from.

``load_yaml(text, file)`` returns ``(data, positions)``: plain Python data built only
from YAML's safe types, and a map from document path (``("stages", 2, "pool")``)
to the 1-based ``(line, column)`` of that entry.  Mapping entries point at their
key, sequence items at the item.  Duplicate keys, non-string keys, tags outside the
safe set and non-mapping documents are errors, never silently resolved.
"""

from __future__ import annotations

import re

import yaml

from ..errors import Path, SpecError, SpecProblem

Positions = dict[Path, tuple[int, int]]


class _Loader(yaml.SafeLoader):
    """SafeLoader that also reads ``1e-4`` as a float (YAML 1.1 insists on a dot)."""


_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(
        r"""^(?:[-+]?(?:[0-9][0-9_]*)\.[0-9_]*(?:[eE][-+]?[0-9]+)?
        |[-+]?(?:[0-9][0-9_]*)(?:[eE][-+]?[0-9]+)
        |\.[0-9_]+(?:[eE][-+][0-9]+)?
        |[-+]?\.(?:inf|Inf|INF)
        |\.(?:nan|NaN|NAN))$""",
        re.X,
    ),
    list("-+0123456789."),
)


_MAP_TAG = "tag:yaml.org,2002:map"
_SEQ_TAG = "tag:yaml.org,2002:seq"


def _mark(node: yaml.Node) -> tuple[int, int]:
    return node.start_mark.line + 1, node.start_mark.column + 1


#: Values a spec may hold once aliases are expanded (a guard against alias bombs).
MAX_VALUES = 100_000


class _TooLarge(Exception):
    pass


class _Builder:
    def __init__(self, loader: _Loader, file: str):
        self.loader = loader
        self.file = file
        self.positions: Positions = {}
        self.problems: list[SpecProblem] = []
        self.count = 0
        self.open: set[int] = set()  # nodes being built: an alias to one is a cycle

    def problem(self, msg: str, path: Path, node: yaml.Node) -> None:
        line, col = _mark(node)
        self.problems.append(SpecProblem(msg, path, self.file, line, col))

    def build(self, node: yaml.Node, path: Path):
        self.count += 1
        if self.count > MAX_VALUES:
            raise _TooLarge
        if id(node) in self.open:
            self.problem("a YAML alias refers to a value that contains it", path, node)
            return None
        self.open.add(id(node))
        try:
            return self._build(node, path)
        finally:
            self.open.discard(id(node))

    def _build(self, node: yaml.Node, path: Path):
        plain = {yaml.MappingNode: _MAP_TAG, yaml.SequenceNode: _SEQ_TAG}.get(type(node))
        if plain and node.tag != plain:
            self.problem(
                f"unsupported YAML tag '{node.tag}': only plain data is allowed", path, node
            )
            return None
        if isinstance(node, yaml.MappingNode):
            self.loader.flatten_mapping(node)  # resolves `<<` merge keys, safely
            out: dict = {}
            for key_node, value_node in node.value:
                if not isinstance(key_node, yaml.ScalarNode):
                    self.problem("mapping keys must be plain strings", path, key_node)
                    continue
                key = self.loader.construct_object(key_node)
                if not isinstance(key, str | int) or isinstance(key, bool):
                    self.problem(f"mapping keys must be strings; received {key!r}", path, key_node)
                    continue
                if key in out:
                    first = self.positions.get((*path, key), ("?", "?"))
                    self.problem(
                        f"duplicate key '{key}' (first given at line {first[0]})",
                        (*path, key),
                        key_node,
                    )
                    continue
                self.positions[(*path, key)] = _mark(key_node)
                out[key] = self.build(value_node, (*path, key))
            return out
        if isinstance(node, yaml.SequenceNode):
            items = []
            for i, item in enumerate(node.value):
                self.positions[(*path, i)] = _mark(item)
                items.append(self.build(item, (*path, i)))
            return items
        return self.loader.construct_object(node, deep=True)


def load_yaml(text: str, file: str = "<spec>") -> tuple[dict, Positions]:
    """Parse one YAML document safely; raise :class:`SpecError` on any problem."""
    loader = _Loader(text)
    try:
        try:
            root = loader.get_single_node()
        except yaml.MarkedYAMLError as err:
            mark = err.problem_mark or err.context_mark
            line, col = (mark.line + 1, mark.column + 1) if mark else (None, None)
            msg = " ".join(str(p) for p in (err.context, err.problem) if p)
            raise SpecError([SpecProblem(f"invalid YAML: {msg}", (), file, line, col)]) from None
        except yaml.YAMLError as err:
            raise SpecError([SpecProblem(f"invalid YAML: {err}", (), file)]) from None
        if root is None:
            raise SpecError([SpecProblem("the file is empty; expected a mapping", (), file, 1, 1)])
        if not isinstance(root, yaml.MappingNode):
            line, col = _mark(root)
            kind = {yaml.SequenceNode: "a list", yaml.ScalarNode: "a single value"}[type(root)]
            raise SpecError(
                [
                    SpecProblem(
                        f"expected a mapping with keys such as 'name', 'input' and 'stages'; "
                        f"received {kind}",
                        (),
                        file,
                        line,
                        col,
                    )
                ]
            )
        builder = _Builder(loader, file)
        try:
            data = builder.build(root, ())
        except _TooLarge:
            raise SpecError(
                [
                    SpecProblem(
                        f"the document holds more than {MAX_VALUES:,} values once YAML "
                        "aliases are expanded; expected a model spec",
                        (),
                        file,
                    )
                ]
            ) from None
        except yaml.constructor.ConstructorError as err:
            mark = err.problem_mark
            line, col = (mark.line + 1, mark.column + 1) if mark else (None, None)
            raise SpecError(
                [SpecProblem(f"unsupported YAML: {err.problem}", (), file, line, col)]
            ) from None
        if builder.problems:
            raise SpecError(builder.problems)
        builder.positions[()] = _mark(root)
        return data, builder.positions
    finally:
        loader.dispose()
