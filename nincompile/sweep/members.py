"""The members of a sweep: every variant of every spec, times every seed."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from ..errors import NincompileError
from ..files import safe_child
from ..runs import folder as runs
from ..spec import load_spec
from ..spec.load import SpecSource
from ..spec.overrides import apply_overrides
from ..spec.variants import expand

SPECS_DIR = ".specs"


@dataclass
class Member:
    name: str  # the run folder's name: <model name>[-seed<k>]
    source: SpecSource  # the resolved spec it trains
    seed: int

    def folder(self, out: Path) -> Path:
        return safe_child(out, self.name, "sweep member")

    def spec_file(self, out: Path) -> Path:
        return safe_child(Path(out) / SPECS_DIR, f"{self.name}.yaml", "sweep member")

    def status(self, out: Path) -> str:
        """``new``, ``partial`` (resume it) or ``done``."""
        folder = self.folder(out)
        if not folder.exists():
            return "new"
        state = runs.RunFolder(folder).state()
        epochs = self.source.spec.train.epochs if self.source.spec.train else None
        if state is not None and epochs is not None and int(state.get("epoch", 0)) >= epochs:
            return "done"
        return "partial"


def members(specs, overrides=(), seeds: int = 1) -> list[Member]:
    """Every variant of every spec with ``overrides`` applied; with ``seeds`` > 1, each
    once per seed (train.seed + 0 .. seeds - 1)."""
    if seeds < 1:
        raise NincompileError(f"--seeds must be at least 1; received {seeds}")
    out: list[Member] = []
    names: dict[str, str] = {}
    for path in specs:
        for source in expand(apply_overrides(load_spec(path), list(overrides))):
            base_seed = source.spec.train.seed if source.spec.train else 0
            for k in range(seeds):
                seed = base_seed + k
                src = source
                name = source.spec.name
                if seeds > 1:
                    src = apply_overrides(source, {"train.seed": seed})
                    name = f"{name}-seed{seed}"
                if name in names:
                    raise NincompileError(
                        f"two sweep members are named {name} ({names[name]} and {path}); "
                        "give the specs distinct names"
                    )
                names[name] = str(path)
                out.append(Member(name, src, seed))
    return out


def parse_shard(text: str | None) -> tuple[int, int] | None:
    """``"i/n"`` (0 <= i < n) -> ``(i, n)``."""
    if text is None:
        return None
    m = re.fullmatch(r"\s*(\d+)\s*/\s*(\d+)\s*", text)
    if not m or int(m.group(2)) < 1 or int(m.group(1)) >= int(m.group(2)):
        raise NincompileError(
            f"--shard expects i/n with 0 <= i < n (machine i of n, counted from 0), e.g. "
            f"0/4; received {text!r}"
        )
    return int(m.group(1)), int(m.group(2))


def shard(all_members: list[Member], which: tuple[int, int] | None) -> list[Member]:
    """Machine ``i`` of ``n`` takes every n-th member (by name), the same on every
    machine whatever order the specs were given in."""
    if which is None:
        return all_members
    i, n = which
    ordered = sorted(all_members, key=lambda m: m.name)
    return [m for k, m in enumerate(ordered) if k % n == i]
