"""A run folder someone else made, or one a crash left behind, cannot hurt the user:
no write or delete follows a symbolic link out of it, every corrupt run file is a
one-line error naming the file and the field, a failure before the first epoch leaves
the folder usable, and SIGTERM or Ctrl-C say how to resume (SECURITY.md)."""

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from conftest import ROOT

from nincompile.cli import main
from nincompile.errors import NincompileError
from nincompile.runs import folder as runs
from nincompile.spec import load_spec
from nincompile.train.loop import train

TINY = """\
name: tiny
input: [12, 12, 3]
stages:
  - {conv: [6, 3], padding: same, batch_norm: true, activation: relu, pool: {max: 2}}
head: [gap, {dense: 4, activation: softmax}]
train: {optimizer: adam, learning_rate: 0.02, batch_size: 32, epochs: 3, seed: 3}
data: {dataset: synthetic, limit: 128, classes: [a, b, c, d]}
"""


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A run stopped after 2 of 3 epochs: state.json names ckpt-0002 and ckpt-0001."""
    base = tmp_path_factory.mktemp("trained")
    spec = base / "tiny.yaml"
    spec.write_text(TINY, encoding="utf-8")
    train(load_spec(spec), out=base / "run", stop_after=2)
    return base / "run"


@pytest.fixture
def run(trained, tmp_path):
    """A fresh copy of the trained run to spoil."""
    shutil.copytree(trained, tmp_path / "run", symlinks=True)
    return tmp_path / "run"


@pytest.fixture
def tiny(tmp_path):
    path = tmp_path / "tiny.yaml"
    path.write_text(TINY, encoding="utf-8")
    return path


def _cli(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


def _refused(result, *words):
    """Exit 1 with one clean line holding every word, last (after any progress notes),
    and no traceback or other exception."""
    assert result.exit_code == 1, result.output
    assert isinstance(result.exception, SystemExit), repr(result.exception)
    assert "Traceback" not in result.output
    lines = [line for line in result.output.splitlines() if line.strip()]
    for word in words:
        assert word in lines[-1], (word, result.output)
    return lines[-1]


def _state(run) -> dict:
    return json.loads((run / runs.CHECKPOINT / runs.STATE).read_text())


def _set_state(run, data) -> None:
    text = data if isinstance(data, str) else json.dumps(data)
    (run / runs.CHECKPOINT / runs.STATE).write_text(text)


def _tree(folder: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()
    }


# ----------------------------------------------------- 1. no write follows a link


def test_a_linked_lock_is_refused_and_its_target_is_untouched(run, tmp_path):
    notes = tmp_path / "notes.txt"
    notes.write_text("precious\n")
    (run / runs.LOCK).unlink(missing_ok=True)
    (run / runs.LOCK).symlink_to(notes)
    result = _cli("train", run, "--resume")
    _refused(result, ".lock", "symbolic link")
    assert notes.read_text() == "precious\n"


def test_a_hard_linked_or_special_lock_is_refused(tmp_path):
    folder = tmp_path / "r"
    folder.mkdir()
    notes = tmp_path / "notes.txt"
    notes.write_text("precious\n")
    os.link(notes, folder / runs.LOCK)
    with pytest.raises(NincompileError, match=r"\.lock.*other name"):
        with runs.RunFolder(folder).lock():
            pass
    assert notes.read_text() == "precious\n"
    (folder / runs.LOCK).unlink()
    os.mkfifo(folder / runs.LOCK)
    with pytest.raises(NincompileError, match=r"\.lock.*not a regular file"):
        with runs.RunFolder(folder).lock():
            pass


@pytest.mark.parametrize("sub", [runs.CHECKPOINT, runs.TENSORBOARD])
def test_a_linked_sub_folder_is_refused_before_anything_is_written(run, tmp_path, sub):
    elsewhere = tmp_path / "elsewhere"
    shutil.move(run / sub, elsewhere)
    (elsewhere / "ckpt-0009.npz").write_bytes(b"someone else's file")
    (run / sub).symlink_to(elsewhere, target_is_directory=True)
    before = _tree(elsewhere)
    result = _cli("train", run, "--resume")
    _refused(result, sub, "symbolic link")
    assert _tree(elsewhere) == before


@pytest.mark.parametrize("name", [runs.HISTORY, runs.MODEL, runs.METRICS, runs.SPEC])
def test_a_linked_run_file_is_refused(run, tmp_path, name):
    elsewhere = tmp_path / name
    shutil.move(run / name, elsewhere)
    (run / name).symlink_to(elsewhere)
    before = elsewhere.read_bytes()
    _refused(_cli("train", run, "--resume"), name, "symbolic link")
    if name != runs.SPEC:  # compare does not read the spec
        _refused(_cli("compare", run, "--out", tmp_path / "cmp"), name, "symbolic link")
    assert elsewhere.read_bytes() == before


@pytest.mark.parametrize(
    "checkpoint", ["../../outside.npz", "../history.csv", "/etc/passwd", "ckpt-0002.npz/x"]
)
def test_state_cannot_name_a_checkpoint_outside_the_run(run, checkpoint):
    shutil.copy(run / runs.CHECKPOINT / "ckpt-0002.npz", run.parent / "outside.npz")
    state = _state(run)
    state["checkpoint"] = checkpoint
    _set_state(run, state)
    _refused(_cli("train", run, "--resume"), "state.json", "checkpoint")


class _Hung(Exception):
    pass


@pytest.fixture
def alarm():
    """Fail instead of hanging: a blocked open() is interrupted after 10 s."""

    def ring(signum, frame):
        raise _Hung("hung")

    old = signal.signal(signal.SIGALRM, ring)
    signal.alarm(10)
    yield
    signal.alarm(0)
    signal.signal(signal.SIGALRM, old)


def test_a_fifo_checkpoint_is_refused_without_opening_it(run, alarm):
    latest = run / runs.CHECKPOINT / "ckpt-0002.npz"
    latest.unlink()
    os.mkfifo(latest)
    with pytest.raises(NincompileError, match=r"ckpt-0002\.npz.*not a regular file"):
        runs.RunFolder(run).load_checkpoint()


def test_a_linked_checkpoint_is_refused(run, tmp_path):
    latest = run / runs.CHECKPOINT / "ckpt-0002.npz"
    shutil.move(latest, tmp_path / "real.npz")
    latest.symlink_to(tmp_path / "real.npz")
    with pytest.raises(NincompileError, match=r"ckpt-0002\.npz.*symbolic link"):
        runs.RunFolder(run).load_checkpoint()


def test_a_fifo_state_file_is_refused(run, alarm):
    state = run / runs.CHECKPOINT / runs.STATE
    state.unlink()
    os.mkfifo(state)
    _refused(_cli("train", run, "--resume"), "state.json", "not a regular file")


def _image_folder(root: Path) -> Path:
    """One 12x12 image in each of the tiny model's four class folders."""
    from PIL import Image

    for i, name in enumerate("abcd"):
        (root / name).mkdir(parents=True)
        Image.fromarray(np.full((12, 12, 3), 40 * i, np.uint8)).save(root / name / "x.png")
    return root


def _model_command(command: str, model: Path, tmp_path: Path) -> list:
    images = tmp_path / "images"
    if not images.is_dir():
        _image_folder(images)
    return {
        "evaluate": ["evaluate", model, "--data", images, "--confusion", tmp_path / "c.png"],
        "predict": ["predict", model, images],
        "export": ["export", model, "-o", tmp_path / "m.onnx"],
    }[command]


def _link_away(run: Path, name: str, tmp_path: Path) -> None:
    """Move the run's ``name`` out of it and leave a link to it in its place."""
    elsewhere = tmp_path / "elsewhere" / name
    elsewhere.parent.mkdir()
    shutil.move(run / name, elsewhere)
    (run / name).symlink_to(elsewhere)


@pytest.mark.parametrize("command", ["evaluate", "predict", "export"])
@pytest.mark.parametrize("name", [runs.MODEL, runs.SPEC])
def test_a_linked_file_of_a_run_folder_is_not_loaded(run, tmp_path, command, name):
    """evaluate, predict and export of a run folder read model.keras and spec.yaml as
    train --resume does: a link there (here to a valid copy, which would load) is
    refused, naming the file, and never followed."""
    _link_away(run, name, tmp_path)
    _refused(_cli(*_model_command(command, run, tmp_path)), name, "symbolic link")
    assert not (tmp_path / "m.onnx").exists() and not (run / "confusion.png").exists()


@pytest.mark.parametrize("command", ["evaluate", "predict", "export"])
@pytest.mark.parametrize("name", [runs.BEST, runs.MODEL, runs.SPEC])
def test_a_linked_file_beside_a_saved_model_of_a_run_is_not_loaded(run, tmp_path, command, name):
    """RUN/best.keras (or RUN/model.keras) is read with the spec.yaml beside it: when
    either is a link, the command refuses it rather than following it."""
    model = run / (runs.MODEL if name == runs.SPEC else name)
    _link_away(run, name, tmp_path)
    _refused(_cli(*_model_command(command, model, tmp_path)), name, "symbolic link")


def test_a_linked_model_outside_any_run_folder_is_the_users_choice(run, tmp_path):
    """A .keras file the user links to from a folder of their own (no spec.yaml beside
    it) loads: the link is what the user named, not something found in a run folder."""
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "latest.keras").symlink_to(run / runs.BEST)
    result = _cli(*_model_command("predict", mine / "latest.keras", tmp_path))
    assert result.exit_code == 0, result.output
    assert "x.png" in result.output


@pytest.mark.parametrize("command", ["evaluate", "predict"])
def test_a_fifo_in_a_run_folder_is_refused_without_opening_it(run, tmp_path, alarm, command):
    (run / runs.SPEC).unlink()
    os.mkfifo(run / runs.SPEC)
    _refused(_cli(*_model_command(command, run, tmp_path)), runs.SPEC, "not a regular file")


# ------------------------------------------ 2. a failure before epoch 1 leaves --out usable


def _fail_in_data_loading(tiny, out):
    """A data error after the folder is locked leaves only our .lock behind."""
    bad = _cli("train", tiny, "--out", out, "--set", "data.dataset=folder", "--data",
               out.parent / "missing")  # fmt: skip
    assert bad.exit_code == 1, bad.output
    names = {p.name for p in out.iterdir()}
    assert names <= {runs.LOCK}, names
    (out / ".spec.k2j4x9_q.yaml").write_text("half")  # as a kill during the write leaves


def test_a_folder_with_only_our_lock_and_temporaries_takes_a_fresh_run(tiny, tmp_path):
    out = tmp_path / "r"
    _fail_in_data_loading(tiny, out)
    ok = _cli("train", tiny, "--out", out, "--epochs", "1")
    assert ok.exit_code == 0, ok.output
    assert (out / runs.CHECKPOINT / runs.STATE).is_file()
    assert not (out / ".spec.k2j4x9_q.yaml").exists()


def test_resume_of_a_folder_that_never_finished_an_epoch_starts_it(tiny, tmp_path):
    out = tmp_path / "r"
    _fail_in_data_loading(tiny, out)
    ok = _cli("train", tiny, "--out", out, "--epochs", "1", "--resume")
    assert ok.exit_code == 0, ok.output
    assert "no completed epoch" in ok.output
    assert _state(out)["epoch"] == 1


def test_other_files_still_make_the_folder_taken(tmp_path, tiny):
    out = tmp_path / "r"
    out.mkdir()
    (out / runs.LOCK).write_text("1")
    (out / "notes.txt").write_text("mine")
    result = _cli("train", tiny, "--out", out)
    _refused(result, "not empty")
    assert runs.is_empty_run_folder(tmp_path / "missing")
    lock_only = tmp_path / "lock_only"
    lock_only.mkdir()
    (lock_only / runs.LOCK).symlink_to(tmp_path / "x")  # a linked lock is not ours
    assert not runs.is_empty_run_folder(lock_only)


# ---------------------------------------------------- 3. corrupt run files: one line


@pytest.mark.parametrize(
    "edit, words",
    [
        (lambda s: [s], ("state.json", "expected a JSON object")),
        (lambda s: "{", ("state.json", "not valid JSON")),
        (lambda s: {**s, "epoch": "two"}, ("state.json", "epoch")),
        (lambda s: {**s, "epoch": None}, ("state.json", "epoch")),
        (lambda s: {**s, "epoch": 1.9}, ("state.json", "epoch")),
        (lambda s: {**s, "epoch": True}, ("state.json", "epoch")),
        (lambda s: {**s, "epoch": 0}, ("state.json", "epoch")),
        (lambda s: {**s, "epoch": 1}, ("state.json", "epoch 1", "ckpt-0002.npz")),
        (lambda s: {k: v for k, v in s.items() if k != "epoch"}, ("state.json", "epoch")),
        (lambda s: {**s, "checkpoint": 7}, ("state.json", "checkpoint")),
        (lambda s: {**s, "spec_sha256": 5}, ("state.json", "spec_sha256")),
        (lambda s: {**s, "train_seconds": "fast"}, ("state.json", "train_seconds")),
        (lambda s: {**s, "best": "x"}, ("state.json", "best")),
        (lambda s: {**s, "best": {"epoch": "one"}}, ("state.json", "best.epoch")),
        (lambda s: {**s, "previous": []}, ("state.json", "previous")),
        (lambda s: {**s, "previous": {**s["previous"], "epoch": 2}}, ("state.json", "previous")),
    ],
)
def test_a_corrupt_state_file_is_one_line(run, edit, words):
    _set_state(run, edit(_state(run)))
    _refused(_cli("train", run, "--resume"), *words)


def _rewrite_npz(path: Path, change) -> None:
    with np.load(path) as z:
        arrays = {k: z[k] for k in z.files}
    key = sorted(arrays)[0]
    arrays[key] = change(arrays[key])
    with open(path, "wb") as f:
        np.savez(f, **arrays)


@pytest.mark.parametrize(
    "change",
    [
        lambda a: np.full(a.shape, "x"),  # text of the right shape
        lambda a: np.array([object()] * a.size, dtype=object).reshape(a.shape),  # a pickle
    ],
)
def test_a_checkpoint_array_that_is_not_numbers_is_refused(run, change):
    state = _state(run)
    state["previous"] = None  # nothing to fall back to
    _set_state(run, state)
    _rewrite_npz(run / runs.CHECKPOINT / "ckpt-0002.npz", change)
    _refused(_cli("train", run, "--resume"), "ckpt-0002.npz", "00000_model")


def _history_lines(run) -> list[str]:
    return (run / runs.HISTORY).read_text().splitlines()


def _cell(lines, row, column, value):
    cells = lines[row].split(",")
    cells[runs.HISTORY_COLUMNS.index(column)] = value
    return lines[:row] + [",".join(cells)] + lines[row + 1 :]


@pytest.mark.parametrize(
    "spoil, words",
    [
        (lambda lines: lines[1:], ("history.csv:1", "header")),
        (lambda lines: _cell(lines, 2, "loss", "abc"), ("history.csv:3", "loss", "abc")),
        (lambda lines: _cell(lines, 1, "epoch", "0.5"), ("history.csv:2", "epoch")),
        (lambda lines: _cell(lines, 1, "epoch", ""), ("history.csv:2", "epoch")),
        (
            lambda lines: [lines[0], lines[1] + ",7"] + lines[2:],
            ("history.csv:2", f"{len(runs.HISTORY_COLUMNS) + 1} values"),
        ),
        (lambda lines: [lines[0], "0,1"] + lines[2:], ("history.csv:2", "2 values")),
        (lambda lines: b"\x00\xff\xfe\x89PNG\x00" * 20, ("history.csv",)),
        (lambda lines: lines[:1] + ["0" + "," * 7 + "\x00"] + lines[2:], ("history.csv",)),
    ],
)
def test_a_corrupt_history_is_one_line_in_resume_and_compare(run, tmp_path, spoil, words):
    spoilt = spoil(_history_lines(run))
    if isinstance(spoilt, bytes):
        (run / runs.HISTORY).write_bytes(spoilt)
    else:
        (run / runs.HISTORY).write_text("\n".join(spoilt) + "\n")
    _refused(_cli("train", run, "--resume"), *words)
    _refused(_cli("compare", run, "--out", tmp_path / "cmp"), *words)


def test_resume_without_its_state_leaves_a_trained_run_alone(run):
    """A trained run whose checkpoint/state.json is gone is refused, every file kept:
    resume took it for a run that never finished an epoch and trained over it."""
    (run / runs.CHECKPOINT / runs.STATE).unlink()
    before = {p: p.read_bytes() for p in run.rglob("*") if p.is_file() and p.name != runs.LOCK}
    line = _refused(_cli("train", run, "--resume"), "cannot resume", "no checkpoint/state.json")
    assert "model.keras, best.keras" in line
    after = {p: p.read_bytes() for p in run.rglob("*") if p.is_file() and p.name != runs.LOCK}
    assert after == before


@pytest.mark.parametrize(
    "text, words",
    [
        ("[]", ("metrics.json", "expected a JSON object")),
        ("{", ("metrics.json", "not valid JSON")),
        ('{"final": "x"}', ("metrics.json", "final")),
        ('{"best": [1]}', ("metrics.json", "best")),
        ('{"best": {"val_accuracy": "high"}}', ("metrics.json", "best.val_accuracy")),
        ('{"params": "many"}', ("metrics.json", "params")),
        ('{"params": {"total": 1.5}}', ("metrics.json", "params.total")),
        ('{"images_per_second": "fast"}', ("metrics.json", "images_per_second")),
        ('{"name": ["a"]}', ("metrics.json", "name")),
        ('{"macs": "many"}', ("metrics.json", "macs")),
        ('{"seed": 1.5}', ("metrics.json", "seed")),
    ],
)
def test_a_malformed_metrics_file_is_one_line_in_compare(run, tmp_path, text, words):
    (run / runs.METRICS).write_text(text)
    _refused(_cli("compare", run, "--out", tmp_path / "cmp"), *words)


# ------------------------------------------------------- 4. signals, leftovers, output


def test_sigterm_stops_with_how_to_resume(tmp_path):
    spec = tmp_path / "tiny.yaml"
    spec.write_text(TINY.replace("epochs: 3", "epochs: 200"), encoding="utf-8")
    run = tmp_path / "run"
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "nincompile.cli", "train", str(spec), "--out", str(run)],
        cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 240
        while not (run / runs.CHECKPOINT / runs.STATE).is_file():
            assert proc.poll() is None, proc.communicate()
            assert time.monotonic() < deadline, "no epoch finished in 240 s"
            time.sleep(0.2)
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 128 + signal.SIGTERM, (out, err)
    assert "Traceback" not in err, err
    assert "stopped by SIGTERM" in err, err
    assert f"nincompile train {run} --resume" in err, err
    assert not [p for p in run.rglob(".*.*") if p.name != runs.LOCK], "a temporary file was left"


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_a_stop_dropped_where_it_landed_still_stops(tiny, tmp_path, monkeypatch, signum):
    """A signal's handler runs at whatever line the main thread is on; where that is a
    library which drops what its callbacks raise (or a destructor, whose exceptions
    Python drops), the stop must still arrive: as the next batch begins."""
    from nincompile.data import pipeline

    reseed = pipeline.reseed

    def dropping(model, seed, epoch):
        if epoch == 1:
            try:
                os.kill(os.getpid(), signum)
                time.sleep(0.5)  # the handler runs here, before the sleep ends
            except BaseException:  # noqa: S110  (what such a library does)
                pass
        reseed(model, seed, epoch)

    monkeypatch.setattr(pipeline, "reseed", dropping)
    out = tmp_path / "r"
    # the premise: Ctrl-C raises, as in a terminal (a test process may have been handed
    # SIGINT ignored, and then the stop is rightly never noted)
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        result = _cli("train", tiny, "--out", out)
    finally:
        signal.signal(signal.SIGINT, previous)
    assert result.exit_code == 128 + signum, result.output
    why = "Ctrl-C" if signum == signal.SIGINT else "SIGTERM"
    assert f"stopped by {why} after 1 of 3 epochs" in result.output, result.output
    assert runs.RunFolder(out).state()["epoch"] == 1


def test_the_stop_check_leaves_the_batch_ends_to_keras():
    """The per-batch stop check must not override a batch-end hook: Keras then reads
    every batch's logs back in the main thread (no asynchronous dispatch), which stalls
    a GPU at each step."""
    import keras

    from nincompile.train.interrupts import Check

    base = keras.callbacks.Callback
    for hook in ("on_train_batch_end", "on_test_batch_end", "on_batch_end"):
        assert getattr(Check, hook) is getattr(base, hook), hook


def test_ctrl_c_stops_with_how_to_resume(tiny, tmp_path, monkeypatch):
    from nincompile.train import report

    calls = []

    def curves(*args, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt

    monkeypatch.setattr(report, "curves", curves)
    out = tmp_path / "r"
    result = _cli("train", tiny, "--out", out)
    assert result.exit_code == 130, result.output
    assert "stopped by Ctrl-C" in result.output
    assert "1 of 3 epochs" in result.output
    assert f"nincompile train {out} --resume" in result.output


def test_ctrl_c_before_the_first_epoch_says_how_to_start_again(tiny, tmp_path, monkeypatch):
    from nincompile.train import loop

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(loop, "training_data", interrupted)
    out = tmp_path / "r"
    result = _cli("train", tiny, "--out", out)
    assert result.exit_code == 130, result.output
    assert "stopped by Ctrl-C before the first epoch" in result.output
    assert f"run the same command with --out {out}" in result.output
    assert runs.is_empty_run_folder(out)


OURS = [
    ".history.ab3d_9xz.csv",
    ".model.q0w9e8r7.keras",
    "checkpoint/.ckpt-0003.abcdefgh.npz",
    "checkpoint/.state.12345678.json",
    ".spec.k2j4x9_q.yaml",
    ".curves.zzzzzzzz.png",
]
NOT_OURS = [
    ".notes.txt",
    ".history.csv.bak",
    ".model.keras",
    "mine.npz",
    ".history.toolongname.csv",
    "checkpoint/.other.abcdefgh.npz",
    ".confusion.abcdefgh.png",  # evaluate's, which does not take the lock
]


def test_stale_temporaries_are_removed_only_when_we_hold_the_lock(run):
    for name in OURS + NOT_OURS:
        (run / name).write_text("left over")
    holder = subprocess.Popen(
        [sys.executable, "-c", "import fcntl, sys, time; f = open(sys.argv[1], 'a+'); "
         "fcntl.flock(f, fcntl.LOCK_EX); print('locked', flush=True); time.sleep(60)",
         str(run / runs.LOCK)],
        stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert holder.stdout.readline().strip() == "locked"
        _refused(_cli("train", run, "--resume"), "in use by another live run")
        assert all((run / name).exists() for name in OURS + NOT_OURS)
    finally:
        holder.kill()
        holder.wait()
    ok = _cli("train", run, "--resume")
    assert ok.exit_code == 0, ok.output
    assert [name for name in OURS if (run / name).exists()] == []
    assert [name for name in NOT_OURS if not (run / name).exists()] == []


def test_compare_escapes_table_cells(run, tmp_path):
    metrics = json.loads((run / runs.METRICS).read_text())
    metrics["name"] = "evil|name\nwith a break\x1b[31m"
    (run / runs.METRICS).write_text(json.dumps(metrics))
    result = _cli("compare", run, "--out", tmp_path / "cmp")
    assert result.exit_code == 0, result.output
    table = [
        line for line in (tmp_path / "cmp" / "compare.md").read_text().splitlines()
        if line.startswith("|")
    ]  # fmt: skip
    assert len(table) == 3  # header, rule, one row
    cells = [line.replace("\\|", "").count("|") for line in table]
    assert cells[0] == cells[1] == cells[2], table
    assert "evil\\|name<br>with a break\\x1b[31m" in table[2]
    assert "\x1b" not in result.output
