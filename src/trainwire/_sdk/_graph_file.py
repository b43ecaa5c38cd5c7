"""One graph's file: created with its header in one step, resumed, appended to by rows."""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import stat
import threading
from pathlib import Path

from .._errors import MetricsError
from ._graph_numbers import NUMBER_RE, Number, parse_number

__all__ = ["SEPARATOR", "GraphFile"]

log = logging.getLogger("trainwire")

#: Cell separator of the spec's example: a comma and a space.
SEPARATOR = ", "
_BINARY = getattr(os, "O_BINARY", 0)  # no newline translation on Windows
_APPEND_FLAGS = os.O_RDWR | os.O_APPEND | _BINARY
_HEAD_LIMIT = 64 * 1024


class GraphFile:
    """A graph of one writer: its name, columns, where its x stands, and its descriptor.

    I/O errors are warned once and stop the graph (``fd`` None); they are never raised.
    """

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
        """The file's first line (without its line break)."""
        return SEPARATOR.join((self.x_axis, *self.series))

    def open(self) -> None:
        """Open the file, creating it with its header or resuming it.

        Leaves ``fd`` None after an I/O error (warned); raises MetricsError when an
        existing file has another header.
        """
        header = (self.header + "\n").encode("utf-8")
        try:
            created = _create(self.path, header)
            fd = os.open(self.path, _APPEND_FLAGS)
        except OSError as exc:
            self._failed(exc, "cannot create")
            return
        if not created:
            try:
                self._resume(fd, header)
            except MetricsError:
                os.close(fd)
                raise
            except OSError as exc:
                os.close(fd)
                self._failed(exc, "cannot write")
                return
        self.fd = fd

    def write(self, row: bytes) -> None:
        """Append one encoded row in a single ``os.write``."""
        fd = self.fd
        assert fd is not None
        try:
            written = os.write(fd, row)
        except OSError as exc:
            self._failed(exc, "cannot write")
            return
        if written != len(row):
            self._torn(fd, written)

    def _torn(self, fd: int, written: int) -> None:
        # A short write (disk full, file size limit): take the partial row back out, so
        # the file still holds only complete lines, then stop this graph.
        try:
            st = os.fstat(fd)
            if stat.S_ISREG(st.st_mode) and written > 0:
                os.ftruncate(fd, st.st_size - written)
        except OSError:
            pass
        reason = "only part of a row fit (disk full or file size limit); the part was removed"
        self._failed(OSError(errno.ENOSPC, reason), "cannot write")

    def _resume(self, fd: int, header: bytes) -> None:
        size = os.fstat(fd).st_size
        if size == 0:  # e.self. created by hand, or a character device
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
            fields[:1] != (self.x_axis,)
            or frozenset(fields[1:]) != self.keyset
            or len(fields) != len(self.series) + 1
        ):
            raise MetricsError(
                f"{self.path} already exists with the header {found!r}, but graph {self.name!r} "
                f"is now logged as {self.header!r}. A file's header never changes, so trainwire "
                f"will not append to it: log these series under a new graph name, or move "
                f"the old file away if it belongs to an earlier run"
            )
        self.series = fields[1:]  # same names, perhaps given in another order this time
        # The last row: where x stands, and whether the file ends with a line break.
        tail_size = min(size, 4096)
        os.lseek(fd, size - tail_size, os.SEEK_SET)
        tail = os.read(fd, tail_size)
        if not tail.endswith(b"\n"):
            os.write(fd, b"\n")
            self.say_once(
                "newline",
                f"graph {self.name!r}: {self.path} did not end with a line break (a job stopped "
                f"while writing, or a hand-written file); one was added. "
                f"`trainwire metrics check` shows whether its last line is a complete row",
            )
        lines = tail.rstrip(b"\n").rsplit(b"\n", 1)
        if len(lines) == 2 or size > tail_size:
            cell = lines[-1].split(b",", 1)[0].strip().decode("utf-8", "replace")
            if NUMBER_RE.match(cell):
                value = parse_number(cell)
                if value - value == 0:
                    self.floor = value

    def _failed(self, exc: OSError, doing: str) -> None:
        self.close()
        self.say_once(
            "io",
            f"{doing} the training graph {self.path}: {exc.strerror or exc}; this graph stops "
            f"here, training goes on",
        )

    def close(self) -> None:
        """Close the descriptor (the graph writes nothing more)."""
        fd, self.fd = self.fd, None
        if fd is not None:
            with contextlib.suppress(OSError):
                os.close(fd)

    def say_once(self, key: str, text: str) -> None:
        """Warn ``text`` once per graph and ``key``."""
        if key not in self.warned:
            self.warned.add(key)
            log.warning("trainwire: %s", text)


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
