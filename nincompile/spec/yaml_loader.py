"""Safe YAML loading that remembers where every value came from.

``load_yaml(text, file)`` returns ``(data, positions)``: plain Python data built only
from YAML's plain types (mappings, lists, strings, integers, floats, booleans and
null), and a map from document path (``("stages", 2, "pool")``) to the 1-based
``(line, column)`` of that entry.  Mapping entries point at their key, sequence items
at the item.  Duplicate keys, non-string keys, every tag outside the plain set
(``!!python/...``, ``!!binary``, ``!!set``, local ``!tags``, ...) and non-mapping
documents are errors, never silently resolved; no tag ever runs code.

Hostile input is bounded before it costs anything (see :class:`Limits`): the text's
size is checked before parsing, nesting depth and alias count while the parser's
events stream past (PyYAML's composer recurses once per level, so a deep document
must be stopped before it is composed), and the number of values once aliases are
expanded while the data is built.  Every limit names the environment variable that
raises it.  Anything else the parser or a constructor raises becomes a located
:class:`SpecError`: no input reaches the user as a traceback.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass

import yaml

from ..errors import Path, SpecError, SpecProblem

Positions = dict[Path, tuple[int, int]]

_TAG = "tag:yaml.org,2002:"
_MAP_TAG = _TAG + "map"
_SEQ_TAG = _TAG + "seq"
_MERGE_TAG = _TAG + "merge"
#: Scalar tags a spec may hold, implicitly resolved or written out (``!!str 1``).
_SCALAR_TAGS = {_TAG + t: t for t in ("str", "int", "float", "bool", "null")}
_SCALAR_KINDS = {"str": "a string", "int": "an integer", "float": "a number", "bool": "a boolean"}


class _Loader(yaml.SafeLoader):
    """SafeLoader that reads ``1e-4`` as a float (YAML 1.1 insists on a dot), reads
    dates and a lone ``=`` as plain strings, and turns a constructor's crash on a bad
    scalar (``!!int x``, ``!!bool maybe``, an integer of 5,000 digits) into a YAML
    error instead of a ``ValueError``."""

    def __init__(self, stream, max_depth: int | None = None):
        super().__init__(stream)
        self.max_depth = Limits.from_env().depth if max_depth is None else max_depth
        self.nesting = 0

    def compose_node(self, parent, index):
        # PyYAML's composer recurses once per level: stop before Python's stack does
        # (load_yaml's scan stops a deep document sooner; this guards every other use
        # of the loader, such as --set values).
        self.nesting += 1
        try:
            if self.nesting > self.max_depth + 1:  # + 1: a scalar inside the deepest list
                raise yaml.composer.ComposerError(
                    None,
                    None,
                    f"lists and mappings are nested more than {self.max_depth} levels deep. "
                    + _raise_hint("NINCOMPILE_SPEC_MAX_DEPTH", self.max_depth),
                    self.peek_event().start_mark,
                )
            return super().compose_node(parent, index)
        finally:
            self.nesting -= 1

    def construct_object(self, node, deep=False):
        try:
            return super().construct_object(node, deep=deep)
        except yaml.YAMLError:
            raise
        except (ValueError, KeyError, TypeError, AttributeError, OverflowError) as err:
            raise yaml.constructor.ConstructorError(
                None, None, _bad_scalar(node, err), node.start_mark
            ) from None


_FLOAT = re.compile(
    r"""^(?:[-+]?(?:[0-9][0-9_]*)\.[0-9_]*(?:[eE][-+]?[0-9]+)?
    |[-+]?(?:[0-9][0-9_]*)(?:[eE][-+]?[0-9]+)
    |\.[0-9_]+(?:[eE][-+][0-9]+)?
    |[-+]?\.(?:inf|Inf|INF)
    |\.(?:nan|NaN|NAN))$""",
    re.X,
)
_Loader.add_implicit_resolver("tag:yaml.org,2002:float", _FLOAT, list("-+0123456789."))
# Dates (``2024-01-31``), ``=`` and ``!``/``&``/``*`` resolve to types a spec never
# holds (and an impossible date such as 2024-13-45 crashed the constructor): read them
# as the strings they look like.
_NOT_IMPLICIT = {_TAG + t for t in ("timestamp", "value", "yaml")}
_Loader.yaml_implicit_resolvers = {
    first: [(tag, rx) for tag, rx in resolvers if tag not in _NOT_IMPLICIT]
    for first, resolvers in _Loader.yaml_implicit_resolvers.items()
}


class _Dumper(yaml.SafeDumper):
    """SafeDumper whose output :func:`load_yaml` reads back as the same data."""

    def choose_scalar_style(self):
        # PyYAML writes NEL, LS and PS raw inside single quotes, where every reader folds
        # them into a space: double quotes escape them (\\N, \\L, \\P).
        value = self.event.value if isinstance(self.event, yaml.ScalarEvent) else None
        if value and any(c in value for c in "\x85\u2028\u2029"):
            return '"'
        return super().choose_scalar_style()


# A string such as "1e5" is quoted, since the loader would read it as a number.
_Dumper.add_implicit_resolver("tag:yaml.org,2002:float", _FLOAT, list("-+0123456789."))


def dump_yaml(data) -> str:
    """YAML text for plain data that :func:`load_yaml` reads back unchanged (block
    style, keys in order, Unicode kept).  ``yaml.safe_dump`` is not enough: it writes
    the string ``"1e5"`` unquoted (read back as the float 100000.0) and breaks strings
    that hold NEL, LS or PS."""
    return yaml.dump(
        data,
        Dumper=_Dumper,
        sort_keys=False,
        allow_unicode=True,
        default_flow_style=None,
        width=100,
    )


def _bad_scalar(node: yaml.Node, err: Exception) -> str:
    value = str(getattr(node, "value", ""))
    kind = _SCALAR_KINDS.get(_SCALAR_TAGS.get(node.tag, ""), f"a value of tag '{node.tag}'")
    if "integer string conversion" in str(err):
        return f"a number of {len(value):,} digits is too long"
    shown = value if len(value) <= 40 else value[:37] + "..."
    return f"cannot read {shown!r} as {kind}"


def _mark(node_or_mark) -> tuple[int, int]:
    mark = getattr(node_or_mark, "start_mark", node_or_mark)
    return mark.line + 1, mark.column + 1


# ------------------------------------------------------------------------ limits


def _env_int(name: str, default: int) -> int:
    raw = os.environ.get(name, "").strip().replace("_", "")
    if not raw:
        return default
    try:
        value = int(float(raw)) if any(c in raw for c in ".eE") else int(raw)
    except ValueError:
        raise SpecError(
            [SpecProblem(f"environment variable {name}={raw!r} is not a whole number")]
        ) from None
    if value < 1:
        raise SpecError([SpecProblem(f"environment variable {name}={raw!r} must be at least 1")])
    return value


#: Defaults, far above any real spec (the largest in specs/ is ~3 KB, 12 levels deep).
MAX_BYTES = 1 << 20
MAX_DEPTH = 64
MAX_ALIASES = 1_000
#: Values a spec may hold once aliases are expanded (a guard against alias bombs).
MAX_VALUES = 100_000


@dataclass(frozen=True)
class Limits:
    """How much a spec may hold; each is raised by the environment variable named in
    the message that refuses a spec over it."""

    bytes: int = MAX_BYTES
    depth: int = MAX_DEPTH
    aliases: int = MAX_ALIASES
    values: int = MAX_VALUES

    @classmethod
    def from_env(cls) -> Limits:
        return cls(
            bytes=_env_int("NINCOMPILE_SPEC_MAX_BYTES", MAX_BYTES),
            depth=_env_int("NINCOMPILE_SPEC_MAX_DEPTH", MAX_DEPTH),
            aliases=_env_int("NINCOMPILE_SPEC_MAX_ALIASES", MAX_ALIASES),
            values=_env_int("NINCOMPILE_SPEC_MAX_VALUES", MAX_VALUES),
        )


def _raise_hint(var: str, limit: int) -> str:
    return (
        f"If a spec really needs more, raise the limit with the environment variable "
        f"{var} (now {limit:,})"
    )


def size_problem(size: int, limit: int, file: str, unit: str = "bytes") -> SpecProblem:
    return SpecProblem(
        f"the file is {size:,} {unit}, over the limit of {limit:,} {unit} for a spec. "
        + _raise_hint("NINCOMPILE_SPEC_MAX_BYTES", limit),
        (),
        file,
    )


# ------------------------------------------------------------------- YAML errors


def _line_col(text: str, pos: int) -> tuple[int, int]:
    line_start = text.rfind("\n", 0, pos) + 1
    return text.count("\n", 0, pos) + 1, pos - line_start + 1


def _yaml_problem(err: yaml.YAMLError, text: str, file: str) -> SpecProblem:
    """A located problem for anything PyYAML raised while reading ``text``."""
    if isinstance(err, yaml.reader.ReaderError):
        line, col = _line_col(text, err.position)
        char = err.character if isinstance(err.character, str) else chr(err.character)
        code = ord(char)
        what = "a control character" if code < 0x20 or 0x7F <= code < 0xA0 else "not printable"
        return SpecProblem(
            f"invalid YAML: character U+{ord(char):04X} ({what}) is not allowed in YAML; "
            "only printable characters, tabs and line breaks are",
            (),
            file,
            line,
            col,
        )
    if isinstance(err, yaml.constructor.ConstructorError):
        mark = err.problem_mark
        line, col = _mark(mark) if mark else (None, None)
        return SpecProblem(f"unsupported YAML: {err.problem}", (), file, line, col)
    if isinstance(err, yaml.MarkedYAMLError):
        mark = err.problem_mark or err.context_mark
        line, col = _mark(mark) if mark else (None, None)
        msg = " ".join(str(p) for p in (err.context, err.problem) if p)
        return SpecProblem(f"invalid YAML: {msg}", (), file, line, col)
    return SpecProblem(f"invalid YAML: {err}", (), file)


#: The event stream of :func:`_scan` (libyaml's C parser where PyYAML was built with it).
_EventLoader = getattr(yaml, "CSafeLoader", _Loader)


def _scan(text: str, file: str, limits: Limits) -> None:
    """Stream the parser's events (no recursion, nothing built) and stop at the first
    level past ``limits.depth`` or alias past ``limits.aliases``.  libyaml's parser is
    used where PyYAML has it (20x faster); a syntax error it finds is left for the full
    parse to report, in the same words with or without libyaml."""

    def refuse(event, message: str):
        raise SpecError([SpecProblem(message, (), file, *_mark(event))])

    try:
        loader = _EventLoader(text)
    except UnicodeEncodeError:  # a lone surrogate: PyYAML's own reader locates it
        loader = _Loader(text, limits.depth)
    try:
        depth = aliases = 0
        while loader.check_event():
            event = loader.get_event()
            if isinstance(event, yaml.MappingStartEvent | yaml.SequenceStartEvent):
                depth += 1
                if depth > limits.depth:
                    refuse(
                        event,
                        f"lists and mappings are nested more than {limits.depth} levels deep "
                        "here; expected a model spec. "
                        + _raise_hint("NINCOMPILE_SPEC_MAX_DEPTH", limits.depth),
                    )
            elif isinstance(event, yaml.MappingEndEvent | yaml.SequenceEndEvent):
                depth -= 1
            elif isinstance(event, yaml.AliasEvent):
                aliases += 1
                if aliases > limits.aliases:
                    refuse(
                        event,
                        f"the document uses more than {limits.aliases:,} YAML aliases (*name); "
                        "expected a model spec. "
                        + _raise_hint("NINCOMPILE_SPEC_MAX_ALIASES", limits.aliases),
                    )
    except yaml.YAMLError:
        if _EventLoader is _Loader:
            raise
    finally:
        loader.dispose()


# ----------------------------------------------------------------------- builder


class _TooLarge(Exception):
    pass


class _TooDeep(Exception):
    def __init__(self, node: yaml.Node):
        self.node = node


class _Builder:
    def __init__(self, loader: _Loader, file: str, limits: Limits):
        self.loader = loader
        self.file = file
        self.limits = limits
        self.positions: Positions = {}
        self.problems: list[SpecProblem] = []
        self.count = 0
        self.open: set[int] = set()  # nodes being built: an alias to one is a cycle

    def problem(self, msg: str, path: Path, node: yaml.Node) -> None:
        line, col = _mark(node)
        self.problems.append(SpecProblem(msg, path, self.file, line, col))

    def build(self, node: yaml.Node, path: Path):
        self.count += 1
        if self.count > self.limits.values:
            raise _TooLarge
        if id(node) in self.open:
            self.problem("a YAML alias refers to a value that contains it", path, node)
            return None
        if len(path) > self.limits.depth:  # deeper than the text shows, through aliases
            raise _TooDeep(node)
        self.open.add(id(node))
        try:
            return self._build(node, path)
        finally:
            self.open.discard(id(node))

    def _build(self, node: yaml.Node, path: Path):
        if isinstance(node, yaml.ScalarNode):
            return self.scalar(node, path)
        plain = {yaml.MappingNode: _MAP_TAG, yaml.SequenceNode: _SEQ_TAG}[type(node)]
        if node.tag != plain:
            self.problem(
                f"unsupported YAML tag '{node.tag}': only plain data is allowed", path, node
            )
            return None
        if isinstance(node, yaml.MappingNode):
            return self.mapping(node, path)
        items = []
        for i, item in enumerate(node.value):
            self.positions[(*path, i)] = _mark(item)
            items.append(self.build(item, (*path, i)))
        return items

    def scalar(self, node: yaml.ScalarNode, path: Path):
        if node.tag == _MERGE_TAG:  # a plain `<<` that is not a merge key: a string
            return node.value
        if node.tag not in _SCALAR_TAGS:
            self.problem(
                f"unsupported YAML tag '{node.tag}': only plain data is allowed", path, node
            )
            return None
        try:
            return self.loader.construct_object(node)
        except yaml.constructor.ConstructorError as err:
            self.problem(err.problem, path, node)
            return None

    def mapping(self, node: yaml.MappingNode, path: Path) -> dict:
        # Keys written in this mapping override keys it merges in (`<<: *base`), as YAML
        # merge keys mean; a key written twice is an error.
        own = {id(k) for k, _ in node.value if k.tag != _MERGE_TAG}
        self.loader.flatten_mapping(node)  # resolves `<<` merge keys, safely
        out: dict = {}
        merged: set = set()  # keys whose value came from a merge (may be overridden)
        for key_node, value_node in node.value:
            if not isinstance(key_node, yaml.ScalarNode):
                if key_node.tag not in (_MAP_TAG, _SEQ_TAG):
                    msg = f"unsupported YAML tag '{key_node.tag}': only plain data is allowed"
                else:
                    msg = "mapping keys must be plain strings"
                self.problem(msg, path, key_node)
                continue
            key = self.scalar(key_node, path)
            if key is None and key_node.tag != _TAG + "null":
                continue  # its problem is recorded
            if not isinstance(key, str | int) or isinstance(key, bool):
                self.problem(f"mapping keys must be strings; received {key!r}", path, key_node)
                continue
            if key in out and key not in merged:
                first = self.positions.get((*path, key), ("?", "?"))
                self.problem(
                    f"duplicate key '{key}' (first given at line {first[0]})",
                    (*path, key),
                    key_node,
                )
                continue
            if id(key_node) in own:
                merged.discard(key)
            else:
                merged.add(key)
            self.positions[(*path, key)] = _mark(key_node)
            out[key] = self.build(value_node, (*path, key))
        return out


# -------------------------------------------------------------------------- load


def load_yaml(
    text: str, file: str = "<spec>", limits: Limits | None = None
) -> tuple[dict, Positions]:
    """Parse one YAML document safely; raise :class:`SpecError` on any problem."""
    limits = limits or Limits.from_env()
    if len(text) > limits.bytes:
        raise SpecError([size_problem(len(text), limits.bytes, file, "characters")])
    try:
        return _load(text, file, limits)
    except yaml.YAMLError as err:
        raise SpecError([_yaml_problem(err, text, file)]) from None
    except RecursionError:  # a backstop: _scan and the builder's depth check stop it first
        raise SpecError(
            [
                SpecProblem(
                    "the document is nested too deeply to read; expected a model spec. "
                    + _raise_hint("NINCOMPILE_SPEC_MAX_DEPTH", limits.depth),
                    (),
                    file,
                )
            ]
        ) from None


def _load(text: str, file: str, limits: Limits) -> tuple[dict, Positions]:
    _scan(text, file, limits)
    loader = _Loader(text, limits.depth)
    try:
        root = loader.get_single_node()
        if root is None:
            raise SpecError([SpecProblem("the file is empty; expected a mapping", (), file, 1, 1)])
        if not isinstance(root, yaml.MappingNode):
            line, col = _mark(root)
            kind = {yaml.SequenceNode: "a list", yaml.ScalarNode: "a single value"}[type(root)]
            plain = {yaml.SequenceNode: _SEQ_TAG}.get(type(root), root.tag)
            if root.tag != plain and root.tag not in _SCALAR_TAGS:
                kind += f" tagged '{root.tag}' (only plain data is allowed)"
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
        builder = _Builder(loader, file, limits)
        try:
            data = builder.build(root, ())
        except _TooLarge:
            raise SpecError(
                [
                    SpecProblem(
                        f"the document holds more than {limits.values:,} values once YAML "
                        "aliases are expanded; expected a model spec. "
                        + _raise_hint("NINCOMPILE_SPEC_MAX_VALUES", limits.values),
                        (),
                        file,
                    )
                ]
            ) from None
        except _TooDeep as err:
            line, col = _mark(err.node)
            raise SpecError(
                [
                    SpecProblem(
                        f"lists and mappings are nested more than {limits.depth} levels deep "
                        "once YAML aliases are expanded; expected a model spec. "
                        + _raise_hint("NINCOMPILE_SPEC_MAX_DEPTH", limits.depth),
                        (),
                        file,
                        line,
                        col,
                    )
                ]
            ) from None
        if builder.problems:
            raise SpecError(builder.problems)
        builder.positions[()] = _mark(root)
        return data, builder.positions
    finally:
        loader.dispose()
