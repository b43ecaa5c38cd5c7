"""The code examples of docs/integrations.md, for the tests that run them as written."""

from __future__ import annotations

import re
import textwrap
from pathlib import Path

DOC = Path(__file__).resolve().parents[1] / "docs" / "integrations.md"


def section(heading: str) -> str:
    """The docs section titled ``heading`` (the whole line, e.g. ``"## XGBoost"``), up to
    the next heading of its level or above; ``#`` lines inside code blocks are no heading."""
    level = len(heading.split(" ", 1)[0])
    lines = DOC.read_text("utf-8").splitlines(keepends=True)
    start = [line.rstrip("\n") for line in lines].index(heading)
    fenced = False
    for end in range(start + 1, len(lines)):
        line = lines[end]
        if line.lstrip().startswith("```"):
            fenced = not fenced
        elif not fenced and re.match(rf"#{{1,{level}}} ", line):
            return "".join(lines[start:end])
    return "".join(lines[start:])


def example(heading: str, index: int = 0, *, language: str = "python") -> str:
    """The ``index``-th fenced ``language`` block of the section ``heading``, dedented
    (a block inside a list item is indented)."""
    blocks = re.findall(rf"^ *```{language}\n(.*?)^ *```", section(heading), re.S | re.M)
    assert len(blocks) > index, f"{DOC}: {heading!r} has {len(blocks)} {language} blocks"
    return textwrap.dedent(blocks[index])
