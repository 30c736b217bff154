"""``nincompile`` command line: a thin shell over :mod:`nincompile.api`.

Every user error is printed as a message and exits 1; nothing prints a traceback.
TensorFlow/Keras are imported only by the commands that need them (``build``,
``emit --check`` does not, ``check`` and ``schema`` never do).
"""

from __future__ import annotations

import dataclasses
import json
import os
import sys

import click

from . import __version__
from .cli_support import Quantity, max_memory_option, user_errors
from .cli_support import fail as _fail
from .errors import NincompileError
from .units import format_macs


def _fmt_int(value: int) -> str:
    return f"{value:,}"


def _print_table(compiled) -> None:
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    from .data.raw import printable

    # the path as typed: no escape sequence reaches the terminal, no [tag] is markup
    where = escape(printable(compiled.source.file))
    table = Table(title=f"{compiled.name}  ({where})", title_justify="left")
    for col, justify in (
        ("layer", "left"),
        ("kind", "left"),
        ("output shape", "left"),
        ("params", "right"),
        ("MACs", "right"),
    ):
        table.add_column(col, justify=justify)
    for layer in compiled.graph.layers():
        shape = "(None, " + ", ".join(str(d) for d in layer.output_shape) + ")"
        table.add_row(
            layer.name, layer.kind, shape, _fmt_int(layer.params.total), format_macs(layer.macs)
        )
    Console(width=max(100, os.get_terminal_size(0).columns if sys.stdout.isatty() else 100)).print(
        table
    )


def _totals_line(compiled, counts) -> str:
    """The totals; with ``train.phases``, a second line says they are the first
    phase's and gives the others'."""
    text = (
        f"{compiled.name}: total {_fmt_int(counts['total'])}, trainable "
        f"{_fmt_int(counts['trainable'])}, non-trainable {_fmt_int(counts['non_trainable'])}, "
        f"MACs {format_macs(compiled.graph.macs)}"
    )
    phases = compiled.phase_counts()
    if phases:
        others = "; ".join(
            f"phase {p['phase'] + 1}: trainable {_fmt_int(p['params']['trainable'])}, "
            f"non-trainable {_fmt_int(p['params']['non_trainable'])}"
            for p in phases[1:]
        )
        text += (
            f"\n{compiled.name}: trainable and non-trainable are phase 1's of {len(phases)} "
            f"(train.phases[0]'s freeze; 'expect:' is checked against them)"
            + (f"; {others}" if others else "")
        )
    return text


def _report_expect(compiled, counts) -> bool:
    """Print the comparison with ``expect:``; True when all given figures match."""
    if compiled.spec.expect is None:
        click.echo(f"{compiled.name}: no 'expect:' figures to check")
        return True
    mismatches = compiled.expect_mismatches(counts)
    if not mismatches:
        click.secho(f"{compiled.name}: parameter counts match 'expect:'", fg="green")
        return True
    _fail(f"{compiled.name}: parameter counts differ from 'expect:' ({compiled.source.file})")
    for field, want, got in mismatches:
        _fail(f"  {field}: expected {_fmt_int(want)}, actual {_fmt_int(got)} ({got - want:+,})")
    return False


def _checked(specs, variant, limits):
    """``(path, result, None)`` for every model of SPECS (each family member or variant,
    or only the one named ``variant``), checked (:func:`nincompile.api.check_all`), or
    ``(path, None, error)`` for a spec that fails to compile."""
    from . import api

    for path in specs:
        try:
            results = api.check_all(path, variant=variant, limits=limits)
        except NincompileError as err:
            yield path, None, err
            continue
        if len(results) > 1:
            click.echo(f"{path}: {len(results)} models: " + ", ".join(r.name for r in results),
                       err=True)  # fmt: skip
        for result in results:
            yield path, result, None


_variant_option = click.option(
    "--variant", metavar="NAME",
    help="Only this family member or variant (its name, or the part after <spec name>_).",
)  # fmt: skip


def _limit_options(fn):
    fn = max_memory_option(fn)
    return click.option(
        "--max-params", type=Quantity("count", "parse_count"), metavar="N",
        help="Refuse a model of more than N parameters (e.g. 5e9; default 2e9 or "
        "$NINCOMPILE_MAX_PARAMS).",
    )(fn)  # fmt: skip


def _estimate_line(compiled, est, limits) -> str:
    from .units import format_bytes

    what = "for training" if est.training else "(float32)"
    return (
        f"{compiled.name}: memory estimate {what} {est.describe()}; limit "
        f"{format_bytes(limits.max_memory)} ({limits.memory_source})"
    )


class _Commands(click.Group):
    """The command group; commands defined in other modules are imported only when
    they run (or are listed), so ``check`` starts without Jinja2, NumPy or the
    training and export code."""

    LAZY = {
        "emit": "nincompile.codegen.command",
        "export": "nincompile.export.command",
        "train": "nincompile.train.command",
        "evaluate": "nincompile.train.command",
        "predict": "nincompile.train.command",
        "sweep": "nincompile.sweep.command",
        "compare": "nincompile.sweep.command",
    }

    def list_commands(self, ctx):
        return sorted({*super().list_commands(ctx), *self.LAZY})

    def get_command(self, ctx, name):
        if name in self.LAZY and name not in self.commands:
            import importlib

            self.add_command(getattr(importlib.import_module(self.LAZY[name]), name))
        return super().get_command(ctx, name)


@click.group(cls=_Commands, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="nincompile")
def main() -> None:
    """Compile CBAPD model specs (YAML) into checked Keras models, Python source and ONNX."""


def _failed_entry(path, error) -> dict:
    """The ``--json`` entry of a spec that does not compile."""
    from .api import problem_dicts

    return {"spec": str(path), "ok": False, "problems": problem_dicts(error, str(path))}


def _flag_problem(summary: dict, error, file) -> None:
    """Mark a ``--json`` summary failed with ``error``."""
    from .api import problem_dicts

    summary["ok"] = False
    summary["problems"].extend(problem_dicts(error, file))


def _print_json(entries, specs) -> None:
    one = len(entries) == 1 and len(specs) == 1  # a spec with variants gives a list
    click.echo(json.dumps(entries[0] if one else entries, indent=2))


@main.command()
@click.argument("specs", nargs=-1, required=True, type=click.Path(dir_okay=False))
@click.option(
    "-o", "--out", default="build", show_default=True, type=click.Path(file_okay=False),
    help="Folder for <name>.keras files.",
)  # fmt: skip
@click.option("--json", "as_json", is_flag=True, help="Print a JSON summary instead of tables.")
@click.option("--no-save", is_flag=True, help="Compile and check only; write no .keras file.")
@click.option(
    "--weights", metavar="FILE",
    help="Load weights into each model before saving: a .keras or .weights.h5 file, or "
    "keras:NAME (e.g. keras:ResNet50, Keras's ImageNet weights; needs a network). Layers "
    "are paired in graph order, not by name; every shape must fit.",
)  # fmt: skip
@_variant_option
@_limit_options
@user_errors
def build(specs, out, as_json, no_save, weights, variant, max_params) -> None:
    """Validate, compile and check SPECS; write OUT/<name>.keras for each.

    Prints each model's layers (name, kind, output shape, params, MACs) and totals,
    and compares them with the spec's 'expect:'.  Exits 1 if any spec fails to
    compile, any count differs from 'expect:' or the --weights cannot be loaded (that
    model is not saved).

    A model whose estimated memory (for a spec with train:, what training one batch of
    train.batch_size takes: weights, gradients, optimiser slots and every activation)
    or parameter count is over the limits is refused before anything is allocated;
    --max-memory and --max-params raise the limits.

    With --json, prints one entry per model (one per spec that does not compile) with
    "ok" and its "problems" (file, line, column, path, message).
    """
    from . import api
    from .errors import WeightsError

    limits = api.limits_of(max_params)
    ok = True
    entries = []
    source = []  # the --weights, read when the first model needs them (or the error)

    def weights_source():
        if not source:
            try:
                source.append(api.read_weights(weights))
            except WeightsError as err:
                source.append(err)
        if isinstance(source[0], WeightsError):
            raise source[0]
        return source[0]

    for path, checked, error in _checked(specs, variant, limits):
        if error is not None:
            _fail(str(error))
            ok = False
            if as_json:
                entries.append(_failed_entry(path, error))
            continue
        compiled = checked.compiled
        summary = compiled.summary() if as_json else None
        try:
            model = api.build(checked)  # the estimate is the check's: no second guard run
        except NincompileError as err:
            _fail(str(err))
            ok = False
            if as_json:
                _flag_problem(summary, err, compiled.source.file)
                entries.append(summary)
            continue
        counts = checked.counts  # api.build proved Keras's counts equal these
        if as_json:
            entries.append(summary)
            matches = not checked.mismatches
            if not matches:
                _report_expect(compiled, counts)
        else:
            _print_table(compiled)
            click.echo(_totals_line(compiled, counts))
            click.echo(_estimate_line(compiled, checked.estimate, limits))
            matches = _report_expect(compiled, counts)
        loaded = True
        if weights:
            try:
                report = api.load_weights(model, weights_source())
            except WeightsError as err:
                _fail(f"{compiled.name}: {err}")
                loaded = False
                if as_json:
                    _flag_problem(summary, err, weights)
            else:
                if as_json:
                    summary["weights"] = dataclasses.asdict(report)
                else:
                    click.echo(
                        f"{compiled.name}: loaded {_fmt_int(report.tensors)} tensors "
                        f"({_fmt_int(report.params)} parameters) from {report.source}"
                    )
        ok &= matches and loaded
        if not matches:
            if no_save:
                _fail(f"{compiled.name}: counts differ from 'expect:' (see above)")
            else:
                _fail(f"{compiled.name}: not saved, because its counts differ from 'expect:'")
        elif not loaded:
            if not no_save:
                _fail(f"{compiled.name}: not saved, because its --weights were not loaded "
                      "(see above)")  # fmt: skip
        elif not no_save:
            target = api.save_model(model, out, compiled.name)
            if not as_json:
                click.echo(f"{compiled.name}: wrote {target}")
    if as_json:
        _print_json(entries, specs)
    sys.exit(0 if ok else 1)


@main.command()
@click.argument("specs", nargs=-1, required=True, type=click.Path(dir_okay=False))
@click.option("--json", "as_json", is_flag=True, help="Print a JSON summary per spec.")
@_variant_option
@_limit_options
@user_errors
def check(specs, as_json, variant, max_params) -> None:
    """Validate SPECS and count parameters analytically, without TensorFlow.

    Fast enough to run on every save.  Exits 1 if any spec is invalid, its counts
    differ from 'expect:' or it is over the resource limits that build applies.
    With --json, prints one entry per model (one per invalid spec) with "ok" and its
    "problems" (file, line, column, path, message).
    """
    from . import api

    limits = api.limits_of(max_params)
    ok = True
    entries = []
    for path, checked, error in _checked(specs, variant, limits):
        if error is not None:
            _fail(str(error))
            ok = False
            if as_json:
                entries.append(_failed_entry(path, error))
            continue
        ok &= checked.ok
        if as_json:
            entries.append(checked.summary())
        elif checked.error is not None:
            _fail(str(checked.error))
        else:
            click.echo(_totals_line(checked.compiled, checked.counts))
            click.echo(_estimate_line(checked.compiled, checked.estimate, limits))
            _report_expect(checked.compiled, checked.counts)
    if as_json:
        _print_json(entries, specs)
    sys.exit(0 if ok else 1)


@main.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print the list as JSON.")
@user_errors
def list_(as_json) -> None:
    """List the built-in specs: pass a name where a spec path goes (nincompile check
    resnet18; a file of that name in the current folder wins).  One row per model,
    with the parameter counts and MACs that check computes."""
    from . import api

    models = api.list_specs()
    if as_json:
        rows = [{**dataclasses.asdict(m), "path": str(m.path)} for m in models]
        click.echo(json.dumps(rows, indent=2))
        return
    from rich.console import Console
    from rich.table import Table

    table = Table(title="built-in specs (nincompile list)", title_justify="left")
    for col, justify in (("spec", "left"), ("model", "left"), ("input", "left"),
                         ("params", "right"), ("MACs", "right")):  # fmt: skip
        table.add_column(col, justify=justify)
    for m in models:
        shape = "x".join(str(d) for d in m.input)
        table.add_row(m.spec, m.name if m.name != m.spec else "", shape,
                      _fmt_int(m.counts["total"]), format_macs(m.macs))  # fmt: skip
    Console(width=max(100, os.get_terminal_size(0).columns if sys.stdout.isatty() else 100)).print(
        table
    )


@main.command()
@click.option("-o", "--out", type=click.Path(dir_okay=False), help="Write to a file.")
@user_errors
def schema(out) -> None:
    """Print the JSON Schema of the spec format (for yaml-language-server)."""
    from .spec import json_schema

    text = json.dumps(json_schema(), indent=2) + "\n"
    if out:
        from pathlib import Path

        from .files import atomic_write

        atomic_write(Path(out), lambda tmp: tmp.write_text(text, encoding="utf-8"))
    else:
        click.echo(text, nl=False)


if __name__ == "__main__":  # pragma: no cover
    main()
