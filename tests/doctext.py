"""The project's documentation as the tests read it: the README and the reference
pages under docs/ (each claim is checked wherever it lives)."""

from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PAGES = (ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md")))


def docs_text() -> str:
    """The README followed by every page of docs/, as one text."""
    return "\n".join(page.read_text(encoding="utf-8") for page in PAGES)


CIFAR = "airplane automobile bird cat deer dog frog horse ship truck".split()


def fake_cifar(folder: Path, per_class: int = 8) -> None:
    """``folder/<class>/NNNN.png`` for the ten CIFAR-10 classes, 32x32: a colour per
    class, and noise (what the docs' commands read in place of the real archive)."""
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(0)
    for k, name in enumerate(CIFAR):
        (folder / name).mkdir(parents=True)
        for i in range(per_class):
            pixels = rng.normal(25 * k, 30, (32, 32, 3)).clip(0, 255).astype(np.uint8)
            Image.fromarray(pixels).save(folder / name / f"{i:04d}.png")
