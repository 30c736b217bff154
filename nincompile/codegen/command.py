"""`nincompile emit` (placeholder until code generation lands)."""

import click


@click.command()
def emit() -> None:
    """Emit standalone Keras source for specs (not available yet)."""
    raise click.ClickException("emit is not available yet")
