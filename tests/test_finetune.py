"""Fine-tuning (issue 19): ``train.init_weights`` / ``train --weights``, ``init_skip``,
``freeze`` (counts equal Keras's), tiny models on synthetic data."""

import json
import os

import numpy as np
import pytest
from click.testing import CliRunner
from conftest import ROOT
from doctext import CIFAR, docs_text, fake_cifar

from nincompile import api
from nincompile.cli import main
from nincompile.errors import SpecError
from nincompile.runs import folder as runs
from nincompile.spec import load_spec
from nincompile.spec.overrides import apply_overrides
from nincompile.train.loop import train

BASE = """\
name: tiny
input: [12, 12, 3]
stages:
  - {conv: [6, 3], padding: same, batch_norm: true, activation: relu, pool: {max: 2}}
  - {conv: [8, 3], padding: same, batch_norm: true, activation: relu}
head: [gap, {dense: 4, activation: softmax}]
train: {optimizer: adam, learning_rate: 0.02, batch_size: 32, epochs: 1, seed: 3}
data: {dataset: synthetic, limit: 96, classes: [a, b, c, d]}
"""
#: the same model with a head of three classes, its convolutions frozen
FINETUNE = [
    "head.1.dense=3",
    "data.classes=[a, b, c]",
    "train.freeze=[stage1, stage2]",
    "train.init_skip=[head2]",
    "train.seed=5",
]


def _keras_weights(path):
    import keras

    model = keras.saving.load_model(path, compile=False)
    return {layer.name: [np.asarray(w) for w in layer.weights] for layer in model.layers}


@pytest.fixture(scope="module")
def base_run(tmp_path_factory):
    """A trained run of BASE (one epoch)."""
    folder = tmp_path_factory.mktemp("base")
    spec = folder / "base.yaml"
    spec.write_text(BASE)
    train(load_spec(spec), out=folder / "run")
    return spec, folder / "run"


def _source(spec, extra=()):
    return apply_overrides(load_spec(spec), list(extra))


# ----------------------------------------------------------------------------- freeze


@pytest.mark.parametrize(
    ("freeze", "trainable", "non_trainable"),
    [
        ("[stage1, stage2]", 36, 664),
        ("{all_but: [head2]}", 36, 664),
        ("[stage1_bn, head2_dense]", 672 - 12 - 36, 28 + 12 + 36),
        ("[]", 672, 28),
    ],
)
def test_freeze_counts_equal_keras(spec_file, freeze, trainable, non_trainable):
    path = spec_file(BASE.replace("seed: 3}", f"seed: 3, freeze: {freeze}}}"))
    compiled = api.compile_spec(path)
    counts = compiled.counts()
    assert counts == {
        "total": 700,
        "trainable": trainable,
        "non_trainable": non_trainable,
    }, counts
    from nincompile.keras_builder import count_params

    model = api.build(compiled)  # also proves Keras's counts equal the IR's
    assert count_params(model) == counts
    for layer in compiled.graph.layers():  # the table's rows add up to the totals
        assert layer.params.total == model.get_layer(layer.name).count_params()
    assert sum(row.params.trainable for row in compiled.graph.layers()) == trainable


def test_check_and_build_report_counts_after_freezing(spec_file, tmp_path):
    text = BASE.replace("seed: 3}", "seed: 3, freeze: [stage1, stage2]}")
    path = spec_file(text + "expect: {params: 700, trainable: 36, non_trainable: 664}\n")
    runner = CliRunner()
    result = runner.invoke(main, ["check", str(path)])
    assert result.exit_code == 0, result.output
    assert "trainable 36, non-trainable 664" in result.output
    assert "match 'expect:'" in result.output
    result = runner.invoke(main, ["build", str(path), "-o", str(tmp_path / "b")])
    assert result.exit_code == 0, result.output
    assert "trainable 36, non-trainable 664" in result.output
    summary = json.loads(runner.invoke(main, ["check", str(path), "--json"]).stdout)
    assert summary["params"] == {"total": 700, "trainable": 36, "non_trainable": 664}
    # an expect: written before freezing is now wrong, and says so
    wrong = spec_file(text + "expect: {trainable: 672}\n", "wrong.yaml")
    result = runner.invoke(main, ["check", str(wrong)])
    assert result.exit_code == 1
    assert "trainable: expected 672, actual 36" in result.output


def test_unknown_layer_names_are_located_errors(spec_file):
    path = spec_file(
        BASE.replace("seed: 3}", "seed: 3, freeze: [stage1, stage10], init_skip: [haed2]}")
    )
    with pytest.raises(SpecError) as info:
        api.compile_spec(path)
    problems = [str(p) for p in info.value.problems]
    assert len(problems) == 2, problems
    assert "train.freeze[1]: 'stage10' names no layer of the model" in problems[0]
    assert "(stage1, stage2, head1, head2)" in problems[0]
    assert "train.init_skip[0]: 'haed2' names no layer" in problems[1]
    assert "did you mean 'head2'?" in problems[1]
    assert all(p.startswith(f"{path}:7:") for p in problems), problems
    # stage1 does not stand for stage10_conv, nor 'stage' for stage1
    assert api.compile_spec(
        spec_file(BASE.replace("seed: 3}", "seed: 3, freeze: [stage1]}"))
    ).graph.frozen == {"stage1_conv", "stage1_bn", "stage1_relu", "stage1_maxpool"}
    with pytest.raises(SpecError, match="'stage' names no layer"):
        api.compile_spec(spec_file(BASE.replace("seed: 3}", "seed: 3, freeze: [stage]}")))


def test_bad_freeze_values_are_schema_errors(spec_file):
    for value, words in (
        ("{all_but: []}", "all_but"),
        ("{all: [head2]}", "all"),
        ("stage1", "freeze"),
    ):
        path = spec_file(BASE.replace("seed: 3}", f"seed: 3, freeze: {value}}}"))
        with pytest.raises(SpecError) as info:
            api.compile_spec(path)
        text = str(info.value)
        assert "train.freeze" in text and words in text, text


# ----------------------------------------------------------------------- init weights


def test_finetune_keeps_frozen_weights_and_trains_the_head(base_run, tmp_path):
    spec, base = base_run
    out = tmp_path / "ft"
    result = CliRunner().invoke(
        main,
        ["train", str(spec), "--weights", str(base), "--out", str(out), "--epochs", "2"]
        + [arg for s in FINETUNE for arg in ("--set", s)],
    )
    assert result.exit_code == 0, result.output
    assert f"from {base / runs.BEST}" in result.output
    assert "skipped, keeping their initial values: head2_dense" in result.output
    before, after = _keras_weights(base / runs.BEST), _keras_weights(out / runs.MODEL)
    for name in ("stage1_conv", "stage1_bn", "stage2_conv", "stage2_bn"):
        for a, b in zip(before[name], after[name], strict=True):  # BN statistics too
            np.testing.assert_array_equal(a, b)
    assert after["head2_dense"][0].shape == (8, 3)
    metrics = json.loads((out / runs.METRICS).read_text())
    init = metrics["init_weights"]
    assert init["source"] == str(base) and init["skipped"] == ["head2_dense"]
    assert init["layers"] == 4 and init["file"] == str(base / runs.BEST)
    assert metrics["params"] == {"total": 691, "trainable": 27, "non_trainable": 664}
    spec_text = (out / runs.SPEC).read_text()
    assert "init_weights:" in spec_text and "freeze:" in spec_text


def test_head_trains_from_its_initial_values(base_run, tmp_path):
    """Skipped layers keep the values the seed gives them; trained, they move."""
    spec, base = base_run
    source = _source(spec, [*FINETUNE, f"train.init_weights={json.dumps(str(base))}"])
    import keras

    keras.utils.set_random_seed(5)
    initial = api.build(api.compile_source(source)).get_layer("head2_dense").get_weights()
    train(source, out=tmp_path / "ft")
    after = _keras_weights(tmp_path / "ft" / runs.MODEL)["head2_dense"]
    assert not np.array_equal(initial[0], after[0])


def test_layers_that_do_not_fit_are_named(base_run, tmp_path):
    spec, base = base_run
    result = CliRunner().invoke(
        main,
        ["train", str(spec), "--weights", str(base / runs.MODEL), "--out", str(tmp_path / "x"),
         "--set", "head.1.dense=3", "--set", "data.classes=[a, b, c]"],
    )  # fmt: skip
    assert result.exit_code == 1
    assert "Traceback" not in result.output
    assert "target layer 'head2_dense' has [(8, 3), (3,)]" in result.output
    assert "train.init_skip" in result.output


@pytest.mark.parametrize("form", ["weights.h5", "keras", "run"])
def test_weights_sources(base_run, tmp_path, form):
    import keras

    spec, base = base_run
    model = keras.saving.load_model(base / runs.MODEL, compile=False)
    if form == "weights.h5":
        path = tmp_path / "w.weights.h5"
        model.save_weights(path)
    elif form == "keras":
        path = tmp_path / "m.keras"
        model.save(path)
    else:
        path = tmp_path / "run"
        path.mkdir()
        (path / runs.MODEL).write_bytes((base / runs.MODEL).read_bytes())  # no best.keras
    source = _source(spec, [f"train.init_weights={json.dumps(str(path))}", "train.freeze=[stage1]"])
    result = train(source, out=tmp_path / "ft")
    after = _keras_weights(tmp_path / "ft" / runs.MODEL)
    for a, b in zip(model.get_layer("stage1_conv").get_weights(), after["stage1_conv"],
                    strict=True):  # fmt: skip
        np.testing.assert_array_equal(a, b)
    assert result.metrics["init_weights"]["skipped"] == []


def test_unsafe_and_missing_sources_are_refused(base_run, tmp_path, monkeypatch):
    spec, base = base_run
    runner = CliRunner()

    def attempt(weights, *extra):
        out = tmp_path / f"out{len(list(tmp_path.iterdir()))}"
        result = runner.invoke(
            main, ["train", str(spec), "--weights", str(weights), "--out", str(out), *extra]
        )
        assert result.exit_code == 1, result.output
        assert "Traceback" not in result.output
        return result.output

    assert "no such file" in attempt(tmp_path / "nothing.keras")
    empty = tmp_path / "empty"
    empty.mkdir()
    assert "without best.keras or model.keras" in attempt(empty)
    fifo = tmp_path / "fifo.keras"
    os.mkfifo(fifo)
    assert "not a regular file" in attempt(fifo)
    linked = tmp_path / "linked"
    linked.mkdir()
    (linked / runs.BEST).symlink_to(base / runs.BEST)
    assert "symbolic link" in attempt(linked)
    monkeypatch.setenv("NINCOMPILE_MAX_MEMORY", "8KiB")
    assert "does not fit in memory" in attempt(base)


def test_resume_does_not_reload_the_init_weights(base_run, tmp_path):
    spec, base = base_run
    copy = tmp_path / "copy.keras"
    copy.write_bytes((base / runs.BEST).read_bytes())
    source = _source(spec, [f"train.init_weights={json.dumps(str(copy))}", "train.epochs=2"])
    train(source, out=tmp_path / "straight")
    train(source, out=tmp_path / "pieces", stop_after=1)
    copy.unlink()  # resuming needs only the checkpoint
    result = train(source, out=tmp_path / "pieces", resume=True)
    a = _keras_weights(tmp_path / "straight" / runs.MODEL)
    b = _keras_weights(tmp_path / "pieces" / runs.MODEL)
    for name in a:
        for x, y in zip(a[name], b[name], strict=True):
            np.testing.assert_array_equal(x, y)
    assert result.metrics["init_weights"]["sha256"]


def test_generated_module_freezes_the_same_layers(spec_file, tmp_path):
    import importlib.util

    from nincompile.codegen import render_source
    from nincompile.keras_builder import count_params

    path = spec_file(BASE.replace("seed: 3}", "seed: 3, freeze: {all_but: [head2]}}"))
    compiled = api.compile_spec(path)
    module = tmp_path / "tiny_gen.py"
    module.write_text(render_source(compiled.source))
    spec = importlib.util.spec_from_file_location("tiny_gen", module)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    assert count_params(mod.build_model()) == compiled.counts()
    assert "36 trainable, 664 non-trainable" in module.read_text()


# ------------------------------------------------------------------ training longer


def test_resume_trains_longer_as_if_planned_from_the_start(base_run, tmp_path):
    spec, _ = base_run
    runner = CliRunner()
    straight, longer = tmp_path / "straight", tmp_path / "longer"
    assert runner.invoke(main, ["train", str(spec), "--out", str(straight), "--epochs", "3"]
                         ).exit_code == 0  # fmt: skip
    assert runner.invoke(main, ["train", str(spec), "--out", str(longer), "--epochs", "2"]
                         ).exit_code == 0  # fmt: skip
    result = runner.invoke(main, ["train", str(longer), "--resume", "--epochs", "3"])
    assert result.exit_code == 0, result.output
    assert "resuming with changes: train.epochs 2 -> 3" in result.output
    a, b = _keras_weights(straight / runs.MODEL), _keras_weights(longer / runs.MODEL)
    for name in a:  # a constant schedule: the same steps as a 3-epoch run
        for x, y in zip(a[name], b[name], strict=True):
            np.testing.assert_array_equal(x, y)
    rows = runs.RunFolder(longer).read_history()
    assert [r["planned_epochs"] for r in rows] == [2, 2, 3]
    assert load_spec(longer / runs.SPEC).spec.train.epochs == 3
    metrics = json.loads((longer / runs.METRICS).read_text())
    assert metrics["resumed_with_changes"] == [
        {"after_epoch": 2, "changed": {"train.epochs": {"run": 2, "now": 3}}}
    ]
    # the recorded spec is the run's now: a plain resume has nothing left to do
    again = runner.invoke(main, ["train", str(longer), "--resume"])
    assert again.exit_code == 0 and "resuming with changes" not in again.output


def test_resume_refuses_other_changes_naming_them(base_run, tmp_path):
    spec, _ = base_run
    runner = CliRunner()
    out = tmp_path / "r"
    assert runner.invoke(main, ["train", str(spec), "--out", str(out), "--epochs", "2"]
                         ).exit_code == 0  # fmt: skip
    result = runner.invoke(
        main, ["train", str(out), "--resume", "--epochs", "3", "--set", "head.1.dense=5",
               "--set", "data.limit=64"],
    )  # fmt: skip
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert "head[1].dense: run 4, now 5" in result.output
    assert "data.limit: run 96, now 64" in result.output
    assert "train.epochs" not in result.output.split("differs in what was trained")[1].split(";")[0]
    # a schedule may change beyond the epochs trained, not before
    result = runner.invoke(
        main, ["train", str(out), "--resume", "--epochs", "3", "--set", "train.lr_schedule=cosine"]
    )
    assert result.exit_code == 1
    assert "changes epochs already trained (epoch 1: 0.02 in the run" in result.output
    result = runner.invoke(
        main, ["train", str(out), "--resume", "--epochs", "3",
               "--set", "train.lr_schedule={0: 0.02, 2: 0.002}"],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    rows = runs.RunFolder(out).read_history()
    assert rows[-1]["learning_rate"] == pytest.approx(0.002)
    assert [r["planned_epochs"] for r in rows] == [2, 2, 3]
    fewer = runner.invoke(main, ["train", str(out), "--resume", "--epochs", "2"])
    assert fewer.exit_code == 1 and "it has trained 3 epochs already" in fewer.output


# ---------------------------------------------------------------------- README proof


def _readme_block(heading: str, fence: str = "bash") -> str:
    """The first ``fence`` block of the README's section ``heading``."""
    readme = docs_text()
    section = readme.split(f"\n{heading}\n", 1)[1]
    return section.split(f"```{fence}\n", 1)[1].split("```", 1)[0]


def _readme_commands(heading: str = "## Fine-tune a model") -> list[str]:
    return _readme_block(heading).strip().splitlines()


def test_readme_finetune_commands(tmp_path, monkeypatch):
    """Every command of the README's "Fine-tune a model", on 8 generated 32x32 images
    per CIFAR-10 class in place of the archive and one epoch per run (``--epochs 1``
    appended): the frozen stage is bit-identical after fine-tuning, the head is not."""
    import shlex
    import subprocess

    monkeypatch.chdir(tmp_path)  # as the repository's root: specs/, data/, runs/
    (tmp_path / "specs").mkdir()
    (tmp_path / "specs" / "baseline.yaml").write_bytes(
        (ROOT / "specs" / "baseline.yaml").read_bytes()
    )
    fake_cifar(tmp_path / "data" / "train")
    lines = _readme_commands()
    assert lines[0].startswith("mkdir -p data && tar xzf "), lines[0]  # made above instead
    runner = CliRunner()
    for line in lines[1:]:
        if not line.startswith("nincompile "):
            subprocess.run(line, shell=True, check=True, cwd=tmp_path)
            continue
        args = shlex.split(line)[1:]
        if args[0] == "train":
            args += ["--epochs", "1"]
        result = runner.invoke(main, args)
        assert result.exit_code == 0, (line, result.output)
        if "--weights" in args:
            assert "skipped, keeping their initial values: head3_dense" in result.output
            assert (
                "init weights: loaded 8 tensors (197,216 parameters) into 3 layers from "
                "runs/first5/best.keras" in result.output
            )
    source = _keras_weights(tmp_path / "runs" / "first5" / runs.BEST)
    tuned = _keras_weights(tmp_path / "runs" / "last5-finetuned" / runs.MODEL)
    for name in ("stage1_conv", "stage1_bn"):
        for a, b in zip(source[name], tuned[name], strict=True):
            np.testing.assert_array_equal(a, b)
    assert not np.array_equal(source["head2_dense"][0], tuned["head2_dense"][0])
    assert tuned["head3_dense"][0].shape == (128, 5)
    metrics = json.loads((tmp_path / "runs" / "last5-finetuned" / runs.METRICS).read_text())
    assert metrics["params"] == {"total": 197861, "trainable": 197381, "non_trainable": 480}
    assert metrics["classes"] == CIFAR[5:]
    _readme_phases(tmp_path, runner)


def _readme_phases(tmp_path, runner):
    """The commands of "Train in phases" (one epoch per phase), after those above; the
    spec's YAML there is the same recipe as the command's."""
    import shlex

    lines = _readme_commands("### Train in phases")
    for line in lines:
        args = shlex.split(
            line.replace("epochs: 2,", "epochs: 1,").replace("epochs: 3,", "epochs: 1,")
        )
        result = runner.invoke(main, args[1:])
        assert result.exit_code == 0, (line, result.output)
    out = tmp_path / "runs" / "last5-phased"
    assert [r["phase"] for r in runs.RunFolder(out).read_history()] == [0, 1]
    metrics = json.loads((out / runs.METRICS).read_text())
    assert [p["params"]["trainable"] for p in metrics["phases"]] == [645, 197849]  # head3; all
    import yaml

    spec = yaml.safe_load((ROOT / "specs" / "baseline.yaml").read_text())
    spec["train"] = yaml.safe_load(_readme_block("### Train in phases", "yaml"))["train"]
    spec["head"][2]["dense"] = 5
    spec.pop("expect")
    path = tmp_path / "phased.yaml"
    path.write_text(yaml.safe_dump(spec))
    from nincompile.spec.schema import PHASE_FIELDS

    from_yaml = api.compile_spec(path)
    assert [p["params"] for p in from_yaml.phase_counts()] == [
        p["params"] for p in metrics["phases"]
    ]
    ran = load_spec(out / runs.SPEC).spec.train.plan()
    for a, b in zip(from_yaml.spec.train.plan(), ran, strict=True):
        assert all(getattr(a, f) == getattr(b, f) for f in PHASE_FIELDS + ("batch_size",))


# ------------------------------------------------------------------------ phases

#: BASE in two phases: the convolutions frozen (Adam, a high rate), then everything
#: trainable (SGD with momentum, a lower cosine rate counted from the phase's start)
PHASED = BASE.replace(
    "train: {optimizer: adam, learning_rate: 0.02, batch_size: 32, epochs: 1, seed: 3}",
    """train:
  optimizer: adam
  learning_rate: 0.02
  batch_size: 32
  seed: 3
  phases:
    - {epochs: 2, freeze: [stage1, stage2], learning_rate: 0.05}
    - {epochs: 2, freeze: [], optimizer: sgd, momentum: 0.9, learning_rate: 0.01,
       lr_schedule: cosine}""",
)
CONV = ("stage1_conv", "stage1_bn", "stage2_conv", "stage2_bn")


def _same(a: dict, b: dict, names=None) -> bool:
    return all(np.array_equal(x, y) for n in (names or a) for x, y in zip(a[n], b[n], strict=True))


def test_phases_train_each_with_its_freeze_and_resume_exactly(spec_file, tmp_path):
    """Stopped in phase 1, at the boundary and in phase 2, resumed each time: the same
    weights as an uninterrupted run, bit for bit; the convolutions do not move in
    phase 1 (batch-norm statistics included) and do in phase 2."""
    source = load_spec(spec_file(PHASED))
    assert source.spec.train.epochs == 4
    straight = train(source, out=tmp_path / "straight")
    pieces = tmp_path / "pieces"
    train(source, out=pieces, stop_after=1)
    first = _keras_weights(pieces / runs.MODEL)
    train(source, out=pieces, resume=True, stop_after=1)  # ends phase 1
    boundary = _keras_weights(pieces / runs.MODEL)
    state = json.loads((pieces / runs.CHECKPOINT / runs.STATE).read_text())
    assert state["epoch"] == 2 and state["phase"] == 0
    train(source, out=pieces, resume=True, stop_after=1)  # phase 2's optimiser, fresh
    train(source, out=pieces, resume=True)
    last = _keras_weights(pieces / runs.MODEL)
    assert _same(_keras_weights(tmp_path / "straight" / runs.MODEL), last)
    assert _same(first, boundary, CONV) and not _same(first, boundary, ["head2_dense"])
    assert not any(_same(boundary, last, [n]) for n in CONV)
    rows, again = straight.history, runs.RunFolder(pieces).read_history()
    assert [r["phase"] for r in again] == [0, 0, 1, 1]
    for key in ("loss", "accuracy", "val_loss", "learning_rate", "phase", "planned_epochs"):
        assert [r[key] for r in rows] == [r[key] for r in again], key
    assert [round(r["learning_rate"], 6) for r in rows] == [0.05, 0.05, 0.01, 0.005]
    metrics = json.loads((pieces / runs.METRICS).read_text())
    assert [p["params"]["trainable"] for p in metrics["phases"]] == [36, 672]
    assert metrics["params"]["trainable"] == 36  # the counts of phase 1, as check's


def test_a_kill_after_the_phase_boundary_resumes_exactly(spec_file, tmp_path):
    """kill -9 once phase 1 is committed (in phase 2's first epoch, or after it):
    ``--resume`` ends with the weights of the uninterrupted run above."""
    import signal
    import subprocess
    import sys
    import time

    from conftest import ROOT

    spec = spec_file(PHASED.replace("limit: 96", "limit: 640"))
    run = tmp_path / "run"
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
    cmd = [sys.executable, "-m", "nincompile.cli", "train", str(spec), "--out", str(run)]
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)  # fmt: skip
    state = run / runs.CHECKPOINT / runs.STATE
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and proc.poll() is None:
        if state.is_file() and json.loads(state.read_text())["epoch"] >= 2:
            break
        time.sleep(0.02)
    killed = proc.poll() is None
    if killed:
        os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert json.loads(state.read_text())["epoch"] >= 2
    result = CliRunner().invoke(main, ["train", str(run), "--resume"])
    assert result.exit_code == 0, result.output
    assert "resuming" in result.output
    if killed:  # phase 2's first epoch, if lost, starts its optimiser afresh
        assert "phase 2 of 2 (train.phases[1])" in result.output
    train(load_spec(spec), out=tmp_path / "straight")
    assert _same(
        _keras_weights(run / runs.MODEL), _keras_weights(tmp_path / "straight" / runs.MODEL)
    )
    assert [r["phase"] for r in runs.RunFolder(run).read_history()] == [0, 0, 1, 1]


def test_phase_errors_name_file_line_and_field(spec_file):
    def problems(text):
        with pytest.raises(SpecError) as info:
            api.compile_spec(spec_file(text))
        return [str(p) for p in info.value.problems]

    (p,) = problems(PHASED.replace("  seed: 3\n", "  seed: 3\n  epochs: 10\n"))
    assert ":12:" in p and "train.epochs: with train.phases, train.epochs is the sum" in p
    assert "4; received 10" in p
    (p,) = problems(PHASED.replace("freeze: [stage1, stage2]", "freeze: [stage1, stage9]"))
    assert ":13:" in p and "train.phases[0].freeze[1]: 'stage9' names no layer" in p
    (p,) = problems(PHASED.replace("{epochs: 2, freeze: []", "{epochs: 0, freeze: []"))
    assert ":14:" in p and "train.phases[1].epochs" in p and "received 0" in p
    (p,) = problems(PHASED.replace("optimizer: sgd, momentum", "optimiser: sgd, momentum"))
    assert "train.phases[1].optimiser: unknown key 'optimiser'" in p and "optimizer" in p
    (p,) = problems(PHASED.replace("optimizer: sgd, ", ""))
    assert "train.phases" in p and "phase 2 (train.phases[1]) trains with optimizer adam" in p
    (p,) = problems(BASE.replace("seed: 3}", "seed: 3, phases: []}"))
    assert "train.phases" in p and "at least 1" in p


def test_check_reports_the_first_phases_counts_and_says_so(spec_file):
    path = spec_file(PHASED + "expect: {params: 700, trainable: 36, non_trainable: 664}\n")
    runner = CliRunner()
    result = runner.invoke(main, ["check", str(path)])
    assert result.exit_code == 0, result.output
    assert "tiny: total 700, trainable 36, non-trainable 664" in result.output
    assert (
        "tiny: trainable and non-trainable are phase 1's of 2 (train.phases[0]'s freeze; "
        "'expect:' is checked against them); phase 2: trainable 672, non-trainable 28"
    ) in result.output
    assert "match 'expect:'" in result.output
    summary = json.loads(runner.invoke(main, ["check", str(path), "--json"]).stdout)
    assert summary["params"]["trainable"] == 36
    assert summary["phases"] == [
        {"phase": 0, "epochs": 2, "params": {"total": 700, "trainable": 36, "non_trainable": 664}},
        {"phase": 1, "epochs": 2, "params": {"total": 700, "trainable": 672, "non_trainable": 28}},
    ]
    from nincompile.keras_builder import count_params, freeze

    compiled = api.compile_spec(path)
    model = api.build(compiled)
    for entry, frozen in zip(summary["phases"], compiled.graph.phase_frozen, strict=True):
        freeze(model, frozen)
        assert count_params(model) == entry["params"]  # Keras counts the same


def test_resume_may_change_the_phases_to_come(spec_file, tmp_path):
    spec = spec_file(PHASED)
    runner = CliRunner()
    out = tmp_path / "r"
    assert runner.invoke(main, ["train", str(spec), "--out", str(out), "--stop-after", "2"]
                         ).exit_code == 0  # fmt: skip

    def resume(*sets, ok=False):
        args = [arg for s in sets for arg in ("--set", s)]
        result = runner.invoke(main, ["train", str(out), "--resume", *args])
        assert result.exit_code == (0 if ok else 1), result.output
        assert "Traceback" not in result.output
        return " ".join(result.output.split())

    # phase 1 is trained: its freeze is what it trained with
    assert "train.phases[0].freeze[1]: run 'stage2', now None" in resume(
        "train.phases.0.freeze=[stage1]"
    )
    # --epochs does not fit phases: it says what to change instead
    assert "--set train.phases.0.epochs=N" in resume("train.epochs=5")
    # a phase's schedule may not change where it was trained, nor its epochs move
    assert "changes epochs already trained (epoch 1: 0.05 in the run, 0.1 now)" in resume(
        "train.phases.0.learning_rate=0.1"
    )
    assert "whose phases move epochs already trained (epoch 2: phase 1 in the run, 2 now)" in (
        resume("train.phases.0.epochs=1", "train.phases.1.epochs=5")
    )
    # phase 2 has not begun: its freeze, optimiser and length may change
    later = ("freeze=[stage1]", "epochs=3", "optimizer=adam", "momentum=null")
    output = resume(*(f"train.phases.1.{s}" for s in later), ok=True)
    assert "train.phases[1].epochs 2 -> 3" in output
    rows = runs.RunFolder(out).read_history()
    assert [r["phase"] for r in rows] == [0, 0, 1, 1, 1]
    assert [r["planned_epochs"] for r in rows] == [4, 4, 5, 5, 5]


def test_generated_module_says_it_holds_the_first_phase_only(spec_file, tmp_path):
    from nincompile.codegen import render_source

    text = render_source(api.compile_spec(spec_file(PHASED)).source)
    flat = " ".join(text.split())
    assert "NOT THE WHOLE RECIPE: the spec trains in 2 phases (train.phases)" in flat
    assert "Phase 2 is not expressed here; ``nincompile train`` runs them all." in flat
    assert "learning_rate=0.05, epochs=2" in text  # phase 1's schedule, phase 1's epochs
    assert "keras.optimizers.Adam(" in text and "SGD" not in text
    assert "36 trainable, 664 non-trainable" in text


# ------------------------------------------------------------ small images, larger input

BIG_INPUT = """\
name: big
input: [64, 64, 3]
stages:
  - {conv: [4, 3], strides: 2, batch_norm: true, activation: relu, pool: {max: 4}}
head: [gap, {dense: 4, activation: softmax}]
train: {optimizer: adam, learning_rate: 0.01, batch_size: 16, epochs: 1, seed: 1}
data: {dataset: synthetic, limit: 48, classes: [a, b, c, d]}
"""


def test_small_images_finetune_a_larger_input_resized_on_the_device(spec_file, tmp_path):
    """32x32 images (a CIFAR folder) fine-tune a model of 64x64 input, as they would a
    224x224 one: kept at 32x32 on the host, resized to the input in the model's
    preprocessing on the device."""
    from PIL import Image

    spec = spec_file(BIG_INPUT, "big.yaml")
    base = tmp_path / "base"
    train(load_spec(spec), out=base)
    rng = np.random.default_rng(0)
    for k, name in enumerate(("cat", "dog", "ship")):
        folder = tmp_path / "cifar" / name
        folder.mkdir(parents=True)
        for i in range(8):
            pixels = rng.normal(60 * k + 40, 30, (32, 32, 3)).clip(0, 255).astype(np.uint8)
            Image.fromarray(pixels).save(folder / f"{i}.png")
    out = tmp_path / "ft"
    result = CliRunner().invoke(
        main,
        ["train", str(spec), "--data", str(tmp_path / "cifar"), "--weights", str(base),
         "--out", str(out), "--set", "data.classes=null", "--set", "head.1.dense=3",
         "--set", "train.init_skip=[head2]", "--set", "train.freeze=[stage1]", "--json"],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    metrics = json.loads((out / runs.METRICS).read_text())
    assert "32x32x3" in metrics["data"][0], metrics["data"]  # held at 32x32
    import keras

    model = keras.saving.load_model(out / runs.MODEL, compile=False)
    assert model.input_shape == (None, 64, 64, 3)
    assert _same(_keras_weights(base / runs.BEST), _keras_weights(out / runs.MODEL),
                 ["stage1_conv", "stage1_bn"])  # fmt: skip
    assert metrics["classes"] == ["cat", "dog", "ship"]


# ------------------------------------------------------------------------- memory guard


def test_weights_h5_is_sized_before_it_is_read(base_run, tmp_path, monkeypatch):
    """A .weights.h5 file declares its arrays' shapes in HDF5 metadata: one over the
    memory limit is refused, naming the file and the size, before an array is read."""
    import h5py

    from nincompile import guard
    from nincompile.errors import ModelTooLarge

    path = tmp_path / "huge.weights.h5"
    with h5py.File(path, "w") as h5:  # 64 GiB declared, nothing written (no chunk stored)
        h5.create_dataset("layers/dense/vars/0", shape=(2**17, 2**17), dtype="float32")
    assert path.stat().st_size < 100_000
    assert guard.check_weights_file(path, guard.Limits.from_env(max_memory=2**40)) == 2**36
    with pytest.raises(ModelTooLarge, match=r"its arrays take 64\.0 GiB"):
        guard.check_weights_file(path, guard.Limits.from_env(max_memory=2**30))
    spec, _ = base_run
    monkeypatch.setenv("NINCOMPILE_MAX_MEMORY", "1GiB")
    for command in (["train", str(spec), "--out", str(tmp_path / "r")], ["build", str(spec)]):
        result = CliRunner().invoke(main, [*command, "--weights", str(path)])
        assert result.exit_code == 1 and "Traceback" not in result.output
        assert f"cannot load '{path}': it does not fit in memory" in result.output
        assert "--max-memory" in result.output
    bad = tmp_path / "bad.weights.h5"
    bad.write_bytes(b"\x89HDF\r\n\x1a\n" + b"\0" * 64)  # the magic, then nothing
    result = CliRunner().invoke(main, ["build", str(spec), "--weights", str(bad), "--no-save"])
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert f"cannot read '{bad}' as a .weights.h5 file" in result.output


def test_training_estimate_keeps_no_activations_of_a_frozen_front(spec_file):
    from nincompile import guard

    def est(freeze, phases=""):
        text = BASE.replace("seed: 3}", f"seed: 3, freeze: {freeze}{phases}}}")
        text = text.replace("batch_size: 32, epochs: 1,", "batch_size: 32,") if phases else text
        compiled = api.compile_spec(spec_file(text))
        return compiled, guard.estimate_of(compiled)

    compiled, full = est("[]")
    batch = 32
    every = sum(int(np.prod(layer.output_shape)) for layer in compiled.graph.layers())
    assert full.kept_activation_bytes == every * batch * 4 and full.frozen_front == 0
    compiled, front = est("[stage1, stage2]")
    shapes = {layer.name: int(np.prod(layer.output_shape)) for layer in compiled.graph.layers()}
    # kept: the input of the first trainable layer (the pooled features) and what follows
    kept = shapes["head1_gap"] + shapes["head2_dense"] + shapes["head2_softmax"]
    assert kept == 8 + 4 + 4
    assert front.kept_activation_bytes == kept * batch * 4
    assert front.frozen_front == len(shapes) - 3  # the input, stage1, stage2
    assert front.gradient_bytes == 36 * 4 and front.optimizer_bytes == 2 * 36 * 4
    assert front.backward_bytes == 2 * shapes["head1_gap"] * batch * 4
    assert "none of the" in front.describe() and "frozen layers before" in front.describe()
    assert front.total_bytes < full.total_bytes
    # a frozen head (a suffix): back-propagation still goes through it to stage1
    _, suffix = est("[head2]")
    assert suffix.kept_activation_bytes == full.kept_activation_bytes
    # phases: the largest phase's estimate, named
    _, phased = est("[stage1, stage2]", ", phases: [{epochs: 1}, {epochs: 1, freeze: []}]")
    assert phased.total_bytes == full.total_bytes and phased.phase == 2
    assert "(phase 2 of 2, the largest of train.phases)" in phased.describe()
