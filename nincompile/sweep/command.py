"""``nincompile sweep`` and ``nincompile compare``: thin shells over
:mod:`nincompile.sweep`."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from ..cli_support import fail, user_errors


@click.command()
@click.argument("specs", nargs=-1, required=True, type=click.Path(dir_okay=False, path_type=str))
@click.option("--data", type=click.Path(path_type=str), help="Local training data, as for train.")
@click.option("--val", type=click.Path(path_type=str), help="Separate validation data.")
@click.option("--epochs", type=click.IntRange(min=1), help="Sets train.epochs for every member.")
@click.option(
    "--seeds", type=click.IntRange(min=1), default=1, show_default=True,
    help="Train each variant with this many seeds (train.seed, +1, ...).",
)  # fmt: skip
@click.option(
    "--jobs", type=click.IntRange(min=1), default=1, show_default=True,
    help="Members trained at once (one accelerator each where there are several).",
)  # fmt: skip
@click.option(
    "--out", type=click.Path(file_okay=False, path_type=str), default="sweeps/sweep",
    show_default=True, help="Sweep folder: one run folder per member, and the comparison.",
)  # fmt: skip
@click.option(
    "--set", "overrides", multiple=True, metavar="KEY.PATH=VALUE",
    help="Override a field of every spec (repeatable).",
)  # fmt: skip
@click.option(
    "--shard", metavar="I/N",
    help="Take machine I's share of N (0 <= I < N) of the members, into a shared --out.",
)  # fmt: skip
@click.option("--cache-dir", type=click.Path(file_okay=False, path_type=str),
              help="Decoded-image cache.")  # fmt: skip
@user_errors
def sweep(specs, data, val, epochs, seeds, jobs, out, overrides, shard, cache_dir) -> None:
    """Train every variant of SPECS (times --seeds) with the same data, split and
    schedule, one run folder each under OUT, then write OUT/compare.md, .csv, .png.

    Running the same command again skips finished members and resumes interrupted
    ones.  Members are plain `nincompile train` runs.  Exits 1 if any member failed.
    """
    from .. import api

    result = api.sweep(specs, data=data, val=val, out=out, epochs=epochs, seeds=seeds,
                       jobs=jobs, overrides=overrides, shard=shard, cache_dir=cache_dir,
                       say=click.echo)  # fmt: skip
    if result.comparison is not None:
        click.echo(Path(result.comparison["out"], "compare.md").read_text(encoding="utf-8"))
        click.echo(f"wrote {Path(out) / 'compare.md'}, compare.csv, compare.png")
    else:
        fail(f"no comparison: {result.compare_error}")
    if result.failed:
        fail(f"{len(result.failed)} member(s) failed: "
             + ", ".join(o.member.name for o in result.failed))  # fmt: skip
        sys.exit(1)


@click.command()
@click.argument("runs", nargs=-1, required=True, type=click.Path(path_type=str))
@click.option(
    "--out", type=click.Path(file_okay=False, path_type=str),
    help="Where compare.md, compare.csv and compare.png go.  [default: the sweep folder "
    "when one is given, else compare/]",
)  # fmt: skip
@click.option("--json", "as_json", is_flag=True, help="Print the table as JSON.")
@user_errors
def compare(runs, out, as_json) -> None:
    """Compare run folders (or sweep folders of them): one row per variant."""
    from .. import api

    result = api.compare(list(runs), out)
    if as_json:
        click.echo(json.dumps(result, indent=2))
        return
    click.echo(Path(result["out"], "compare.md").read_text(encoding="utf-8"))
    click.echo(f"wrote {result['out']}/compare.md, compare.csv, compare.png")
