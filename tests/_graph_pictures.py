"""The pictures in words of graph files in docs/integrations.md, checked against real files.

A picture is a fenced ``text`` block, one line per file: ``<graph>.log``, its header, and
what it holds, separated by two spaces or more::

    loss.log             epoch, train, val         loss, val_loss
"""

from __future__ import annotations

import re
from pathlib import Path

from _doc_examples import example
from _frameworks import graph_names


def picture(heading: str, index: int = 0) -> dict[str, str]:
    """``{graph: header}`` of the ``index``-th picture in the section ``heading``."""
    files = {}
    for line in example(heading, index, language="text").splitlines():
        name, header = re.split(r"\s{2,}", line.strip())[:2]
        assert name.endswith(".log"), line
        files[name[: -len(".log")]] = header
    return files


def assert_files_as_pictured(model_dir: Path, heading: str, index: int = 0) -> None:
    """The graphs under ``model_dir`` are exactly the picture's, with its headers."""
    expected = picture(heading, index)
    assert graph_names(model_dir) == sorted(expected)
    folder = model_dir / "save" / "metrics"
    for graph, header in expected.items():
        assert (folder / f"{graph}.log").read_text("utf-8").splitlines()[0] == header, graph
