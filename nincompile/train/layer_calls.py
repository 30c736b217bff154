"""Switching a model's layers to other calls for as long as a block lasts: the one
mechanism behind the faster kernels of training (:mod:`.fused_norm`,
:mod:`.channels_last`).

A switched layer gets an instance attribute ``call`` that shadows its class's; its
class, config and weights stay Keras's, so a model saved inside the block is the same
Keras model, and leaving the block (normally or by an exception) deletes the
attribute again.  A layer that already has an instance ``call`` (switched by an
enclosing block) is left alone.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterator


def env_on(name: str) -> bool:
    """Whether the environment variable ``name`` leaves a switch on: unset or anything
    but 0/false/no/off."""
    return os.environ.get(name, "1").strip().lower() not in ("0", "false", "no", "off")


@contextlib.contextmanager
def switched_calls(model, call_for: Callable[[object], Callable | None]) -> Iterator[list]:
    """Inside, each layer of ``model`` (nested ones included) for which ``call_for``
    returns a call runs that call instead of its class's; yields the layers switched."""
    switched = []
    try:
        for layer in model._flatten_layers(include_self=False, recursive=True):
            call = None if "call" in vars(layer) else call_for(layer)
            if call is not None:
                object.__setattr__(layer, "call", call)
                switched.append(layer)
        yield switched
    finally:
        for layer in switched:
            object.__delattr__(layer, "call")
