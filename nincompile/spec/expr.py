"""A small, safe expression language for computed spec values.

A spec value such as ``"$f * 4"``, ``"divisible($f * $alpha, 8)"`` or
``"if($stride == 2, 'valid', 'same')"`` is parsed here by a hand-written tokenizer and
recursive-descent parser into a tiny tree of frozen dataclasses, and evaluated by
walking that tree.  Python's ``eval`` is never used.

The language:

* numbers: ``16``, ``0.5``, ``.5``, ``1e-3``, ``1.001e-5`` (int unless written with a
  ``.`` or an exponent, as in Python; ``01`` is refused, as in Python);
* booleans: ``true`` / ``false`` (YAML style; ``True`` / ``False`` also accepted);
* strings: ``'valid'`` or ``"same"``: at most 64 letters, digits, ``_``, ``-`` or ``.``,
  no escapes;
* variables: ``$name`` with ``name`` matching ``[A-Za-z_][A-Za-z0-9_]*``; their values
  come from the ``env`` mapping given to :meth:`Expr.evaluate` and must be numbers,
  bools or strings (lists, ``None`` ... are refused);
* operators, loosest first: ``or``; ``and``; ``not``; one comparison ``== != < <= > >=``
  (``a < b < c`` is refused: write ``a < b and b < c``); ``+ -``; ``* / // %``; unary
  ``+ -``; ``**`` (binds tighter than a unary sign on its left, so ``-2**2 == -4``, and
  is right-associative); parentheses group;
* functions: ``min(a, b, ...)``, ``max(a, b, ...)``, ``round(x)``, ``round(x, ndigits)``,
  ``int(x)`` (truncates), ``float(x)``, ``ceil(x)``, ``floor(x)``, ``abs(x)``,
  ``divisible(v, d)`` / ``divisible(v, d, min_value)``, which is the ``_make_divisible``
  of Keras' MobileNet: ``v`` rounded to a multiple of ``d`` that is at least
  ``min_value`` (default ``d``) and not more than 10% below ``v``, and
  ``if(condition, a, b)``, which evaluates only the branch it returns.

Arithmetic follows Python: ints stay ints, ``/`` gives a float, ``//`` and ``%`` of
ints give ints, ``round`` rounds halves to even.  Types are stricter than Python's:
arithmetic, ordering and the functions other than ``if`` take numbers only (never
bools or strings); ``and``, ``or``, ``not`` and the condition of ``if`` take bools only
(``and`` / ``or`` short-circuit); ``==`` / ``!=`` compare two values of the same type
(number, bool or string).  Comparisons and ``and`` / ``or`` / ``not`` give bools.

Every problem is an :class:`ExprError` with a 1-based column: a syntax error, an
unknown function or variable, a wrong number of arguments, a value of the wrong type,
a division by zero, a value that is not a finite number of magnitude at most 1e15
(checked for every intermediate result), an expression longer than 500 characters or
nested deeper than 50 levels (parentheses, calls, unary signs, ``not`` and ``**``
chains each count as a level).

:meth:`Expr.python` writes an expression as Python source for the code generator.
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
MAX_STRING = 64

Number = int | float
Value = int | float | bool | str


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
    r"|(?P<op>\*\*|//|==|!=|<=|>=|[-+*/%(),<>])"
)
_SPACE = " \t\r\n"
_PLAIN_VAR = re.compile(r"\$[A-Za-z_][A-Za-z0-9_]*")
_STRING_CHAR = re.compile(r"[A-Za-z0-9_.\-]")
_LEADING_ZERO = re.compile(r"0+[1-9][0-9]*")
_KEYWORDS = frozenset({"and", "or", "not", "true", "false", "True", "False"})
_COMPARISONS = ("==", "!=", "<", "<=", ">", ">=")


@dataclass(frozen=True)
class _Token:
    kind: str  # "num", "var", "name", "str", "op" or "end"
    text: str
    col: int

    def describe(self) -> str:
        if self.kind == "end":
            return "end of expression"
        if self.kind == "num":
            return f"number {self.text}"
        if self.kind == "str":
            return f"string {self.text}"
        if self.kind == "name":
            kind = "keyword" if self.text in _KEYWORDS else "name"
            return f"{kind} '{self.text}'"
        return f"'{self.text}'"

    def is_op(self, *texts: str) -> bool:
        return self.kind == "op" and self.text in texts

    def is_keyword(self, text: str) -> bool:
        return self.kind == "name" and self.text == text


def _string(text: str, pos: int) -> int:
    """The end of the quoted string that starts at ``pos``; checks its characters."""
    quote = text[pos]
    end = text.find(quote, pos + 1)
    if end < 0:
        raise ExprError(
            f"expected a closing {quote} for the string at column {pos + 1}; "
            "received end of expression",
            len(text) + 1,
        )
    for i in range(pos + 1, end):
        if not _STRING_CHAR.match(text[i]):
            raise ExprError(
                f"expected a string of letters, digits, '_', '-' or '.'; received {text[i]!r}",
                i + 1,
            )
    if end - pos - 1 > MAX_STRING:
        raise ExprError(
            f"expected a string of at most {MAX_STRING} characters; received {end - pos - 1}",
            pos + 1,
        )
    return end + 1


def _tokenize(text: str) -> list[_Token]:
    tokens: list[_Token] = []
    pos = 0
    while pos < len(text):
        ch = text[pos]
        if ch in _SPACE:
            pos += 1
            continue
        if ch in "'\"":
            end = _string(text, pos)
            tokens.append(_Token("str", text[pos:end], pos + 1))
            pos = end
            continue
        m = _TOKEN.match(text, pos)
        if m is None:
            hint = {
                ".": "; attribute access is not supported",
                "[": "; indexing is not supported",
                "$": "; '$' must be followed by a variable name",
                "=": "; compare with ==",
                "!": "; use != or not",
                "&": "; use and",
                "|": "; use or",
            }.get(ch, "")
            raise ExprError(
                f"expected a number, $variable, function, operator or parenthesis; "
                f"received {ch!r}{hint}",
                pos + 1,
            )
        kind = m.lastgroup or "op"
        end = m.end()
        if kind == "num" and (
            (end < len(text) and (text[end].isalnum() or text[end] in "._"))
            or _LEADING_ZERO.fullmatch(m.group())
        ):
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
class _Const:
    """A bool or string literal."""

    value: bool | str
    col: int


@dataclass(frozen=True)
class _Var:
    name: str
    col: int


@dataclass(frozen=True)
class _Unary:
    op: str  # "+", "-" or "not"
    operand: _Node
    col: int


@dataclass(frozen=True)
class _Binary:
    op: str  # arithmetic, a comparison, "and" or "or"
    left: _Node
    right: _Node
    col: int


@dataclass(frozen=True)
class _Call:
    name: str
    args: tuple[_Node, ...]
    col: int
    arg_cols: tuple[int, ...] = ()


_Node = _Num | _Const | _Var | _Unary | _Binary | _Call


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


# name -> (fewest arguments, most arguments or None for any, implementation); ``if``
# has no implementation: it is evaluated lazily in :func:`_eval`.
_FUNCTIONS: dict[str, tuple[int, int | None, Callable[..., Number] | None]] = {
    "abs": (1, 1, abs),
    "ceil": (1, 1, math.ceil),
    "divisible": (2, 3, _divisible),
    "float": (1, 1, float),
    "floor": (1, 1, math.floor),
    "if": (3, 3, None),
    "int": (1, 1, int),
    "max": (1, None, lambda *xs: max(xs)),
    "min": (1, None, lambda *xs: min(xs)),
    "round": (1, 2, _round),
}
FUNCTIONS = frozenset(_FUNCTIONS)
# Python spelling, where it differs: the generated module imports math and defines
# make_divisible as Keras' _make_divisible.
_PYTHON_NAMES = {"divisible": "make_divisible", "ceil": "math.ceil", "floor": "math.floor"}


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
        if not self.tok.is_op(text):
            raise ExprError(
                f"expected '{text}' {why}; received {self.tok.describe()}", self.tok.col
            )
        return self.take()

    def parse(self) -> _Node:
        if self.tok.kind == "end":
            raise ExprError("expected an expression; received nothing", 1)
        node = self.expression()
        if self.tok.kind != "end":
            raise ExprError(
                f"expected an operator or end of expression; received {self.tok.describe()}",
                self.tok.col,
            )
        return node

    def expression(self) -> _Node:
        return self.disjunction()

    def disjunction(self) -> _Node:
        node = self.conjunction()
        while self.tok.is_keyword("or"):
            op = self.take()
            node = _Binary("or", node, self.conjunction(), op.col)
        return node

    def conjunction(self) -> _Node:
        node = self.negation()
        while self.tok.is_keyword("and"):
            op = self.take()
            node = _Binary("and", node, self.negation(), op.col)
        return node

    def negation(self) -> _Node:
        if self.tok.is_keyword("not"):
            op = self.take()
            self.enter(op)
            node = _Unary("not", self.negation(), op.col)
            self.depth -= 1
            return node
        return self.comparison()

    def comparison(self) -> _Node:
        node = self.sum()
        if self.tok.is_op(*_COMPARISONS):
            op = self.take()
            node = _Binary(op.text, node, self.sum(), op.col)
            if self.tok.is_op(*_COMPARISONS):
                raise ExprError(
                    f"chained comparisons are not supported; use and (received "
                    f"'{op.text}' then '{self.tok.text}')",
                    self.tok.col,
                )
        return node

    def binary(self, ops: tuple[str, ...], operand: Callable[[], _Node]) -> _Node:
        node = operand()
        while self.tok.is_op(*ops):
            op = self.take()
            node = _Binary(op.text, node, operand(), op.col)
        return node

    def sum(self) -> _Node:
        return self.binary(("+", "-"), self.term)

    def term(self) -> _Node:
        return self.binary(("*", "/", "//", "%"), self.unary)

    def unary(self) -> _Node:
        if self.tok.is_op("+", "-"):
            op = self.take()
            self.enter(op)
            node = _Unary(op.text, self.unary(), op.col)
            self.depth -= 1
            return node
        return self.power()

    def power(self) -> _Node:
        node = self.atom()
        if self.tok.is_op("**"):
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
        if tok.kind == "str":
            self.take()
            return _Const(tok.text[1:-1], tok.col)
        if tok.kind == "var":
            self.take()
            self.names.add(tok.text[1:])
            return _Var(tok.text[1:], tok.col)
        if tok.kind == "name" and tok.text in ("true", "True", "false", "False"):
            self.take()
            return _Const(tok.text in ("true", "True"), tok.col)
        if tok.kind == "name" and tok.text not in _KEYWORDS:
            return self.call()
        if tok.is_op("("):
            self.take()
            self.enter(tok)
            node = self.expression()
            self.expect(")", f"to close '(' at column {tok.col}")
            self.depth -= 1
            return node
        raise ExprError(
            "expected a number, string, true, false, $variable, function call or '('; "
            f"received {tok.describe()}",
            tok.col,
        )

    def call(self) -> _Node:
        name = self.take()
        known = sorted(_FUNCTIONS)
        if not self.tok.is_op("("):
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
        cols: list[int] = []
        if not self.tok.is_op(")"):
            cols.append(self.tok.col)
            args.append(self.expression())
            while self.tok.is_op(","):
                self.take()
                cols.append(self.tok.col)
                args.append(self.expression())
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
        return _Call(name.text, tuple(args), name.col, tuple(cols))


# --- evaluation ---------------------------------------------------------------------


def _show(value: Number) -> str:
    try:
        return f"{value:.6g}"
    except OverflowError:
        return f"a {len(str(abs(value)))}-digit number"


def _describe(value: Value) -> str:
    """A value for a message: ``3``, ``bool true``, ``string 'same'``."""
    if isinstance(value, bool):
        return f"bool {'true' if value else 'false'}"
    if isinstance(value, str):
        return f"string {value!r:.60}"
    return _show(value)


def _type(value: Value) -> str:
    if isinstance(value, bool):
        return "bool"
    return "string" if isinstance(value, str) else "number"


def _number(value: Value, where: str, col: int | None) -> Number:
    if isinstance(value, bool | str):
        raise ExprError(f"expected a number{where}; received {_describe(value)}", col)
    return value


def _condition(value: Value, op: str | None, col: int | None) -> bool:
    """``value`` if it is a bool; ``op`` is the operator that needs it, None for if()."""
    if not isinstance(value, bool):
        where = f" for '{op}'" if op else ""
        raise ExprError(
            f"{'' if op else 'if() '}expected a condition (true or false){where}; "
            f"received {_describe(value)}",
            col,
        )
    return value


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


def _arithmetic(op: str, a: Number, b: Number, col: int) -> Number:
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


def _compare(op: str, a: Value, b: Value, col: int) -> bool:
    if op in ("==", "!="):
        if _type(a) != _type(b):
            raise ExprError(
                f"expected two values of the same type for '{op}'; received "
                f"{_type(a)} and {_type(b)} ({_describe(a)} {op} {_describe(b)})",
                col,
            )
        return (a == b) if op == "==" else (a != b)
    x = _number(a, f" for '{op}'", col)
    y = _number(b, f" for '{op}'", col)
    if op == "<":
        return x < y
    if op == "<=":
        return x <= y
    if op == ">":
        return x > y
    return x >= y


def _is_bool(value: object) -> bool:
    kind = type(value)
    return isinstance(value, bool) or (
        kind.__module__ == "numpy" and kind.__name__ in ("bool_", "bool")
    )


def _value(name: str, env: Mapping[str, object], col: int) -> Value:
    if name not in env:
        scope = ", ".join(f"${n}" for n in sorted(env)) or "none"
        raise ExprError(
            f"expected a variable in scope ({scope}); received unknown variable "
            f"${name}{_close(name, sorted(env))}",
            col,
        )
    value = env[name]
    if _is_bool(value):
        return bool(value)
    if isinstance(value, str):
        return str(value)
    if not isinstance(value, numbers.Real):
        raise ExprError(
            f"expected ${name} to be a number, bool or string; received "
            f"{type(value).__name__} {value!r:.60}",
            col,
        )
    number = int(value) if isinstance(value, numbers.Integral) else float(value)
    return _check(number, col, f"${name}")


def _eval(node: _Node, env: Mapping[str, object]) -> Value:
    match node:
        case _Num(value=value) | _Const(value=value):
            return value
        case _Var(name=name, col=col):
            return _value(name, env, col)
        case _Unary(op="not", operand=operand, col=col):
            return not _condition(_eval(operand, env), "not", col)
        case _Unary(op=op, operand=operand, col=col):
            value = _number(_eval(operand, env), f" for unary '{op}'", col)
            return -value if op == "-" else +value
        case _Binary(op="and" | "or" as op, left=left, right=right, col=col):
            first = _condition(_eval(left, env), op, col)
            if first == (op == "or"):
                return first
            return _condition(_eval(right, env), op, col)
        case _Binary(op=op, left=left, right=right, col=col) if op in _COMPARISONS:
            return _compare(op, _eval(left, env), _eval(right, env), col)
        case _Binary(op=op, left=left, right=right, col=col):
            a = _number(_eval(left, env), f" for '{op}'", col)
            b = _number(_eval(right, env), f" for '{op}'", col)
            return _check(_arithmetic(op, a, b, col), col, f"result of '{op}'")
        case _Call(name="if", args=args, arg_cols=cols):
            chosen = _condition(_eval(args[0], env), None, cols[0])
            return _eval(args[1] if chosen else args[2], env)
        case _Call(name=name, args=args, col=col, arg_cols=cols):
            values = [
                _number(_eval(arg, env), f" for {name}()", arg_col)
                for arg, arg_col in zip(args, cols, strict=True)
            ]
            function = _FUNCTIONS[name][2]
            assert function is not None
            try:
                result = function(*values)
            except ExprError as err:
                raise ExprError(err.message, col) from None
            except ZeroDivisionError:
                raise ExprError(f"{name}(): expected a non-zero divisor; received 0", col) from None
            except (OverflowError, ValueError) as err:
                raise ExprError(f"{name}(): {err}", col) from None
            return _check(result, col, f"result of {name}()")
    raise AssertionError(node)  # pragma: no cover


# --- Python source ------------------------------------------------------------------


#: Python's binding strength of each operator (higher binds tighter); 0: ``a if c else b``
_PRECEDENCE = {
    "or": 1, "and": 2, "not": 3,
    "==": 4, "!=": 4, "<": 4, "<=": 4, ">": 4, ">=": 4,
    "+": 5, "-": 5, "*": 6, "/": 6, "//": 6, "%": 6, "unary": 7, "**": 8,
}  # fmt: skip
_ATOM = 9


def _python(node: _Node, rename: Callable[[str], str]) -> str:
    """Python source for ``node``, with only the parentheses Python needs."""
    return _py(node, rename)[0]


def _py(node: _Node, rename: Callable[[str], str]) -> tuple[str, int]:
    """(source, binding strength of its outermost operator)."""

    def wrap(child: _Node, weakest: int) -> str:
        text, strength = _py(child, rename)
        return f"({text})" if strength < weakest else text

    match node:
        case _Num(value=value) | _Const(value=value):
            if isinstance(value, str):  # [A-Za-z0-9_.-] only: quoted as ruff writes it
                return f'"{value}"', _ATOM
            return repr(value), _ATOM
        case _Var(name=name):
            text = rename(name)
            return text, (_PRECEDENCE["unary"] if text.startswith("-") else _ATOM)
        case _Unary(op="not", operand=operand):
            return f"not {wrap(operand, _PRECEDENCE['not'])}", _PRECEDENCE["not"]
        case _Unary(op=op, operand=operand):
            return f"{op}{wrap(operand, _PRECEDENCE['unary'])}", _PRECEDENCE["unary"]
        case _Binary(op="**", left=left, right=right):
            strength = _PRECEDENCE["**"]
            return f"{wrap(left, strength + 1)}**{wrap(right, _PRECEDENCE['unary'])}", strength
        case _Binary(op=op, left=left, right=right):
            strength = _PRECEDENCE[op]
            # Left-associative: the right operand binds tighter or is parenthesised;
            # comparisons never chain.
            left_min = strength + 1 if strength == 4 else strength
            return f"{wrap(left, left_min)} {op} {wrap(right, strength + 1)}", strength
        case _Call(name="if", args=(cond, then, other)):
            return f"{wrap(then, 1)} if {wrap(cond, 1)} else {wrap(other, 0)}", 0
        case _Call(name="min" | "max", args=(only,)):
            return _py(only, rename)  # Python's min(x) wants an iterable
        case _Call(name=name, args=args):
            inner = ", ".join(_python(arg, rename) for arg in args)
            return f"{_PYTHON_NAMES.get(name, name)}({inner})", _ATOM
    raise AssertionError(node)  # pragma: no cover


def _walk(node: _Node):
    yield node
    match node:
        case _Unary(operand=operand):
            yield from _walk(operand)
        case _Binary(left=left, right=right):
            yield from _walk(left)
            yield from _walk(right)
        case _Call(args=args):
            for arg in args:
                yield from _walk(arg)


# --- API ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Expr:
    """A parsed expression; ``names`` are the variables it uses, without ``$``."""

    text: str
    names: frozenset[str]
    _tree: _Node = field(repr=False, compare=False)

    def evaluate(self, env: Mapping[str, object]) -> int | float | bool | str:
        """The value for the variables in ``env``; raises :class:`ExprError`."""
        return _eval(self._tree, env)

    @property
    def functions(self) -> frozenset[str]:
        """The functions the expression calls, by their names in the language
        (``divisible``, ``ceil``, ``if`` ...)."""
        return frozenset(node.name for node in _walk(self._tree) if isinstance(node, _Call))

    def python(self, rename: Callable[[str], str]) -> str:
        """The expression as Python source text, with every variable ``$name`` written
        ``rename(name)``.  Sub-expressions are parenthesised; ``true`` is ``True``,
        strings are Python literals, ``if(c, a, b)`` is ``(a if c else b)``,
        ``divisible`` is ``make_divisible`` (Keras' ``_make_divisible``, which the
        generated module must define) and ``ceil`` / ``floor`` are ``math.ceil`` /
        ``math.floor`` (it must ``import math``): see :attr:`functions`."""
        return _python(self._tree, rename)

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
    """True for a string that parses and computes something: it holds an operator (other
    than a sign on a literal), a comparison, ``and`` / ``or`` / ``not``, a function call
    or a ``$variable``, and is more than a plain variable ``$name``.  So ``"$f * 4"``,
    ``"88 / 24"``, ``"-$f"`` and ``"not true"`` are expressions; ``"same"``, ``"3"``,
    ``"-1"``, ``"1e-3"``, ``"true"``, ``"'valid'"`` and ``"$f"`` are not."""
    if not isinstance(text, str) or _PLAIN_VAR.fullmatch(text.strip()):
        return False
    try:
        tree = parse(text)._tree
    except ExprError:
        return False
    return any(
        isinstance(node, _Binary | _Call | _Var) or (isinstance(node, _Unary) and node.op == "not")
        for node in _walk(tree)
    )
