"""``train()``: fit a spec's model on its data and keep the run folder current.

One epoch at a time: the seeds' random states are set from ``(seed, epoch)``, the
training images are visited in :func:`~nincompile.data.split.epoch_order`, Keras's
own compiled training step runs (``model.fit`` for one epoch, on any backend), then
validation, then the epoch is committed to the run folder (checkpoint, history,
models, metrics, curves; ``checkpoint/state.json`` last).  Resuming restores the
model's variables (weights, batch-norm statistics, seed states) and the optimiser's
(step count, so the schedule too, and moments), so a resumed run ends with the same
weights as one never interrupted.  Keras's ``BackupAndRestore`` is not used (keras
issues #19179 and #19389).
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import platform
import shlex
import shutil
import signal
import sys
import time
from pathlib import Path

import numpy as np

from .. import __version__
from ..compiler import build_checked, compile_source
from ..data import feed, pipeline
from ..data.prepare import training_data
from ..data.split import epoch_order
from ..errors import Stopped, TrainError, TrainStopped
from ..files import atomic_write, sha256_arrays, sha256_text
from ..keras_builder import freeze
from ..keras_import import import_keras
from ..runs import folder as runs
from ..runs.run import Run
from . import advice, distribute, init_weights, interrupts, recipe, report
from . import resume as resuming
from .schedule import EpochSchedule, describe

keras = import_keras()
BEST_KEYS = ("epoch", "val_accuracy", "val_loss", "accuracy", "loss")


class Reporter:
    """What ``train`` tells its caller; the CLI prints, the library stays quiet.

    ``batch`` is called only when ``wants_batches`` is true: a per-batch hook makes
    Keras read every batch's logs back from the device, which costs speed on a GPU."""

    wants_batches = False

    def note(self, text: str) -> None:
        pass

    def epoch_begin(self, epoch: int, epochs: int, steps: int, batch_size: int) -> None:
        pass

    def batch(self, step: int, logs: dict) -> None:
        pass

    def epoch_end(self, row: dict, epochs: int) -> None:
        pass


class _BatchHook(keras.callbacks.Callback):
    async_safe = True  # Keras may call it from a thread: it only updates a progress bar

    def __init__(self, reporter: Reporter):
        super().__init__()
        self.reporter = reporter

    def on_train_batch_end(self, batch, logs=None):
        self.reporter.batch(batch, logs or {})


def host_batches(x, y, batch_size: int, order=None) -> dict:
    """What ``fit``/``evaluate`` take for images fed from the host: the rows of
    ``x``/``y`` in ``order`` (all rows as stored when None), in consecutive batches of
    ``batch_size`` (the last one partial), each batch gathered from ``x``/``y`` when it
    is needed, so the images are held once (no shuffled copy per epoch, no copy into a
    tensor).  Under TensorFlow a ``tf.data.Dataset`` over the order's batches of row
    numbers, each gathered by a NumPy call, with tf.data's autotuning off (Keras's own
    pipeline for arrays autotunes, and at each epoch's end the main thread waited
    seconds in the iterator's destructor for the autotuning thread: issue 20) and a
    fixed prefetch of two batches; under JAX and PyTorch a
    :class:`~nincompile.data.feed.HostBatches` (their adapters do not use tf.data)."""
    if keras.backend.backend() != "tensorflow":
        return {"x": feed.HostBatches(x, y, batch_size, order)}
    import tensorflow as tf

    rows = np.arange(len(y)) if order is None else np.asarray(order)

    def gather(index):
        return x[index], y[index]

    def batch(index):
        xb, yb = tf.numpy_function(gather, [index], (tf.as_dtype(x.dtype), tf.as_dtype(y.dtype)))
        xb.set_shape((None, *x.shape[1:]))
        yb.set_shape((None, *y.shape[1:]))
        return xb, yb

    data = tf.data.Dataset.from_tensor_slices(rows.astype(np.int64)).batch(batch_size)
    data = data.map(batch).prefetch(2)
    options = tf.data.Options()
    options.autotune.enabled = False
    return {"x": data.with_options(options)}


class _EpochSeed(keras.callbacks.Callback):
    """Sets every random state as each epoch begins (see ``pipeline.reseed``)."""

    def __init__(self, seed: int):
        super().__init__()
        self.seed = seed

    def on_epoch_begin(self, epoch, logs=None):
        pipeline.reseed(self.model, self.seed, epoch)


def _variables(model, optimizer) -> list:
    return [("model", v) for v in model.variables] + [("opt", v) for v in optimizer.variables]


def _snapshot(model, optimizer) -> dict[str, np.ndarray]:
    out = {}
    for i, (kind, v) in enumerate(_variables(model, optimizer)):
        out[f"{i:05d}_{kind}"] = distribute.to_numpy(v.value)
    return out


def _restore(model, optimizer, arrays: dict[str, np.ndarray], where: Path) -> None:
    """Assign the checkpoint's ``arrays`` to the model's variables and, unless
    ``optimizer`` is None (a phase starts: its optimiser starts afresh), the
    optimiser's."""
    if optimizer is None:
        pairs = [("model", v) for v in model.variables]
        arrays = {k: v for k, v in arrays.items() if k.endswith("_model")}
    else:
        pairs = _variables(model, optimizer)
    keys = sorted(arrays)
    if len(keys) != len(pairs):
        raise TrainError(
            f"cannot resume '{where}': its checkpoint holds {len(keys)} variables, the model "
            f"and optimiser have {len(pairs)}"
        )
    for key, (kind, var) in zip(keys, pairs, strict=True):
        value = arrays[key]
        if not key.endswith(kind) or tuple(value.shape) != tuple(var.shape):
            raise TrainError(
                f"cannot resume '{where}': checkpoint variable {key} has shape "
                f"{tuple(value.shape)}, the model's {var.path} has {tuple(var.shape)}"
            )
        var.assign(value)


def _finite(x) -> bool:
    return x is not None and math.isfinite(x)


def _versions() -> dict:
    out = {"nincompile": __version__, "keras": keras.__version__, "numpy": np.__version__}
    out["python"] = platform.python_version()
    backend = keras.backend.backend()
    mod = sys.modules.get(backend)
    if mod is not None and hasattr(mod, "__version__"):
        out[backend] = mod.__version__
    return out


def _resolve_run(source, out, resume: bool, create: bool = True):
    name = source.spec.name
    if resume:
        path = Path(out) if out is not None else runs.latest_run_path(name)
        if path is None or not path.is_dir():
            where = f"'{out}'" if out is not None else f"runs/{name}"
            raise TrainError(f"nothing to resume: no run folder {where}; drop --resume")
        run = runs.RunFolder(path)
        state = run.state()  # checked: types, a checkpoint inside checkpoint/, no link
        have = sha256_text(source.text)
        spec_text = run.read_text(runs.SPEC)
        if state is None:  # failed before its first epoch: start again, in the same folder
            if spec_text is None:
                if not runs.is_empty_run_folder(path):
                    raise TrainError(
                        f"cannot resume '{path}': it is not a run folder (no {runs.SPEC}, and "
                        "files nincompile did not write); pass another --out"
                    )
                return run, None, None
            want = sha256_text(spec_text)
        else:
            want = state["spec_sha256"]
            if isinstance(state.get("spec_text"), str):  # the spec of the last commit
                spec_text = state["spec_text"]
            run.read_history(upto=state["epoch"] - 1)  # a bad history.csv: refuse it now
        if want == have:
            return run, state, None
        if spec_text is None or sha256_text(spec_text) != want:
            raise TrainError(
                f"cannot resume '{path}': it was trained from a different spec "
                f"(run spec sha256 {want}, this spec {have}); resume with the run's own "
                f"spec ({path / runs.SPEC}) or start a new run"
            )
        trained = int(state["epoch"]) if state is not None else 0
        changes = resuming.compare(path, spec_text, source, trained)  # refuses what may not
        return run, state, changes
    if not create:  # another process (the chief) makes the folder
        return runs.RunFolder(out), None, None
    run = runs.RunFolder(runs.new_run_path(out, name))
    return run, None, None


def train(
    source,
    *,
    data=None,
    val=None,
    out=None,
    resume: bool = False,
    stop_after: int | None = None,
    cache_dir=None,
    reporter: Reporter | None = None,
    devices=None,
    coordinator: str | None = None,
    num_processes: int | None = None,
    process_id: int | None = None,
) -> Run:
    """Train the spec of ``source`` (a :class:`SpecSource`, overrides already applied).

    ``data``/``val``: paths that win over the spec's ``data:``; ``out``: the run folder
    (default ``runs/<name>``, numbered when taken); ``resume``: continue ``out`` (or
    the newest ``runs/<name>*``) from its last completed epoch; ``stop_after``: stop
    after this many epochs in this call (resume later); ``devices``, ``coordinator``,
    ``num_processes``, ``process_id``: data-parallel training (see
    :mod:`.distribute`).
    """
    topo = distribute.setup(devices, coordinator, num_processes, process_id)
    reporter = reporter or Reporter()
    if not topo.chief:
        reporter = Reporter()  # one voice: process 0 prints and writes
    t_start = time.perf_counter()
    compiled = compile_source(source)
    spec = compiled.spec
    train_cfg = spec.train if spec.train is not None else _default_train()
    if topo.processes > 1 and out is None:
        raise TrainError("training in several processes needs --out: one run folder that "
                         "every process can reach")  # fmt: skip
    distribute.check_batch(train_cfg.batch_size, topo)
    feed.check_setting(feed.on_device_setting(spec.data), distributed=topo.distributed)
    run, state, changes = _resolve_run(source, out, resume, create=topo.chief)
    if resume and state is None:
        reporter.note(f"nothing to resume in {run.path}: it has no completed epoch; "
                      "starting it from the first epoch")  # fmt: skip
    try:
        with run.lock() if topo.chief else contextlib.nullcontext():
            return _session(run, state, changes, topo, source, compiled, train_cfg, data, val,
                            cache_dir, reporter, stop_after, t_start)  # fmt: skip
    except (KeyboardInterrupt, Stopped) as stop:
        raise _stopped(run, stop, train_cfg.epochs) from None


def _stopped(run, stop: BaseException, epochs: int) -> TrainStopped:
    """What Ctrl-C or SIGTERM during training says: what is kept and how to go on."""
    signum = stop.signum if isinstance(stop, Stopped) else signal.SIGINT
    why = "Ctrl-C" if signum == signal.SIGINT else signal.Signals(signum).name
    try:  # the message must come out whatever the folder holds
        state = run.state()
        has_spec = state is not None or run.read_text(runs.SPEC) is not None
    except Exception:
        state, has_spec = None, False
    where = shlex.quote(str(run.path))
    if not has_spec:  # stopped while reading the data: the folder still counts as empty
        how = f"nothing was trained; run the same command with --out {where} to start again"
        return TrainStopped(f"stopped by {why} before the first epoch; {how}", 128 + signum)
    kept = f"after {state['epoch']} of {epochs} epochs" if state else "in its first epoch"
    return TrainStopped(
        f"stopped by {why} {kept}; resume with: nincompile train {where} --resume", 128 + signum
    )


def _session(run, state, changes, topo, source, compiled, train_cfg, data, val, cache_dir,
             reporter, stop_after, t_start) -> Run:  # fmt: skip
    """Everything after the run folder is chosen and locked: data, model, epochs."""
    spec = compiled.spec
    init = init_info = None
    if state is None and train_cfg.init_weights is not None:  # read first: fail fast
        init, init_info = init_weights.read(train_cfg.init_weights)
    elif state is not None:
        init_info = state.get("init_weights")
    datasets = training_data(spec, data, val, n_outputs=_outputs(compiled), cache_dir=cache_dir)
    for note in datasets.notes:
        reporter.note(note)
    x, y = datasets.train.images, datasets.train.labels
    data_sha = sha256_arrays(x, y)
    if state is not None and state.get("data_sha256") not in (None, data_sha):
        raise TrainError(
            f"cannot resume '{run.path}': its training images differ from the ones it was "
            f"trained on (data sha256 {state['data_sha256']}, now {data_sha}); resume "
            "with the same --data and data.limit, or start a new run"
        )
    xv = yv = None
    if datasets.val is not None:
        xv, yv = datasets.val.images, datasets.val.labels

    policy = recipe.dtype_policy(train_cfg.mixed_precision)
    bs = train_cfg.batch_size
    local_bs = bs // topo.processes
    steps = len(y) // bs if topo.distributed else max(1, math.ceil(len(y) / bs))
    jit = recipe.jit_compile(train_cfg.jit_compile)
    with _dtype_policy(policy), topo.scope():
        keras.utils.set_random_seed(train_cfg.seed)
        model = build_checked(compiled)
        if init is not None:
            loaded = init_weights.load(model, train_cfg, init)
            init_info = {**dataclasses.asdict(loaded), **init_info}
            reporter.note(init_weights.describe(loaded))
        distribute.prepare_model(model, topo)
        wrapper = pipeline.wrap(model, x.shape[1:], spec.data)
    phases = Phases(train_cfg, compiled.graph, wrapper, model, steps, policy, topo, jit,
                    len(datasets.train.classes))  # fmt: skip

    start = 0
    restored = None
    if state is not None:
        state, restored, warning = run.load_checkpoint()
        if warning:
            reporter.note(warning)
        start = int(state["epoch"])
    phase = train_cfg.phase_of(start)
    optimizer, schedule = phases.begin(phase)
    jit = bool(getattr(wrapper, "jit_compile", jit))  # Keras turns it off for some layers
    device = recipe.device()
    reporter.note(
        f"training {spec.name} on {keras.backend.backend()} ({device['kind']}: {device['name']}), "
        f"jit_compile={jit}, precision {policy}, batch {bs}, {train_cfg.epochs} epochs"
        + ("" if train_cfg.phases else f", {phases.describe(0)}")
    )
    slow = advice.slow_setting(keras.backend.backend(), device["kind"], jit)
    if slow:  # one line, from the measured figures (advice.py)
        reporter.note(slow)
    if topo.distributed:
        dropped = len(y) - steps * bs
        reporter.note(
            f"{topo.describe()}; global batch {bs} = {topo.devices} x {bs // topo.devices}"
            + (f"; the last {dropped} images of each epoch's order make no whole batch"
               if dropped else "")
        )  # fmt: skip

    resumed: list[dict] = []  # the changes of each resume that changed the spec
    history: list[dict] = []
    best = None
    spent = 0.0
    if state is not None:
        if (state.get("phase") or 0) == phase:  # the checkpoint holds this phase's optimiser
            with topo.scope():
                optimizer.build(wrapper.trainable_variables)
            _restore(wrapper, optimizer, restored, run.path)
        else:  # it ended the phase before: this one's optimiser starts afresh
            _restore(wrapper, None, restored, run.path)
        history = run.read_history(upto=start - 1)
        resumed = list(state.get("resumed") or [])
        if changes is not None:
            resuming.check_schedule(run.path, changes, source, start, steps)
            resumed.append({"after_epoch": start, "changed": changes.as_dict()})
            reporter.note(
                f"resuming with changes: {changes.describe()} (recorded in {runs.SPEC}, "
                f"{runs.METRICS} and the planned_epochs of {runs.HISTORY})"
            )
        if len(history) != start:
            raise TrainError(
                f"cannot resume '{run.path}': history.csv has {len(history)} rows for "
                f"{start} completed epochs"
            )
        best = state.get("best")
        spent = float(state.get("train_seconds", 0.0))
        reporter.note(f"resuming {run.path} after epoch {start} of {train_cfg.epochs}")
    elif topo.chief:
        run.create()
        atomic_write(run.file(runs.SPEC), lambda tmp: tmp.write_text(source.text, "utf-8"))
        reporter.note(f"run folder: {run.path}")

    tb = report.TensorBoardLog(run.file(runs.TENSORBOARD) if topo.chief else None)
    val_rows = None
    if xv is not None and topo.distributed:
        val_rows = distribute.local_rows(np.arange(len(yv)), bs, topo)
    place = feed.placement(
        feed.on_device_setting(spec.data),
        (x, y, xv, yv),
        distributed=topo.distributed,
        device_kind=device["kind"],
    )
    reporter.note(
        ("data kept on the device: " if place.on_device else "data fed from the host: ")
        + place.reason
    )
    train_batches = val_batches = None
    val_bs = max(bs, 256)  # one device pass: no gradients, so larger batches
    if place.on_device:
        train_batches = feed.DeviceBatches(feed.to_device(x), feed.to_device(y), local_bs)
        if xv is not None:
            val_batches = feed.DeviceBatches(feed.to_device(xv), feed.to_device(yv), val_bs)
    # NaN is checked once per epoch (a per-batch check would read every batch's loss
    # back from the device); the NaN epoch is never committed.
    checks = [interrupts.Check()]
    hooks = [_EpochSeed(train_cfg.seed), *checks]
    if reporter.wants_batches:
        hooks.append(_BatchHook(reporter))
    epochs_here = 0
    # Ctrl-C and SIGTERM are raised between batches, never inside Keras or TensorFlow
    with interrupts.held():
        for epoch in range(start, train_cfg.epochs):
            interrupts.check()  # a stop noted during the last epoch's commit
            if stop_after is not None and epochs_here >= stop_after:
                break
            if train_cfg.phase_of(epoch) != phase:  # the next phase: its freeze and optimiser
                phase = train_cfg.phase_of(epoch)
                optimizer, schedule = phases.begin(phase)
            if train_cfg.phases and (epoch == start or epoch == train_cfg.phase_start(phase)):
                reporter.note(phases.describe(phase))
            order = distribute.local_rows(epoch_order(len(y), train_cfg.seed, epoch), bs, topo)
            in_phase = epoch - train_cfg.phase_start(phase)  # the schedule counts from its start
            lr = float(keras.ops.convert_to_numpy(schedule(in_phase * steps)))
            reporter.epoch_begin(epoch, train_cfg.epochs, steps, bs)
            t0 = time.perf_counter()
            if train_batches is not None:
                train_batches.set_order(order)
                fit = wrapper.fit(train_batches, epochs=epoch + 1, initial_epoch=epoch,
                                  shuffle=False, verbose=0, callbacks=hooks)  # fmt: skip
            else:
                fit = wrapper.fit(
                    **host_batches(x, y, local_bs, order), epochs=epoch + 1,
                    initial_epoch=epoch, shuffle=False, verbose=0, callbacks=hooks,
                )  # fmt: skip
            seconds = time.perf_counter() - t0
            logs = {k: float(v[-1]) for k, v in fit.history.items() if v}
            if not _finite(logs.get("loss")):
                raise TrainError(
                    f"the loss became {logs.get('loss')} in epoch {epoch + 1}; training stopped. "
                    f"{run.path} keeps the last good epoch ({epoch}); try a lower learning rate "
                    "(--set train.learning_rate=...)"
                )
            row = {
                "epoch": epoch,
                "loss": logs.get("loss"),
                "accuracy": logs.get("accuracy"),
                "learning_rate": lr,
                "planned_epochs": train_cfg.epochs,
                "phase": phase if train_cfg.phases else None,
                "seconds": seconds,
                "images_per_second": (steps * bs if topo.distributed else len(y)) / seconds
                if seconds > 0
                else None,
            }
            if xv is not None:
                ev = _validate(wrapper, xv, yv, val_batches, val_rows, val_bs, local_bs, checks)
                row["val_loss"] = float(ev.get("loss"))
                row["val_accuracy"] = float(ev["accuracy"]) if "accuracy" in ev else None
            history.append(row)
            spent += seconds
            epochs_here += 1
            improved = _better(row, best)
            if improved:
                best = {k: row.get(k) for k in BEST_KEYS}
            reporter.epoch_end(row, train_cfg.epochs)
            if not topo.chief:
                continue
            if changes is not None and epochs_here == 1:  # record the changed spec
                atomic_write(run.file(runs.SPEC), lambda tmp: tmp.write_text(source.text, "utf-8"))
            _commit(run, model, history, improved)
            metrics = _metrics(spec, compiled, history, best, train_cfg, device, jit, policy,
                               datasets, spent, time.perf_counter() - t_start)  # fmt: skip
            metrics["distribution"] = topo.as_dict()
            metrics["init_weights"] = init_info
            metrics["resumed_with_changes"] = resumed
            metrics["data_on_device"] = place.on_device
            run.write_json(runs.METRICS, metrics)
            report.curves(history, run.file(runs.CURVES), spec.name)
            tb.epoch(row)
            run.save_checkpoint(
                epoch + 1,
                _snapshot(wrapper, optimizer),
                {
                    "spec_sha256": sha256_text(source.text),
                    "data_sha256": data_sha,
                    "best": best,
                    "train_seconds": spent,
                    "init_weights": init_info,
                    "resumed": resumed,
                    "spec_text": source.text,
                    "phase": phase,
                },  # fmt: skip
            )
    tb.close()
    metrics = run.read_json(runs.METRICS) or {}
    return Run(run.path, history, metrics, start, datasets.notes, topo.chief)


def _validate(wrapper, xv, yv, val_batches, val_rows, val_bs, local_bs, callbacks) -> dict:
    """One pass over the held-out images: from the device, from the host, or (several
    processes) each process's share of them."""
    kwargs = {"verbose": 0, "return_dict": True, "callbacks": callbacks}
    if val_batches is not None:
        return wrapper.evaluate(val_batches, **kwargs)
    if val_rows is None:
        return wrapper.evaluate(**host_batches(xv, yv, val_bs), **kwargs)
    return wrapper.evaluate(**host_batches(xv, yv, local_bs, val_rows), **kwargs)


@contextlib.contextmanager
def _dtype_policy(policy: str):
    """Keras's global dtype policy set to ``policy`` inside, restored after."""
    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy(policy)
    try:
        yield
    finally:
        keras.config.set_dtype_policy(previous)


class Phases:
    """The phases of a run (one for a ``train:`` without ``train.phases``): :meth:`begin`
    freezes a phase's layers and compiles the model with a new optimiser of the phase's
    settings and schedule (counted from the phase's first epoch), as every phase starts
    in an uninterrupted run and in a resumed one alike."""

    def __init__(self, train_cfg, graph, wrapper, model, steps, policy, topo, jit, classes):
        self.train_cfg, self.plan = train_cfg, train_cfg.plan()
        self.frozen = graph.phase_frozen or (graph.frozen,)
        self.wrapper, self.model, self.steps = wrapper, model, steps
        self.policy, self.topo, self.jit, self.classes = policy, topo, jit, classes

    def begin(self, k: int):
        """``(optimizer, schedule)`` of phase ``k``, the model compiled with them."""
        cfg = self.plan[k]
        schedule = EpochSchedule(cfg, self.steps)
        with _dtype_policy(self.policy), self.topo.scope():
            if self.train_cfg.phases:  # without phases the model is built frozen already
                freeze(self.model, self.frozen[k])
            optimizer = recipe.optimizer(cfg, schedule)
            self.wrapper.compile(
                optimizer=optimizer,
                loss=recipe.loss(self.train_cfg, self.classes),
                metrics=recipe.metrics(self.train_cfg),
                jit_compile=self.jit,
            )
        return optimizer, schedule

    def describe(self, k: int) -> str:
        """What phase ``k`` trains with: its optimiser and schedule, and with phases its
        epochs and frozen layers."""
        cfg = self.plan[k]
        text = f"{cfg.optimizer} lr {cfg.learning_rate:g} ({describe(cfg)})"
        if not self.train_cfg.phases:
            return text
        first = self.train_cfg.phase_start(k)
        frozen = len([x for x in self.model.layers if x.name in self.frozen[k]])
        return (
            f"phase {k + 1} of {len(self.plan)} (train.phases[{k}]): epochs {first + 1}-"
            f"{first + cfg.epochs}, {text}, {frozen} layers frozen"
        )


def _better(row: dict, best: dict | None) -> bool:
    if best is None:
        return True
    if row.get("val_accuracy") is not None and best.get("val_accuracy") is not None:
        return row["val_accuracy"] > best["val_accuracy"]
    key = "val_loss" if row.get("val_loss") is not None else "loss"
    return row[key] is not None and best.get(key) is not None and row[key] < best[key]


def _commit(run, model, history, improved) -> None:
    """Write this epoch's history and models (each atomically); the checkpoint and its
    state.json come after, as the commit."""
    run.write_history(history)
    with distribute.portable(model):
        atomic_write(run.file(runs.MODEL), lambda tmp: model.save(tmp))
    if improved:  # the same model: copy the file rather than serialise it again
        atomic_write(run.file(runs.BEST), lambda tmp: shutil.copyfile(run.file(runs.MODEL), tmp))


def _metrics(spec, compiled, history, best, train_cfg, device, jit, policy, datasets, spent, wall):
    last = history[-1]
    ips = [r["images_per_second"] for r in history if r.get("images_per_second")]
    return {
        "name": spec.name,
        "seed": train_cfg.seed,
        "epochs_completed": len(history),
        "epochs": train_cfg.epochs,
        "final": {k: last.get(k) for k in ("loss", "accuracy", "val_loss", "val_accuracy")},
        "best": best,
        "train_seconds": spent,
        "wall_seconds_this_session": wall,
        "images_per_second": float(np.median(ips)) if ips else None,
        "train_images": int(len(datasets.train.labels)),
        "val_images": int(len(datasets.val.labels)) if datasets.val is not None else 0,
        "classes": list(datasets.train.classes),
        "data": datasets.notes,
        "params": compiled.counts(),
        **({"phases": compiled.phase_counts()} if train_cfg.phases else {}),
        "macs": compiled.graph.macs,
        "backend": keras.backend.backend(),
        "device": device,
        "jit_compile": jit,
        "dtype_policy": policy,
        "versions": _versions(),
    }


def _outputs(compiled) -> int | None:
    graph = compiled.graph
    return int(graph.shapes[graph.output.name][-1])


def _default_train():
    from ..spec.schema import Train

    return Train()
