"""``nincompile train``, ``evaluate`` and ``predict``: thin shells over
:func:`nincompile.api.train`, :func:`~nincompile.api.evaluate` and
:func:`~nincompile.api.predict` (parse the options, call, print)."""

from __future__ import annotations

import contextlib
import json
import signal
import sys
import threading
import time
from pathlib import Path

import click

from ..cli_support import fail, max_memory_option, user_errors
from ..errors import Stopped, TrainStopped, stop_signal


def _echo(text: str, as_json: bool) -> None:
    click.echo(text, err=as_json)


def _fmt(value, spec=".4f") -> str:
    return "-" if value is None else format(value, spec)


def epoch_line(row: dict, epochs: int) -> str:
    ips = row.get("images_per_second")
    return (
        f"epoch {row['epoch'] + 1}/{epochs}  loss {_fmt(row.get('loss'))}  "
        f"acc {_fmt(row.get('accuracy'))}  val_loss {_fmt(row.get('val_loss'))}  "
        f"val_acc {_fmt(row.get('val_accuracy'))}  lr {row['learning_rate']:.3g}  "
        f"{row['seconds']:.1f}s  {ips:,.0f} img/s"
    )


def _console_reporter(as_json: bool):
    from .loop import Reporter

    tty = sys.stdout.isatty() and not as_json

    class Console(Reporter):
        wants_batches = tty

        def __init__(self):
            self.progress = None
            self.task = None
            self.last = 0.0
            self.t0 = 0.0
            self.batch_size = 1

        def note(self, text):
            _echo(text, as_json)

        def epoch_begin(self, epoch, epochs, steps, batch_size):
            self.t0 = time.perf_counter()
            self.batch_size = batch_size
            if not tty:
                return
            from rich.progress import (
                BarColumn,
                MofNCompleteColumn,
                Progress,
                TextColumn,
                TimeElapsedColumn,
                TimeRemainingColumn,
            )

            self.progress = Progress(
                TextColumn(f"epoch {epoch + 1}/{epochs}"),
                BarColumn(),
                MofNCompleteColumn(),
                TimeElapsedColumn(),
                TextColumn("ETA"),
                TimeRemainingColumn(),
                TextColumn("{task.fields[stats]}"),
                transient=True,
            )
            self.progress.start()
            self.task = self.progress.add_task("train", total=steps, stats="")

        def batch(self, step, logs):
            if self.progress is None:
                return
            now = time.perf_counter()
            if now - self.last < 0.25:
                return
            self.last = now
            ips = (step + 1) * self.batch_size / max(now - self.t0, 1e-9)
            stats = f"{ips:,.0f} img/s"
            for key, label in (("loss", "loss"), ("accuracy", "acc")):
                if key in logs:
                    stats += f"  {label} {float(logs[key]):.4f}"
            self.progress.update(self.task, completed=step + 1, stats=stats)

        def epoch_end(self, row, epochs):
            if self.progress is not None:
                self.progress.stop()
                self.progress = None
            _echo(epoch_line(row, epochs), as_json)

    return Console()


@contextlib.contextmanager
def _stop_on_sigterm():
    """While training, SIGTERM raises :class:`Stopped` in the main thread, as Ctrl-C
    raises KeyboardInterrupt: training ends as it does for Ctrl-C, with what was kept
    and how to resume, instead of dying silently."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def stop(signum, frame):
        raise Stopped(signum)

    previous = signal.signal(signal.SIGTERM, stop)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _stop_message(err: BaseException) -> tuple[str, int]:
    if isinstance(err, TrainStopped):
        return str(err), err.exit_code
    signum, why = stop_signal(err)
    return f"stopped by {why} before training started; nothing was trained", 128 + signum


@click.command()
@click.argument("spec", type=click.Path(path_type=str))
@click.option(
    "--data", type=click.Path(path_type=str),
    help="Local training data: a folder of class sub-folders, a cifar-10-batches-py folder "
    "or cifar-10-python.tar.gz, or a folder of MNIST idx files.",
)  # fmt: skip
@click.option(
    "--val", type=click.Path(path_type=str),
    help="Separate validation data (same forms; the test split of a download).",
)  # fmt: skip
@click.option(
    "--weights", metavar="PATH",
    help="Start from these weights (sets train.init_weights): a .keras or .weights.h5 file, "
    "a run folder (its best.keras, else model.keras) or keras:NAME.",
)  # fmt: skip
@click.option("--epochs", type=click.IntRange(min=1), help="Sets train.epochs.")
@click.option("--batch-size", type=click.IntRange(min=1), help="Sets train.batch_size.")
@click.option(
    "--out", type=click.Path(file_okay=False, path_type=str),
    help="Run folder.  [default: runs/<name>, numbered when taken]",
)  # fmt: skip
@click.option(
    "--set", "overrides", multiple=True, metavar="KEY.PATH=VALUE",
    help="Override a spec field, e.g. --set train.learning_rate=0.01 (repeatable).",
)  # fmt: skip
@click.option(
    "--resume", is_flag=True,
    help="Continue --out (or SPEC when it is a run folder, or the newest runs/<name>) "
    "from its last completed epoch.",
)  # fmt: skip
@click.option(
    "--stop-after", type=click.IntRange(min=1),
    help="Stop after N epochs in this call (resume later with --resume).",
)  # fmt: skip
@click.option(
    "--mixed-precision", type=click.Choice(["off", "float16", "bfloat16"]),
    help="Sets train.mixed_precision.",
)  # fmt: skip
@click.option(
    "--jit-compile", type=click.Choice(["auto", "on", "off"]), help="Sets train.jit_compile."
)
@click.option(
    "--cache-dir", type=click.Path(file_okay=False, path_type=str),
    help="Decoded-image cache.  [default: $NINCOMPILE_CACHE or ~/.cache/nincompile]",
)  # fmt: skip
@click.option(
    "--variant", metavar="NAME",
    help="Which variant of a spec with variants: to train (its name or the part after "
    "<spec name>_).",
)  # fmt: skip
@click.option(
    "--devices", metavar="N|all",
    help="Data-parallel over N local devices (JAX: keras.distribution; TensorFlow: "
    "MirroredStrategy).  [default: all when there are several accelerators]",
)  # fmt: skip
@click.option("--coordinator", metavar="HOST:PORT",
              help="Several processes (JAX): process 0's address, as "
              "KERAS_DISTRIBUTION_JOB_ADDRESSES.")  # fmt: skip
@click.option("--num-processes", type=click.IntRange(min=1),
              help="Several processes: how many (KERAS_DISTRIBUTION_NUM_PROCESSES).")  # fmt: skip
@click.option(
    "--process-id", type=click.IntRange(min=0),
    help="Several processes: this one's index (KERAS_DISTRIBUTION_PROCESS_ID).",
)  # fmt: skip
@click.option("--json", "as_json", is_flag=True, help="Print metrics.json at the end.")
@max_memory_option
@user_errors
def train(spec, out, resume, process_id, as_json, **options) -> None:
    """Train SPEC (a spec file, or a run folder with --resume) and write a run folder.

    The run folder holds spec.yaml (overrides applied), history.csv, metrics.json,
    curves.png, model.keras, best.keras, checkpoint/ (for --resume) and tensorboard/.
    Exits 1 on bad input, on a NaN loss (the last good epoch is kept) or when --resume
    meets a run made from another spec; 130 on Ctrl-C and 143 on SIGTERM, saying how
    to resume.
    """
    from .. import api

    if Path(spec).is_dir():
        if not resume:
            raise click.UsageError(
                f"'{spec}' is a folder: pass a spec file, or add --resume to continue a run"
            )
        if out is not None and Path(out).resolve() != Path(spec).resolve():
            raise click.UsageError("give the run folder once: as SPEC or as --out, not both")
    try:
        with _stop_on_sigterm():
            run = api.train(spec, out=out, resume=resume, process_id=process_id,
                            reporter=_console_reporter(as_json), **options)  # fmt: skip
    except (TrainStopped, Stopped, KeyboardInterrupt) as err:
        message, code = _stop_message(err)
        fail(message)
        sys.exit(code)
    if not run.chief:
        click.echo(f"process {process_id}: done; process 0 wrote {run.path}", err=as_json)
    elif as_json:
        click.echo(json.dumps({"run": str(run.path), **run.metrics}, indent=2))
    else:
        for line in summary_lines(run):
            click.echo(line)


def summary_lines(run) -> list[str]:
    """What ``nincompile train`` prints when a run ends: how to go on when it stopped
    early, the best and final validation accuracy, and where it is."""
    m, out = run.metrics, []
    if not run.finished:
        out.append(
            f"stopped after epoch {m.get('epochs_completed')} of {m.get('epochs')}; continue "
            f"with: nincompile train {run.path} --resume"
        )
    if run.best.get("val_accuracy") is not None:
        out.append(
            f"best val_accuracy {run.best['val_accuracy']:.4f} (epoch {run.best['epoch'] + 1}); "
            f"final val_accuracy {_fmt(run.final.get('val_accuracy'))}"
        )
    out.append(f"wrote {run.path}")
    return out


@click.command()
@click.argument("model", type=click.Path(path_type=str))
@click.option("--data", required=True, type=click.Path(path_type=str),
              help="Labelled images: a class folder, cifar-10-batches-py (its test_batch), "
              "cifar-10-python.tar.gz or MNIST idx files (t10k).")  # fmt: skip
@click.option("--batch-size", type=click.IntRange(min=1), default=256, show_default=True)
@click.option(
    "--confusion", type=click.Path(dir_okay=False, path_type=str),
    help="Where to write the confusion-matrix PNG.  [default: RUN/confusion.png or "
    "MODEL.confusion.png]",
)  # fmt: skip
@click.option("--cache-dir", type=click.Path(file_okay=False, path_type=str),
              help="Decoded-image cache.")  # fmt: skip
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
@max_memory_option
@user_errors
def evaluate(model, data, batch_size, confusion, cache_dir, as_json) -> None:
    """Loss, accuracy and per-class accuracy of MODEL (a run folder or a .keras file)."""
    from .. import api

    result = api.evaluate(model, data, batch_size=batch_size, confusion=confusion,
                          cache_dir=cache_dir)  # fmt: skip
    if as_json:
        click.echo(json.dumps(result, indent=2))
        return
    from ..data.sources import printable

    click.echo(f"{printable(result['model'])} on {printable(result['data'])}")
    click.echo(f"accuracy {result['accuracy']:.4f}  loss {result['loss']:.4f}  "
               f"({result['images']:,} images)")  # fmt: skip
    names = {name: printable(name) for name in result["per_class"]}
    width = max(len(n) for n in names.values()) if names else 5
    for name, row in result["per_class"].items():
        click.echo(f"  {names[name]:<{width}}  {row['accuracy']:.4f}  ({row['images']:,})")
    click.echo(f"wrote {printable(result['confusion_png'])}")


@click.command()
@click.argument("model", type=click.Path(path_type=str))
@click.argument("images", nargs=-1, required=True, type=click.Path(path_type=str))
@click.option("--top", type=click.IntRange(min=1), default=3, show_default=True,
              help="How many classes to show per image.")  # fmt: skip
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
@max_memory_option
@user_errors
def predict(model, images, top, as_json) -> None:
    """Classify IMAGES (files or folders) with MODEL (a run folder or a .keras file)."""
    from .. import api

    result = api.predict(model, list(images), top=top)
    if as_json:
        click.echo(json.dumps(result, indent=2))
        return
    from ..data.sources import printable

    for item in result:
        guesses = ", ".join(f"{printable(t['class'])} {t['probability']:.3f}" for t in item["top"])
        click.echo(f"{printable(item['file'])}: {guesses}")
