"""The durable local spool: messages the broker did not confirm, kept for replay.

One JSON object per line, appended and fsynced, under ``<model_write_path>/save/``.
Each record keeps its ``message_id``, so a consumer can drop the duplicates that
at-least-once delivery may produce. Records are removed only after the broker confirmed
them, by rewriting the file atomically (write, fsync, rename) under an exclusive lock.

The spool and its lock file are created readable by their owner only (0600): the
records hold the ``project_key``, the project's authentication key.

The lock is ``<spool>.lock`` (``flock``), shared by every thread and process that touches
the spool: the run that keeps its terminal message, a re-run of the job that moves it
aside, ``trainwire run`` delivering its child's, and ``trainwire replay``. When the spool
becomes empty both files are removed, so a healthy run leaves nothing behind; a waiter that
locked a removed lock file notices and locks the new one.
"""

from __future__ import annotations

import contextlib
import json
import os
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = ["OFFLINE_FILE", "PRIVATE_MODE", "SPOOL_FILE", "Spool", "SpoolRecord", "make_record"]

SPOOL_FILE = "trainwire-spool.jsonl"
OFFLINE_FILE = "trainwire-offline.jsonl"
#: Spool, lock and offline files: owner only, they hold the ``project_key``.
PRIVATE_MODE = 0o600


@dataclass(frozen=True)
class SpoolRecord:
    """One kept message: where it was going and what it was."""

    message_id: str
    queue: str
    body: dict[str, Any]
    terminal: bool
    spooled_at: float

    def to_json(self) -> str:
        """The record as one line of JSON (UTF-8, no escapes for Korean)."""
        return json.dumps(
            {
                "message_id": self.message_id,
                "queue": self.queue,
                "terminal": self.terminal,
                "spooled_at": self.spooled_at,
                "body": self.body,
            },
            ensure_ascii=False,
        )

    def to_line(self) -> bytes:
        """The record as one UTF-8 line; never fails on text.

        A lone surrogate (text the protocol's builders did not clean) is written as a JSON
        ``\\uXXXX`` escape, so the line stays valid JSON and the record is kept.
        """
        return (self.to_json() + "\n").encode("utf-8", "backslashreplace")

    @classmethod
    def from_json(cls, line: str) -> SpoolRecord:
        """Parse one line; ``ValueError`` when it is not a spool record."""
        data = json.loads(line)
        if not isinstance(data, dict) or not isinstance(data.get("body"), dict):
            raise ValueError("not a spool record")
        return cls(
            message_id=str(data["message_id"]),
            queue=str(data.get("queue", "")),
            body=data["body"],
            terminal=bool(data.get("terminal", False)),
            spooled_at=float(data.get("spooled_at", 0.0)),
        )


def _fsync_dir(path: Path) -> None:
    """Make a file's creation, rename or removal in ``path`` durable (best effort)."""
    with contextlib.suppress(OSError):
        fd = os.open(str(path), os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


class Spool:
    """An append-only JSON-lines file of records."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock_path = Path(str(path) + ".lock")

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        import fcntl

        self.path.parent.mkdir(parents=True, exist_ok=True)
        while True:
            fd = os.open(str(self._lock_path), os.O_CREAT | os.O_RDWR, PRIVATE_MODE)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX)
                try:
                    current = os.stat(str(self._lock_path)).st_ino
                except FileNotFoundError:
                    current = -1
            except BaseException:
                os.close(fd)
                raise
            if current == os.fstat(fd).st_ino:
                break
            os.close(fd)  # the holder before us removed that lock file: lock the new one
        try:
            yield
        finally:
            os.close(fd)

    def append(self, records: Iterable[SpoolRecord]) -> None:
        """Append records in one write and fsync them before returning."""
        data = b"".join(record.to_line() for record in records)
        if not data:
            return
        with self._locked():
            created = not self.path.exists()
            fd = os.open(self.path, os.O_RDWR | os.O_APPEND | os.O_CREAT, PRIVATE_MODE)
            try:
                size = os.fstat(fd).st_size
                if size and os.pread(fd, 1, size - 1) != b"\n":
                    data = b"\n" + data  # a torn line (a writer died): never glue onto it
                _write_all(fd, data)
                os.fsync(fd)
            finally:
                os.close(fd)
            if created:
                _fsync_dir(self.path.parent)

    def read(self) -> list[SpoolRecord]:
        """Every readable record in file order; a torn last line (a crash mid-write) is skipped."""
        try:
            text = self.path.read_text(encoding="utf-8", errors="replace")
        except FileNotFoundError:
            return []
        records = []
        for line in text.splitlines():
            if not line.strip():
                continue
            try:
                records.append(SpoolRecord.from_json(line))
            except (ValueError, KeyError, TypeError):
                continue
        return records

    def remove(self, message_ids: Iterable[str]) -> int:
        """Drop the records with these ids (confirmed by the broker); returns how many remain.

        An emptied spool is deleted together with its lock file.
        """
        gone = set(message_ids)
        with self._locked():
            records = self.read()
            keep = [r for r in records if r.message_id not in gone]
            if not keep:
                with contextlib.suppress(FileNotFoundError):
                    self.path.unlink()
                with contextlib.suppress(FileNotFoundError):
                    self._lock_path.unlink()  # still locked by us: waiters retry on a new one
                _fsync_dir(self.path.parent)
                return 0
            if len(keep) == len(records):
                return len(keep)
            tmp = self.path.with_name(self.path.name + ".tmp")
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, PRIVATE_MODE)
            try:
                os.fchmod(fd, PRIVATE_MODE)  # a leftover .tmp from a crash keeps its mode
                _write_all(fd, b"".join(r.to_line() for r in keep))
                os.fsync(fd)
            finally:
                os.close(fd)
            os.replace(tmp, self.path)
            _fsync_dir(self.path.parent)
            return len(keep)


def make_record(message_id: str, queue: str, body: dict[str, Any], terminal: bool) -> SpoolRecord:
    """A record stamped with the current time."""
    return SpoolRecord(message_id, queue, body, terminal, time.time())
