"""SQLite: one file, WAL journal, the write lock taken up front (``BEGIN IMMEDIATE``)."""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path
from typing import Any

from .._urls import describe_url
from ._checkpoint import Checkpointer
from ._dialect import Dialect
from ._records import StoreError
from ._tx import Tx

__all__ = ["SqliteDialect"]


def _null(value: None) -> None:
    """None as sqlite3 binds it: NULL."""
    return value


# sqlite3 sends every parameter that is not exactly int, float, str or bytes (None too)
# through its adapter lookup, which on a miss formats and drops two AttributeErrors:
# about 0.4 µs per NULL, several per stored message. An adapter registered for None is
# found at once and returns it, bound as NULL as before.
sqlite3.register_adapter(type(None), _null)


class SqliteDialect(Dialect):
    """A SQLite file; the folder must exist, the file is created readable by its owner."""

    locks_whole_file = True  # BEGIN IMMEDIATE

    def __init__(self, url: str, path: Path) -> None:
        self.path = path
        self.url = describe_url(url)
        if sqlite3.sqlite_version_info < (3, 24):
            raise StoreError(
                f"{self.url}: needs SQLite 3.24 or newer, this Python has "
                f"{sqlite3.sqlite_version}: use PostgreSQL (--db postgresql://...)"
            )
        if not path.parent.is_dir():
            raise StoreError(
                f"{self.url}: the folder {str(path.parent)!r} does not exist; "
                "create it or give another --db"
            )
        _create_private(self.url, path)
        self.checkpointer = Checkpointer(path)

    def connect(self) -> Any:
        try:
            conn = sqlite3.connect(
                str(self.path), timeout=30, isolation_level=None, check_same_thread=False
            )
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")
            conn.execute("PRAGMA wal_autocheckpoint=0")  # the checkpointer's job
        except sqlite3.Error as exc:
            raise StoreError(f"{self.url}: cannot open the SQLite database: {exc}") from None
        self.checkpointer.start()
        return conn

    def close(self) -> None:
        self.checkpointer.stop()

    def begin(self, conn: Any) -> None:
        conn.execute("BEGIN IMMEDIATE")

    def transient(self, exc: BaseException) -> bool:
        return isinstance(exc, sqlite3.OperationalError) and "locked" in str(exc)

    def outage(self, exc: BaseException) -> bool:
        # OperationalError: locked, disk full, I/O error, read-only file. The data errors
        # (a trigger's RAISE, a constraint, a value too big) are IntegrityError, DataError...
        return isinstance(exc, (StoreError, sqlite3.OperationalError))

    def insert_seen(self, tx: Tx, ids: list[str], now: float) -> set[str]:
        # The write lock is already ours (BEGIN IMMEDIATE): look, then insert the new ones
        # (no RETURNING, which needs SQLite 3.35).
        known: set[str] = set()
        for start in range(0, len(ids), 400):
            chunk = ids[start : start + 400]
            marks = ", ".join(["?"] * len(chunk))
            rows = tx.all(f"SELECT message_id FROM tw_seen WHERE message_id IN ({marks})", chunk)
            known.update(str(r[0]) for r in rows)
        new = [mid for mid in ids if mid not in known]
        tx.many(
            "INSERT INTO tw_seen (message_id, received_at) VALUES (?, ?)", [(m, now) for m in new]
        )
        return set(new)


def _create_private(url: str, path: Path) -> None:
    """Create a new SQLite file readable by its owner only: it holds project keys.

    SQLite gives its ``-wal`` and ``-shm`` files the mode of the database file. An existing
    file keeps the mode its owner gave it.
    """
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return
    except OSError as exc:
        raise StoreError(
            f"{url}: cannot create the SQLite file {str(path)!r}: {exc.strerror}; give another --db"
        ) from None
    os.close(fd)
