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
import csv
import io
import itertools
import os
import stat
import threading
from collections import OrderedDict
from collections.abc import Generator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Union

from .._spec._layout import GRAPH_SUFFIX

__all__ = [
    "MAX_FILES",
    "MAX_POINTS",
    "Downsampler",
    "Graph",
    "GraphFollower",
    "csv_lines",
    "folder_note",
    "graph_files",
    "read_graphs",
]

#: Graph files read per job.
MAX_FILES = 64
#: Rows sent per graph and update at most; a longer stretch is thinned (min/max per bucket).
#: Two rows a bucket: a bucket per pixel for a chart up to 2,000 pixels wide, which is more
#: than the page's charts are; more rows would cost every open page time, not detail.
MAX_POINTS = 4_000
#: Cells (rows x columns) sent per graph and update at most: a wide graph gets fewer rows.
MAX_CELLS = 100_000
#: Columns a graph may have; a wider header makes the file unreadable.
MAX_COLUMNS = 256
#: Bytes a line may have; a longer one is skipped (and counted) without being held.
MAX_LINE = 64 * 1024
#: Bytes read at a time.
CHUNK = 1024 * 1024
#: Cells (rows x columns) of the whole-file reads kept to be continued (:class:`_Wholes`).
CACHED_CELLS = 1_000_000
#: Files whose whole-file reads are kept at most.
CACHED_FILES = 4 * MAX_FILES
#: Bytes at the start of a file that must not have changed for a kept read to be continued.
HEAD = 4096

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


def _x(value: Cell) -> Cell:
    """The x value as an int when it is a whole number (steps, epochs)."""
    if isinstance(value, float) and value.is_integer() and abs(value) < _BIG:
        return int(value)
    return value


def _split_header(line: bytes) -> list[str]:
    return [cell.strip() for cell in line.decode("utf-8", "replace").split(",")]


Columns = list[list[Cell]]


def _fast_columns(lines: list[bytes], width: int) -> Columns | None:
    """The columns of ``lines`` if every line is ``width`` finite numbers, else None.

    Whole chunks at a time, in C (split, map, sum, slices): a file of millions of rows
    must not cost a Python loop per cell.
    """
    commas = list(map(bytes.count, lines, itertools.repeat(b",")))
    if commas.count(width - 1) != len(lines):
        return None
    try:
        values: list[Any] = list(map(float, b",".join(lines).split(b",")))
    except ValueError:
        return None
    total = sum(values)
    if total - total != 0:  # an inf or a nan (or a sum beyond float): the careful way
        return None
    return [values[c::width] for c in range(width)]


def _slow_columns(lines: list[bytes], width: int) -> tuple[Columns, int]:
    """The columns of the well-formed ``lines`` (gaps as None), and how many were not."""
    rows: list[list[Cell]] = []
    skipped = 0
    for line in lines:
        if not line.strip():
            continue
        cells = line.split(b",")
        if len(cells) != width:
            skipped += 1
            continue
        rows.append([_cell(c) for c in cells])
    return [list(column) for column in zip(*rows)] if rows else [[] for _ in range(width)], skipped


# -- thinning ------------------------------------------------------------------------------


def _extremes(column: list[Cell]) -> tuple[Cell, int, Cell, int]:
    """Minimum, its index, maximum, its index (None, 0 for a column of gaps only)."""
    try:
        low, high = min(column), max(column)  # type: ignore[type-var]
    except TypeError:  # gaps (None) among the numbers
        values = [v for v in column if v is not None]
        if not values:
            return None, 0, None, 0
        low, high = min(values), max(values)
    return low, column.index(low), high, column.index(high)


@dataclass
class _Bucket:
    """Consecutive rows summed up: first and last x, and per y column its extremes."""

    first_x: Cell
    last_x: Cell
    lo: list[Cell]
    lo_at: list[int]
    hi: list[Cell]
    hi_at: list[int]

    @classmethod
    def of(cls, columns: Columns, begin: int, end: int, number: int) -> _Bucket:
        """Rows ``begin:end`` of ``columns``; ``number`` is the first one's row number."""
        bucket = cls(columns[0][begin], columns[0][end - 1], [], [], [], [])
        for column in columns[1:]:
            low, low_at, high, high_at = _extremes(column[begin:end])
            bucket.lo.append(low)
            bucket.lo_at.append(number + low_at)
            bucket.hi.append(high)
            bucket.hi_at.append(number + high_at)
        return bucket

    def merge(self, later: _Bucket) -> _Bucket:
        lo, lo_at, hi, hi_at = list(self.lo), list(self.lo_at), list(self.hi), list(self.hi_at)
        for c, (low, high) in enumerate(zip(later.lo, later.hi)):
            if low is not None and (lo[c] is None or low < lo[c]):  # type: ignore[operator]
                lo[c], lo_at[c] = low, later.lo_at[c]
            if high is not None and (hi[c] is None or high > hi[c]):  # type: ignore[operator]
                hi[c], hi_at[c] = high, later.hi_at[c]
        return _Bucket(self.first_x, later.last_x, lo, lo_at, hi, hi_at)

    def rows(self) -> list[Row]:
        """Two rows: each column's extremes in the order they came, at the first/last x."""
        early: Row = [_x(self.first_x)]
        late: Row = [_x(self.last_x)]
        for low, low_at, high, high_at in zip(self.lo, self.lo_at, self.hi, self.hi_at):
            early.append(low if low_at <= high_at else high)
            late.append(high if low_at <= high_at else low)
        return [early, late]


class Downsampler:
    """Keeps at most ``limit`` rows of a stream of rows, in bounded memory.

    Rows arrive as columns (x first). Up to ``limit`` rows are kept as they are. Beyond
    that the rows are grouped into buckets of equal length (doubled whenever there are
    too many buckets), and each bucket shows as two rows holding every column's minimum
    and maximum, so a spike stays visible however much the graph is thinned. The last
    row is always kept as is.
    """

    def __init__(self, width: int, limit: int = MAX_POINTS) -> None:
        if limit < 8 or width < 1:
            raise ValueError(f"need width >= 1 and limit >= 8, not {width!r} and {limit!r}")
        self.width, self.limit = width, limit
        self.count = 0
        self._columns: Columns = [[] for _ in range(width)]  # raw rows, then the pending ones
        self._buckets: list[_Bucket] | None = None
        self._size = 1
        self._last: Row = []

    def add(self, columns: Columns) -> None:
        """Take the next rows (in file order), given as ``width`` columns of equal length."""
        if len(columns) != self.width:
            raise ValueError(f"expected {self.width} columns, got {len(columns)}")
        added = len(columns[0])
        if not added:
            return
        self.count += added
        self._last = [_x(columns[0][-1]), *(column[-1] for column in columns[1:])]
        for kept, new in zip(self._columns, columns):
            kept.extend(new)
        if self._buckets is None:
            if len(self._columns[0]) <= self.limit:
                return
            self._buckets, self._size = [], 2
        self._cut(self._buckets)

    def _cut(self, buckets: list[_Bucket]) -> None:
        """Turn the pending rows into buckets, doubling their length while too many."""
        cap = (self.limit - 3) // 2
        pending = len(self._columns[0])
        while len(buckets) + pending // self._size > cap:
            merged = [a.merge(b) for a, b in zip(buckets[0::2], buckets[1::2])]
            if len(buckets) % 2:
                merged.append(buckets[-1])
            buckets[:], self._size = merged, self._size * 2
        cut = pending - pending % self._size
        number = self.count - pending
        for i in range(0, cut, self._size):
            buckets.append(_Bucket.of(self._columns, i, i + self._size, number + i))
        for column in self._columns:
            del column[:cut]

    def rows(self) -> list[Row]:
        """The rows kept: at most ``limit``, in file order, the last one as it was."""
        pending = [[_x(row[0]), *row[1:]] for row in map(list, zip(*self._columns))]
        if self._buckets is None:
            return pending
        out = [row for bucket in self._buckets for row in bucket.rows()]
        if len(pending) > 2:
            number = self.count - len(pending)
            out.extend(_Bucket.of(self._columns, 0, len(pending), number).rows())
        else:
            out.extend(pending)
        if out[-1] != self._last:
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
                if e.name.endswith(GRAPH_SUFFIX)
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
class SeriesStats:
    """One line of a graph over all its rows: last value, minimum, maximum (gaps left out).

    Kept beside the thinned rows so that what the page shows is exact however long the file.
    """

    last: Cell = None
    low: Cell = None
    high: Cell = None

    def add(self, column: list[Cell]) -> None:
        """Take the next values of the line, in file order."""
        low, _, high, _ = _extremes(column)
        if low is None:
            return
        self.last = next(v for v in reversed(column) if v is not None)
        self.low = low if self.low is None else min(self.low, low)
        self.high = high if self.high is None else max(self.high, high)  # type: ignore[type-var]

    def to_json(self) -> dict[str, Cell]:
        return {"last": self.last, "min": self.low, "max": self.high}


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
    #: Per line of the graph, its last value, minimum and maximum over every row read.
    stats: list[SeriesStats] = field(default_factory=list)
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
                self.stats = []
                self.announced, self._long_line = False, False
                rows: list[Row] | None = _WHOLES.read(self, fd, st)
            elif st.st_size == self.offset:
                return None
            else:
                sampler = self._read(fd, st.st_size)
                rows = sampler.rows() if sampler is not None and sampler.count else None
        except OSError:
            return None
        finally:
            os.close(fd)
        if not self.announced:  # the first rows a reader sees carry the whole file
            if not self.columns:
                return ([], True) if reset else None
            reset, self.announced = True, True
        elif rows is None:
            return None
        return rows or [], reset

    def take_over(self, other: Graph) -> None:
        """Continue from where ``other`` (of the same file) has read to."""
        self.columns, self.offset, self.skipped = list(other.columns), other.offset, other.skipped
        self.stats = [SeriesStats(s.last, s.low, s.high) for s in other.stats]
        self._long_line = other._long_line

    def _read(self, fd: int, size: int, sampler: Downsampler | None = None) -> Downsampler | None:
        """Read the complete lines between the offset and ``size``, chunk by chunk, into
        ``sampler`` (a new one when None)."""
        carry = b""
        position = self.offset
        while position < size:
            chunk = os.pread(fd, min(CHUNK, size - position), position)
            if not chunk:
                break
            position += len(chunk)
            data = carry + chunk
            end = data.rfind(b"\n")
            if end >= 0:
                sampler = self._lines(data[:end].split(b"\n"), sampler)
                self.offset = position - (len(data) - end - 1)
                data = data[end + 1 :]
            carry = self._hold(data)
            if self._long_line:  # never read the dropped part again
                self.offset = position
        return sampler

    def _hold(self, partial: bytes) -> bytes:
        """The unfinished last line, unless it is already too long to be a row."""
        if len(partial) <= MAX_LINE and not self._long_line:
            return partial
        self._long_line = True  # dropped now; the rest of it, up to its newline, too
        return b""

    def _lines(self, lines: list[bytes], sampler: Downsampler | None) -> Downsampler | None:
        """Feed complete lines to ``sampler`` (made once the header is known)."""
        if self._long_line:  # the end of a line that was too long
            self._long_line = False
            self.skipped += 1
            lines = lines[1:]
        if not self.columns:
            while lines and not lines[0].strip():
                lines = lines[1:]
            if not lines:
                return sampler
            header = lines[0]
            self.columns = _split_header(header)[:MAX_COLUMNS] if len(header) <= MAX_LINE else []
            lines = lines[1:]
            if not self.columns:
                self.skipped += 1
                return sampler
        width = len(self.columns)
        if sampler is None:
            sampler = Downsampler(width, max(8, min(MAX_POINTS, MAX_CELLS // width)))
        columns = _fast_columns(lines, width) if lines else None
        if columns is None:
            long = [line for line in lines if len(line) > MAX_LINE]
            columns, skipped = _slow_columns([ln for ln in lines if len(ln) <= MAX_LINE], width)
            self.skipped += skipped + len(long)
        sampler.add(columns)
        if not self.stats:
            self.stats = [SeriesStats() for _ in columns[1:]]
        for stats, column in zip(self.stats, columns[1:]):
            stats.add(column)
        return sampler

    def to_json(self, rows: list[Row], reset: bool) -> dict[str, Any]:
        """The graph (or its new rows) as the API and the event stream send it."""
        return {
            "name": self.name,
            "file": self.file,
            "columns": self.columns,
            "rows": rows,
            "reset": reset,
            "skipped_rows": self.skipped,
            "stats": [s.to_json() for s in self.stats],
        }


@dataclass
class _Whole:
    """One file read whole, kept so that the next whole read only reads what was added."""

    graph: Graph
    head: bytes
    sampler: Downsampler | None = None
    lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def cells(self) -> int:
        return self.sampler.limit * self.sampler.width if self.sampler else 0


class _Wholes:
    """The whole-file reads lately made, by file, to be continued: every page opened on a
    job asks for its graphs whole, and a long file must not be parsed again each time.

    A kept read is continued only while the file is the same one (device and inode), no
    shorter than what was read, and its first :data:`HEAD` bytes are unchanged; otherwise
    it is read again. At most :data:`CACHED_FILES` files and :data:`CACHED_CELLS` cells are
    kept, the oldest let go first.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._kept: OrderedDict[tuple[int, int], _Whole] = OrderedDict()

    def read(self, graph: Graph, fd: int, st: os.stat_result) -> list[Row]:
        """The rows of the whole file (thinned); ``graph`` takes over where the read ended."""
        head = os.pread(fd, HEAD, 0)
        key = (st.st_dev, st.st_ino)
        with self._lock:
            whole = self._kept.pop(key, None)
            same = whole is not None and whole.graph.offset <= st.st_size
            if whole is None or not (same and _same_start(whole.head, head)):
                whole = _Whole(Graph(graph.name, graph.file, inode=st.st_ino), head)
            self._kept[key] = whole
        with whole.lock:
            whole.sampler = whole.graph._read(fd, st.st_size, whole.sampler)
            whole.head = max(whole.head, head, key=len)
            graph.take_over(whole.graph)
            rows = whole.sampler.rows() if whole.sampler else []
        with self._lock:
            while len(self._kept) > 1 and (
                len(self._kept) > CACHED_FILES
                or sum(w.cells for w in self._kept.values()) > CACHED_CELLS
            ):
                self._kept.popitem(last=False)
        return rows


def _same_start(kept: bytes, now: bytes) -> bool:
    """True when two reads of a file's start agree where both reached."""
    n = min(len(kept), len(now))
    return kept[:n] == now[:n]


_WHOLES = _Wholes()


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
                    graph = self.graphs[name] = Graph(name[: -len(GRAPH_SUFFIX)], name)
                result = graph.poll(dir_fd)
                if result is not None and graph.columns:
                    updates.append(graph.to_json(*result))
        return updates


def read_graphs(folder: Path) -> list[dict[str, Any]]:
    """Every graph of a metrics folder, whole (thinned to :data:`MAX_POINTS` rows each)."""
    return GraphFollower(folder).poll()


def csv_lines(folder: Path, name: str) -> Generator[str, None, None] | None:
    """The graph ``name`` (its file without ``.log``) as CSV: its header, then every complete,
    well-formed row as the page reads it (a cell that is no finite number left empty).

    None when the folder has no such graph file the server reads (a link, a FIFO, a hidden
    or unlisted name): the same files as the page, opened the same careful way.
    """
    with _open_folder(folder) as dir_fd:
        if dir_fd is None or name + GRAPH_SUFFIX not in _names(dir_fd):
            return None
        opened = _open_regular(name + GRAPH_SUFFIX, dir_fd)
    if opened is None:
        return None
    rows = _csv_rows(*opened)
    next(rows)  # started, so that closing it early closes the file
    return rows


def _csv_rows(fd: int, st: os.stat_result) -> Generator[str, None, None]:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    graph = Graph("", "")
    try:
        yield ""
        size, position, carry = st.st_size, 0, b""
        while position < size:
            chunk = os.pread(fd, min(CHUNK, size - position), position)
            if not chunk:
                break
            position += len(chunk)
            lines = (carry + chunk).split(b"\n")
            carry = lines.pop()
            for line in lines:
                _csv_line(graph, line, writer)
            yield out.getvalue()
            out.seek(0)
            out.truncate()
    finally:
        os.close(fd)


def _csv_line(graph: Graph, line: bytes, writer: Any) -> None:
    """Write one line of the file: the header first, then rows of the header's width."""
    if not line.strip() or len(line) > MAX_LINE:
        return
    if not graph.columns:
        graph.columns = _split_header(line)[:MAX_COLUMNS]
        writer.writerow(graph.columns)
        return
    cells = line.split(b",")
    if len(cells) == len(graph.columns):
        writer.writerow(
            c.strip().decode("ascii", "replace") if _cell(c) is not None else "" for c in cells
        )
