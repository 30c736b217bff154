"""The project's documentation as the tests read it: the README and the reference
pages under docs/ (each claim is checked wherever it lives)."""

from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PAGES = (ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md")))


def docs_text() -> str:
    """The README followed by every page of docs/, as one text."""
    return "\n".join(page.read_text(encoding="utf-8") for page in PAGES)
