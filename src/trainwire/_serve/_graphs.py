"""Reading the training graphs, ``<model_write_path>/save/metrics/*.log``, while they grow.

The spec's format: the first line holds the field names, the first column is the x axis,
every later column one line of the graph; cells are separated by ``", "`` (a bare ``,``
is accepted too). Only complete lines are read: a line still being written (no newline
yet) waits for the next poll. A cell that is not a finite number reads as ``None`` (a gap
in the line), and a row with the wrong number of cells is skipped and counted.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = ["MAX_FILES", "MAX_POINTS", "Graph", "GraphFollower", "read_graphs"]

#: Graph files read per job.
MAX_FILES = 64
#: Rows sent per graph on a first read; a longer file is thinned evenly (last row kept).
MAX_POINTS = 20_000
#: Bytes read per file and poll.
CHUNK = 8 * 1024 * 1024

Row = list[Any]


def _cell(text: str) -> float | int | None:
    text = text.strip()
    try:
        value = int(text)
    except ValueError:
        try:
            number = float(text)
        except ValueError:
            return None
        return number if math.isfinite(number) else None
    return value


def _split(line: str) -> list[str]:
    return [cell.strip() for cell in line.split(",")]


def _thin(rows: list[Row], limit: int) -> tuple[list[Row], bool]:
    if len(rows) <= limit:
        return rows, False
    stride = math.ceil(len(rows) / limit)
    thinned = rows[::stride]
    if thinned[-1] is not rows[-1]:
        thinned.append(rows[-1])
    return thinned, True


@dataclass
class Graph:
    """One graph file as read so far."""

    name: str
    path: Path
    columns: list[str] = field(default_factory=list)
    offset: int = 0
    inode: int = -1
    skipped: int = 0
    announced: bool = False

    def poll(self) -> tuple[list[Row], bool] | None:
        """New complete rows since the last poll: ``(rows, reset)``, or None if unchanged.

        ``reset`` is True on the first read and when the file was replaced or truncated:
        the rows are then the whole file (thinned to :data:`MAX_POINTS`).
        """
        try:
            st = self.path.stat()
        except OSError:
            return None
        reset = self.inode != st.st_ino or st.st_size < self.offset
        if reset:
            self.columns, self.offset, self.inode, self.skipped = [], 0, st.st_ino, 0
            self.announced = False
        elif st.st_size == self.offset:
            return None
        try:
            with open(self.path, "rb") as fh:
                fh.seek(self.offset)
                data = fh.read(CHUNK if not reset else max(CHUNK, st.st_size))
        except OSError:
            return None
        end = data.rfind(b"\n")
        if end < 0:
            return ([], True) if reset else None
        self.offset += end + 1
        lines = data[: end + 1].decode("utf-8", "replace").splitlines()
        if not self.columns:
            if not lines:
                return ([], True) if reset else None
            self.columns = _split(lines.pop(0))
        rows: list[Row] = []
        width = len(self.columns)
        for line in lines:
            if not line.strip():
                continue
            cells = _split(line)
            if len(cells) != width:
                self.skipped += 1
                continue
            rows.append([_cell(c) for c in cells])
        if not self.announced:  # the first rows a reader sees carry the whole file
            reset, self.announced = True, True
            rows, _ = _thin(rows, MAX_POINTS)
        return rows, reset

    def to_json(self, rows: list[Row], reset: bool) -> dict[str, Any]:
        """The graph (or its new rows) as the API and the event stream send it."""
        return {
            "name": self.name,
            "file": self.path.name,
            "columns": self.columns,
            "rows": rows,
            "reset": reset,
            "skipped_rows": self.skipped,
        }


class GraphFollower:
    """Follows every ``*.log`` of one metrics folder; :meth:`poll` returns what changed."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.graphs: dict[str, Graph] = {}

    def _files(self) -> list[Path]:
        try:
            with os.scandir(self.folder) as it:
                names = sorted(
                    e.name
                    for e in it
                    if e.name.endswith(".log") and not e.name.startswith(".") and e.is_file()
                )
        except OSError:
            return []
        return [self.folder / n for n in names[:MAX_FILES]]

    def poll(self) -> list[dict[str, Any]]:
        """One JSON update per graph that is new or has new rows."""
        updates: list[dict[str, Any]] = []
        for path in self._files():
            graph = self.graphs.get(path.name)
            if graph is None:
                graph = self.graphs[path.name] = Graph(path.stem, path)
            result = graph.poll()
            if result is not None and graph.columns:
                updates.append(graph.to_json(*result))
        return updates


def read_graphs(folder: Path) -> list[dict[str, Any]]:
    """Every graph of a metrics folder, whole (thinned to :data:`MAX_POINTS` rows each)."""
    return GraphFollower(folder).poll()
