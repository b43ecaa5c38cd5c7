"""SQLite's WAL journal copied into the database file by a thread of its own.

SQLite's automatic checkpoint runs inside the ``COMMIT`` that took the journal past 1,000
pages, and writes and syncs the database file there, while the receiver waits with a batch
unacknowledged. The store's connections turn it off (``wal_autocheckpoint=0``) and this
thread checkpoints instead, ``PASSIVE``: it never waits for, nor blocks, a writer or a
reader, and SQLite runs it with the GIL released, so it costs the receiver nothing.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
from pathlib import Path

__all__ = ["CHECKPOINT_EVERY", "Checkpointer"]

log = logging.getLogger("trainwire.serve")

#: Seconds between two checkpoints.
CHECKPOINT_EVERY = 0.5


class Checkpointer:
    """Checkpoints the journal of the SQLite file at ``path`` until :meth:`stop`."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        """Start the thread (once; later calls do nothing)."""
        with self._lock:
            if self._thread is None and not self._stop.is_set():
                self._thread = threading.Thread(
                    target=self._loop, name="trainwire-checkpoint", daemon=True
                )
                self._thread.start()

    def stop(self) -> None:
        """Stop the thread; the last connection closed checkpoints what is left."""
        self._stop.set()
        with self._lock:
            thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(10)

    def checkpoint(self, conn: sqlite3.Connection) -> None:
        """One passive checkpoint on ``conn``."""
        conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()

    def _loop(self) -> None:
        try:
            conn = sqlite3.connect(str(self.path), timeout=30, isolation_level=None)
        except sqlite3.Error as exc:
            log.warning("trainwire serve: cannot checkpoint %s: %s", self.path, exc)
            return
        try:
            while not self._stop.wait(CHECKPOINT_EVERY):
                if not self.path.exists():  # the file was removed: nothing to keep up
                    return
                try:
                    self.checkpoint(conn)
                except sqlite3.Error as exc:  # busy, or a disk problem the writers report
                    log.debug("trainwire serve: checkpoint of %s failed: %s", self.path, exc)
        finally:
            conn.close()
