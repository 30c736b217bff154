"""The library: everything the ``nincompile`` command line does, as Python functions
(the CLI parses its options, calls these and prints what they return).

At the package's top level (``import nincompile``): :func:`load`, :func:`check`,
:func:`build`, :func:`emit`, :func:`train`, :func:`evaluate`, :func:`predict`,
:func:`export`, :func:`sweep`, :func:`compare` and :func:`list_specs`.  A spec
argument is a path, a built-in spec's name (``"resnet18"``; a file of that name wins),
a loaded :class:`~nincompile.spec.SpecSource`, a :class:`Compiled` spec or, where it
makes sense, a :class:`Run`; ``overrides`` is a mapping (``{"train.epochs": 5}``),
validated exactly as ``--set train.epochs=5`` is.

Lower down: ``compile_spec`` validates and lowers a spec to the IR and counts
parameters without importing TensorFlow or Keras; ``build`` also makes the Keras model
(after the resource guard, :mod:`nincompile.guard`, has estimated that it fits) and
proves its counts equal the IR's; ``load_weights`` fills it with trained weights
(:mod:`nincompile.weights`); ``save_model`` writes a ``.keras`` file atomically.
Keras and TensorFlow are imported only by the functions that need them.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from dataclasses import field as dataclass_field
from pathlib import Path

from . import guard
from .compiler import (  # noqa: F401  (CATEGORIES, problem_dicts: part of the API)
    CATEGORIES,
    CheckResult,
    Compiled,
    build_checked,
    check_compiled,
    compile_source,
    compile_spec,
    limits_of,
    problem_dicts,
)
from .errors import NincompileError, SpecError
from .files import atomic_write
from .runs.run import Run
from .spec import SpecSource, load_spec


def _members(source: SpecSource, variant: str | None) -> list[SpecSource]:
    from .spec.variants import expand, select

    return [select(source, variant)] if variant is not None else expand(source)


def compile_all(spec, variant: str | None = None, *, overrides=None) -> list[Compiled]:
    """Every model of a spec: one, or one per member of its ``family:`` or combination
    of its ``variants:``; with ``variant``, only the one of that name (or name suffix
    after ``<spec name>_``)."""
    source = load(spec, overrides)
    members = _members(source, variant)
    if len(members) == 1 and members[0] is source:
        return [compile_source(source)]
    out, problems, kinds = [], [], set()
    for member in members:
        try:
            out.append(compile_source(member))
        except SpecError as err:  # every model's problems, each saying which model it is
            kinds.add(type(err))
            problems += [dataclasses.replace(p, message=f"{p.message} (in {member.spec.name})")
                         for p in err.problems]  # fmt: skip
    if problems:
        raise (kinds.pop() if len(kinds) == 1 else SpecError)(problems)
    return out


# ------------------------------------------------------------------ load, check, build


def load(spec, overrides: Mapping[str, object] | Sequence[str] | None = None,
         variant: str | None = None) -> SpecSource:  # fmt: skip
    """The validated spec of ``spec`` (a path or built-in name, a loaded spec, a
    :class:`Compiled` one, a :class:`CheckResult` or a :class:`Run`) with ``overrides`` applied
    (a mapping ``{"train.epochs": 5}``, validated as ``--set train.epochs=5`` is; or
    ``--set`` strings) and, with ``variant``, only that member of its ``family:`` or
    ``variants:``.  Raises :class:`~nincompile.errors.SpecError` naming every problem."""
    from .spec.overrides import apply_overrides
    from .spec.variants import select

    if isinstance(spec, CheckResult):
        spec = spec.compiled
    if isinstance(spec, Compiled):
        spec = spec.source
    if isinstance(spec, Run):
        spec = spec.spec_path
    source = spec if isinstance(spec, SpecSource) else load_spec(spec)
    source = apply_overrides(source, overrides)
    return select(source, variant) if variant is not None else source


def _compile(spec, overrides=None, variant: str | None = None) -> Compiled:
    """One compiled model: ``spec`` itself when it is compiled already."""
    if isinstance(spec, CheckResult) and overrides is None and variant is None:
        return spec.compiled
    if isinstance(spec, Compiled) and overrides is None and variant is None:
        return spec
    models = compile_all(spec, variant, overrides=overrides)
    if len(models) > 1:
        names = ", ".join(m.name for m in models)
        raise NincompileError(
            f"{models[0].source.file} holds {len(models)} models ({names}); pass variant= "
            "one of them (check_all checks them all)"
        )
    return models[0]


def check(spec, *, overrides=None, variant: str | None = None, max_params: int | None = None,
          max_memory: int | None = None) -> CheckResult:  # fmt: skip
    """Validate one model and count it without TensorFlow: its counts and MACs, the
    ``expect:`` figures that differ and whether it is within the resource limits
    (``ok``).  A spec of several models needs ``variant``; :func:`check_all` takes
    them all.  A spec that does not compile raises
    :class:`~nincompile.errors.SpecError`."""
    return check_compiled(_compile(spec, overrides, variant), limits_of(max_params, max_memory))


def check_all(spec, *, overrides=None, variant: str | None = None,
              limits: guard.Limits | None = None) -> list[CheckResult]:  # fmt: skip
    """:func:`check` of every model of ``spec`` (each family member or variant)."""
    limits = limits or guard.Limits.from_env()
    return [check_compiled(c, limits) for c in compile_all(spec, variant, overrides=overrides)]


def build(spec, limits: guard.Limits | None = None, *, overrides=None,
          variant: str | None = None, weights=None, out: str | os.PathLike | None = None,
          max_params: int | None = None, max_memory: int | None = None):  # fmt: skip
    """The Keras model of ``spec``, its counts checked against the IR.  A model over
    the resource limits (``limits``, else ``max_params``/``max_memory``, else the
    environment's) is refused with :class:`guard.ResourceError` before TensorFlow
    allocates anything; a :class:`CheckResult` is not estimated again.  ``weights``
    (a ``.keras``/``.weights.h5`` file, ``keras:NAME`` or what :func:`read_weights`
    returned) are loaded into it; with ``out`` it is saved as ``out/<name>.keras``."""
    if isinstance(spec, CheckResult) and overrides is None and variant is None:
        if spec.error is not None:
            raise spec.error
        compiled = spec.compiled
        model = build_checked(compiled, spec.limits, estimated=True)
    else:
        compiled = _compile(spec, overrides, variant)
        model = build_checked(compiled, limits or limits_of(max_params, max_memory))
    if weights is not None:
        load_weights(model, weights)
    if out is not None:
        save_model(model, out, compiled.name)
    return model


def build_spec(path: str | os.PathLike):
    """``(compiled, keras_model)`` for a spec file."""
    compiled = compile_spec(path)
    return compiled, build(compiled)


def read_weights(source: str | os.PathLike):
    """The weights of a ``.keras`` / ``.weights.h5`` file or ``keras:NAME``, read once
    to load into several models (see :func:`nincompile.weights.read_weights`)."""
    from .weights import read_weights as read

    return read(source)


def load_weights(model, source, skip=()):
    """Load weights into a built model, layer by layer in order, after checking that
    every shape fits (the layers named in ``skip`` are left as they are); returns a
    :class:`nincompile.weights.WeightsReport` (see
    :func:`nincompile.weights.load_weights`).  Raises
    :class:`~nincompile.errors.WeightsError`, assigning nothing, if they do not fit."""
    from .weights import load_weights as load

    return load(model, source, skip)


def save_model(model, out_dir: str | os.PathLike, name: str) -> Path:
    """Write ``out_dir/<name>.keras`` atomically; returns the path."""
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise NincompileError(f"output '{out}' exists and is not a directory")
    out.mkdir(parents=True, exist_ok=True)
    target = out / f"{name}.keras"
    atomic_write(target, lambda tmp: model.save(tmp))
    return target


# ------------------------------------------------------------------------- list


@dataclass
class BuiltinModel:
    """One model of a built-in spec, as ``nincompile list`` shows it."""

    spec: str  # the name to pass (nin_badm, resnet50, applications/vgg16)
    name: str  # the model's name (a family member's or variant's own)
    path: Path
    counts: dict[str, int]
    macs: int
    input: tuple[int, ...]


def list_specs() -> list[BuiltinModel]:
    """Every model of every built-in spec, counted as :func:`check` counts them."""
    from .spec import builtin

    out = []
    for b in builtin.builtins():
        for c in compile_all(b.path):
            out.append(BuiltinModel(b.name, c.name, b.path, c.counts(), c.graph.macs,
                                    tuple(c.spec.input)))  # fmt: skip
    return out


# ------------------------------------------------------------------------- emit


@dataclass
class EmitResult:
    """What :func:`emit` rendered (``generated``: spec, name, target, text), the specs
    that failed (``errors``) and, when it wrote, which files changed, or, with
    ``check``, the files that are ``missing``, ``stale`` or ``orphan``."""

    out: Path | None
    generated: list = dataclass_field(default_factory=list)
    errors: list[NincompileError] = dataclass_field(default_factory=list)
    changed: dict[Path, bool] = dataclass_field(default_factory=dict)
    stale: list[tuple[Path, str]] = dataclass_field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.errors and not self.stale

    def text(self, name: str | None = None) -> str:
        """The module rendered for model ``name`` (the only one when None)."""
        if name is None and len(self.generated) == 1:
            return self.generated[0].text
        for g in self.generated:
            if g.name == name:
                return g.text
        raise NincompileError(
            f"no generated module named {name!r}; have: "
            + ", ".join(g.name for g in self.generated)
        )


def spec_path(spec: str | os.PathLike) -> Path:
    """The file of ``spec``: the path itself when it exists, else the built-in spec of
    that name, else the path (whose reading then says there is no such file)."""
    from .spec import builtin

    path = Path(spec)
    if not os.path.lexists(path) and (found := builtin.find(str(spec))) is not None:
        return found
    return path


def emit(specs=None, out: str | os.PathLike | None = None, *, check: bool = False) -> EmitResult:
    """Render each spec of ``specs`` (one spec, or several; default ``specs/*.yaml`` of
    the current folder) as a standalone Keras module.  With ``out``, write
    ``out/<name>.py`` atomically where the text changed; with ``check``, write nothing
    and list the files of ``out`` (default ``generated``) that are missing, stale or,
    when ``specs`` is the default set, generated by no spec.  A spec that fails is in
    ``errors`` (raised when ``specs`` is a single spec) and the others still render."""
    from .codegen import files

    single = isinstance(specs, str | os.PathLike)
    default_set = not specs
    specs = [specs] if single else list(specs or files.default_specs())
    if not specs:
        raise NincompileError("no SPEC given and no specs/*.yaml in the current folder")
    if check and out is None:
        out = files.DEFAULT_OUT
    label_dir = out if out is not None else files.DEFAULT_OUT
    generated, errors = files.render_specs([str(spec_path(s)) for s in specs], label_dir)
    if single and errors:
        raise errors[0]
    result = EmitResult(Path(out) if out is not None else None, generated, errors)
    if check:
        result.stale = [(g.target, why) for g in generated if (why := files.problem(g))]
        if default_set:  # with every spec in play, a file no spec generates is left over
            orphans = sorted(set(Path(out).glob("*.py")) - {g.target for g in generated})
            result.stale += [(path, "orphan") for path in orphans]
    elif out is not None:
        for g in generated:
            try:
                result.changed[g.target] = files.write(g)
            except NincompileError as err:
                result.errors.append(err)
    return result


# ---------------------------------------------------------------- train and runs


def _train_overrides(overrides, weights, epochs, batch_size, mixed_precision,
                     jit_compile) -> list:  # fmt: skip
    """The overrides of a training call: ``overrides``, then the typed options (in the
    order ``nincompile train`` has always written them, so both resolve one text)."""
    from .spec.overrides import parse_overrides

    typed = {}
    if weights is not None:
        typed["train.init_weights"] = os.fspath(weights)
    if epochs is not None:
        typed["train.epochs"] = epochs
    if batch_size is not None:
        typed["train.batch_size"] = batch_size
    if mixed_precision is not None:
        off = mixed_precision in (False, "off", "false")
        typed["train.mixed_precision"] = False if off else mixed_precision
    if jit_compile is not None:
        typed["train.jit_compile"] = {"on": True, "off": False}.get(jit_compile, jit_compile)
    return parse_overrides(overrides) + parse_overrides(typed)


def train(spec, *, data=None, val=None, out: str | os.PathLike | None = None,
          epochs: int | None = None, batch_size: int | None = None, overrides=None,
          variant: str | None = None, resume: bool = False, stop_after: int | None = None,
          mixed_precision: bool | str | None = None, jit_compile: bool | str | None = None,
          weights=None, cache_dir=None, devices=None, coordinator: str | None = None,
          num_processes: int | None = None, process_id: int | None = None,
          reporter=None) -> Run:  # fmt: skip
    """Train ``spec`` into a run folder (``out``, default ``runs/<name>``, numbered
    when taken) and return the :class:`Run`.

    ``data``/``val``: local data that wins over the spec's ``data:``; ``epochs``,
    ``batch_size``, ``mixed_precision`` (False, ``"float16"``, ``"bfloat16"``),
    ``jit_compile`` (True, False, ``"auto"``), ``weights`` (``train.init_weights``: a
    ``.keras``/``.weights.h5`` file, a run folder or ``keras:NAME``) and ``overrides``
    change the spec;
    ``resume`` continues ``out`` (or ``spec`` itself when it is a run or a run folder,
    or the newest ``runs/<name>``) from its last completed epoch; ``stop_after`` stops
    after that many epochs in this call.  ``devices``, ``coordinator``,
    ``num_processes`` and ``process_id`` train data-parallel (see
    :mod:`nincompile.train.distribute`; ``Run.chief`` is False in processes other than
    0, which write nothing).  ``reporter`` (a
    :class:`nincompile.train.loop.Reporter`) hears of each epoch.  Raises
    :class:`~nincompile.errors.TrainError` (and keeps the last good epoch) on a NaN
    loss or a run folder that does not fit."""
    from .files import regular_or_missing
    from .runs import folder as runs
    from .spec.variants import select
    from .train.loop import train as fit

    where = spec.path if isinstance(spec, Run) else spec
    if isinstance(where, str | os.PathLike) and Path(where).is_dir():
        if not resume:
            raise NincompileError(
                f"'{where}' is a folder: pass a spec file, or add resume=True to continue a run"
            )
        if out is not None and Path(out).resolve() != Path(where).resolve():
            raise NincompileError("give the run folder once: as the spec or as out, not both")
        out = where
        spec = runs.RunFolder(where).file(runs.SPEC)  # refuses a link
        regular_or_missing(spec, runs.WHAT)  # and a FIFO, before opening it
    items = _train_overrides(overrides, weights, epochs, batch_size, mixed_precision,
                             jit_compile)  # fmt: skip
    source = select(load(spec, items), variant)  # one model: a spec of several needs variant
    return fit(source, data=data, val=val, out=out, resume=resume, stop_after=stop_after,
               cache_dir=cache_dir, reporter=reporter, devices=devices,
               coordinator=coordinator, num_processes=num_processes,
               process_id=process_id)  # fmt: skip


def evaluate(model, data, *, batch_size: int = 256, confusion=None, cache_dir=None) -> dict:
    """Loss, accuracy, per-class accuracy and the confusion matrix of a trained
    ``model`` (a :class:`Run`, a run folder or a ``.keras`` file) on labelled ``data``
    (a class folder, a CIFAR or MNIST download's test split): the dict that
    ``nincompile evaluate --json`` prints.  Also writes the confusion-matrix PNG
    (``confusion``, default ``RUN/confusion.png`` or ``MODEL.confusion.png``)."""
    from .train.infer import evaluate as run_evaluate

    return run_evaluate(os.fspath(model), os.fspath(data), batch_size=batch_size,
                        confusion_png=confusion, cache_dir=cache_dir)  # fmt: skip


def predict(model, images, *, top: int = 5, batch_size: int = 256) -> list[dict]:
    """The ``top`` classes and probabilities of each image (``images``: a file, a
    folder or a list of them) by a trained ``model`` (a :class:`Run`, a run folder or
    a ``.keras`` file): what ``nincompile predict --json`` prints."""
    from .train.infer import predict as run_predict

    if isinstance(images, str | os.PathLike):
        images = [images]
    return run_predict(os.fspath(model), [os.fspath(i) for i in images], top=top,
                       batch_size=batch_size)  # fmt: skip


#: The options of :func:`export` that only an int8 export takes.
GATE_OPTIONS = ("calibration", "holdout", "min_agreement", "max_accuracy_drop")


def export(source, out: str | os.PathLike | None = None, *, quantize: str | None = None,
           opset: int | None = None, batch: int | None = None, data=None,
           include_preprocessing: bool = False, calibration: int | None = None,
           holdout: int | None = None, min_agreement: float | None = None,
           max_accuracy_drop: float | None = None):  # fmt: skip
    """Export ``source`` (a spec path or name, a ``.keras`` file, a :class:`Run` or a
    run folder) to ONNX, prove it matches Keras and write it atomically; returns the
    :class:`~nincompile.export.report.ExportReport` (``lines()`` is what the CLI prints).

    ``out`` defaults to ``build/<name>.onnx``; ``batch`` None is a dynamic batch axis;
    ``data`` (an image folder) adds a parity check on real images.  With
    ``quantize="int8"`` the model is quantised (raw pixels in), calibrated on ``data``
    and written only when it passes the gate (``calibration``, ``holdout``,
    ``min_agreement``, ``max_accuracy_drop``).  Raises an
    :class:`~nincompile.errors.ExportError` and writes nothing when a check fails."""
    from .export.convert import DEFAULT_OPSET
    from .export.onnx_export import export_onnx

    if isinstance(source, str | os.PathLike) and not isinstance(source, Run):
        source = spec_path(source)
    source = os.fspath(source)
    opset = DEFAULT_OPSET if opset is None else opset
    given = dict(zip(GATE_OPTIONS, (calibration, holdout, min_agreement, max_accuracy_drop),
                     strict=True))  # fmt: skip
    gate = {k: v for k, v in given.items() if v is not None}
    if quantize is not None:
        from .export.quantize import quantize_onnx

        return quantize_onnx(source, out, data=data, mode=quantize.lower(), opset=opset,
                             batch=batch, **gate)  # fmt: skip
    if gate:
        from .errors import OptionError

        raise OptionError(f"{', '.join(gate)} only apply with quantize='int8'")
    return export_onnx(source, out, opset=opset, batch=batch, data=data,
                       include_preprocessing=include_preprocessing)  # fmt: skip


# ------------------------------------------------------------------ sweep, compare


@dataclass
class SweepResult:
    """A sweep: every member, the ones this shard trained, what became of each
    (``outcomes``: skipped, trained, failed) and the comparison (``compare``'s dict, or
    ``compare_error`` when there is nothing to compare yet)."""

    out: Path
    members: list
    mine: list
    outcomes: list
    comparison: dict | None = None
    compare_error: str | None = None

    @property
    def failed(self) -> list:
        return [o for o in self.outcomes if o.status == "failed"]


def sweep(specs, *, data=None, val=None, out: str | os.PathLike = "sweeps/sweep",
          epochs: int | None = None, seeds: int = 1, jobs: int = 1, overrides=None,
          shard: str | tuple[int, int] | None = None, cache_dir=None,
          say: Callable[[str], None] | None = None) -> SweepResult:  # fmt: skip
    """Train every variant of ``specs`` (times ``seeds``) with the same data, split and
    schedule, one run folder each under ``out``, then compare them (``out/compare.md``,
    ``.csv``, ``.png``).  Finished members are skipped and interrupted ones resumed;
    members run as separate processes (``jobs`` at once).  ``shard`` (``"i/n"`` or
    ``(i, n)``) takes machine i's share of n.  ``say`` hears each step."""
    from .runs import folder as run_folders
    from .spec.overrides import parse_overrides
    from .sweep import members as sweep_members
    from .sweep.compare import compare as run_compare
    from .sweep.runner import run_members

    say = say or (lambda text: None)
    if run_folders.is_run(Path(out)):  # compare would read it as the one run there
        raise NincompileError(
            f"--out '{out}' is a run folder; a sweep needs a folder of its own (its members' "
            "run folders go inside it)"
        )
    if isinstance(specs, str | os.PathLike):
        specs = [specs]
    items = parse_overrides(overrides)
    if epochs is not None:
        items += parse_overrides({"train.epochs": epochs})
    everyone = sweep_members.members(list(specs), items, seeds)
    which = sweep_members.parse_shard(shard) if isinstance(shard, str | None) else shard
    mine = sweep_members.shard(everyone, which)
    where = f" (shard {which[0]}/{which[1]}: {len(mine)} of {len(everyone)})" if which else ""
    say(f"sweep of {len(everyone)} member(s) into {out}{where}: "
        + ", ".join(m.name for m in mine))  # fmt: skip
    outcomes = run_members(mine, Path(out), data=data, val=val, cache_dir=cache_dir, jobs=jobs,
                           say=say)  # fmt: skip
    result = SweepResult(Path(out), everyone, mine, outcomes)
    try:
        result.comparison = run_compare([out], out)
    except Exception as err:  # no finished epoch yet, e.g. every member failed
        result.compare_error = str(err)
    return result


def compare(runs, out: str | os.PathLike | None = None) -> dict:
    """Compare run folders (or :class:`Run` objects, or sweep folders of runs): one row
    per variant, its mean and spread over seeds; writes ``out/compare.md``, ``.csv``
    and ``.png`` (``out`` defaults to the sweep folder when one is given, else
    ``compare/``) and returns what ``nincompile compare --json`` prints."""
    from .sweep.compare import compare as run_compare

    if isinstance(runs, str | os.PathLike):
        runs = [runs]
    return run_compare([os.fspath(r) for r in runs], out)
