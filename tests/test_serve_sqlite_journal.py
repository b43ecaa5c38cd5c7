"""SQLite's journal is copied into the database file by the store's own thread, not in the
middle of the receiver's ``COMMIT``: the file alone soon holds what was written, the
writers never checkpoint, and the thread ends with the store."""

from __future__ import annotations

import shutil
import sqlite3
import threading
import time
import uuid

from trainwire._serve._store import Delivery, open_store
from trainwire._spec._protocol import Identity, Kind, encode, progress_message


def _progress(job: str, step: int) -> Delivery:
    body = encode(progress_message(Identity(Kind.TRAINING, "pk", job), step, 1.0))
    return Delivery(body, uuid.uuid4().hex, int(time.time()))


def _checkpointers() -> int:
    return sum(t.name == "trainwire-checkpoint" for t in threading.enumerate())


def test_the_database_file_alone_soon_holds_what_was_written(tmp_path):
    path = tmp_path / "journal.sqlite3"
    before = _checkpointers()
    store = open_store(f"sqlite:///{path}")
    try:
        with store.pool.connection() as conn:  # the writers leave checkpoints to the thread
            assert conn.execute("PRAGMA wal_autocheckpoint").fetchone()[0] == 0
        assert _checkpointers() == before + 1
        store.receive_many([_progress("m1", 1)], time.time())

        def file_alone_has_the_job() -> bool:
            copy = tmp_path / f"copy-{uuid.uuid4().hex}.sqlite3"
            shutil.copyfile(path, copy)  # the main file only: no -wal beside the copy
            conn = sqlite3.connect(copy)
            try:
                return bool(conn.execute("SELECT COUNT(*) FROM tw_jobs").fetchone()[0])
            except sqlite3.DatabaseError:  # copied while being written: look again
                return False
            finally:
                conn.close()

        deadline = time.monotonic() + 20
        while not file_alone_has_the_job():
            assert time.monotonic() < deadline, "the journal was never checkpointed"
            time.sleep(0.05)
    finally:
        store.close()
    assert _checkpointers() == before
