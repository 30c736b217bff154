"""Python source text: safe literals, docstring and comment text, and statement layout.

Nothing from a spec reaches generated source raw.  Names are checked identifiers;
every other value becomes a literal through :func:`py_lit` (``repr``-style escapes);
free text (descriptions, paths) goes into docstrings through :func:`doc_lines`, which
escapes backslashes, quotes and every non-printable character.

:func:`layout` lays out one statement the way ``ruff format`` (line length 88) does
for the few shapes the generator writes: an assignment, ``return`` or ``def`` whose
value is a call, a chain of calls (``layers.Conv2D(...)(x)``) or a list.  The
templates therefore produce ruff-formatted code directly, without running ruff;
``tests/test_codegen.py`` checks both against ruff itself.
"""

from __future__ import annotations

import math
import re
import textwrap
from dataclasses import dataclass

from ..errors import NincompileError
from ..spec.schema import is_identifier

LINE_LENGTH = 88
INDENT = "    "


class CodegenError(NincompileError):
    """The code generator cannot render something (never a partial file)."""


# ------------------------------------------------------------------- literals


def py_str(value: str) -> str:
    """A string literal with ruff's quote preference (double unless it needs more escapes)."""
    quote = "'" if value.count('"') > value.count("'") else '"'
    out = []
    for ch in value:
        if ch == "\\":
            out.append("\\\\")
        elif ch == quote:
            out.append("\\" + ch)
        elif ch.isprintable():
            out.append(ch)
        else:
            out.append(repr(ch)[1:-1])  # \n, \t, \x00, \u2028, ...
    return quote + "".join(out) + quote


def _py_float(value: float) -> str:
    if math.isnan(value):
        return 'float("nan")'
    if math.isinf(value):
        return 'float("inf")' if value > 0 else '-float("inf")'
    text = repr(value).replace("e+", "e")  # ruff writes 1e20, not 1e+20
    if value == 0 or abs(value) >= 1e-3:
        return text
    for digits in range(17):  # small numbers as a person writes them: 1e-4, not 0.0001
        sci = f"{value:.{digits}e}"
        if float(sci) == value:
            break
    mantissa, exponent = sci.split("e")
    sci = f"{mantissa}e{int(exponent)}"
    return sci if len(sci) < len(text) else text


def py_lit(value: object) -> str:
    """The Python literal of a plain value (None, bool, int, float, str, tuple, list)."""
    if value is None or isinstance(value, bool):
        return repr(value)
    if isinstance(value, int):
        return repr(int(value))
    if isinstance(value, float):
        return _py_float(float(value))
    if isinstance(value, str):
        return py_str(value)
    if isinstance(value, tuple):
        inner = ", ".join(py_lit(v) for v in value)
        return f"({inner},)" if len(value) == 1 else f"({inner})"
    if isinstance(value, list):
        return "[" + ", ".join(py_lit(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{py_lit(k)}: {py_lit(v)}" for k, v in value.items()) + "}"
    raise CodegenError(f"cannot write {type(value).__name__} value {value!r} as Python source")


def identifier(value: str, what: str) -> str:
    """``value`` if it is safe as a Python identifier (the schema already checked it)."""
    if not is_identifier(value):
        raise CodegenError(f"{what} {value!r} is not a valid Python identifier")
    return value


# ------------------------------------------------------------ free-form text


def _escape_doc(word: str) -> str:
    out = []
    for ch in word:
        if ch == "\\":
            out.append("\\\\")
        elif ch == '"':
            out.append('\\"')
        elif ch.isprintable():
            out.append(ch)
        else:
            out.append(repr(ch)[1:-1])
    return "".join(out)


def doc_text(text: str) -> str:
    """One line of text for a docstring, escaped as :func:`doc_lines` does."""
    return _escape_doc(text)


def doc_lines(text: str, width: int = 80) -> list[str]:
    """Free text as docstring lines: whitespace normalised, paragraphs kept, wrapped to
    ``width``, every backslash, quote and non-printable character escaped.  The result
    can never end the docstring or form an escape sequence other than its own."""
    paragraphs = re.split(r"\n\s*\n", text.replace("\r\n", "\n"))
    out: list[str] = []
    for para in paragraphs:
        words = [_escape_doc(w) for w in para.split()]
        if not words:
            continue
        if out:
            out.append("")
        out += textwrap.wrap(" ".join(words), width, break_long_words=False, break_on_hyphens=False)
    return out


def comment_text(text: str) -> str:
    """Text safe on a ``#`` comment line (no line breaks or control characters)."""
    if all(ch.isprintable() for ch in text):
        return text
    return ascii(text)


# ---------------------------------------------------------------- expressions


@dataclass(frozen=True)
class Atom:
    """Source text that is never split (a name, a literal, a short call)."""

    text: str


@dataclass(frozen=True)
class Kw:
    key: str
    value: Expr


@dataclass(frozen=True)
class Call:
    func: Expr
    args: tuple[Expr, ...]


@dataclass(frozen=True)
class List:
    items: tuple[Expr, ...]


Expr = Atom | Kw | Call | List


def flat(expr: Expr) -> str:
    if isinstance(expr, Atom):
        return expr.text
    if isinstance(expr, Kw):
        return f"{expr.key}={flat(expr.value)}"
    if isinstance(expr, Call):
        return f"{flat(expr.func)}({', '.join(flat(a) for a in expr.args)})"
    return f"[{', '.join(flat(a) for a in expr.items)}]"


@dataclass(frozen=True)
class _Group:
    open: str
    items: tuple[Expr, ...]
    close: str

    def flat(self) -> str:
        return self.open + ", ".join(flat(a) for a in self.items) + self.close


def _spine(expr: Expr) -> tuple[str, list[_Group]]:
    """``layers.Conv2D(a)(x)`` -> head ``layers.Conv2D`` and groups ``(a)``, ``(x)``."""
    if isinstance(expr, Kw):
        head, groups = _spine(expr.value)
        return f"{expr.key}={head}", groups
    if isinstance(expr, Call):
        head, groups = _spine(expr.func)
        return head, [*groups, _Group("(", expr.args, ")")]
    if isinstance(expr, List):
        return "", [_Group("[", expr.items, "]")]
    return expr.text, []


def _fits(line: str) -> bool:
    return len(line) <= LINE_LENGTH


def layout(prefix: str, expr: Expr, suffix: str = "", indent: int = 0) -> list[str]:
    """The lines of ``prefix + expr + suffix`` at ``indent`` levels, as ruff formats them.

    Fits on one line: one line.  Otherwise split the right-most bracket whose opening
    line fits; call arguments go on one indented line when they fit, else (and list
    items always) one item per line with a trailing comma; what follows the closing
    bracket is laid out likewise.
    """
    head, groups = _spine(expr)
    return _layout(INDENT * indent, prefix + head, groups, suffix)


def _layout(pad: str, head: str, groups: list[_Group], suffix: str) -> list[str]:
    line = pad + head + "".join(g.flat() for g in groups) + suffix
    splittable = [i for i, g in enumerate(groups) if g.items]
    if _fits(line) or not splittable:
        return [line]
    chosen = splittable[0]
    for i in reversed(splittable):
        if _fits(pad + head + "".join(g.flat() for g in groups[:i]) + groups[i].open):
            chosen = i
            break
    g = groups[chosen]
    lines = [pad + head + "".join(x.flat() for x in groups[:chosen]) + g.open]
    inner = pad + INDENT
    one_line = inner + ", ".join(flat(a) for a in g.items)
    if g.open == "(" and _fits(one_line):  # a list is flat or one item per line
        lines.append(one_line)
    else:
        for item in g.items:
            ihead, igroups = _spine(item)
            lines += _layout(inner, ihead, igroups, ",")
    lines += _layout(pad, g.close, groups[chosen + 1 :], suffix)
    return lines
