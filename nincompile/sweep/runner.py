"""Run a sweep's members as ``nincompile train`` processes: one process each (it
isolates accelerators and crashes), which trains through :func:`nincompile.api.train`
as every training does, on the member's resolved spec written to ``OUT/.specs/``."""

from __future__ import annotations

import math
import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from ..files import safe_child, write_text
from .members import SPECS_DIR, Member

LOGS_DIR = ".logs"


@dataclass
class Outcome:
    member: Member
    status: str  # skipped | trained | failed
    detail: str = ""


def gpu_slots() -> list[str]:
    """Accelerators to give one each to concurrent members: ``CUDA_VISIBLE_DEVICES``
    when set, else those ``nvidia-smi -L`` lists; none on a CPU machine."""
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if visible is not None:
        return [d for d in visible.split(",") if d.strip() and d.strip() != "-1"]
    if shutil.which("nvidia-smi"):
        try:
            out = subprocess.run(["nvidia-smi", "-L"], capture_output=True, text=True, timeout=20)
            return [str(i) for i, line in enumerate(out.stdout.splitlines()) if line.strip()]
        except (OSError, subprocess.SubprocessError):
            return []
    return []


#: What JAX may take of a GPU shared by several members (of its memory, all together).
SHARED_GPU_MEMORY = 0.9


def member_env(index: int, jobs: int, slots: list[str], base: dict[str, str]) -> dict[str, str]:
    """The environment of the ``index``-th member when ``jobs`` run at once over the
    accelerators ``slots``: one accelerator each, round robin.  When members share an
    accelerator (more jobs than accelerators), JAX, which would otherwise take 75 % of
    the memory in every process, is given an equal share of it
    (``XLA_PYTHON_CLIENT_MEM_FRACTION``) unless the caller set its own."""
    env = dict(base)
    if jobs > 1 and slots:
        env["CUDA_VISIBLE_DEVICES"] = slots[index % min(jobs, len(slots))]
        sharing = math.ceil(jobs / len(slots))
        own = {"XLA_PYTHON_CLIENT_MEM_FRACTION", "XLA_PYTHON_CLIENT_PREALLOCATE"} & set(env)
        if sharing > 1 and not own:
            env["XLA_PYTHON_CLIENT_MEM_FRACTION"] = f"{SHARED_GPU_MEMORY / sharing:.3f}"
    return env


def command(member: Member, out: Path, resume: bool, data, val, cache_dir) -> list[str]:
    cmd = [sys.executable, "-m", "nincompile.cli", "train", str(member.spec_file(out)),
           "--out", str(member.folder(out))]  # fmt: skip
    if resume:
        cmd.append("--resume")
    for flag, value in (("--data", data), ("--val", val), ("--cache-dir", cache_dir)):
        if value is not None:
            cmd += [flag, str(value)]
    return cmd


def run_members(
    members: list[Member],
    out: Path,
    *,
    data=None,
    val=None,
    cache_dir=None,
    jobs: int = 1,
    say: Callable[[str], None] = print,
) -> list[Outcome]:
    """Train every member not yet finished: new ones from scratch, interrupted ones
    with ``--resume``.  With ``jobs`` > 1, members run concurrently, one accelerator
    each when there are several; their output goes to ``OUT/.logs/<member>.log``."""
    out = Path(out)
    (out / SPECS_DIR).mkdir(parents=True, exist_ok=True)
    todo, outcomes = [], []
    for m in members:
        status = m.status(out)
        if status == "done":
            outcomes.append(Outcome(m, "skipped", "finished"))
            say(f"{m.name}: finished, skipped")
            continue
        write_text(m.spec_file(out), m.source.text)
        todo.append((m, status == "partial"))
    slots = gpu_slots()

    def run_one(index: int, m: Member, resume: bool) -> Outcome:
        cmd = command(m, out, resume, data, val, cache_dir)
        env = member_env(index, jobs, slots, dict(os.environ))
        say(f"{m.name}: {'resuming' if resume else 'training'}")
        if jobs == 1:
            proc = subprocess.run(cmd, env=env)
        else:
            (out / LOGS_DIR).mkdir(exist_ok=True)
            log_path = safe_child(out / LOGS_DIR, f"{m.name}.log", "sweep member")
            with open(log_path, "w", encoding="utf-8") as log:
                proc = subprocess.run(cmd, env=env, stdout=log, stderr=subprocess.STDOUT)
        if proc.returncode != 0:
            where = f" (log: {out / LOGS_DIR / (m.name + '.log')})" if jobs > 1 else ""
            say(f"{m.name}: failed with exit code {proc.returncode}{where}")
            return Outcome(m, "failed", f"exit code {proc.returncode}")
        say(f"{m.name}: done")
        return Outcome(m, "trained")

    if jobs <= 1:
        outcomes += [run_one(i, m, r) for i, (m, r) in enumerate(todo)]
    else:
        with ThreadPoolExecutor(max_workers=jobs) as pool:
            futures = [pool.submit(run_one, i, m, r) for i, (m, r) in enumerate(todo)]
            outcomes += [f.result() for f in futures]
    return outcomes
