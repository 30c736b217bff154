"""Read a spec file: safe YAML -> Pydantic models, with located errors."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path as FsPath
from typing import Any

from pydantic import ValidationError

from ..errors import Path, SpecError, SpecProblem, did_you_mean
from .schema import STAGE_TAGS, Spec
from .yaml_loader import Positions, load_yaml


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


def _clean_loc(loc: tuple) -> Path:
    """Drop the union tags pydantic inserts after a list index (``stages[2].conv``)."""
    out: list[str | int] = []
    for i, part in enumerate(loc):
        if isinstance(part, str) and i > 0 and isinstance(loc[i - 1], int) and part in STAGE_TAGS:
            continue
        if isinstance(part, str) and part.startswith("function-"):
            continue
        out.append("with" if part == "with_" else part)
    return tuple(out)


def _fields_of(data: Any, path: Path) -> list[str]:
    """Valid keys of the mapping that holds ``path``'s last key, for 'did you mean'."""
    from . import schema as s

    sections = {
        "defaults": s.Defaults,
        "expect": s.Expect,
        "train": s.Train,
        "data": s.Data,
        "pool": s.PoolArgs,
        "conv": s.ConvArgs,
        "augment": s.Augment,
    }
    model: Any = Spec
    node: Any = data
    for i, part in enumerate(path[:-1]):
        try:
            node = node[part]
        except (KeyError, IndexError, TypeError):
            return []
        if isinstance(part, int):
            if isinstance(node, dict) and model == "stages":
                model = s.ITEM_KINDS.get(s._stage_kind(node))
        elif model == "blocks":
            model = s.BlockDef
        elif part in sections and model not in ("stages", "blocks"):
            model = sections[part]
        elif part in ("stages", "head", "then", "branches"):
            model = "stages"
        elif part == "blocks" and i == 0:
            model = "blocks"
        else:
            return []
    if not isinstance(model, type):
        return []
    return [f.alias or k for k, f in model.model_fields.items()]


def _problems_from(err: ValidationError, data: dict, src_file: str, positions: Positions):
    problems = []
    for e in err.errors(include_url=False):
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


def load_spec(path: str | FsPath) -> SpecSource:
    """Read and validate a spec file."""
    p = FsPath(path)
    try:
        text = p.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise SpecError([SpecProblem("no such file", (), str(path))]) from None
    except IsADirectoryError:
        raise SpecError(
            [SpecProblem("is a directory, expected a .yaml file", (), str(path))]
        ) from None
    except UnicodeDecodeError as err:
        raise SpecError([SpecProblem(f"not UTF-8 text ({err.reason})", (), str(path))]) from None
    except OSError as err:
        raise SpecError([SpecProblem(f"cannot read: {err.strerror}", (), str(path))]) from None
    return parse_spec(text, str(path))
