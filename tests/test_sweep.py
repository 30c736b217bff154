"""variants:, sweep and compare on tiny synthetic runs."""

import csv
import json

import pytest
from click.testing import CliRunner
from conftest import ROOT

from nincompile import api
from nincompile.cli import main
from nincompile.runs import folder as runs
from nincompile.spec import load_spec
from nincompile.sweep.members import members, parse_shard, shard
from nincompile.train.loop import train

ORDERS = ROOT / "specs" / "nin_bn_orders.yaml"
TINY = """\
name: tinyv
input: [12, 12, 3]
defaults: {padding: same, batch_norm: true, activation: relu, order: bamd}
variants:
  defaults.order: [bamd, badm]
stages:
  - {conv: [6, 3], pool: {max: 2}, dropout: 0.1}
head: [gap, {dense: 4, activation: softmax}]
train: {optimizer: adam, learning_rate: 0.02, batch_size: 32, epochs: 2}
data: {dataset: synthetic, limit: 256}
"""


def test_the_seed_study_expands_to_the_four_orders():
    models = api.compile_all(ORDERS)
    assert [m.name for m in models] == [f"nin_bn_orders_{o}" for o in
                                        ("bamd", "badm", "dbam", "bdam")]  # fmt: skip
    by_order = {m.name[-4:]: m.spec.defaults.order for m in models}
    assert by_order == {"bamd": "bapd", "badm": "badp", "dbam": "dbap", "bdam": "bdap"}
    for m in models:
        assert m.counts() == {"total": 972658, "trainable": 969822, "non_trainable": 2836}
        assert m.expect_mismatches() == []
    # each expansion has the graph of the hand-written spec of the same order
    for m in models:
        twin = api.compile_spec(ROOT / "specs" / f"nin_{m.name[-4:]}.yaml")
        assert [(x.kind, x.output_shape) for x in m.graph.layers()] == [
            (x.kind, x.output_shape) for x in twin.graph.layers()
        ]


def test_check_lists_expansions_and_json_has_one_object_each():
    runner = CliRunner()
    result = runner.invoke(main, ["check", "--json", str(ORDERS)])
    assert result.exit_code == 0, result.output
    data = json.loads(result.output[result.output.index("[") :])
    assert [d["name"] for d in data] == [m.name for m in api.compile_all(ORDERS)]
    assert {d["params"]["total"] for d in data} == {972658}
    text = runner.invoke(main, ["check", str(ORDERS)])
    assert "4 models" in text.output and text.output.count("match 'expect:'") == 4


@pytest.mark.parametrize(
    "bad, expected",
    [
        ("defaults.ordr: [bamd, badm]", ":5:3: variants.defaults.ordr: unknown key 'ordr' "
                                        "(did you mean 'order'?)"),
        ("trian.epochs: [1, 2]", "did you mean 'train'"),
        ("defaults.order: [bamd, bxmd]", "(in the variant with defaults.order='bxmd')"),
        ("defaults.order: []", "variants.defaults.order"),
    ],
)  # fmt: skip
def test_variant_paths_are_validated_with_a_location(spec_file, bad, expected):
    path = spec_file(TINY.replace("defaults.order: [bamd, badm]", bad))
    result = CliRunner().invoke(main, ["check", str(path)])
    assert result.exit_code == 1
    assert expected in result.output


def test_train_picks_one_variant(spec_file, tmp_path):
    path = spec_file(TINY)
    runner = CliRunner()
    result = runner.invoke(main, ["train", str(path), "--out", str(tmp_path / "r")])
    assert result.exit_code == 1 and "--variant" in result.output
    result = runner.invoke(main, ["train", str(path), "--variant", "badm", "--epochs", "1",
                                  "--out", str(tmp_path / "r")])  # fmt: skip
    assert result.exit_code == 0, result.output
    assert load_spec(tmp_path / "r" / runs.SPEC).spec.defaults.order == "badp"


def test_shards_partition_the_members(spec_file):
    everyone = members([spec_file(TINY)], seeds=3)
    assert len(everyone) == 6
    parts = [shard(everyone, (i, 4)) for i in range(4)]
    names = [m.name for part in parts for m in part]
    assert sorted(names) == sorted(m.name for m in everyone)
    assert shard(list(reversed(everyone)), (1, 4)) == parts[1]  # order-independent
    for bad in ("4/4", "1", "a/b", "0/0"):
        with pytest.raises(Exception, match="--shard"):
            parse_shard(bad)


def test_sweep_trains_compares_and_resumes(spec_file, tmp_path):
    spec = spec_file(TINY)
    out = tmp_path / "sweep"
    everyone = {m.name: m for m in members([spec], seeds=2)}
    # one member interrupted after its first epoch, as a killed sweep would leave it
    partial = everyone["tinyv_badm-seed1"]
    out.mkdir()
    train(partial.source, out=partial.folder(out), stop_after=1)
    assert len(runs.RunFolder(partial.folder(out)).read_history()) == 1

    runner = CliRunner()
    result = runner.invoke(main, ["sweep", str(spec), "--seeds", "2", "--out", str(out),
                                  "--jobs", "2"])  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "tinyv_badm-seed1: resuming" in result.output
    for name in everyone:
        history = runs.RunFolder(out / name).read_history()
        assert [h["epoch"] for h in history] == [0, 1], name
    with open(out / "compare.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert [r["variant"] for r in rows] and {r["variant"] for r in rows} == {
        "tinyv_bamd", "tinyv_badm"}  # fmt: skip
    assert all(r["seeds"] == "2" for r in rows)
    assert rows[0]["best"] == "True"
    assert float(rows[0]["best_val_acc"]) >= float(rows[1]["best_val_acc"])
    md = (out / "compare.md").read_text()
    assert "★" in md and "±" in md
    assert (out / "compare.png").stat().st_size > 0

    stamp = (out / "tinyv_bamd-seed0" / runs.MODEL).stat().st_mtime_ns
    again = runner.invoke(main, ["sweep", str(spec), "--seeds", "2", "--out", str(out)])
    assert again.exit_code == 0, again.output
    assert again.output.count("finished, skipped") == 4
    assert (out / "tinyv_bamd-seed0" / runs.MODEL).stat().st_mtime_ns == stamp


def test_compare_run_folders_with_one_seed(spec_file, tmp_path, monkeypatch):
    spec = spec_file(TINY)
    for m in members([spec]):
        train(m.source, out=tmp_path / m.name, stop_after=1)
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(main, ["compare", "tinyv_bamd", "tinyv_badm", "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert data["out"] == "compare" and (tmp_path / "compare" / "compare.md").is_file()
    assert {r["variant"] for r in data["rows"]} == {"tinyv_bamd", "tinyv_badm"}
    assert "one seed" in data["rows"][1]["differs_from_best"]
    missing = CliRunner().invoke(main, ["compare", str(tmp_path / "nope")])
    assert missing.exit_code == 1 and "does not exist" in missing.output


def test_compare_keeps_runs_of_one_name_apart_unless_only_the_seed_differs(spec_file, tmp_path):
    """Runs of one model name are seeds of one variant only where their specs differ in
    train.seed alone (and they started from the same weights): a wider model of the
    same name is its own row, labelled with its folder (they were averaged as seeds)."""
    from nincompile.spec.overrides import apply_overrides

    source = load_spec(spec_file(TINY.replace("variants:\n  defaults.order: [bamd, badm]\n",
                                              "")))  # fmt: skip
    for folder, sets in (("s1", ["train.seed=1"]), ("s2", ["train.seed=2"]),
                         ("wide", ["train.seed=1", "stages.0.conv=[12, 3]"])):  # fmt: skip
        train(apply_overrides(source, sets), out=tmp_path / folder, stop_after=1)
    result = api.compare([tmp_path / f for f in ("s1", "s2", "wide")], out=tmp_path / "cmp")
    rows = {r["variant"]: r for r in result["rows"]}
    assert set(rows) == {"tinyv (s1)", "tinyv (wide)"}
    assert rows["tinyv (s1)"]["seeds"] == 2 and rows["tinyv (wide)"]["seeds"] == 1
    assert rows["tinyv (wide)"]["params"] > rows["tinyv (s1)"]["params"]


def test_concurrent_members_share_accelerators_fairly():
    from nincompile.sweep.runner import member_env

    base = {"PATH": "/bin"}
    # one GPU each: nothing else set
    envs = [member_env(i, 2, ["0", "1"], base) for i in range(2)]
    assert [e["CUDA_VISIBLE_DEVICES"] for e in envs] == ["0", "1"]
    assert all("XLA_PYTHON_CLIENT_MEM_FRACTION" not in e for e in envs)
    # four members on one GPU: each JAX process may take a quarter of 90 %
    envs = [member_env(i, 4, ["0"], base) for i in range(4)]
    assert {e["CUDA_VISIBLE_DEVICES"] for e in envs} == {"0"}
    assert {e["XLA_PYTHON_CLIENT_MEM_FRACTION"] for e in envs} == {"0.225"}
    # the caller's own setting wins; no GPU, or one job: the environment as given
    own = member_env(0, 4, ["0"], {**base, "XLA_PYTHON_CLIENT_PREALLOCATE": "false"})
    assert "XLA_PYTHON_CLIENT_MEM_FRACTION" not in own
    assert member_env(0, 4, [], base) == base and member_env(0, 1, ["0"], base) == base


def test_sweep_refuses_a_run_folder_as_its_out(spec_file, tmp_path):
    """A sweep into a run folder would put its members inside the run, and compare
    would then read only the run: refused, nothing written."""
    run = tmp_path / "run"
    run.mkdir()
    (run / runs.SPEC).write_text("name: x\n")
    before = sorted(p.name for p in run.iterdir())
    result = CliRunner().invoke(main, ["sweep", str(spec_file(TINY)), "--out", str(run)])
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert "is a run folder; a sweep needs a folder of its own" in result.output
    assert sorted(p.name for p in run.iterdir()) == before
