"""``nincompile emit``: standalone Keras source for specs, or a check that it is current."""

from __future__ import annotations

import sys

import click

from ..cli_support import fail as _fail
from ..errors import NincompileError


@click.command()
@click.argument("specs", nargs=-1, type=click.Path(dir_okay=False))
@click.option(
    "-o",
    "--out",
    type=click.Path(file_okay=False),
    default=None,
    help="Folder for <name>.py files.  [default: generated/, created if missing]",
)
@click.option(
    "--check",
    is_flag=True,
    help="Write nothing; exit 1 listing every file in OUT that is stale or missing.",
)
def emit(specs, out, check) -> None:
    """Write OUT/<name>.py, a standalone Keras module, for each of SPECS.

    SPECS default to specs/*.yaml.  Each module imports only keras and defines
    build_model() (and compile_model(model) when the spec has a train: section), with
    the compiler's layer names and a helper function per block.  Files are written
    atomically and only when their text changes.  Exits 1 if any spec fails.
    """
    from .. import api
    from .files import prepare_out_dir

    try:
        out_dir = out if check else prepare_out_dir(out)
        result = api.emit(list(specs), out_dir, check=check)
    except NincompileError as err:
        _fail(str(err))
        sys.exit(1)
    for err in result.errors:
        _fail(str(err))
    if check:
        sources = {g.target: g.spec for g in result.generated}
        for path, why in result.stale:
            hint = {
                "missing": "does not exist",
                "stale": f"differs from what {sources.get(path)} generates",
                "orphan": "no spec in specs/ generates it; delete it",
            }[why]
            _fail(f"{path}: {why} ({hint})")
        if result.stale:
            _fail(
                f"{len(result.stale)} generated file(s) stale, missing or orphaned; "
                "run `nincompile emit` to update them"
            )
        elif result.generated:
            click.echo(f"{result.out}: {len(result.generated)} generated file(s) up to date")
        sys.exit(0 if result.ok else 1)
    for g in result.generated:
        if g.target in result.changed:
            click.echo(
                f"{g.name}: {'wrote' if result.changed[g.target] else 'unchanged'} {g.target}"
            )
    sys.exit(0 if result.ok else 1)
