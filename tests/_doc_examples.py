"""The code examples of docs/integrations.md, for the tests that run them as written."""

from __future__ import annotations

import re
import textwrap
from pathlib import Path

DOC = Path(__file__).resolve().parents[1] / "docs" / "integrations.md"


def example(heading: str, index: int = 0, *, language: str = "python") -> str:
    """The ``index``-th fenced ``language`` block of the docs section titled ``heading``
    (the whole heading line, e.g. ``"## XGBoost"``), up to the next heading of its level."""
    text = DOC.read_text("utf-8")
    level = heading.split(" ", 1)[0]
    start = text.index("\n" + heading + "\n")
    ends = [
        text.find(f"\n{hashes} ", start + 1)
        for hashes in ("#" * n for n in range(1, len(level) + 1))
    ]
    end = min([e for e in ends if e != -1], default=len(text))
    blocks = re.findall(rf"^ *```{language}\n(.*?)^ *```", text[start:end], re.S | re.M)
    assert len(blocks) > index, f"{DOC}: {heading!r} has {len(blocks)} {language} blocks"
    return textwrap.dedent(blocks[index])  # a block inside a list item is indented
