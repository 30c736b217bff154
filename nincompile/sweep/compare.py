"""``compare``: one row per variant over run folders (or sweep folders of them).

Columns: parameters, MACs, model size on disk, best and final validation accuracy,
final training accuracy, the train - validation gap (the seed's over-fitting), median
epoch time and images/s.  Runs of one model name whose specs differ in
``train.seed`` alone (and that started from the same weights) are one variant: its
figures are mean ± standard deviation (n - 1), and each variant says whether its
distance from the best is larger than the seed-to-seed spread (the sum
of the two standard deviations), i.e. whether the ranking is more than noise.
"""

from __future__ import annotations

import csv
import io
import json
import re
import statistics
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import NincompileError
from ..files import atomic_write, regular_or_missing, write_text
from ..runs import folder as runs
from ..spec.yaml_loader import load_yaml
from ..units import format_bytes, format_macs

MD = "compare.md"
CSV = "compare.csv"
PNG = "compare.png"


@dataclass
class RunInfo:
    path: Path
    name: str
    seed: int | None
    metrics: dict
    history: list[dict]
    size: int
    #: what makes runs seeds of one variant: the spec without train.seed, and the
    #: weights it started from (two runs of one name may differ in either)
    setup: str = ""

    def final(self, key):
        return (self.metrics.get("final") or {}).get(key)

    @property
    def best_val(self):
        best = self.metrics.get("best") or {}
        return best.get("val_accuracy")


@dataclass
class Row:
    name: str
    runs: list[RunInfo] = field(default_factory=list)

    def values(self, fn) -> list[float]:
        out = [fn(r) for r in self.runs]
        return [v for v in out if v is not None]

    def stat(self, fn) -> tuple[float | None, float | None]:
        vals = self.values(fn)
        if not vals:
            return None, None
        return statistics.fmean(vals), (statistics.stdev(vals) if len(vals) > 1 else None)


def find_runs(paths) -> list[Path]:
    """Run folders among ``paths``: a run folder itself, or the run folders inside."""
    found: list[Path] = []
    for p in map(Path, paths):
        if not p.exists():
            raise NincompileError(f"'{p}' does not exist; expected a run folder or a sweep folder")
        if runs.is_run(p) and (p / runs.METRICS).is_file():
            found.append(p)
            continue
        inside = sorted(q for q in p.iterdir() if q.is_dir() and (q / runs.METRICS).is_file())
        if not inside:
            raise NincompileError(
                f"'{p}' holds no finished epoch of any run (no metrics.json in it or in its "
                "sub-folders)"
            )
        found.extend(inside)
    return found


def _setup(folder: runs.RunFolder, metrics: dict) -> str:
    """The run's spec (its spec.yaml) without ``train.seed``, and the sha256 of the
    weights it started from, as one string ("" where the spec cannot be read)."""
    try:
        text = folder.read_text(runs.SPEC)
        data = load_yaml(text, runs.SPEC)[0] if text is not None else None
    except (NincompileError, OSError, ValueError):
        data = None
    if isinstance(data, dict) and isinstance(data.get("train"), dict):
        data = {**data, "train": {k: v for k, v in data["train"].items() if k != "seed"}}
    init = metrics.get("init_weights")
    init_sha = init.get("sha256") if isinstance(init, dict) else None
    return json.dumps([data, init_sha], sort_keys=True, default=str)


def load_run(path: Path) -> RunInfo:
    folder = runs.RunFolder(path)
    metrics = folder.metrics() or {}  # checked: a bad field is a one-line error
    model = folder.file(runs.MODEL)  # refuses a link
    return RunInfo(
        path=path,
        name=str(metrics.get("name", path.name)),
        seed=metrics.get("seed"),
        metrics=metrics,
        history=folder.read_history(),
        size=model.stat().st_size if regular_or_missing(model, runs.WHAT) else 0,
        setup=_setup(folder, metrics),
    )


def rows_of(infos: list[RunInfo]) -> list[Row]:
    """One row per variant: runs of one name and one setup (:func:`_setup`) are its
    seeds; where runs of one name differ in setup, each row is labelled with its first
    run's folder, ``baseline (last5-scratch)``."""
    groups: dict[tuple[str, str], list[RunInfo]] = {}
    for info in infos:
        groups.setdefault((info.name, info.setup), []).append(info)
    setups: dict[str, int] = {}
    for name, _ in groups:
        setups[name] = setups.get(name, 0) + 1
    rows: dict[str, Row] = {}
    for (name, _), members in groups.items():
        label = name if setups[name] == 1 else f"{name} ({members[0].path.name})"
        while label in rows:  # two folders of one name in different places
            label += "'"
        rows[label] = Row(label, list(members))
    key = lambda r: r.stat(lambda x: x.best_val)[0]  # noqa: E731
    return sorted(rows.values(), key=lambda r: (key(r) is None, -(key(r) or 0.0), r.name))


def _gap(r: RunInfo):
    a, v = r.final("accuracy"), r.final("val_accuracy")
    return None if a is None or v is None else a - v


def _epoch_seconds(r: RunInfo):
    secs = [h["seconds"] for h in r.history if h.get("seconds")]
    return statistics.median(secs) if secs else None


COLUMNS = (
    ("best val acc", lambda r: r.best_val, "pct"),
    ("final val acc", lambda r: r.final("val_accuracy"), "pct"),
    ("final train acc", lambda r: r.final("accuracy"), "pct"),
    ("train - val gap", _gap, "pct"),
    ("epoch s", _epoch_seconds, "num"),
    ("images/s", lambda r: r.metrics.get("images_per_second"), "int"),
)


def _fmt(mean, std, kind) -> str:
    if mean is None:
        return "-"
    if kind == "pct":
        text = f"{100 * mean:.2f}"
        return text + (f" ± {100 * std:.2f}" if std is not None else "")
    if kind == "int":
        return f"{mean:,.0f}" + (f" ± {std:,.0f}" if std is not None else "")
    return f"{mean:.1f}" + (f" ± {std:.1f}" if std is not None else "")


def verdicts(rows: list[Row]) -> dict[str, str]:
    """Per variant: is its distance from the best larger than the seeds' spread?"""
    if not rows:
        return {}
    best_mean, best_std = rows[0].stat(lambda x: x.best_val)
    out = {rows[0].name: "best"}
    for row in rows[1:]:
        mean, std = row.stat(lambda x: x.best_val)
        if mean is None or best_mean is None:
            out[row.name] = "-"
        elif best_std is None or std is None:
            out[row.name] = "one seed: no spread"
        else:
            diff = best_mean - mean
            spread = best_std + std
            out[row.name] = (
                f"yes ({100 * diff:.2f} > {100 * spread:.2f})"
                if diff > spread
                else f"no ({100 * diff:.2f} <= {100 * spread:.2f})"
            )
    return out


def compare(paths, out: str | Path | None = None) -> dict:
    """Write compare.md, compare.csv and compare.png to ``out``; returns the figures."""
    infos = [load_run(p) for p in find_runs(paths)]
    rows = rows_of(infos)
    verdict = verdicts(rows)
    if out is None:
        paths = [Path(p) for p in paths]
        out = paths[0] if len(paths) == 1 and not runs.is_run(paths[0]) else Path("compare")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    table = []
    for i, row in enumerate(rows):
        first = row.runs[0].metrics
        params = (first.get("params") or {}).get("total")
        entry = {
            "variant": row.name,
            "best": i == 0,
            "seeds": len(row.runs),
            "params": params,
            "macs": first.get("macs"),
            "size_mb": statistics.fmean(r.size for r in row.runs) / 1e6,
            "epochs": max(len(r.history) for r in row.runs),
            "differs_from_best": verdict.get(row.name),
            "runs": [str(r.path) for r in row.runs],
        }
        for label, fn, kind in COLUMNS:
            mean, std = row.stat(fn)
            key = label.replace(" - ", "_minus_").replace(" ", "_").replace("/", "_per_")
            entry[key] = mean
            entry[key + "_std"] = std
            entry[label] = _fmt(mean, std, kind)
        table.append(entry)
    write_text(out / MD, _markdown(table))
    write_text(out / CSV, _csv(table))
    _plot(rows, out / PNG)
    return {"out": str(out), "rows": table}


def _markdown(table: list[dict]) -> str:
    head = ["", "variant", "seeds", "params", "MACs", "size", "epochs"]
    head += [label for label, _, _ in COLUMNS] + ["differs from best by more than the spread"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for e in table:
        cells = ["★" if e["best"] else "", e["variant"], str(e["seeds"]),
                 f"{e['params']:,}" if e["params"] is not None else "-",
                 format_macs(e["macs"] or None), format_bytes(round(e["size_mb"] * 1e6)),
                 str(e["epochs"])]  # fmt: skip
        cells += [e[label] for label, _, _ in COLUMNS] + [e["differs_from_best"] or "-"]
        lines.append("| " + " | ".join(_cell(c) for c in cells) + " |")
    note = (
        "\nAccuracies in %; mean ± standard deviation over seeds where there are several. "
        "Sorted by best validation accuracy; ★ marks the best.\n"
    )
    return "\n".join(lines) + "\n" + note


def _cell(text: str) -> str:
    """``text`` as one Markdown table cell: ``\\`` and ``|`` escaped, line breaks as
    ``<br>``, other control characters (terminal escapes) as ``\\xNN``."""
    text = str(text).replace("\\", "\\\\").replace("|", "\\|")
    return _printable(re.sub(r"\r\n|\r|\n", "<br>", text))


def _printable(text: str) -> str:
    """Control characters (a terminal's escape sequences among them) as ``\\xNN``."""
    return re.sub(r"[\x00-\x1f\x7f]", lambda m: f"\\x{ord(m.group()):02x}", str(text))


def _csv(table: list[dict]) -> str:
    keys = [k for k in table[0] if k not in {label for label, _, _ in COLUMNS} and k != "runs"]
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=keys, lineterminator="\n", extrasaction="ignore")
    w.writeheader()
    for e in table:
        w.writerow({k: ("" if e[k] is None else e[k]) for k in keys})
    return buf.getvalue()


def _plot(rows: list[Row], target: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(2, 2, figsize=(12, 8), sharex=True)
    panels = (
        (axes[0][0], "accuracy", "training accuracy"),
        (axes[0][1], "val_accuracy", "validation accuracy"),
        (axes[1][0], "loss", "training loss"),
        (axes[1][1], "val_loss", "validation loss"),
    )
    colours = plt.get_cmap("tab10")
    for i, row in enumerate(rows):
        colour = colours(i % 10)
        for j, r in enumerate(row.runs):
            epochs = [h["epoch"] + 1 for h in r.history]
            for ax, key, _ in panels:
                values = [h.get(key) for h in r.history]
                if any(v is not None for v in values):
                    ax.plot(epochs, values, color=colour, alpha=0.85 if j == 0 else 0.45,
                            label=_printable(row.name) if j == 0 else None)  # fmt: skip
    for ax, _, title in panels:
        ax.set_title(title)
        ax.grid(alpha=0.3)
    from matplotlib.ticker import MaxNLocator

    for ax in axes[1]:
        ax.set_xlabel("epoch")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    handles, labels = axes[0][1].get_legend_handles_labels()
    if handles:
        fig.legend(handles, labels, loc="lower center", ncol=min(len(labels), 4))
    fig.tight_layout(rect=(0, 0.06, 1, 1))
    atomic_write(target, lambda tmp: fig.savefig(tmp, format="png", dpi=90))
    plt.close(fig)


def dumps(result: dict) -> str:
    return json.dumps(result, indent=2)
