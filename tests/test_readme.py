"""The README's rule reference is the generated one: it cannot drift."""

from __future__ import annotations

from pathlib import Path

from nerve.packs.reference import BEGIN, END, markdown

README = Path(__file__).resolve().parents[1] / "README.md"


def test_readme_reference_is_up_to_date() -> None:
    text = README.read_text(encoding="utf-8")
    start, end = text.index(BEGIN), text.index(END) + len(END)
    assert text[start:end] == markdown(), (
        "README.md's reference is stale: replace it with `python -m nerve.packs.reference`"
    )
