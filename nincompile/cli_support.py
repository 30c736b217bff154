"""What every CLI command shares: printing an error, turning user errors into a
clean message with exit code 1 (never a traceback), and the ``--max-memory`` option
of every command that loads a model or data."""

from __future__ import annotations

import sys
from functools import wraps

import click

from .errors import NincompileError


def fail(message: str) -> None:
    click.secho(message, fg="red", err=True)


def user_errors(fn):
    """Turn NincompileError into a clean message and exit code 1."""

    @wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except NincompileError as err:
            fail(str(err))
            sys.exit(1)
        except OSError as err:  # a folder that cannot be made, a full disk, ...
            where = f": {err.filename}" if err.filename else ""
            fail(f"{err.strerror or err}{where}")
            sys.exit(1)

    return wrapper


class Quantity(click.ParamType):
    """A ``--max-params`` count or ``--max-memory`` size (see :mod:`nincompile.guard`)."""

    def __init__(self, name: str, parse_name: str):
        self.name = name
        self.parse_name = parse_name

    def convert(self, value, param, ctx):
        if isinstance(value, int):
            return value
        from . import guard

        try:
            return getattr(guard, self.parse_name)(value)
        except guard.LimitError as err:
            self.fail(str(err), param, ctx)


def max_memory_option(fn):
    """``--max-memory SIZE`` on a command: the command runs with SIZE as the memory
    limit of every check it makes (:func:`nincompile.guard.memory_limit`): a model's
    estimate (spec or ``.keras``), the data's caps and the decoding budgets.  The one
    definition every command that loads a model or data uses."""

    @wraps(fn)
    def run_with_limit(*args, max_memory=None, **kwargs):
        from . import guard

        with guard.memory_limit(max_memory):
            return fn(*args, **kwargs)

    return click.option(
        "--max-memory", type=Quantity("size", "parse_size"), metavar="SIZE",
        help="Memory limit (e.g. 32GiB): a model or data whose estimated memory exceeds "
        "it is refused before anything is allocated (for training: weights, gradients, "
        "optimiser slots and every activation of one batch; else weights and the largest "
        "activation).  [default: $NINCOMPILE_MAX_MEMORY, else the memory available now]",
    )(run_with_limit)  # fmt: skip
