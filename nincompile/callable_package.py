"""Packages that are also API functions: ``nincompile.train`` is both the package of
the training code and :func:`nincompile.api.train`.

Python binds a subpackage as an attribute of its parent when it is imported, so a
function ``nincompile.train`` would be replaced by the package the first time any
module of it is imported.  Instead the package itself is made callable: calling it
calls the API function of the same name (and ``help``, ``inspect.signature`` show it).
"""

from __future__ import annotations

import importlib
import inspect
import sys
import types


class CallablePackage(types.ModuleType):
    """A package whose call is :mod:`nincompile.api`'s function of its last name."""

    def _function(self):
        return getattr(importlib.import_module("nincompile.api"), self.__name__.rsplit(".")[-1])

    def __call__(self, *args, **kwargs):
        return self._function()(*args, **kwargs)

    @property
    def __signature__(self) -> inspect.Signature:
        return inspect.signature(self._function())


def make_callable(name: str) -> None:
    """Make the package ``name`` (being imported: call from its ``__init__``) callable."""
    sys.modules[name].__class__ = CallablePackage
