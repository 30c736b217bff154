"""A small, safe arithmetic language for computed spec values.

A spec value such as ``"$f * 4"`` or ``"divisible($f * $alpha, 8)"`` is parsed here
by a hand-written tokenizer and recursive-descent parser into a tiny tree of frozen
dataclasses, and evaluated by walking that tree.  Python's ``eval`` is never used.

The language:

* numbers: ``16``, ``0.5``, ``.5``, ``1e-3``, ``1.001e-5`` (int unless written with a
  ``.`` or an exponent, as in Python);
* variables: ``$name`` with ``name`` matching ``[A-Za-z_][A-Za-z0-9_]*``; their values
  come from the ``env`` mapping given to :meth:`Expr.evaluate` and must be numbers
  (``bool``, strings, lists ... are refused);
* operators, loosest first: ``+ -``; ``* / // %``; unary ``+ -``; ``**`` (binds
  tighter than a unary sign on its left, so ``-2**2 == -4``, and is right-associative);
  parentheses group;
* functions: ``min(a, b, ...)``, ``max(a, b, ...)``, ``round(x)``, ``round(x, ndigits)``,
  ``int(x)`` (truncates), ``float(x)``, ``ceil(x)``, ``floor(x)``, ``abs(x)`` and
  ``divisible(v, d)`` / ``divisible(v, d, min_value)``, which is the ``_make_divisible``
  of Keras' MobileNet: ``v`` rounded to a multiple of ``d`` that is at least
  ``min_value`` (default ``d``) and not more than 10% below ``v``.

Arithmetic follows Python: ints stay ints, ``/`` gives a float, ``//`` and ``%`` of
ints give ints, ``round`` rounds halves to even.  Every problem is an
:class:`ExprError` with a 1-based column: a syntax error, an unknown function or
variable, a wrong number of arguments, a division by zero, a value that is not a
finite number of magnitude at most 1e15 (checked for every intermediate result), an
expression longer than 500 characters or nested deeper than 50 levels (parentheses,
calls, unary signs and ``**`` chains each count as a level).
"""

from __future__ import annotations

import difflib
import math
import numbers
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

__all__ = ["FUNCTIONS", "Expr", "ExprError", "is_expression", "parse"]

MAX_LENGTH = 500
MAX_DEPTH = 50
MAX_MAGNITUDE = 1e15

Number = int | float


class ExprError(ValueError):
    """A problem in an expression: ``message`` says what was expected and what was
    received; ``column`` is the 1-based column in the expression text, or ``None``."""

    def __init__(self, message: str, column: int | None = None):
        super().__init__(message)
        self.message = message
        self.column = column


# --- tokens -------------------------------------------------------------------------

_TOKEN = re.compile(
    r"(?P<num>(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?)"
    r"|(?P<var>\$[A-Za-z_][A-Za-z0-9_]*)"
    r"|(?P<name>[A-Za-z_][A-Za-z0-9_]*)"
    r"|(?P<op>\*\*|//|[-+*/%(),])"
)
_SPACE = " \t\r\n"
_PLAIN_VAR = re.compile(r"\$[A-Za-z_][A-Za-z0-9_]*")


@dataclass(frozen=True)
class _Token:
    kind: str  # "num", "var", "name", "op" or "end"
    text: str
    col: int

    def describe(self) -> str:
        if self.kind == "end":
            return "end of expression"
        if self.kind == "num":
            return f"number {self.text}"
        if self.kind == "name":
            return f"name '{self.text}'"
        return f"'{self.text}'"


def _tokenize(text: str) -> list[_Token]:
    tokens: list[_Token] = []
    pos = 0
    while pos < len(text):
        ch = text[pos]
        if ch in _SPACE:
            pos += 1
            continue
        m = _TOKEN.match(text, pos)
        if m is None:
            hint = {
                ".": "; attribute access is not supported",
                "[": "; indexing is not supported",
                "'": "; strings are not supported",
                '"': "; strings are not supported",
                "$": "; '$' must be followed by a variable name",
            }.get(ch, "")
            raise ExprError(
                f"expected a number, $variable, function, operator or parenthesis; "
                f"received {ch!r}{hint}",
                pos + 1,
            )
        kind = m.lastgroup or "op"
        end = m.end()
        if kind == "num" and end < len(text) and (text[end].isalnum() or text[end] in "._"):
            bad = re.match(r"[\w.]*", text[pos:]).group()  # type: ignore[union-attr]
            raise ExprError(f"expected a number; received malformed number {bad!r}", pos + 1)
        tokens.append(_Token(kind, m.group(), pos + 1))
        pos = end
    tokens.append(_Token("end", "", len(text) + 1))
    return tokens


# --- tree ---------------------------------------------------------------------------


@dataclass(frozen=True)
class _Num:
    value: Number
    col: int


@dataclass(frozen=True)
class _Var:
    name: str
    col: int


@dataclass(frozen=True)
class _Unary:
    op: str
    operand: _Node
    col: int


@dataclass(frozen=True)
class _Binary:
    op: str
    left: _Node
    right: _Node
    col: int


@dataclass(frozen=True)
class _Call:
    name: str
    args: tuple[_Node, ...]
    col: int


_Node = _Num | _Var | _Unary | _Binary | _Call


# --- functions ----------------------------------------------------------------------


def _round(x: Number, ndigits: Number | None = None) -> Number:
    if ndigits is None:
        return round(x)
    if not isinstance(ndigits, int) or not -30 <= ndigits <= 30:
        raise ExprError(f"round(): expected ndigits an int from -30 to 30; received {ndigits!r}")
    return round(x, ndigits)


def _divisible(v: Number, divisor: Number, min_value: Number | None = None) -> Number:
    """Keras' MobileNet ``_make_divisible``, line for line."""
    if min_value is None:
        min_value = divisor
    new_v = max(min_value, int(v + divisor / 2) // divisor * divisor)
    if new_v < 0.9 * v:
        new_v += divisor
    return new_v


# name -> (fewest arguments, most arguments or None for any, implementation)
_FUNCTIONS: dict[str, tuple[int, int | None, Callable[..., Number]]] = {
    "abs": (1, 1, abs),
    "ceil": (1, 1, math.ceil),
    "divisible": (2, 3, _divisible),
    "float": (1, 1, float),
    "floor": (1, 1, math.floor),
    "int": (1, 1, int),
    "max": (1, None, lambda *xs: max(xs)),
    "min": (1, None, lambda *xs: min(xs)),
    "round": (1, 2, _round),
}
FUNCTIONS = frozenset(_FUNCTIONS)
_FUNC_START = re.compile(rf"(?:{'|'.join(sorted(_FUNCTIONS))})\s*\(")


def _close(word: str, choices: list[str]) -> str:
    match = difflib.get_close_matches(word, choices, n=1, cutoff=0.6)
    return f" (did you mean {match[0]}?)" if match else ""


# --- parser -------------------------------------------------------------------------


class _Parser:
    def __init__(self, text: str):
        self.tokens = _tokenize(text)
        self.i = 0
        self.depth = 0
        self.names: set[str] = set()

    @property
    def tok(self) -> _Token:
        return self.tokens[self.i]

    def take(self) -> _Token:
        tok = self.tokens[self.i]
        self.i += 1
        return tok

    def enter(self, tok: _Token) -> None:
        self.depth += 1
        if self.depth > MAX_DEPTH:
            raise ExprError(
                f"expected at most {MAX_DEPTH} nested levels; received more at {tok.describe()}",
                tok.col,
            )

    def expect(self, text: str, why: str) -> _Token:
        if self.tok.text != text or self.tok.kind != "op":
            raise ExprError(
                f"expected '{text}' {why}; received {self.tok.describe()}", self.tok.col
            )
        return self.take()

    def parse(self) -> _Node:
        if self.tok.kind == "end":
            raise ExprError("expected an expression; received nothing", 1)
        node = self.sum()
        if self.tok.kind != "end":
            raise ExprError(
                f"expected an operator or end of expression; received {self.tok.describe()}",
                self.tok.col,
            )
        return node

    def binary(self, ops: tuple[str, ...], operand: Callable[[], _Node]) -> _Node:
        node = operand()
        while self.tok.kind == "op" and self.tok.text in ops:
            op = self.take()
            node = _Binary(op.text, node, operand(), op.col)
        return node

    def sum(self) -> _Node:
        return self.binary(("+", "-"), self.term)

    def term(self) -> _Node:
        return self.binary(("*", "/", "//", "%"), self.unary)

    def unary(self) -> _Node:
        if self.tok.kind == "op" and self.tok.text in ("+", "-"):
            op = self.take()
            self.enter(op)
            node = _Unary(op.text, self.unary(), op.col)
            self.depth -= 1
            return node
        return self.power()

    def power(self) -> _Node:
        node = self.atom()
        if self.tok.kind == "op" and self.tok.text == "**":
            op = self.take()
            self.enter(op)
            node = _Binary("**", node, self.unary(), op.col)
            self.depth -= 1
        return node

    def atom(self) -> _Node:
        tok = self.tok
        if tok.kind == "num":
            self.take()
            value: Number = float(tok.text) if any(c in tok.text for c in ".eE") else int(tok.text)
            return _Num(_check(value, tok.col, f"number {tok.text}"), tok.col)
        if tok.kind == "var":
            self.take()
            self.names.add(tok.text[1:])
            return _Var(tok.text[1:], tok.col)
        if tok.kind == "name":
            return self.call()
        if tok.kind == "op" and tok.text == "(":
            self.take()
            self.enter(tok)
            node = self.sum()
            self.expect(")", f"to close '(' at column {tok.col}")
            self.depth -= 1
            return node
        raise ExprError(
            f"expected a number, $variable, function call or '('; received {tok.describe()}",
            tok.col,
        )

    def call(self) -> _Node:
        name = self.take()
        known = sorted(_FUNCTIONS)
        if self.tok.text != "(" or self.tok.kind != "op":
            raise ExprError(
                f"expected a number, $variable, function call or '('; received "
                f"{name.describe()} (variables are written ${name.text})",
                name.col,
            )
        if name.text not in _FUNCTIONS:
            raise ExprError(
                f"expected one of the functions {', '.join(known)}; received unknown "
                f"function '{name.text}'{_close(name.text, known)}",
                name.col,
            )
        self.enter(self.take())
        args: list[_Node] = []
        if not (self.tok.kind == "op" and self.tok.text == ")"):
            args.append(self.sum())
            while self.tok.kind == "op" and self.tok.text == ",":
                self.take()
                args.append(self.sum())
        self.expect(")", f"to close the call of {name.text}() at column {name.col}")
        self.depth -= 1
        least, most = _FUNCTIONS[name.text][:2]
        if len(args) < least or (most is not None and len(args) > most):
            if most is None:
                want = f"at least {least} argument{'s' * (least != 1)}"
            elif least == most:
                want = f"{least} argument{'s' * (least != 1)}"
            else:
                want = f"{least} or {most} arguments"
            raise ExprError(f"{name.text}() expected {want}; received {len(args)}", name.col)
        return _Call(name.text, tuple(args), name.col)


# --- evaluation ---------------------------------------------------------------------


def _show(value: Number) -> str:
    try:
        return f"{value:.6g}"
    except OverflowError:
        return f"a {len(str(abs(value)))}-digit number"


def _check(value: object, col: int | None, what: str) -> Number:
    if isinstance(value, complex):
        raise ExprError(f"{what} has no real value (a negative number to a fractional power)", col)
    if isinstance(value, float) and not math.isfinite(value):
        raise ExprError(f"{what} is {value}; expected a finite number", col)
    if abs(value) > MAX_MAGNITUDE:  # type: ignore[arg-type]
        raise ExprError(
            f"{what} is {_show(value)}; expected a magnitude of at most 1e15",  # type: ignore[arg-type]
            col,
        )
    return value  # type: ignore[return-value]


def _binary(op: str, a: Number, b: Number, col: int) -> Number:
    if op == "**" and isinstance(a, int) and isinstance(b, int) and abs(a) > 1 and b > 64:
        raise ExprError(f"result of '**' is {a}**{b}; expected a magnitude of at most 1e15", col)
    try:
        if op == "+":
            return a + b
        if op == "-":
            return a - b
        if op == "*":
            return a * b
        if op == "/":
            return a / b
        if op == "//":
            return a // b
        if op == "%":
            return a % b
        return a**b
    except ZeroDivisionError:
        if op == "**":
            message = f"expected a non-negative power of 0 for '**'; received {_show(b)}"
        else:
            message = f"expected a non-zero divisor for '{op}'; received {_show(b)}"
        raise ExprError(message, col) from None
    except OverflowError:
        raise ExprError(f"result of '{op}' is too large; expected at most 1e15", col) from None


def _value(name: str, env: Mapping[str, object], col: int) -> Number:
    if name not in env:
        scope = ", ".join(f"${n}" for n in sorted(env)) or "none"
        raise ExprError(
            f"expected a variable in scope ({scope}); received unknown variable "
            f"${name}{_close(name, sorted(env))}",
            col,
        )
    value = env[name]
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise ExprError(
            f"expected ${name} to be a number; received {type(value).__name__} {value!r:.60}",
            col,
        )
    number = int(value) if isinstance(value, numbers.Integral) else float(value)
    return _check(number, col, f"${name}")


def _eval(node: _Node, env: Mapping[str, object]) -> Number:
    match node:
        case _Num(value=value):
            return value
        case _Var(name=name, col=col):
            return _value(name, env, col)
        case _Unary(op=op, operand=operand):
            value = _eval(operand, env)
            return -value if op == "-" else +value
        case _Binary(op=op, left=left, right=right, col=col):
            result = _binary(op, _eval(left, env), _eval(right, env), col)
            return _check(result, col, f"result of '{op}'")
        case _Call(name=name, args=args, col=col):
            values = [_eval(arg, env) for arg in args]
            try:
                result = _FUNCTIONS[name][2](*values)
            except ExprError as err:
                raise ExprError(err.message, col) from None
            except ZeroDivisionError:
                raise ExprError(f"{name}(): expected a non-zero divisor; received 0", col) from None
            except (OverflowError, ValueError) as err:
                raise ExprError(f"{name}(): {err}", col) from None
            return _check(result, col, f"result of {name}()")
    raise AssertionError(node)  # pragma: no cover


# --- API ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Expr:
    """A parsed expression; ``names`` are the variables it uses, without ``$``."""

    text: str
    names: frozenset[str]
    _tree: _Node = field(repr=False, compare=False)

    def evaluate(self, env: Mapping[str, object]) -> int | float:
        """The value for the variables in ``env``; raises :class:`ExprError`."""
        return _eval(self._tree, env)

    def __str__(self) -> str:
        return self.text


def parse(text: str) -> Expr:
    """Parse ``text``; raises :class:`ExprError` with the column of the problem."""
    if not isinstance(text, str):
        raise ExprError(f"expected an expression string; received {type(text).__name__}")
    if len(text) > MAX_LENGTH:
        raise ExprError(
            f"expected an expression of at most {MAX_LENGTH} characters; received {len(text)}",
            MAX_LENGTH + 1,
        )
    parser = _Parser(text)
    tree = parser.parse()
    return Expr(text, frozenset(parser.names), tree)


def is_expression(text: object) -> bool:
    """True for a string that parses and, once stripped, starts with ``$`` or a known
    function followed by ``(``, and is more than a plain variable ``$name``."""
    if not isinstance(text, str):
        return False
    s = text.strip()
    if _PLAIN_VAR.fullmatch(s) or not (s.startswith("$") or _FUNC_START.match(s)):
        return False
    try:
        parse(text)
    except ExprError:
        return False
    return True
