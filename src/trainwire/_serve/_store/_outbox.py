"""The alert outbox: job state changes waiting to be sent to webhooks, on disk.

A row is written **in the transaction that applies the change** (one per change and
webhook that wants it), so that a crash loses no alert: either the change and its rows
are committed, or neither. A sender *claims* a row for :data:`LEASE` seconds (a
conditional ``UPDATE``, safe with several servers on one database), posts it, and deletes
it after the receiver accepted it; a sender killed in between leaves the lease to run
out, and the row is sent again with the same ``event_id`` (at least once).

Bounded: rows older than :data:`MAX_AGE` are dropped, and a webhook keeps at most
:data:`CAP` rows (the oldest go first), whatever the receiver does.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from ..._spec._protocol import JobState
from ._batch import Batch
from ._changes import batch_events, stale_events
from ._records import Outcome
from ._tx import Pool, Tx

__all__ = ["CAP", "LEASE", "MAX_AGE", "Claimed", "Outbox", "Pending", "Route", "create_outbox"]

#: Seconds a claimed row belongs to its sender (longer than one HTTP attempt).
LEASE = 15.0
#: Seconds an alert is kept while its receiver does not accept it (3 days).
MAX_AGE = 3 * 24 * 3600.0
#: Rows kept per webhook; beyond that the oldest are dropped.
CAP = 10_000


def create_outbox(tx: Tx, serial: str) -> None:
    """Create the outbox table if it is missing (older databases get it too)."""
    tx.run(
        f"CREATE TABLE IF NOT EXISTS tw_outbox (id {serial} PRIMARY KEY,"
        " target TEXT NOT NULL, event_id TEXT NOT NULL, event TEXT NOT NULL,"
        " created_at DOUBLE PRECISION NOT NULL, next_at DOUBLE PRECISION NOT NULL,"
        " attempts INTEGER NOT NULL DEFAULT 0, last_error TEXT)"
    )
    tx.run("CREATE INDEX IF NOT EXISTS tw_outbox_target ON tw_outbox (target, id)")


@dataclass(frozen=True)
class Route:
    """A webhook as the outbox knows it: its key, and the states it is told about."""

    target: str
    states: frozenset[JobState]


@dataclass(frozen=True)
class Claimed:
    """A row taken by a sender: its event (as JSON), and how often it failed before."""

    row: int
    event: dict[str, Any]
    attempts: int


@dataclass(frozen=True)
class Pending:
    """What waits for one webhook."""

    count: int
    oldest: float | None
    attempts: int
    last_error: str | None


class Outbox:
    """The ``tw_outbox`` table of one store; :attr:`routes` say which rows to write."""

    def __init__(self, pool: Pool) -> None:
        self._pool = pool
        #: The webhooks of this server (none: no row is ever written).
        self.routes: tuple[Route, ...] = ()

    def after_batch(self, tx: Tx, batch: Batch, outcomes: Sequence[Outcome]) -> None:
        """Queue the alerts of a settled batch, in its transaction."""
        if self.routes:
            self.add(tx, batch_events(batch, outcomes), batch.now)

    def after_stale(self, tx: Tx, changed: Sequence[tuple[str, str]], now: float) -> None:
        """Queue the alerts of the jobs just turned abnormal, in that transaction."""
        if self.routes:
            self.add(tx, stale_events(tx, changed, now), now)

    def add(self, tx: Tx, events: Sequence[dict[str, Any]], now: float) -> None:
        """Queue ``events`` (with ``event_id`` and ``state``) inside the caller's ``tx``."""
        rows = [
            (route.target, event["event_id"], json.dumps(event, ensure_ascii=False), now, now)
            for event in events
            for route in self.routes
            if JobState(event["state"]) in route.states
        ]
        tx.many(
            "INSERT INTO tw_outbox (target, event_id, event, created_at, next_at)"
            " VALUES (?, ?, ?, ?, ?)",
            rows,
        )

    def claim(self, target: str, now: float) -> Claimed | None:
        """The oldest due row of ``target``, leased to the caller for :data:`LEASE` s."""
        with self._pool.write() as tx:
            row = tx.one(
                "UPDATE tw_outbox SET next_at = ? WHERE id = (SELECT id FROM tw_outbox"
                " WHERE target = ? ORDER BY id LIMIT 1) AND next_at <= ?"
                " RETURNING id, event, attempts",
                (now + LEASE, target, now),
            )
        if row is None:
            return None
        return Claimed(int(row[0]), json.loads(row[1]), int(row[2]))

    def sent(self, row: int) -> None:
        """The receiver accepted the row: forget it."""
        with self._pool.write() as tx:
            tx.run("DELETE FROM tw_outbox WHERE id = ?", (row,))

    def failed(self, row: int, retry_at: float, error: str) -> None:
        """The receiver did not accept the row: try again at ``retry_at``."""
        with self._pool.write() as tx:
            tx.run(
                "UPDATE tw_outbox SET attempts = attempts + 1, next_at = ?, last_error = ?"
                " WHERE id = ?",
                (retry_at, error[:1000], row),
            )

    def expire(self, targets: Sequence[str], now: float) -> int:
        """Drop rows older than :data:`MAX_AGE` and beyond :data:`CAP`; how many."""
        with self._pool.write() as tx:
            dropped = tx.run("DELETE FROM tw_outbox WHERE created_at < ?", (now - MAX_AGE,))
            count: int = max(int(dropped.rowcount), 0)
            for target in targets:
                over = tx.run(
                    "DELETE FROM tw_outbox WHERE target = ? AND id <= (SELECT id FROM"
                    " tw_outbox WHERE target = ? ORDER BY id DESC LIMIT 1 OFFSET ?)",
                    (target, target, CAP),
                )
                count += max(int(over.rowcount), 0)
        return count

    def pending(self, target: str) -> Pending:
        """How many rows wait for ``target``, since when, and the oldest one's last error."""
        with self._pool.read() as tx:
            total = tx.one(
                "SELECT COUNT(*), MIN(created_at) FROM tw_outbox WHERE target = ?", (target,)
            )
            head = tx.one(
                "SELECT attempts, last_error FROM tw_outbox WHERE target = ? ORDER BY id LIMIT 1",
                (target,),
            )
        count, oldest = (int(total[0]), total[1]) if total else (0, None)
        attempts, error = (int(head[0]), head[1]) if head else (0, None)
        return Pending(count, oldest, attempts, error)
