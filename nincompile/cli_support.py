"""What every CLI command shares: printing an error and turning user errors into a
clean message with exit code 1 (never a traceback)."""

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
