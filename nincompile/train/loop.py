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
import sys
import time
from pathlib import Path

import numpy as np

from .. import __version__
from ..compiler import build_checked, compile_source
from ..data import feed, pipeline
from ..data.prepare import training_data
from ..data.split import epoch_order
from ..errors import Stopped, TrainError, TrainStopped, stop_signal
from ..files import atomic_write, sha256_arrays, sha256_text
from ..keras_builder import freeze
from ..keras_import import import_keras
from ..runs import folder as runs
from ..runs.run import Run
from . import (
    advice,
    channels_last,
    distribute,
    fused_norm,
    init_weights,
    interrupts,
    recipe,
    report,
)
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
            trained = run.trained_files()
            if trained:  # not that: its record of where it stopped is gone
                raise TrainError(
                    f"cannot resume '{path}': it holds a trained run ({', '.join(trained)}) "
                    f"but no {runs.CHECKPOINT}/{runs.STATE}, the record of the epoch it "
                    "stopped at; nothing was changed. Start a new run with another --out "
                    "(or fine-tune from it with --weights)"
                )
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
    _outputs(compiled)  # a model that is no classifier is refused before any folder is made
    run, state, changes = _resolve_run(source, out, resume, create=topo.chief)
    if resume and state is None:
        reporter.note(f"nothing to resume in {run.path}: it has no completed epoch; "
                      "starting it from the first epoch")  # fmt: skip
    try:
        with run.lock() if topo.chief else contextlib.nullcontext():
            session = _Session(run, state, changes, topo, source, compiled, train_cfg, reporter)
            session.read_data(data, val, cache_dir)
            session.build()
            session.begin()
            session.place_data()
            return session.epochs(stop_after, t_start)
    except (KeyboardInterrupt, Stopped) as stop:
        raise _stopped(run, stop, train_cfg.epochs) from None


def _stopped(run, stop: BaseException, epochs: int) -> TrainStopped:
    """What Ctrl-C or SIGTERM during training says: what is kept and how to go on."""
    signum, why = stop_signal(stop)
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


class _Session:
    """One call of :func:`train` once its run folder is chosen and locked, in the order
    :func:`train` calls the steps: :meth:`read_data`, :meth:`build`, :meth:`begin` (a
    resumed run's checkpoint and history, or a new run folder), :meth:`place_data`,
    then :meth:`epochs`, each epoch trained (:meth:`fit_epoch`) and committed
    (:meth:`commit`)."""

    def __init__(self, run, state, changes, topo, source, compiled, cfg, reporter):
        self.run, self.state, self.changes, self.topo = run, state, changes, topo
        self.source, self.compiled, self.spec, self.cfg = source, compiled, compiled.spec, cfg
        self.reporter = reporter
        self.init = self.init_info = None
        self.history: list[dict] = []
        self.resumed: list[dict] = []  # the changes of each resume that changed the spec
        self.best: dict | None = None
        self.spent = 0.0
        self.start = 0

    def read_data(self, data, val, cache_dir) -> None:
        """The initial weights' file (read first, to fail fast), then the training and
        held-out images; a resumed run refuses other training images."""
        cfg, state = self.cfg, self.state
        if state is None and cfg.init_weights is not None:
            self.init, self.init_info = init_weights.read(cfg.init_weights)
        elif state is not None:
            self.init_info = state.get("init_weights")
        self.datasets = training_data(self.spec, data, val, n_outputs=_outputs(self.compiled),
                                      cache_dir=cache_dir)  # fmt: skip
        for note in self.datasets.notes:
            self.reporter.note(note)
        self.x, self.y = self.datasets.train.images, self.datasets.train.labels
        self.data_sha = sha256_arrays(self.x, self.y)
        if state is not None and state.get("data_sha256") not in (None, self.data_sha):
            raise TrainError(
                f"cannot resume '{self.run.path}': its training images differ from the ones "
                f"it was trained on (data sha256 {state['data_sha256']}, now {self.data_sha}); "
                "resume with the same --data and data.limit, or start a new run"
            )
        self.xv = self.yv = None
        if self.datasets.val is not None:
            self.xv, self.yv = self.datasets.val.images, self.datasets.val.labels

    def build(self) -> None:
        """The model (seeded, its initial weights loaded), wrapped with the data
        pipeline, and its phases."""
        cfg, topo = self.cfg, self.topo
        self.policy = recipe.dtype_policy(cfg.mixed_precision)
        self.bs = cfg.batch_size
        self.local_bs = self.bs // topo.processes
        n = len(self.y)
        self.steps = n // self.bs if topo.distributed else max(1, math.ceil(n / self.bs))
        self.jit = recipe.jit_compile(cfg.jit_compile)
        with _dtype_policy(self.policy), topo.scope():
            keras.utils.set_random_seed(cfg.seed)
            self.model = build_checked(self.compiled)
            if self.init is not None:
                loaded = init_weights.load(self.model, cfg, self.init)
                self.init_info = {**dataclasses.asdict(loaded), **self.init_info}
                self.reporter.note(init_weights.describe(loaded))
            distribute.prepare_model(self.model, topo)
            self.wrapper = pipeline.wrap(self.model, self.x.shape[1:], self.spec.data)
        classes = len(self.datasets.train.classes)
        self.phases = Phases(cfg, self.compiled.graph, self.wrapper, self.model, self.steps,
                             self.policy, topo, self.jit, classes)  # fmt: skip

    def begin(self) -> None:
        """The first epoch of this call and its phase's optimiser; a resumed run's
        variables, history and figures from its checkpoint, or a new run folder."""
        run, cfg, state, reporter = self.run, self.cfg, self.state, self.reporter
        restored = None
        if state is not None:
            state, restored, warning = run.load_checkpoint()
            if warning:
                reporter.note(warning)
            self.start = int(state["epoch"])
        self.phase = cfg.phase_of(self.start)
        self.optimizer, self.schedule = self.phases.begin(self.phase)
        self.jit = bool(getattr(self.wrapper, "jit_compile", self.jit))  # Keras may turn it off
        self.device = recipe.device()
        self._describe()
        if state is None:
            if self.topo.chief:
                run.create()
                atomic_write(run.file(runs.SPEC),
                             lambda tmp: tmp.write_text(self.source.text, "utf-8"))  # fmt: skip
                reporter.note(f"run folder: {run.path}")
            return
        if (state.get("phase") or 0) == self.phase:  # the checkpoint holds this optimiser
            with self.topo.scope():
                self.optimizer.build(self.wrapper.trainable_variables)
            _restore(self.wrapper, self.optimizer, restored, run.path)
        else:  # it ended the phase before: this one's optimiser starts afresh
            _restore(self.wrapper, None, restored, run.path)
        self.history = run.read_history(upto=self.start - 1)
        self.resumed = list(state.get("resumed") or [])
        if self.changes is not None:
            resuming.check_schedule(run.path, self.changes, self.source, self.start, self.steps)
            self.resumed.append({"after_epoch": self.start, "changed": self.changes.as_dict()})
            reporter.note(
                f"resuming with changes: {self.changes.describe()} (recorded in {runs.SPEC}, "
                f"{runs.METRICS} and the planned_epochs of {runs.HISTORY})"
            )
        if len(self.history) != self.start:
            raise TrainError(
                f"cannot resume '{run.path}': history.csv has {len(self.history)} rows for "
                f"{self.start} completed epochs"
            )
        self.best = state.get("best")
        self.spent = float(state.get("train_seconds", 0.0))
        reporter.note(f"resuming {run.path} after epoch {self.start} of {cfg.epochs}")

    def _describe(self) -> None:
        """The notes on what trains where: backend, device, jit, precision, batch and
        schedule; a known slow setting; the data-parallel split."""
        cfg, device, note = self.cfg, self.device, self.reporter.note
        note(
            f"training {self.spec.name} on {keras.backend.backend()} ({device['kind']}: "
            f"{device['name']}), jit_compile={self.jit}, precision {self.policy}, batch "
            f"{self.bs}, {cfg.epochs} epochs"
            + ("" if cfg.phases else f", {self.phases.describe(0)}")
        )
        slow = advice.slow_setting(keras.backend.backend(), device["kind"], self.jit)
        if slow:  # one line, from the measured figures (advice.py)
            note(slow)
        if self.topo.distributed:
            dropped = len(self.y) - self.steps * self.bs
            note(
                f"{self.topo.describe()}; global batch {self.bs} = {self.topo.devices} x "
                f"{self.bs // self.topo.devices}"
                + (f"; the last {dropped} images of each epoch's order make no whole batch"
                   if dropped else "")
            )  # fmt: skip

    def place_data(self) -> None:
        """The images kept on the device, or fed from the host batch by batch."""
        x, y, xv, yv, topo = self.x, self.y, self.xv, self.yv, self.topo
        self.val_rows = None
        if xv is not None and topo.distributed:
            self.val_rows = distribute.local_rows(np.arange(len(yv)), self.bs, topo)
        self.place = feed.placement(feed.on_device_setting(self.spec.data), (x, y, xv, yv),
                                    distributed=topo.distributed,
                                    device_kind=self.device["kind"])  # fmt: skip
        self.reporter.note(
            ("data kept on the device: " if self.place.on_device else "data fed from the host: ")
            + self.place.reason
        )
        self.train_batches = self.val_batches = None
        self.val_bs = max(self.bs, 256)  # one device pass: no gradients, so larger batches
        if self.place.on_device:
            self.train_batches = feed.DeviceBatches(feed.to_device(x), feed.to_device(y),
                                                    self.local_bs)  # fmt: skip
            if xv is not None:
                self.val_batches = feed.DeviceBatches(feed.to_device(xv), feed.to_device(yv),
                                                      self.val_bs)  # fmt: skip

    def epochs(self, stop_after: int | None, t_start: float) -> Run:
        """Train and commit epoch after epoch, from :attr:`start` to the last planned
        (or ``stop_after`` of them); Ctrl-C and SIGTERM are raised between batches,
        never inside Keras or TensorFlow."""
        cfg = self.cfg
        self.checks = [interrupts.Check()]
        self.hooks = [_EpochSeed(cfg.seed), *self.checks]
        if self.reporter.wants_batches:
            self.hooks.append(_BatchHook(self.reporter))
        self.tb = report.TensorBoardLog(self.run.file(runs.TENSORBOARD) if self.topo.chief
                                        else None)  # fmt: skip
        done = 0
        with (
            interrupts.held(),
            fused_norm.fused_batch_norm(self.model) as fused,
            channels_last.channels_last(self.model) as laid_out,
        ):
            # what metrics.json records: the layers each faster kernel runs
            self.kernels = {"fused_batch_norm": len(fused), "channels_last": len(laid_out)}
            for epoch in range(self.start, cfg.epochs):
                interrupts.check()  # a stop noted during the last epoch's commit
                if stop_after is not None and done >= stop_after:
                    break
                if cfg.phase_of(epoch) != self.phase:  # the next phase: its freeze, optimiser
                    self.phase = cfg.phase_of(epoch)
                    self.optimizer, self.schedule = self.phases.begin(self.phase)
                if cfg.phases and epoch in (self.start, cfg.phase_start(self.phase)):
                    self.reporter.note(self.phases.describe(self.phase))
                row = self.fit_epoch(epoch)
                self.history.append(row)
                self.spent += row["seconds"]
                done += 1
                improved = _better(row, self.best)
                if improved:
                    self.best = {k: row.get(k) for k in BEST_KEYS}
                self.reporter.epoch_end(row, cfg.epochs)
                if self.topo.chief:
                    self.commit(row, improved, first=done == 1, t_start=t_start)
        self.tb.close()
        metrics = self.run.read_json(runs.METRICS) or {}
        return Run(self.run.path, self.history, metrics, self.start, self.datasets.notes,
                   self.topo.chief)  # fmt: skip

    def fit_epoch(self, epoch: int) -> dict:
        """One epoch of ``fit`` in its order of images, then validation: its history row.
        NaN is checked once per epoch (a per-batch check would read every batch's loss
        back from the device); the NaN epoch is never committed."""
        cfg, bs, steps = self.cfg, self.bs, self.steps
        order = distribute.local_rows(epoch_order(len(self.y), cfg.seed, epoch), bs, self.topo)
        in_phase = epoch - cfg.phase_start(self.phase)  # the schedule counts from its start
        lr = float(keras.ops.convert_to_numpy(self.schedule(in_phase * steps)))
        self.reporter.epoch_begin(epoch, cfg.epochs, steps, bs)
        t0 = time.perf_counter()
        if self.train_batches is not None:
            self.train_batches.set_order(order)
            batches = {"x": self.train_batches}
        else:
            batches = host_batches(self.x, self.y, self.local_bs, order)
        fit = self.wrapper.fit(**batches, epochs=epoch + 1, initial_epoch=epoch, shuffle=False,
                               verbose=0, callbacks=self.hooks)  # fmt: skip
        seconds = time.perf_counter() - t0
        logs = {k: float(v[-1]) for k, v in fit.history.items() if v}
        if not _finite(logs.get("loss")):
            raise TrainError(
                f"the loss became {logs.get('loss')} in epoch {epoch + 1}; training stopped. "
                f"{self.run.path} keeps the last good epoch ({epoch}); try a lower learning "
                "rate (--set train.learning_rate=...)"
            )
        images = steps * bs if self.topo.distributed else len(self.y)
        row = {
            "epoch": epoch,
            "loss": logs.get("loss"),
            "accuracy": logs.get("accuracy"),
            "learning_rate": lr,
            "planned_epochs": cfg.epochs,
            "phase": self.phase if cfg.phases else None,
            "seconds": seconds,
            "images_per_second": images / seconds if seconds > 0 else None,
        }
        if self.xv is not None:
            ev = self.validate()
            row["val_loss"] = float(ev.get("loss"))
            row["val_accuracy"] = float(ev["accuracy"]) if "accuracy" in ev else None
        return row

    def validate(self) -> dict:
        """One pass over the held-out images: from the device, from the host, or
        (several processes) each process's share of them."""
        kwargs = {"verbose": 0, "return_dict": True, "callbacks": self.checks}
        xv, yv = self.xv, self.yv
        if self.val_batches is not None:
            return self.wrapper.evaluate(self.val_batches, **kwargs)
        if self.val_rows is None:
            return self.wrapper.evaluate(**host_batches(xv, yv, self.val_bs), **kwargs)
        return self.wrapper.evaluate(**host_batches(xv, yv, self.local_bs, self.val_rows),
                                     **kwargs)  # fmt: skip

    def commit(self, row: dict, improved: bool, *, first: bool, t_start: float) -> None:
        """Write the epoch to the run folder: the changed spec (a resume's first epoch),
        history and models, metrics, curves, TensorBoard, then the checkpoint with
        ``state.json``, the commit."""
        run, source = self.run, self.source
        if self.changes is not None and first:  # record the changed spec
            atomic_write(run.file(runs.SPEC), lambda tmp: tmp.write_text(source.text, "utf-8"))
        _commit(run, self.model, self.history, improved)
        metrics = _metrics(self.spec, self.compiled, self.history, self.best, self.cfg,
                           self.device, self.jit, self.policy, self.datasets, self.spent,
                           time.perf_counter() - t_start)  # fmt: skip
        metrics["distribution"] = self.topo.as_dict()
        metrics["init_weights"] = self.init_info
        metrics["resumed_with_changes"] = self.resumed
        metrics["data_on_device"] = self.place.on_device
        metrics["kernels"] = self.kernels
        run.write_json(runs.METRICS, metrics)
        report.curves(self.history, run.file(runs.CURVES), self.spec.name)
        self.tb.epoch(row)
        run.save_checkpoint(
            row["epoch"] + 1,
            _snapshot(self.wrapper, self.optimizer),
            {
                "spec_sha256": sha256_text(source.text),
                "data_sha256": self.data_sha,
                "best": self.best,
                "train_seconds": self.spent,
                "init_weights": self.init_info,
                "resumed": self.resumed,
                "spec_text": source.text,
                "phase": self.phase,
            },
        )


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
    """The number of class scores the model outputs; a TrainError unless its output is
    one score per class (``train`` fits a classifier: sparse labels, one per image)."""
    graph = compiled.graph
    shape = graph.shapes[graph.output.name]
    if len(shape) != 1:
        raise TrainError(
            f"{compiled.spec.name}: train needs a model whose output is one score per class, "
            f"shape [classes]; received output shape {list(shape)} (its last layer "
            f"'{graph.output.name}'): end the head with 'gap' or 'flatten' and a dense layer "
            "as wide as the number of classes"
        )
    return int(shape[-1])


def _default_train():
    from ..spec.schema import Train

    return Train()
