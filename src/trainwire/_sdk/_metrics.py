"""Training graphs: the metric files the platform reads while a job runs.

Each graph is one file, ``<model_write_path>/save/metrics/<graph>.log``, in the spec's
format: the first line holds the field names, the first column is the x axis, every
later column is one line of the graph, cells separated by a comma and a space::

    step, train, val
    1, 0.31, 0.29
    2, 0.27, 0.26

How the files are written (docs/metrics.md says the same for users):

* The header is written once, when the file is created, and the file only ever appears
  with its header in it (it is written beside it and hard-linked into place).
* Each row reaches the file in a single ``os.write`` on a descriptor opened once with
  ``O_APPEND``, never rewritten. A reader can still see the first part of an append that
  crosses a page, so a row is complete only once its line break is there (the contract
  docs/metrics.md gives the platform's readers). ``log()`` does no ``open()`` and no
  header check per call.
* Numbers are written in the shortest form that reads back to the same value (Python's
  ``repr``; 16- and 32-bit floats of NumPy or torch in their own shortest form); integers
  stay integers. Never a locale's format.
* Non-finite values: a row holding NaN or an infinity is left out of the file, with one
  warning per graph. The platform never gets a cell it cannot parse.
* Each row carries exactly its graph's series, fixed by the graph's first row; anything
  else raises :class:`MetricsError` at the call site. The x axis never goes backwards.
* Resume: an existing file with the same header is appended to; a different header
  raises :class:`MetricsError` naming the file and both headers.
* Disk full, a read-only or missing folder: one warning, that graph stops, training goes on.
* In a process forked from the writer's (data-loader workers) nothing is ever written.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import re
import stat
import struct
import threading
import unicodedata
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Union

from .._errors import MetricsError
from .._spec._layout import GRAPH_SUFFIX

__all__ = [
    "NUMBER_RE",
    "SEPARATOR",
    "SUFFIX",
    "MetricsError",
    "MetricsWriter",
    "Number",
    "parse_number",
    "validate_graph_name",
    "validate_series_name",
]

log = logging.getLogger("trainwire")

#: Cell separator of the spec's example: a comma and a space.
SEPARATOR = ", "
#: File name suffix of a graph: ``<graph>.log``.
SUFFIX = GRAPH_SUFFIX
#: Longest graph, series or x axis name, in characters and in UTF-8 bytes.
MAX_NAME_CHARS = 100
MAX_NAME_BYTES = 200

Number = Union[int, float]

_WINDOWS_FORBIDDEN = '<>:"|?*'
_WINDOWS_DEVICES = frozenset(
    ["CON", "PRN", "AUX", "NUL"]
    + [f"COM{i}" for i in range(1, 10)]
    + [f"LPT{i}" for i in range(1, 10)]
)
_BINARY = getattr(os, "O_BINARY", 0)  # no newline translation on Windows
_APPEND_FLAGS = os.O_RDWR | os.O_APPEND | _BINARY
#: A cell the platform can read as a number.
NUMBER_RE = re.compile(r"[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?\Z")
_INT_RE = re.compile(r"[+-]?\d+\Z")
_HEAD_LIMIT = 64 * 1024


def parse_number(cell: str) -> Number:
    """A cell matching ``NUMBER_RE`` as the number it reads as (int without a point)."""
    return int(cell) if _INT_RE.match(cell) else float(cell)


# -- names ---------------------------------------------------------------------------


def _check_common(name: object, what: str) -> str:
    if not isinstance(name, str):
        raise MetricsError(f"{what} name must be a string, got {type(name).__name__} {name!r}")
    for char in name:
        if unicodedata.category(char) in ("Cc", "Zl", "Zp"):
            raise MetricsError(
                f"{what} name {name!r} contains the control character {char!r} (a line "
                f"break, NUL, tab ...): the file holds one row per line; remove it"
            )
    if not name.strip():
        raise MetricsError(f"{what} name {name!r} is empty: give it a name, e.g. 'loss'")
    if name != name.strip():
        raise MetricsError(
            f"{what} name {name!r} starts or ends with a space: remove it (the file's "
            f"separator is ', ', so the space would be lost when the file is read)"
        )
    if "," in name:
        raise MetricsError(
            f"{what} name {name!r} contains a comma, which separates the file's columns: "
            f"use another character, e.g. '_'"
        )
    try:
        size = len(name.encode("utf-8"))
    except UnicodeEncodeError:
        raise MetricsError(f"{what} name {name!r} is not valid Unicode text") from None
    if len(name) > MAX_NAME_CHARS or size > MAX_NAME_BYTES:
        raise MetricsError(
            f"{what} name {name[:20]!r}... is too long ({len(name)} characters, {size} "
            f"bytes in UTF-8): at most {MAX_NAME_CHARS} characters and {MAX_NAME_BYTES} bytes"
        )
    return name


def validate_series_name(name: object, what: str = "series") -> str:
    """Return ``name`` when it can be a column of a metrics file, else raise MetricsError."""
    return _check_common(name, what)


def validate_graph_name(name: object) -> str:
    """Return ``name`` when ``<name>.log`` is a safe, portable file name directly in the
    metrics folder, else raise :class:`MetricsError`. Unicode (Korean too) is fine."""
    name = _check_common(name, "graph")
    if "/" in name or "\\" in name:
        raise MetricsError(
            f"graph name {name!r} contains '/' or '\\': a graph is one file directly in the "
            f"metrics folder, so its name cannot point into another folder; use e.g. '_' "
            f"instead (log_dict splits 'graph/series' keys at the first '/')"
        )
    if name.startswith("."):
        raise MetricsError(
            f"graph name {name!r} starts with '.': '..' would leave the metrics folder and "
            f"'.name' makes a hidden file; start the name with a letter or a digit"
        )
    for char in _WINDOWS_FORBIDDEN:
        if char in name:
            raise MetricsError(
                f"graph name {name!r} contains {char!r}, which file names on Windows cannot "
                f"hold (< > : \" | ? *); use e.g. '_' instead"
            )
    if name.split(".")[0].upper() in _WINDOWS_DEVICES:
        raise MetricsError(
            f"graph name {name!r} is a device name on Windows (CON, PRN, AUX, NUL, "
            f"COM1-9, LPT1-9), so {name + SUFFIX!r} is not a portable file name; choose another"
        )
    return name


# -- numbers -------------------------------------------------------------------------


class _BadValue(Exception):
    """Internal: why a value is not a number (the caller adds graph and series)."""


def _short(value: float) -> str:
    return repr(value) if value - value == 0.0 else ""


def _short_narrow(value: float, dtype: Any) -> str:
    """Shortest text of a 16/32-bit float that reads back to the same value."""
    if value - value != 0.0:
        return ""
    itemsize = getattr(dtype, "itemsize", 8)
    if not isinstance(itemsize, int) or itemsize >= 8:
        return repr(value)
    code = "e" if str(dtype) in ("float16", "torch.float16") else "f"
    for digits in range(1, 10):
        text = f"{value:.{digits}g}"
        try:
            back = struct.unpack(code, struct.pack(code, float(text)))[0]
        except (OverflowError, struct.error):
            continue
        if back == value:
            return repr(float(text))
    return repr(value)


def _number(value: Any) -> tuple[Number, str]:
    """``(value, cell text)``; the text is "" for NaN and infinities. Raises _BadValue."""
    if isinstance(value, bool):
        raise _BadValue(f"{value!r} is a bool, not a number; log float(flag) if you mean 0/1")
    if isinstance(value, (str, bytes, bytearray)):
        raise _BadValue(f"{value!r} is text, not a number; convert it with float(...) first")
    if isinstance(value, int):
        number = int(value)
        return number, str(number)
    if isinstance(value, float):  # also numpy.float64
        real = float(value)
        return real, _short(real)
    if isinstance(value, complex):
        raise _BadValue(f"{value!r} is a complex number; log its .real or abs()")
    if hasattr(value, "dtype") and callable(getattr(value, "item", None)):
        # NumPy scalars and arrays, torch tensors: exactly one element
        try:
            item = value.item()
        except (ValueError, RuntimeError, TypeError):
            shape = tuple(getattr(value, "shape", ()))
            raise _BadValue(
                f"is an array of shape {shape}, not one number; log a single number, "
                f"e.g. loss.item() or values.mean()"
            ) from None
        if isinstance(item, bool):
            raise _BadValue(f"{item!r} is a bool, not a number; log float(flag) if you mean 0/1")
        if isinstance(item, int):
            return item, str(item)
        if isinstance(item, float):
            return item, _short_narrow(item, value.dtype)
        if isinstance(item, complex):
            raise _BadValue(f"{item!r} is a complex number; log its .real or abs()")
        value = item
    try:
        real = float(value)
    except (TypeError, ValueError, OverflowError):
        text = repr(value)
        if len(text) > 60:
            text = text[:57] + "..."
        raise _BadValue(
            f"{text} ({type(value).__name__}) is not a number; log a Python or NumPy number "
            f"or a 0-d tensor"
        ) from None
    return real, _short(real)


# -- the writer ----------------------------------------------------------------------

_OPEN, _CLOSED, _DISABLED, _FORKED = 0, 1, 2, 3


class _Graph:
    __slots__ = ("fd", "floor", "keyset", "last", "name", "path", "series", "warned", "x_axis")

    def __init__(self, name: str, path: Path, x_axis: str, series: tuple[str, ...]) -> None:
        self.name = name
        self.path = path
        self.x_axis = x_axis
        self.series = series
        self.keyset = frozenset(series)
        self.fd: int | None = None
        self.last: Number = float("-inf")  # the last x given in this process
        self.floor: Number | None = None  # the last x of a resumed file, until passed
        self.warned: set[str] = set()

    @property
    def header(self) -> str:
        return SEPARATOR.join((self.x_axis, *self.series))


# Open writers, for the fork hook. A plain set, not a WeakSet: a weakref callback run by
# the garbage collector would swallow a KeyboardInterrupt that lands inside it (seen by
# the signal storm: the process then never ended). Writers leave it when closed.
_writers: set[MetricsWriter] = set()


def _after_fork_in_child() -> None:
    for writer in list(_writers):
        writer._forked()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)


class MetricsWriter:
    """Writes the graph files of one run into ``directory`` (``<model_write_path>/save/metrics``).

    Thread-safe. The folder is created on the first row. Rules for callers:

    * ``log(graph, x, series)``: one row of ``graph``. The first row fixes the graph's
      series (in the order given) and its x axis name; every later row must give exactly
      those series (in any order), else :class:`MetricsError`.
    * ``log_dict(metrics, step)``: keys ``"graph/series"`` are split at the first ``/``; a
      key without ``/`` is a graph of its own with one series of the same name. All keys
      of one graph in one call make one row; the graph's series are fixed by its first
      row, so a later call must give all of them or none. Metrics logged at different
      steps (training loss every step, validation loss every epoch) therefore need
      different graphs, e.g. ``"train/loss"`` and ``"val/loss"``: the error says so.
    * A row holding NaN or an infinity is not written (one warning per graph).
    * ``x`` never goes backwards within a graph (else :class:`MetricsError`); after a
      resume, rows up to the file's last x are left out (one warning) until x passes it.
    * I/O errors (disk full, read-only folder) warn once and stop that graph; they are
      never raised.
    """

    def __init__(self, directory: Path) -> None:
        self.directory = Path(directory)
        self._lock = threading.Lock()
        self._graphs: dict[str, _Graph] = {}
        self._folded: dict[str, str] = {}
        self._state = _OPEN
        self._said: set[str] = set()
        self._dir_ready = False
        self._dir_failed = False
        _writers.add(self)

    # -- public --------------------------------------------------------------------

    def log(
        self, graph: str, x: Number, series: Mapping[str, Any], *, x_axis: str = "step"
    ) -> None:
        """Append one row ``x, series...`` to ``<directory>/<graph>.log``."""
        with self._lock:
            if self._state:
                self._inactive()
                return
            try:
                g = self._graphs.get(graph)
            except TypeError:  # unhashable: _graph_for says what a name must be
                g = None
            if g is None or g.x_axis != x_axis or series.keys() != g.keyset:
                g = self._graph_for(graph, x_axis, series, False)
            row = self._row(g, x, series)
            if row is not None and g.fd is not None:
                self._write(g, row)

    def log_dict(self, metrics: Mapping[str, Any], step: Number) -> None:
        """Log ``{"graph/series": value, "graph": value, ...}`` at x = ``step``.

        All or nothing: when any key or value is rejected, no row of this call is written.
        """
        groups: dict[str, dict[str, Any]] = {}
        for key, value in metrics.items():
            if not isinstance(key, str):
                raise MetricsError(
                    f"metric key {key!r} is not a string: use 'graph/series' or 'graph'"
                )
            graph, slash, name = key.partition("/")
            if not slash:
                name = key
            elif not graph or not name:
                raise MetricsError(
                    f"metric key {key!r} needs a name on both sides of the '/': "
                    f"'graph/series', e.g. 'loss/train'"
                )
            group = groups.get(graph)
            if group is None:
                group = groups[graph] = {}
            group[name] = value
        with self._lock:
            if self._state:
                self._inactive()
                return
            rows: list[tuple[_Graph, bytes | None]] = []
            for graph, series in groups.items():
                g = self._graphs.get(graph)
                if g is None or g.x_axis != "step" or series.keys() != g.keyset:
                    g = self._graph_for(graph, "step", series, True)
                rows.append((g, self._row(g, step, series)))
            for g, row in rows:
                if row is not None and g.fd is not None:
                    self._write(g, row)

    def close(self, timeout: float = -1) -> None:
        """Close the files. Rows logged afterwards are not written (one warning).

        With a ``timeout`` (seconds), a ``log()`` still holding the writer after it (the
        thread that ends a run must never wait on the training thread for long) leaves
        the descriptors to the process's exit; the writer is closed all the same.
        """
        _writers.discard(self)
        if not self._lock.acquire(timeout=timeout):
            if self._state == _OPEN:
                self._state = _CLOSED
            return
        try:
            if self._state == _OPEN:
                self._state = _CLOSED
            for g in self._graphs.values():
                self._drop_fd(g)
        finally:
            self._lock.release()

    def disable(self) -> None:
        """Stop writing for good, without flushing or closing anything (in a forked child:
        the descriptors are the parent's). Later calls do nothing."""
        _writers.discard(self)
        if self._state != _FORKED:
            self._state = _DISABLED
        self._graphs = {}
        self._lock = threading.Lock()  # the parent's may have been held at fork time

    @property
    def graphs(self) -> dict[str, Path]:
        """The graphs logged so far in this process: name -> file."""
        return {name: g.path for name, g in self._graphs.items()}

    def path_for(self, graph: str) -> Path:
        """The file of ``graph`` (validates the name)."""
        return self.directory / (validate_graph_name(graph) + SUFFIX)

    def __enter__(self) -> MetricsWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- rows ----------------------------------------------------------------------

    def _row(self, g: _Graph, x: Any, series: Mapping[str, Any]) -> bytes | None:
        """The encoded row, or None when it is not to be written. Raises MetricsError."""
        kind = type(x)
        if kind is int:
            xv: Number = x
            cells = [str(x)]
        elif kind is float and x - x == 0.0:
            xv = x
            cells = [repr(x)]
        else:
            xv, text = self._x_slow(g, x)
            cells = [text]
        if xv < g.last:
            raise MetricsError(
                f"graph {g.name!r}: the x axis ({g.x_axis}) went backwards, from {g.last} "
                f"to {cells[0]}. A graph's x values must never decrease (the platform draws "
                f"rows in file order): pass a step that keeps counting across epochs (e.g. "
                f"epoch * steps_per_epoch + i), or log to a new graph name"
            )
        bad: str | None = None
        for name in g.series:
            value = series[name]
            kind = type(value)
            if kind is float:
                if value - value == 0.0:
                    cells.append(repr(value))
                    continue
                bad = bad or name
            elif kind is int:
                cells.append(str(value))
            else:
                try:
                    text = _number(value)[1]
                except _BadValue as exc:
                    raise MetricsError(f"graph {g.name!r}, series {name!r}: {exc}") from None
                if text:
                    cells.append(text)
                else:
                    bad = bad or name
        g.last = xv
        if bad is not None:
            self._say_once(
                g,
                "nonfinite",
                f"graph {g.name!r} ({g.path}): {bad!r} is {float(series[bad])} at "
                f"{g.x_axis} {cells[0]}; rows holding NaN or infinity are left out of the "
                f"file, since the platform cannot draw them (shown once per graph)",
            )
            return None
        if g.floor is not None:
            if xv <= g.floor:  # the file has this x already: no row twice at one x
                self._say_once(
                    g,
                    "floor",
                    f"graph {g.name!r}: {g.path} already has rows up to {g.x_axis} "
                    f"{g.floor}; rows up to that {g.x_axis} (a job resumed from an "
                    f"earlier checkpoint?) are left out until {g.x_axis} passes {g.floor}, "
                    f"so the file's x axis never goes backwards (shown once per graph)",
                )
                return None
            g.floor = None
        return (SEPARATOR.join(cells) + "\n").encode("utf-8")

    @staticmethod
    def _x_slow(g: _Graph, x: Any) -> tuple[Number, str]:
        try:
            xv, text = _number(x)
        except _BadValue as exc:
            raise MetricsError(f"graph {g.name!r}, x ({g.x_axis}): {exc}") from None
        if not text:
            raise MetricsError(
                f"graph {g.name!r}: x ({g.x_axis}) is {x!r}; x must be a finite number"
            )
        return xv, text

    def _write(self, g: _Graph, row: bytes) -> None:
        fd = g.fd
        assert fd is not None
        try:
            written = os.write(fd, row)
        except OSError as exc:
            self._failed(g, exc, "cannot write")
            return
        if written != len(row):
            self._torn(g, fd, written)

    def _torn(self, g: _Graph, fd: int, written: int) -> None:
        # A short write (disk full, file size limit): take the partial row back out, so
        # the file still holds only complete lines, then stop this graph.
        try:
            st = os.fstat(fd)
            if stat.S_ISREG(st.st_mode) and written > 0:
                os.ftruncate(fd, st.st_size - written)
        except OSError:
            pass
        reason = "only part of a row fit (disk full or file size limit); the part was removed"
        self._failed(g, OSError(errno.ENOSPC, reason), "cannot write")

    # -- graphs --------------------------------------------------------------------

    def _graph_for(
        self, graph: str, x_axis: str, series: Mapping[str, Any], from_dict: bool
    ) -> _Graph:
        g = self._graphs.get(graph) if isinstance(graph, str) else None
        if g is not None:
            raise MetricsError(self._mismatch(g, x_axis, series, from_dict))
        validate_graph_name(graph)
        validate_series_name(x_axis, "x axis")
        if not series:
            raise MetricsError(
                f"graph {graph!r}: no series given; log at least one, e.g. "
                f"log({graph!r}, step, value=0.5)"
            )
        names = tuple(series)
        for name in names:
            validate_series_name(name)
            if name == x_axis:
                raise MetricsError(
                    f"graph {graph!r}: series {name!r} has the x axis's name; the header "
                    f"cannot hold the same name twice, so rename the series"
                )
        folded = graph.casefold()
        other = self._folded.get(folded)
        if other is not None and other != graph:
            raise MetricsError(
                f"graph {graph!r} differs from the graph {other!r} only in upper/lower case; "
                f"on macOS and Windows both would be the same file: use one spelling"
            )
        g = _Graph(graph, self.directory / (graph + SUFFIX), x_axis, names)
        self._open(g)
        self._graphs[graph] = g
        self._folded[folded] = graph
        return g

    @staticmethod
    def _mismatch(g: _Graph, x_axis: str, series: Mapping[str, Any], from_dict: bool) -> str:
        if g.x_axis != x_axis:
            if from_dict:
                return (
                    f"graph {g.name!r} ({g.path.name}) has the x axis {g.x_axis!r}, but "
                    f"log_dict() always logs against 'step'; log it with log() and "
                    f"x_axis={g.x_axis!r}, or use another graph name in log_dict()"
                )
            return (
                f"graph {g.name!r} ({g.path.name}) has the x axis {g.x_axis!r}; this call "
                f"gives x_axis={x_axis!r}. A graph keeps one x axis: pass "
                f"x_axis={g.x_axis!r}, or log to another graph name"
            )
        missing = [s for s in g.series if s not in series]
        extra = [str(s) for s in series if s not in g.keyset]
        parts = []
        if missing:
            parts.append("lacks " + ", ".join(repr(s) for s in missing))
        if extra:
            parts.append("adds " + ", ".join(repr(s) for s in extra))
        text = (
            f"graph {g.name!r} ({g.path.name}) has the series {', '.join(g.series)}, fixed "
            f"by its first row; this row {' and '.join(parts)}. Every row must give every "
            f"series of its graph (the file never gets half-empty rows). "
        )
        if from_dict:
            keys = ", ".join(f"'{g.name}/{s}'" for s in g.series)
            return text + (
                f"In log_dict(), the keys of one graph in one call make one row: give "
                f"{keys} together, or give metrics logged at different steps different "
                f"prefixes, e.g. 'train/loss' every step and 'val/loss' every epoch"
            )
        return text + (
            "Series measured at different times (e.g. validation once an epoch) belong "
            f"to a graph of their own, e.g. log('val_{g.name}', step, ...)"
        )

    def _open(self, g: _Graph) -> None:
        """Open (creating with its header, or resuming) the file of ``g``.

        Leaves ``g.fd`` None after an I/O error (warned); raises MetricsError when an
        existing file has another header.
        """
        if not self._dir_ready:
            if self._dir_failed:
                return
            try:
                self.directory.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                self._dir_failed = True
                self._say(
                    "dir",
                    f"cannot create the metrics folder {self.directory}: "
                    f"{exc.strerror or exc}; training graphs are not written, training "
                    f"goes on",
                )
                return
            self._dir_ready = True
        header = (g.header + "\n").encode("utf-8")
        try:
            created = _create(g.path, header)
            fd = os.open(g.path, _APPEND_FLAGS)
        except OSError as exc:
            self._failed(g, exc, "cannot create")
            return
        if not created:
            try:
                self._resume(g, fd, header)
            except MetricsError:
                os.close(fd)
                raise
            except OSError as exc:
                os.close(fd)
                self._failed(g, exc, "cannot write")
                return
        g.fd = fd

    def _resume(self, g: _Graph, fd: int, header: bytes) -> None:
        size = os.fstat(fd).st_size
        if size == 0:  # e.g. created by hand, or a character device
            if os.write(fd, header) != len(header):
                raise OSError(errno.ENOSPC, "no space left for the header")
            return
        os.lseek(fd, 0, os.SEEK_SET)
        head = b""
        while b"\n" not in head and len(head) < _HEAD_LIMIT:
            chunk = os.read(fd, 4096)
            if not chunk:
                break
            head += chunk
        first = head.split(b"\n", 1)[0]
        try:
            found = first.decode("utf-8").rstrip("\r")
        except UnicodeDecodeError:
            found = repr(first[:80])
        fields = tuple(c.strip() for c in found.split(","))
        if (
            fields[:1] != (g.x_axis,)
            or frozenset(fields[1:]) != g.keyset
            or len(fields) != len(g.series) + 1
        ):
            raise MetricsError(
                f"{g.path} already exists with the header {found!r}, but graph {g.name!r} "
                f"is now logged as {g.header!r}. A file's header never changes, so trainwire "
                f"will not append to it: log these series under a new graph name, or move "
                f"the old file away if it belongs to an earlier run"
            )
        g.series = fields[1:]  # same names, perhaps given in another order this time
        # The last row: where x stands, and whether the file ends with a line break.
        tail_size = min(size, 4096)
        os.lseek(fd, size - tail_size, os.SEEK_SET)
        tail = os.read(fd, tail_size)
        if not tail.endswith(b"\n"):
            os.write(fd, b"\n")
            self._say_once(
                g,
                "newline",
                f"graph {g.name!r}: {g.path} did not end with a line break (a job stopped "
                f"while writing, or a hand-written file); one was added. "
                f"`trainwire metrics check` shows whether its last line is a complete row",
            )
        lines = tail.rstrip(b"\n").rsplit(b"\n", 1)
        if len(lines) == 2 or size > tail_size:
            cell = lines[-1].split(b",", 1)[0].strip().decode("utf-8", "replace")
            if NUMBER_RE.match(cell):
                value = parse_number(cell)
                if value - value == 0:
                    g.floor = value

    # -- trouble -------------------------------------------------------------------

    def _failed(self, g: _Graph, exc: OSError, doing: str) -> None:
        self._drop_fd(g)
        self._say_once(
            g,
            "io",
            f"{doing} the training graph {g.path}: {exc.strerror or exc}; this graph stops "
            f"here, training goes on",
        )

    @staticmethod
    def _drop_fd(g: _Graph) -> None:
        fd, g.fd = g.fd, None
        if fd is not None:
            with contextlib.suppress(OSError):
                os.close(fd)

    def _say(self, key: str, text: str) -> None:
        if key not in self._said:
            self._said.add(key)
            log.warning("trainwire: %s", text)

    @staticmethod
    def _say_once(g: _Graph, key: str, text: str) -> None:
        if key not in g.warned:
            g.warned.add(key)
            log.warning("trainwire: %s", text)

    def _inactive(self) -> None:
        if self._state == _CLOSED:
            self._say("closed", "metrics logged after the run ended are not written to the graphs")
        elif self._state == _FORKED:
            self._say(
                "forked",
                f"metrics logged in the forked process {os.getpid()} are not written: only "
                f"the process that started the run writes the graphs",
            )

    def _forked(self) -> None:
        self._state = _FORKED
        self.disable()


def _create(path: Path, header: bytes) -> bool:
    """Create ``path`` holding ``header``, atomically: True, or False when it exists.

    The header is written to a hidden file beside it, which is then hard-linked to
    ``path``, so no reader ever sees the file empty or with half a header.
    """
    if path.exists():
        return False
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | _BINARY, 0o644)
    try:
        try:
            if os.write(fd, header) != len(header):
                raise OSError(errno.ENOSPC, "no space left for the header")
        finally:
            os.close(fd)
        try:
            os.link(tmp, path)
            return True
        except FileExistsError:
            return False
        except OSError:  # no hard links on this file system: exclusive create instead
            pass
    finally:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | _BINARY, 0o644)
    except FileExistsError:
        return False
    try:
        if os.write(fd, header) != len(header):
            raise OSError(errno.ENOSPC, "no space left for the header")
    finally:
        os.close(fd)
    return True
