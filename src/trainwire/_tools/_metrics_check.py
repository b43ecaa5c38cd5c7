"""Reading graph files back: the checker and summary behind ``trainwire metrics``.

The writer (``_sdk/_metrics.py``) owns the format's facts (separator, suffix, names,
numbers); this module reads files by the same rules and reports what is wrong.
"""

from __future__ import annotations

import errno
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .._sdk._metrics import NUMBER_RE, SEPARATOR, SUFFIX, Number, parse_number

__all__ = [
    "GraphScan",
    "GraphSummary",
    "Problem",
    "check_metrics_dir",
    "metrics_files",
    "scan_metrics_dir",
    "summarize_metrics_dir",
]

_NONFINITE_RE = re.compile(r"[+-]?(?:nan|inf|infinity)\Z", re.IGNORECASE)

# -- reading: check and summary --------------------------------------------------------
#
# The row contract, for every reader (docs/metrics.md, "Reading the files while a job
# runs"): a line is complete only once its line break is in the file. Each row reaches the
# file in one append, but Linux makes an append that crosses a page boundary visible in
# parts, so a reader can meet the first part of a row at the end of the file. Such a last
# line is a row being written: it is neither read nor reported as a problem.


_EMPTY_HEADER = "is empty: the first line must hold the field names, e.g. 'step, loss'"


@dataclass(frozen=True)
class Problem:
    """One thing wrong in a metrics file; ``line`` is 1-based, None for the whole file."""

    file: str
    line: int | None
    message: str

    def __str__(self) -> str:
        where = self.file if self.line is None else f"{self.file}, line {self.line}"
        return f"{where}: {self.message}"

    def to_json(self) -> dict[str, Any]:
        return {"file": self.file, "line": self.line, "message": self.message}


@dataclass
class GraphSummary:
    """What one metrics file holds (rows with problems are not counted).

    ``partial_line`` is the number of the file's last line when it has no line break yet:
    a row being written, which is not read (None when the file ends with a line break).
    """

    file: str
    graph: str
    x_axis: str = ""
    series: tuple[str, ...] = ()
    rows: int = 0
    first_x: Number | None = None
    last_x: Number | None = None
    last: dict[str, Number] = field(default_factory=dict)
    min: dict[str, Number] = field(default_factory=dict)
    max: dict[str, Number] = field(default_factory=dict)
    problems: int = 0
    partial_line: int | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "file": self.file,
            "graph": self.graph,
            "x_axis": self.x_axis,
            "series": list(self.series),
            "rows": self.rows,
            "first_x": self.first_x,
            "last_x": self.last_x,
            "last": self.last,
            "min": self.min,
            "max": self.max,
            "problems": self.problems,
            "partial_line": self.partial_line,
        }


@dataclass(frozen=True)
class GraphScan:
    """One graph file read by the row contract: its summary and its problems."""

    summary: GraphSummary
    problems: list[Problem]


def metrics_files(directory: str | os.PathLike[str]) -> list[Path]:
    """The graph files of a metrics folder: every regular, non-hidden file, by name."""
    folder = Path(directory)
    if not folder.is_dir():
        raise NotADirectoryError(errno.ENOTDIR, "not a folder", str(folder))
    return sorted(p for p in folder.iterdir() if not p.name.startswith(".") and p.is_file())


def _lines(path: Path) -> Iterator[tuple[int, bytes, bool]]:
    """``(number, line without its line break, whether the line break was there)``."""
    with open(path, "rb") as fh:
        for number, raw in enumerate(fh, 1):
            ended = raw.endswith(b"\n")
            yield number, raw.rstrip(b"\n").rstrip(b"\r"), ended


def _graph_name(file_name: str) -> str:
    if file_name.endswith(SUFFIX) and file_name != SUFFIX:
        return file_name[: -len(SUFFIX)]
    return file_name


class _Scanner:
    """Reads one graph file line by line, keeping the summary and the problems."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.summary = GraphSummary(file=path.name, graph=_graph_name(path.name))
        self.problems: list[Problem] = []
        self._prev: tuple[Number, int] | None = None

    def scan(self) -> GraphScan:
        seen_any = False
        for number, raw, ended in _lines(self.path):
            seen_any = True
            if not ended:  # a row being written (the contract above): not read yet
                self.summary.partial_line = number
                break
            text = self._text(number, raw)
            if number == 1:
                self._header(text)
            elif not text.strip():
                self._problem(number, "is empty: every line after the header must be a row")
            else:
                self._row(number, text)
        if not seen_any:
            self._problem(None, _EMPTY_HEADER)
        self.summary.problems = len(self.problems)
        return GraphScan(self.summary, self.problems)

    def _problem(self, line: int | None, message: str) -> None:
        self.problems.append(Problem(self.summary.file, line, message))

    def _text(self, number: int, raw: bytes) -> str:
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError:
            self._problem(number, "is not UTF-8 text: save the file as UTF-8")
            return raw.decode("utf-8", "replace")

    def _header(self, text: str) -> None:
        cells = [c.strip() for c in text.split(",")]
        self.summary.x_axis = cells[0]
        self.summary.series = tuple(cells[1:])
        if not text.strip():
            self._problem(1, _EMPTY_HEADER)
        elif all(NUMBER_RE.match(c) for c in cells):
            self._problem(
                1,
                f"{text!r} looks like data: the first line must hold the field names, "
                f"e.g. 'step, loss'",
            )
        elif any(not c for c in cells):
            self._problem(1, f"the header {text!r} has an empty field name")
        elif len(cells) < 2:
            self._problem(
                1,
                f"the header {text!r} names only the x axis: add at least one more "
                f"column (a line of the graph)",
            )
        else:
            dupes = sorted({c for c in cells if cells.count(c) > 1})
            if dupes:
                self._problem(1, f"the header names {', '.join(map(repr, dupes))} more than once")

    def _row(self, number: int, text: str) -> None:
        s = self.summary
        columns = (s.x_axis, *s.series)
        cells = [c.strip() for c in text.split(",")]
        if len(cells) != len(columns):
            self._problem(
                number,
                f"has {len(cells)} cells, but the header has {len(columns)} "
                f"({SEPARATOR.join(columns)})",
            )
            return
        values = [self._cell(number, column, cell) for column, cell in zip(columns, cells)]
        numbers = [v for v in values if v is not None]
        if len(numbers) != len(columns):
            return
        x = numbers[0]
        if self._prev is not None and x < self._prev[0]:
            self._problem(
                number,
                f"the x axis ({s.x_axis}) goes backwards: {cells[0]} after "
                f"{self._prev[0]} on line {self._prev[1]}",
            )
            return
        self._prev = (x, number)
        self._count(x, numbers[1:])

    def _cell(self, number: int, column: str, cell: str) -> Number | None:
        """The number in ``cell``, or None after reporting why it is not one."""
        if not NUMBER_RE.match(cell):
            if not cell:
                self._problem(number, f"{column!r} is empty: every cell needs a number")
            elif _NONFINITE_RE.match(cell):
                self._problem(
                    number,
                    f"{column!r} is {cell!r}: NaN and infinity cannot be drawn; leave "
                    f"such rows out",
                )
            else:
                self._problem(number, f"{column!r} is {cell!r}, not a number")
            return None
        value = parse_number(cell)
        if value - value != 0:
            self._problem(number, f"{column!r} is {cell!r}, too large to be a finite number")
            return None
        return value

    def _count(self, x: Number, values: list[Number]) -> None:
        s = self.summary
        if s.first_x is None:
            s.first_x = x
        s.last_x = x
        s.rows += 1
        for column, value in zip(s.series, values):
            s.last[column] = value
            if column not in s.min or value < s.min[column]:
                s.min[column] = value
            if column not in s.max or value > s.max[column]:
                s.max[column] = value


def _scan_file(path: Path) -> GraphScan:
    try:
        return _Scanner(path).scan()
    except OSError as exc:
        summary = GraphSummary(file=path.name, graph=_graph_name(path.name), problems=1)
        return GraphScan(
            summary, [Problem(path.name, None, f"cannot be read: {exc.strerror or exc}")]
        )


def scan_metrics_dir(directory: str | os.PathLike[str]) -> list[GraphScan]:
    """Every graph file in ``directory`` read once, by name: its summary and its problems.

    Only lines that end with a line break are read: a last line without one is a row being
    written (``summary.partial_line``), not a problem.
    """
    return [_scan_file(path) for path in metrics_files(directory)]


def check_metrics_dir(directory: str | os.PathLike[str]) -> list[Problem]:
    """Every problem of every graph file in ``directory`` (empty list: all good).

    The rules: a header line of field names (the x axis and at least one series), numeric
    and finite cells, as many cells on every row as in the header, an x column that
    does not go backwards, UTF-8 text, no empty lines. A last line without its line break
    is a row being written: not read, not a problem.
    """
    return [problem for scan in scan_metrics_dir(directory) for problem in scan.problems]


def summarize_metrics_dir(directory: str | os.PathLike[str]) -> list[GraphSummary]:
    """A summary of every graph file in ``directory``: series, rows, last values, min/max."""
    return [scan.summary for scan in scan_metrics_dir(directory)]
