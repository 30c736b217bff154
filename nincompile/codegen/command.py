"""``nincompile emit``: standalone Keras source for specs, or a check that it is current."""

from __future__ import annotations

import sys
from pathlib import Path

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
    from .files import default_specs, prepare_out_dir, problem, render_specs, write

    try:
        default_set = not specs
        specs = list(specs) or default_specs()
        if not specs:
            raise NincompileError("no SPEC given and no specs/*.yaml in the current folder")
        if check:
            out_dir = "generated" if out is None else out
        else:
            out_dir = prepare_out_dir(out)
        generated, errors = render_specs(specs, out_dir)
    except NincompileError as err:
        _fail(str(err))
        sys.exit(1)
    for err in errors:
        _fail(str(err))
    if check:
        bad = [(g, why) for g in generated if (why := problem(g))]
        for g, why in bad:
            hint = "does not exist" if why == "missing" else f"differs from what {g.spec} generates"
            _fail(f"{g.target}: {why} ({hint})")
        if default_set:  # with every spec in play, a file no spec generates is left over
            orphans = sorted(set(Path(out_dir).glob("*.py")) - {g.target for g in generated})
            for path in orphans:
                _fail(f"{path}: orphan (no spec in specs/ generates it; delete it)")
            bad += [(path, "orphan") for path in orphans]
        if bad:
            _fail(
                f"{len(bad)} generated file(s) stale, missing or orphaned; "
                "run `nincompile emit` to update them"
            )
        elif generated:
            click.echo(f"{out_dir}: {len(generated)} generated file(s) up to date")
        sys.exit(1 if bad or errors else 0)
    for g in generated:
        try:
            changed = write(g)
        except NincompileError as err:
            _fail(str(err))
            errors.append(err)
            continue
        click.echo(f"{g.name}: {'wrote' if changed else 'unchanged'} {g.target}")
    sys.exit(1 if errors else 0)
