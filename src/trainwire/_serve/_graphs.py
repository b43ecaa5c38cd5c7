"""Reading the training graphs, ``<model_write_path>/save/metrics/*.log``, while they grow.

The spec's format: the first line holds the field names, the first column is the x axis,
every later column one line of the graph; cells are separated by ``", "`` (a bare ``,``
is accepted too). A row is complete only once its newline is written: a last line without
one is still being written and waits for the next poll. A cell that is not a finite
number reads as ``None`` (a gap in the line), and a row with the wrong number of cells (or
longer than :data:`MAX_LINE`) is skipped and counted.

The folder belongs to the training job, not to the server, so what it holds is not
trusted: only regular files are read, opened without following links (``O_NOFOLLOW``,
then ``fstat``), and the ``save`` and ``metrics`` folders themselves must not be links.
Files are read in chunks and thinned while reading (:class:`Downsampler`), so memory and
the answer stay bounded whatever a file's size.
"""

from __future__ import annotations

import contextlib
import os
import stat
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Union

__all__ = [
    "MAX_FILES",
    "MAX_POINTS",
    "Downsampler",
    "Graph",
    "GraphFollower",
    "folder_note",
    "graph_files",
    "read_graphs",
]

#: Graph files read per job.
MAX_FILES = 64
#: Rows sent per graph and update at most; a longer stretch is thinned (min/max per bucket).
MAX_POINTS = 20_000
#: Cells (rows x columns) sent per graph and update at most: a wide graph gets fewer rows.
MAX_CELLS = 100_000
#: Columns a graph may have; a wider header makes the file unreadable.
MAX_COLUMNS = 256
#: Bytes a line may have; a longer one is skipped (and counted) without being held.
MAX_LINE = 64 * 1024
#: Bytes read at a time.
CHUNK = 1024 * 1024

Cell = Union[float, int, None]
Row = list[Cell]

_BIG = float(2**53)  # above this a float no longer holds every integer exactly
_NOFOLLOW_DIR = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_NOFOLLOW_FILE = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC


def _cell(text: bytes) -> float | None:
    try:
        value = float(text)
    except ValueError:
        return None
    return value if value - value == 0 else None  # inf - inf and nan - nan are nan


def _row(cells: list[bytes]) -> Row:
    """The numbers of a row; the x column as an int when it is a whole number."""
    values: list[float | None]
    try:  # the common case first: every cell a finite number (a sum that overflows too)
        numbers = list(map(float, cells))
        total = sum(numbers)
        if total - total != 0:
            raise ValueError(total)
        values = list(numbers)
    except ValueError:
        values = [_cell(c) for c in cells]
    row: Row = list(values)
    x = values[0]
    if x is not None and x.is_integer() and abs(x) < _BIG:
        row[0] = int(x)
    return row


def _split_header(line: bytes) -> list[str]:
    return [cell.strip() for cell in line.decode("utf-8", "replace").split(",")]


# -- thinning ------------------------------------------------------------------------------


@dataclass
class _Bucket:
    """Consecutive rows summed up: first and last x, and per y column its extremes."""

    first: Row
    last: Row
    lo: list[Cell]
    lo_at: list[int]
    hi: list[Cell]
    hi_at: list[int]

    @classmethod
    def of(cls, rows: list[Row], start: int) -> _Bucket:
        lo: list[Cell] = []
        lo_at: list[int] = []
        hi: list[Cell] = []
        hi_at: list[int] = []
        for c in range(1, len(rows[0])):
            column = [r[c] for r in rows]
            try:
                low, high = min(column), max(column)  # type: ignore[type-var]
            except TypeError:  # gaps (None) among the numbers
                values = [v for v in column if v is not None]
                low = min(values) if values else None
                high = max(values) if values else None
            lo.append(low)
            hi.append(high)
            lo_at.append(start + column.index(low))
            hi_at.append(start + column.index(high))
        return cls(rows[0], rows[-1], lo, lo_at, hi, hi_at)

    def merge(self, later: _Bucket) -> _Bucket:
        lo, lo_at, hi, hi_at = list(self.lo), list(self.lo_at), list(self.hi), list(self.hi_at)
        for c, (low, high) in enumerate(zip(later.lo, later.hi)):
            if low is not None and (lo[c] is None or low < lo[c]):  # type: ignore[operator]
                lo[c], lo_at[c] = low, later.lo_at[c]
            if high is not None and (hi[c] is None or high > hi[c]):  # type: ignore[operator]
                hi[c], hi_at[c] = high, later.hi_at[c]
        return _Bucket(self.first, later.last, lo, lo_at, hi, hi_at)

    def rows(self) -> list[Row]:
        """Two rows: each column's extremes in the order they came, at the first/last x."""
        early: Row = [self.first[0]]
        late: Row = [self.last[0]]
        for low, low_at, high, high_at in zip(self.lo, self.lo_at, self.hi, self.hi_at):
            early.append(low if low_at <= high_at else high)
            late.append(high if low_at <= high_at else low)
        return [early, late]


class Downsampler:
    """Keeps at most ``limit`` rows of a stream of rows, in bounded memory.

    Up to ``limit`` rows are kept as they are. Beyond that the rows are grouped into
    buckets of equal length (doubled whenever there are too many buckets), and each
    bucket shows as two rows holding every column's minimum and maximum, so a spike
    stays visible however much the graph is thinned. The last row is always kept as is.
    """

    def __init__(self, limit: int = MAX_POINTS) -> None:
        if limit < 8:
            raise ValueError(f"limit must be at least 8, not {limit!r}")
        self.limit = limit
        self.count = 0
        self._raw: list[Row] | None = []
        self._buckets: list[_Bucket] = []
        self._pending: list[Row] = []
        self._size = 1
        self._last: Row | None = None

    @property
    def thinned(self) -> bool:
        """True once the rows no longer fit and are summed up in buckets."""
        return self._raw is None

    def add(self, rows: list[Row]) -> None:
        """Take the next rows (in file order)."""
        if not rows:
            return
        self.count += len(rows)
        self._last = rows[-1]
        if self._raw is not None:
            self._raw.extend(rows)
            if len(self._raw) <= self.limit:
                return
            rows, self._raw, self._size = self._raw, None, 2
        self._pending.extend(rows)
        size = self._size
        if len(self._pending) < size:
            return
        start = self.count - len(self._pending)
        cut = len(self._pending) - len(self._pending) % size
        for i in range(0, cut, size):
            self._buckets.append(_Bucket.of(self._pending[i : i + size], start + i))
        del self._pending[:cut]
        while len(self._buckets) > (self.limit - 3) // 2:
            merged = [a.merge(b) for a, b in zip(self._buckets[0::2], self._buckets[1::2])]
            if len(self._buckets) % 2:
                merged.append(self._buckets[-1])
            self._buckets, self._size = merged, self._size * 2

    def rows(self) -> list[Row]:
        """The rows kept: at most ``limit``, in file order, the last one as it was."""
        if self._raw is not None:
            return list(self._raw)
        out = [row for bucket in self._buckets for row in bucket.rows()]
        if len(self._pending) > 2:
            out.extend(_Bucket.of(self._pending, self.count - len(self._pending)).rows())
        else:
            out.extend(self._pending)
        if self._last is not None and (not out or out[-1] is not self._last):
            out.append(self._last)
        return out


# -- the folder ----------------------------------------------------------------------------


@contextlib.contextmanager
def _open_folder(folder: Path) -> Iterator[int | None]:
    """A descriptor of ``folder`` whose last two parts (``save/metrics``) are no links."""
    fds: list[int] = []
    try:
        fds.append(os.open(folder.parent.parent, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC))
        for name in (folder.parent.name, folder.name):
            fds.append(os.open(name, _NOFOLLOW_DIR, dir_fd=fds[-1]))
    except OSError:
        fds.append(-1)
    try:
        yield fds[-1] if fds[-1] >= 0 else None
    finally:
        for fd in fds:
            if fd >= 0:
                os.close(fd)


def _names(dir_fd: int) -> list[str]:
    """The graph files of an open folder: regular ``*.log`` files, no links, sorted."""
    try:
        with os.scandir(dir_fd) as it:
            names = sorted(
                e.name
                for e in it
                if e.name.endswith(".log")
                and not e.name.startswith(".")
                and e.is_file(follow_symlinks=False)
            )
    except OSError:
        return []
    return names[:MAX_FILES]


def folder_note(folder: Path) -> str | None:
    """Why the server shows no graph of ``folder`` (None: it reads it)."""
    with _open_folder(folder) as dir_fd:
        if dir_fd is not None:
            return None
    if any(p.is_symlink() for p in (folder.parent, folder)):
        return "the metrics folder (or its save folder) is a link, which the server does not follow"
    return "no metrics folder yet: the job has not written a graph"


def graph_files(folder: Path) -> list[str]:
    """The names of the graph files in ``folder`` that the server reads."""
    with _open_folder(folder) as dir_fd:
        return [] if dir_fd is None else _names(dir_fd)


def _open_regular(name: str, dir_fd: int) -> tuple[int, os.stat_result] | None:
    """``name`` opened for reading if it is a regular file (not a link, FIFO or device)."""
    try:
        fd = os.open(name, _NOFOLLOW_FILE, dir_fd=dir_fd)
    except OSError:
        return None
    try:
        st = os.fstat(fd)
    except OSError:
        st = None
    if st is None or not stat.S_ISREG(st.st_mode):
        os.close(fd)
        return None
    return fd, st


# -- one file ------------------------------------------------------------------------------


@dataclass
class Graph:
    """One graph file as read so far."""

    name: str
    file: str
    columns: list[str] = field(default_factory=list)
    offset: int = 0
    inode: int = -1
    skipped: int = 0
    announced: bool = False
    _long_line: bool = False

    def poll(self, dir_fd: int) -> tuple[list[Row], bool] | None:
        """New complete rows since the last poll: ``(rows, reset)``, or None if unchanged.

        ``reset`` is True on the first read and when the file was replaced or truncated:
        the rows are then the whole file. Either way at most :data:`MAX_POINTS` rows
        (thinned by :class:`Downsampler`).
        """
        opened = _open_regular(self.file, dir_fd)
        if opened is None:
            return None
        fd, st = opened
        try:
            reset = self.inode != st.st_ino or st.st_size < self.offset
            if reset:
                self.columns, self.offset, self.inode, self.skipped = [], 0, st.st_ino, 0
                self.announced, self._long_line = False, False
            elif st.st_size == self.offset:
                return None
            sampler = self._read(fd, st.st_size)
        except OSError:
            return None
        finally:
            os.close(fd)
        if not self.announced:  # the first rows a reader sees carry the whole file
            if not self.columns:
                return ([], True) if reset else None
            reset, self.announced = True, True
        elif sampler.count == 0:
            return None
        return sampler.rows(), reset

    def _read(self, fd: int, size: int) -> Downsampler:
        """Read the complete lines between the offset and ``size``, chunk by chunk."""
        sampler = Downsampler(self._row_limit())
        carry = b""
        position = self.offset
        while position < size:
            chunk = os.pread(fd, min(CHUNK, size - position), position)
            if not chunk:
                break
            position += len(chunk)
            data = carry + chunk
            end = data.rfind(b"\n")
            if end < 0:
                carry = self._hold(data)
                if self._long_line:
                    self.offset = position
                continue
            self._lines(data[:end].split(b"\n"), sampler)
            self.offset = position - (len(data) - end - 1)
            carry = self._hold(data[end + 1 :])
            if self._long_line:  # never read the dropped part again
                self.offset = position
        return sampler

    def _hold(self, partial: bytes) -> bytes:
        """The unfinished last line, unless it is already too long to be a row."""
        if len(partial) <= MAX_LINE and not self._long_line:
            return partial
        self._long_line = True  # dropped now; the rest of it, up to its newline, too
        return b""

    def _row_limit(self) -> int:
        return max(8, min(MAX_POINTS, MAX_CELLS // max(1, len(self.columns))))

    def _lines(self, lines: list[bytes], sampler: Downsampler) -> None:
        rows: list[Row] = []
        for line in lines:
            if self._long_line or len(line) > MAX_LINE:
                self._long_line = False
                self.skipped += 1
                continue
            if not line.strip():
                continue
            if not self.columns:
                columns = _split_header(line)
                self.columns = columns[:MAX_COLUMNS]  # a wider file's rows are all skipped
                sampler.limit = self._row_limit()
                continue
            cells = line.split(b",")
            if len(cells) != len(self.columns):
                self.skipped += 1
                continue
            rows.append(_row(cells))
        sampler.add(rows)

    def to_json(self, rows: list[Row], reset: bool) -> dict[str, Any]:
        """The graph (or its new rows) as the API and the event stream send it."""
        return {
            "name": self.name,
            "file": self.file,
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

    def poll(self) -> list[dict[str, Any]]:
        """One JSON update per graph that is new or has new rows."""
        updates: list[dict[str, Any]] = []
        with _open_folder(self.folder) as dir_fd:
            if dir_fd is None:
                return updates
            for name in _names(dir_fd):
                graph = self.graphs.get(name)
                if graph is None:
                    graph = self.graphs[name] = Graph(name[: -len(".log")], name)
                result = graph.poll(dir_fd)
                if result is not None and graph.columns:
                    updates.append(graph.to_json(*result))
        return updates


def read_graphs(folder: Path) -> list[dict[str, Any]]:
    """Every graph of a metrics folder, whole (thinned to :data:`MAX_POINTS` rows each)."""
    return GraphFollower(folder).poll()
