"""``variants:``: one spec, several models.

::

    variants:
      defaults.order: [bamd, badm, dbam, bdam]
      train.learning_rate: [0.05, 0.1]

expands into one spec per combination (here 8), each named ``<name>_<values>``
(``nin_bn_orders_bamd_learning_rate0p05``) and validated on its own, with its own
counts checked against ``expect:``.  Paths are the ``--set`` key paths; a typo is
reported at its line in ``variants:`` with a suggestion.
"""

from __future__ import annotations

import dataclasses
import itertools
import re
from pathlib import PurePath

from pydantic import ValidationError

from ..errors import SpecError, SpecProblem, did_you_mean
from .load import SpecSource
from .overrides import Override, apply, dump, parse_key, with_overrides
from .schema import Spec, is_identifier
from .yaml_loader import load_yaml

MAX_VARIANTS = 1000


def _token(path: tuple, value: object, index: int) -> str:
    last = str(path[-1])
    if isinstance(value, bool):
        return last if value else f"no_{last}"
    if isinstance(value, int | float):
        text = str(value).replace(".", "p").replace("-", "m").replace("+", "")
        return f"{last}{text}" if re.fullmatch(r"[A-Za-z0-9_]+", text) else f"{last}{index}"
    if isinstance(value, str) and re.fullmatch(r"[A-Za-z0-9_]+", value):
        return value
    return f"{last}{index}"


def variant_names(source: SpecSource) -> list[str]:
    return [s.spec.name for s in expand(source)]


def _family(source: SpecSource) -> list[SpecSource]:
    """Each member of ``family:`` as its own validated spec, named ``<name>_<member>``:
    the member's values replace the spec's ``params`` (and its ``expect``, if given)."""
    spec = source.spec
    data, _ = load_yaml(source.text, source.file)
    data.pop("family", None)
    if spec.variants:
        line, col = source.locate(("variants",))
        raise SpecError([SpecProblem(
            "a spec has either 'family' or 'variants', not both: expected one of them",
            ("variants",), source.file, line, col,
        )])  # fmt: skip
    out: list[SpecSource] = []
    problems: list[SpecProblem] = []
    for member, values in spec.family.items():

        def where(message: str, path: tuple, key: str = "", member: str = member) -> SpecProblem:
            at = ("family", member, key) if key else ("family", member)
            line, col = source.locate(at)
            return SpecProblem(message + f" (in family member {member})", at, source.file,
                               line, col)  # fmt: skip

        items, unknown = [], []
        for key, value in values.items():
            if key == "expect":
                items.append(Override(("expect",), value, f"family.{member}.expect", where))
                continue
            if key not in spec.params:
                known = ", ".join(spec.params) or "none"
                unknown.append(where(
                    f"'{key}' is not one of the spec's params{did_you_mean(key, spec.params)}: "
                    f"expected one of {known}, or 'expect'", (), key,
                ))  # fmt: skip
                continue
            items.append(Override(("params", key), value, f"family.{member}.{key}", where))
        if unknown:
            problems += unknown
            continue
        name = f"{spec.name}_{member}"
        items.append(Override(("name",), name, "family member name", where))
        header = f"{PurePath(source.file).name}: family member {name}"  # path-independent
        try:
            out.append(_member(source, items, header, data))
        except SpecError as err:  # every member's problems, each saying which member
            tag = f" (in family member {member})"
            problems += [p if p.message.endswith(tag) else
                         dataclasses.replace(p, message=p.message + tag)
                         for p in err.problems]  # fmt: skip
    if problems:
        raise SpecError(problems)
    return out


def _member(source: SpecSource, items: list[Override], header: str, data: dict) -> SpecSource:
    """A family member: only ``params``, ``expect`` and ``name`` differ from the spec,
    so it is validated from ``data`` directly and keeps the spec file's positions
    (a problem in it points at the file's line); its text is the resolved spec.  A
    member that does not validate is parsed again from its text, for the located
    problems :func:`apply` reports."""
    resolved = with_overrides(data, items)
    try:
        spec = Spec.model_validate(resolved)
    except ValidationError:
        return apply(source, items, header, data)
    return SpecSource(spec, source.file, dump(resolved, header), source.positions)


def expand(source: SpecSource) -> list[SpecSource]:
    """Every member of ``family:``, or every combination of ``variants:``, as its own
    validated spec; ``[source]`` when the spec has neither."""
    spec = source.spec
    if spec.family:
        return _family(source)
    if not spec.variants:
        return [source]
    data, _ = load_yaml(source.text, source.file)
    data.pop("variants", None)
    keys = list(spec.variants)
    total = 1
    for key in keys:
        total *= len(spec.variants[key])
    if total > MAX_VARIANTS:
        line, col = source.locate(("variants",))
        raise SpecError(
            [SpecProblem(f"{total} combinations; at most {MAX_VARIANTS} are allowed",
                         ("variants",), source.file, line, col)]
        )  # fmt: skip

    def locator(key: str, value: object = None):
        line, col = source.locate(("variants", key))
        suffix = "" if value is None else f" (in the variant with {key}={value!r})"

        def where(message: str, path: tuple) -> SpecProblem:
            return SpecProblem(message + suffix, ("variants", key), source.file, line, col)

        return where

    paths, problems = {}, []
    for key in keys:  # every bad key at once
        try:
            paths[key] = parse_key(key, locator(key))
        except SpecError as err:
            problems += err.problems
    if problems:
        raise SpecError(problems)
    out: list[SpecSource] = []
    seen: dict[str, str] = {}
    for combo in itertools.product(*(list(enumerate(spec.variants[k])) for k in keys)):
        tokens = [_token(paths[k], v, i) for k, (i, v) in zip(keys, combo, strict=True)]
        name = f"{spec.name}_{'_'.join(tokens)}"
        if not is_identifier(name):
            name = f"{spec.name}_{'_'.join(str(i) for i, _ in combo)}"
        label = ", ".join(f"{k}={v!r}" for k, (_, v) in zip(keys, combo, strict=True))
        if name in seen:
            message = f"variants '{seen[name]}' and '{label}' are both named {name}"
            raise SpecError([locator(keys[0])(message + "; give distinct values", ())])
        seen[name] = label
        items = [
            Override(paths[k], v, f"variants.{k}", locator(k, v))
            for k, (_, v) in zip(keys, combo, strict=True)
        ]
        items.append(Override(("name",), name, "variant name", locator(keys[0])))
        header = f"{PurePath(source.file).name}: variant {name} ({label})"  # path-independent
        out.append(apply(source, items, header, data))
    return out


def select(source: SpecSource, name: str | None) -> SpecSource:
    """The expansion called ``name`` (or its suffix after ``<spec name>_``); the spec
    itself when it has no variants and ``name`` is None."""
    expansions = expand(source)
    if name is None:
        if len(expansions) == 1:
            return expansions[0]
        names = ", ".join(s.spec.name for s in expansions)
        raise SpecError(
            [SpecProblem(f"this spec has {len(expansions)} variants ({names}); pick one with "
                         "--variant NAME, or train them all with nincompile sweep", (),
                         source.file)]
        )  # fmt: skip
    for s in expansions:
        if name in (s.spec.name, s.spec.name.removeprefix(f"{source.spec.name}_")):
            return s
    names = ", ".join(s.spec.name for s in expansions)
    raise SpecError([SpecProblem(f"no variant named {name!r}; expected one of: {names}", (),
                                 source.file)])  # fmt: skip
