"""Read a spec file: safe YAML -> Pydantic models, with located errors."""

from __future__ import annotations

import codecs
import hashlib
import os
import re
import typing
from dataclasses import dataclass, field
from pathlib import Path as FsPath
from typing import Any

from pydantic import BaseModel, ValidationError

from ..errors import Path, SpecError, SpecProblem, did_you_mean
from . import schema
from .schema import STAGE_TAGS, Spec
from .yaml_loader import Limits, Positions, load_yaml, size_problem


@dataclass(frozen=True)
class SpecSource:
    """A validated spec together with where it came from."""

    spec: Spec
    file: str
    text: str
    positions: Positions = field(repr=False)

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.text.encode("utf-8")).hexdigest()

    def locate(self, path: Path) -> tuple[int | None, int | None]:
        """(line, column) of ``path`` or of its nearest ancestor present in the file."""
        for n in range(len(path), -1, -1):
            if path[:n] in self.positions:
                return self.positions[path[:n]]
        return None, None

    def problem(self, message: str, path: Path) -> SpecProblem:
        line, col = self.locate(path)
        return SpecProblem(message, path, self.file, line, col)


#: schema classes pydantic names in a location after a field that is a union of one
#: of them and a plain value (``batch_norm.BatchNormOptions.momentum``)
_MODEL_NAMES = frozenset(
    name
    for name, obj in vars(schema).items()
    if isinstance(obj, type) and issubclass(obj, BaseModel)
)


def _clean_loc(loc: tuple) -> Path:
    """Drop the union tags pydantic inserts after a list index (``stages[2].conv``) and
    after a field (``batch_norm.BatchNormOptions``)."""
    out: list[str | int] = []
    for i, part in enumerate(loc):
        if isinstance(part, str) and i > 0 and isinstance(loc[i - 1], int) and part in STAGE_TAGS:
            continue
        if isinstance(part, str) and i > 0 and part in _MODEL_NAMES:
            continue
        if isinstance(part, str) and part.startswith("function-"):
            continue
        out.append("with" if part == "with_" else part)
    return tuple(out)


def _submodel(model: Any, key: str) -> Any:
    """The schema class of field ``key`` of ``model`` (a section such as ``train``, an
    option such as ``pool`` or ``batch_norm``), or None for a plain value."""
    from pydantic import BaseModel

    field = model.model_fields.get(key) or next(
        (f for f in model.model_fields.values() if f.alias == key), None
    )
    if field is None:
        return None
    todo, seen = [field.annotation], set()
    while todo:
        t = todo.pop()
        if isinstance(t, type) and issubclass(t, BaseModel):
            return t
        if id(t) in seen:
            continue
        seen.add(id(t))
        todo.extend(typing.get_args(t))
    return None


def _fields_of(data: Any, path: Path) -> list[str]:
    """Valid keys of the mapping that holds ``path``'s last key, for 'did you mean'.
    Sections and options are found from the schema's own fields; items from the item
    registry (``schema.ITEMS``)."""
    from . import schema as s

    model: Any = Spec
    node: Any = data
    for i, part in enumerate(path[:-1]):
        try:
            node = node[part]
        except (KeyError, IndexError, TypeError):
            return []
        if isinstance(part, int):
            if isinstance(node, dict) and model == "stages":
                model = s.ITEM_KINDS.get(s.stage_kind(node))
            elif isinstance(model, type):  # an entry of a list of sections (train.phases)
                pass
            elif model != "branches":
                return []
            else:
                model = "stages"
        elif model == "blocks":
            model = s.BlockDef
        elif part in ("stages", "head", "then") and model in (Spec, s.BlockDef, s.RepeatStage):
            model = "stages"
        elif part == "branches" and model is s.BlockDef:
            model = "branches"
        elif part == "blocks" and i == 0:
            model = "blocks"
        elif isinstance(model, type) and (sub := _submodel(model, part)) is not None:
            model = sub
        else:
            return []
    if not isinstance(model, type):
        return []
    keys = [f.alias or k for k, f in model.model_fields.items()]
    if (key := s.ITEM_KEYS.get(model)) is not None:  # an item: its own key first
        keys.remove(key)
        keys.insert(2, key)  # after name, when
    return keys


#: The tags pydantic puts after a field's name for each member of a scalar union
#: (``bool | Literal["auto"]``): ``bool``, ``literal['auto']``, ``dict[...]``.
_UNION_TAG = re.compile(
    r"^(bool|str|int|float|none|constrained-\w+|(literal|dict|list|tuple)\[.*\])$"
)


_STRUCTURED = re.compile(r"^(dict|list|tuple)\[")


def _value_at(data: Any, path: Path) -> tuple[bool, Any]:
    node = data
    for part in path:
        try:
            node = node[part]
        except (KeyError, IndexError, TypeError):
            return False, None
    return True, node


def _is_union_tag(part: Any) -> bool:
    """Whether ``part`` of a loc names a union member: a scalar type, a schema class
    (``BatchNormOptions``) or one of our validators (``function-plain[...]``)."""
    return isinstance(part, str) and (
        bool(_UNION_TAG.match(part)) or part in _MODEL_NAMES or part.startswith("function-")
    )


def _union_tag_at(e: dict, data: Any) -> int | None:
    """Where in ``e``'s loc pydantic named a union member (``bool``, ``literal[...]``,
    ``dict[...]``), or None; a real key of the document spelled like one is a key."""
    if e["type"] in ("extra_forbidden", "missing"):
        return None
    loc = e["loc"]
    for i in range(1, len(loc)):
        part = loc[i]
        if _is_union_tag(part):
            found, parent = _value_at(data, _clean_loc(loc[:i]))
            if found and isinstance(parent, dict) and part in parent:
                continue
            return i
    return None


def _alternative(e: dict, tag: str) -> str:
    """What one union member expected, as a user would write it."""
    if e["type"].startswith("bool"):
        return "true or false"
    if e["type"] == "literal_error":
        return (e.get("ctx") or {}).get("expected", "")
    if tag in _MODEL_NAMES:
        return "a mapping of options"
    if "expected" in (e.get("ctx") or {}):  # our validators' errors
        return e["ctx"]["expected"]
    return {"dict": "a mapping", "list": "a list", "tuple": "a list"}.get(
        tag.split("[")[0], e["msg"].replace("Input should be ", "")
    )


def _merge_unions(errors: list[dict], data: Any) -> list[dict]:
    """Errors of a union field (``bool | Literal["auto"]``, ``dict | Literal[...]``)
    as a user wrote it: a scalar that fits no member is one error, ``expected true or
    false, or 'auto'; received 'maybe'``; a mapping or list keeps only the errors
    inside it, located without pydantic's member tag."""
    groups: dict[tuple, list[tuple[int, dict, int]]] = {}
    for n, e in enumerate(errors):
        i = _union_tag_at(e, data)
        if i is not None:
            groups.setdefault(e["loc"][:i], []).append((n, e, i))
    replaced: dict[int, dict | None] = {}
    for where, members in groups.items():
        for n, _, _ in members:
            replaced[n] = None
        found, value = _value_at(data, _clean_loc(where))
        inside = [m for m in members if len(m[1]["loc"]) > m[2] + 1]
        if found and isinstance(value, dict | list) and inside:
            for n, e, i in inside:
                replaced[n] = {**e, "loc": e["loc"][:i] + e["loc"][i + 1 :]}
            continue
        alternatives = (_alternative(e, e["loc"][i]) for _, e, i in members)
        wanted = ", or ".join(a for a in dict.fromkeys(alternatives) if a)
        n, e, _ = members[0]
        replaced[n] = {**e, "loc": where, "type": "union", "msg": f"expected {wanted}",
                       "ctx": None}  # fmt: skip
    out = []
    for n, e in enumerate(errors):
        e = replaced.get(n, e)
        if e is not None:
            out.append(e)
    return out


def _problems_from(err: ValidationError, data: dict, src_file: str, positions: Positions):
    problems = []
    for e in _merge_unions(err.errors(include_url=False), data):
        path = _clean_loc(e["loc"])
        msg = e["msg"]
        if e["type"] == "extra_forbidden":
            key = path[-1] if path else "?"
            choices = _fields_of(data, path)
            msg = f"unknown key '{key}'{did_you_mean(str(key), choices)}"
            if choices:
                msg += f"; expected one of: {', '.join(choices)}"
        elif e["type"] == "missing":
            msg = f"missing required key '{path[-1]}'" if path else "missing required key"
        else:
            msg = msg.replace("Input should be ", "expected ").replace("Value error, ", "")
            if "received" not in (e.get("ctx") or {}) and "received" not in msg:
                received = e.get("input")
                if not isinstance(received, dict | list):
                    msg += f"; received {received!r}"
        line, col = None, None
        for n in range(len(path), -1, -1):
            if path[:n] in positions:
                line, col = positions[path[:n]]
                break
        problems.append(SpecProblem(msg, path, src_file, line, col))
    return problems


def parse_spec(text: str, file: str = "<spec>") -> SpecSource:
    """Validate spec text; raise :class:`SpecError` with every problem found."""
    data, positions = load_yaml(text, file)
    try:
        spec = Spec.model_validate(data)
    except ValidationError as err:
        raise SpecError(_problems_from(err, data, file, positions)) from None
    return SpecSource(spec=spec, file=file, text=text, positions=positions)


_OTHER_ENCODINGS = (
    (codecs.BOM_UTF32_LE, "UTF-32"),  # before UTF-16: its BOM starts with UTF-16-LE's
    (codecs.BOM_UTF32_BE, "UTF-32"),
    (codecs.BOM_UTF16_LE, "UTF-16"),
    (codecs.BOM_UTF16_BE, "UTF-16"),
)


def decode_spec(data: bytes, file: str = "<spec>") -> str:
    """Spec text from a file's bytes: UTF-8, with or without a byte-order mark, line
    ends ``\n``, ``\r\n`` or ``\r`` (read as ``\n``); anything else is a located
    :class:`SpecError`."""
    for bom, name in _OTHER_ENCODINGS:
        if data.startswith(bom):
            raise SpecError(
                [SpecProblem(f"the file is {name} text; save it as UTF-8", (), file, 1, 1)]
            )
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        line = data.count(b"\n", 0, err.start) + 1
        col = err.start - (data.rfind(b"\n", 0, err.start) + 1) + 1
        hint = "; is it a binary file?" if b"\x00" in data else ""
        raise SpecError(
            [
                SpecProblem(
                    f"not UTF-8 text: 0x{data[err.start]:02X} at byte offset "
                    f"{err.start:,} ({err.reason}){hint}",
                    (),
                    file,
                    line,
                    col,
                )
            ]
        ) from None
    if "\x00" in text:
        hint = "UTF-16 text without a byte-order mark, or a binary file"
        line = text.count("\n", 0, text.index("\x00")) + 1
        raise SpecError(
            [SpecProblem(f"the file holds NUL bytes: is it {hint}? expected UTF-8", (), file, line)]
        )
    return text.replace("\r\n", "\n").replace("\r", "\n")


def parse_spec_bytes(data: bytes, file: str = "<spec>") -> SpecSource:
    """:func:`parse_spec` of a file's bytes (see :func:`decode_spec`)."""
    limit = Limits.from_env().bytes
    if len(data) > limit:
        raise SpecError([size_problem(len(data), limit, file)])
    return parse_spec(decode_spec(data, file), file)


def load_spec(path: str | FsPath) -> SpecSource:
    """Read and validate a spec file, or the built-in spec of that name when there is
    no such file (``resnet18``; see :mod:`nincompile.spec.builtin`).  A file over the
    size limit is refused before it is read, and a path that is not a regular file (a
    FIFO, whose opening would block, or a device such as ``/dev/zero``) before it is
    opened."""
    from ..guard import NotRegularFile, open_regular
    from . import builtin

    if str(path) == "":  # FsPath("") is the current folder
        raise SpecError([SpecProblem("empty path; expected a .yaml file", (), repr(str(path)))])
    p = FsPath(path)
    if not os.path.lexists(p) and (found := builtin.find(str(path))) is not None:
        p = path = found
    limit = Limits.from_env().bytes
    try:
        with open_regular(p) as f:
            size = os.fstat(f.fileno()).st_size
            if size > limit:
                raise SpecError([size_problem(size, limit, str(path))])
            data = f.read(limit + 1)
    except FileNotFoundError:
        message = "no such file" + builtin.suggestion(str(path))
        raise SpecError([SpecProblem(message, (), str(path))]) from None
    except NotRegularFile as err:
        what = "a folder" if err.kind == "a folder" else err.kind
        raise SpecError(
            [SpecProblem(f"is not a regular file ({what}); expected a .yaml file", (), str(path))]
        ) from None
    except OSError as err:
        raise SpecError([SpecProblem(f"cannot read: {err.strerror}", (), str(path))]) from None
    if len(data) > limit:  # the file grew while it was read
        raise SpecError(
            [
                SpecProblem(
                    f"the file is over the limit of {limit:,} bytes for a spec. If a spec "
                    "really needs more, raise the limit with the environment variable "
                    f"NINCOMPILE_SPEC_MAX_BYTES (now {limit:,})",
                    (),
                    str(path),
                )
            ]
        )
    return parse_spec(decode_spec(data, str(path)), str(path))
