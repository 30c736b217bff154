"""`nincompile export` (placeholder until ONNX export lands)."""

import click


@click.command()
def export() -> None:
    """Export ONNX (not available yet)."""
    raise click.ClickException("export is not available yet")
