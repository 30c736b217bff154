"""Layers named in ``train:`` (``freeze``, ``init_skip``): which layers of the graph a
list of layer or item names stands for.  No TensorFlow, no Keras.

A name selects the layer of that name and every layer whose name starts with it and
``_``: ``stage1`` selects ``stage1_conv``, ``stage1_bn``, ...; ``stage3_1`` one
iteration of a repeat; ``head3_dense`` one layer.  ``stage1`` does not select
``stage10_conv``.  A name that selects no layer is an error, located in the spec.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from ..errors import SpecError, did_you_mean


def selects(selector: str, name: str) -> bool:
    """True when ``selector`` (a layer or item name) stands for the layer ``name``."""
    return name == selector or name.startswith(selector + "_")


def _prefixes(names: Iterable[str]) -> set[str]:
    """Every name a selector could be: each layer name and its ``_``-prefixes."""
    out = set()
    for name in names:
        parts = name.split("_")
        out.update("_".join(parts[: i + 1]) for i in range(len(parts)))
    return out


def select(
    src, path: tuple, selectors: Sequence[str], names: Sequence[str], items: Sequence[str]
) -> list[str]:
    """The layers of ``names`` (in order) that ``selectors`` stand for; a
    :class:`SpecError` located at ``path + (i,)`` for each selector that stands for
    none (``items``: the spec's item names, for its message)."""
    problems = []
    for i, selector in enumerate(selectors):
        if not any(selects(selector, name) for name in names):
            hint = did_you_mean(selector, _prefixes(names))
            problems.append(
                src.problem(
                    f"'{selector}' names no layer of the model{hint}; expected a layer name "
                    f"or an item name ({', '.join(items)})",
                    (*path, i),
                )
            )
    if problems:
        raise SpecError(problems)
    return [name for name in names if any(selects(s, name) for s in selectors)]


def frozen(
    src, freeze, names: Sequence[str], items: Sequence[str], path: tuple = ("train", "freeze")
) -> frozenset:
    """The layers ``freeze`` (a ``train.freeze`` value: a list of names, an object with
    ``all_but``, or None) freezes, checked against the model's layer ``names``."""
    if freeze is None:
        return frozenset()
    if isinstance(freeze, list | tuple):
        return frozenset(select(src, path, freeze, names, items))
    keep = set(select(src, (*path, "all_but"), freeze.all_but, names, items))
    return frozenset(name for name in names if name not in keep)
