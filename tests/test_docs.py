"""The README's five-minute tour, run as written (on 8 generated 32x32 images per
CIFAR-10 class in place of the archive), its results checked through the library; and
the reference pages under docs/ linked from the README, every link resolving."""

import json
import re
import shlex

from click.testing import CliRunner
from doctext import PAGES, ROOT, fake_cifar

from nincompile.cli import main


def _tour() -> list[str]:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    section = readme.split("\n## A five-minute tour\n", 1)[1]
    return section.split("```bash\n", 1)[1].split("```", 1)[0].strip().splitlines()


def test_readme_tour_runs(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    fake_cifar(tmp_path / "data" / "train")
    runner = CliRunner()
    outputs = {}
    for line in _tour():
        if line.startswith("mkdir -p data && tar xzf "):
            continue  # the images were made above instead
        args = shlex.split(line)
        assert args[0] == "nincompile", line
        result = runner.invoke(main, args[1:])
        assert result.exit_code == 0, (line, result.output)
        outputs[args[1]] = result.output
    assert "nin_badm" in outputs["list"] and "972,658" in outputs["check"]
    import keras

    model = keras.saving.load_model(tmp_path / "build" / "nin_badm.keras", compile=False)
    assert model.count_params() == 972658
    metrics = json.loads((tmp_path / "runs" / "tour" / "metrics.json").read_text())
    assert metrics["epochs_completed"] == 1 and metrics["name"] == "baseline"
    assert metrics["train_images"] + metrics["val_images"] == 80
    assert "accuracy" in outputs["evaluate"]
    lines = outputs["predict"].splitlines()  # one per image: its top three classes
    assert len(lines) == 8 and all(line.count(",") == 2 for line in lines), lines
    assert (tmp_path / "build" / "tour.onnx").stat().st_size > 100_000


def test_every_docs_link_resolves():
    """Links between the README and docs/ pages name files that exist and headings
    that the target page has (GitHub's anchors)."""

    def anchors(text: str) -> set[str]:
        heads = re.findall(r"^#{1,4} (.+)$", text, re.M)
        return {re.sub(r"[^\w\- ]", "", h.strip().lower()).replace(" ", "-") for h in heads}

    for page in PAGES:
        text = page.read_text(encoding="utf-8")
        text = re.sub(r"```.*?```", "", text, flags=re.S)
        for target in re.findall(r"\]\(([^)\s]+)\)", text):
            if target.startswith(("http://", "https://")):
                continue
            path, _, anchor = target.partition("#")
            file = (page.parent / path).resolve() if path else page
            assert file.is_file(), f"{page.name}: {target}"
            if anchor:
                assert anchor in anchors(file.read_text(encoding="utf-8")), f"{page.name}: {target}"
