"""``nincompile export``: a thin shell over :func:`nincompile.export.export_onnx`."""

from __future__ import annotations

import click

from ..cli_support import max_memory_option, user_errors
from .convert import DEFAULT_OPSET, MAX_OPSET, MIN_OPSET
from .quantize import (
    DEFAULT_CALIBRATION,
    DEFAULT_HOLDOUT,
    DEFAULT_MAX_ACCURACY_DROP,
    DEFAULT_MIN_AGREEMENT,
    QUANTIZE_MODES,
)


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
    help="Image folder (class sub-folders of images) for a parity check on up to 64 images.",
)  # fmt: skip
@click.option(
    "--include-preprocessing", is_flag=True,
    help="Fold (x - mean) / std from the spec's data: section into the graph (raw pixels in).",
)  # fmt: skip
@click.option(
    "--quantize", type=click.Choice(QUANTIZE_MODES, case_sensitive=False),
    help="Write a statically quantised model (QDQ, per-channel int8 weights), calibrated "
    "on --data images and gated against Keras on other --data images; preprocessing is "
    "folded in.  [default: build/<name>_int8.onnx]",
)  # fmt: skip
@click.option(
    "--calibration", type=int, metavar="N",
    help=f"With --quantize: calibration images drawn (seeded) from --data.  "
    f"[default: {DEFAULT_CALIBRATION}]",
)  # fmt: skip
@click.option(
    "--holdout", type=int, metavar="N",
    help=f"With --quantize: held-out --data images the gate compares int8 with Keras on.  "
    f"[default: {DEFAULT_HOLDOUT}]",
)  # fmt: skip
@click.option(
    "--min-agreement", type=float, metavar="FRACTION",
    help=f"With --quantize: refuse below this top-1 agreement with Keras.  "
    f"[default: {DEFAULT_MIN_AGREEMENT}]",
)  # fmt: skip
@click.option(
    "--max-accuracy-drop", type=float, metavar="POINTS",
    help=f"With --quantize: refuse when int8 accuracy is more than this many points below "
    f"Keras's (labelled --data).  [default: {DEFAULT_MAX_ACCURACY_DROP:g}]",
)  # fmt: skip
@max_memory_option
@user_errors
def export(
    source,
    out,
    opset,
    batch,
    data,
    include_preprocessing,
    quantize,
    calibration,
    holdout,
    min_agreement,
    max_accuracy_drop,
) -> None:
    """Export SOURCE to ONNX and prove it matches Keras.

    SOURCE is a spec (.yaml, exported with fresh seeded weights), a saved model
    (.keras, loaded in safe mode) or a training run folder holding model.keras
    (and spec.yaml).  The ONNX model is checked with onnx.checker and compared
    with Keras through onnxruntime on random inputs (and on --data images); it is
    written only when every check passes (max abs difference <= 1e-5 + 1e-4 x max
    |keras|, 100 % top-1 agreement).

    With --quantize int8 the model is quantised (raw pixels in) and written only
    when, on held-out --data images, its top-1 agreement with Keras is at least
    --min-agreement and its accuracy at most --max-accuracy-drop points below Keras's.
    """
    from .. import api
    from ..errors import OptionError

    gate_options = {
        "--calibration": calibration,
        "--holdout": holdout,
        "--min-agreement": min_agreement,
        "--max-accuracy-drop": max_accuracy_drop,
    }
    stray = [k for k, v in gate_options.items() if v is not None]
    if stray and not quantize:
        raise OptionError(f"{', '.join(stray)} only apply with --quantize int8")
    # A failed check raises an ExportError (VerificationFailed's message holds the report).
    report = api.export(
        source,
        out,
        quantize=quantize,
        opset=opset,
        batch=batch,
        data=data,
        include_preprocessing=include_preprocessing,
        calibration=calibration,
        holdout=holdout,
        min_agreement=min_agreement,
        max_accuracy_drop=max_accuracy_drop,
    )
    for line in report.lines():
        click.echo(line)
