"""``nincompile export``: a thin shell over :func:`nincompile.export.export_onnx`."""

from __future__ import annotations

import click

from ..cli_support import user_errors
from .onnx_export import DEFAULT_OPSET, MAX_OPSET, MIN_OPSET


class _Batch(click.ParamType):
    """``dynamic`` (None) or a positive integer."""

    name = "dynamic|N"

    def convert(self, value, param, ctx):
        if value is None or isinstance(value, int):
            return value
        text = str(value).strip().lower()
        if text == "dynamic":
            return None
        try:
            n = int(text)
        except ValueError:
            n = 0
        if n < 1:
            self.fail(f"expected 'dynamic' or a positive integer; received {value!r}", param, ctx)
        return n


@click.command()
@click.argument("source", type=click.Path(path_type=str))
@click.option(
    "-o", "--out", type=click.Path(dir_okay=False, path_type=str),
    help="Output .onnx file; its folder must exist.  [default: build/<name>.onnx]",
)  # fmt: skip
@click.option(
    "--opset", type=int, default=DEFAULT_OPSET, show_default=True,
    help=f"ONNX opset ({MIN_OPSET}..{MAX_OPSET}).",
)  # fmt: skip
@click.option(
    "--batch", type=_Batch(), default="dynamic", show_default=True,
    help="Batch axis: dynamic, or a fixed size N.",
)  # fmt: skip
@click.option(
    "--data", type=click.Path(path_type=str),
    help="Image folder (class sub-folders of .jpg/.png) for a parity check on up to 64 images.",
)  # fmt: skip
@click.option(
    "--include-preprocessing", is_flag=True,
    help="Fold (x - mean) / std from the spec's data: section into the graph (raw pixels in).",
)  # fmt: skip
@user_errors
def export(source, out, opset, batch, data, include_preprocessing) -> None:
    """Export SOURCE to ONNX and prove it matches Keras.

    SOURCE is a spec (.yaml, exported with fresh seeded weights), a saved model
    (.keras, loaded in safe mode) or a training run folder holding model.keras
    (and spec.yaml).  The ONNX model is checked with onnx.checker and compared
    with Keras through onnxruntime on random inputs (and on --data images); it is
    written only when every check passes (max abs difference <= 1e-5, 100 % top-1
    agreement).
    """
    from .onnx_export import export_onnx

    # A failed check raises VerificationFailed, whose message holds the report.
    report = export_onnx(
        source,
        out,
        opset=opset,
        batch=batch,
        data=data,
        include_preprocessing=include_preprocessing,
    )
    for line in report.lines():
        click.echo(line)
