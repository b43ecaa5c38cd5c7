"""The store on a SQL database: the shared SQL, with a :class:`~._dialect.Dialect` for
what differs between SQLite and PostgreSQL.

The receiver acknowledges the deliveries only after the commit, so a crash at any point
either loses nothing (the broker redelivers) or finds the ``message_id`` already seen.
What the database still refuses is found by :meth:`SqlStore.settle_alone` and kept as
``quarantined`` instead of blocking the queue.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Collection, Sequence

from ..._spec._protocol import JobState, Kind
from .._urls import describe_url
from ._base import Store
from ._batch import Batch
from ._dialect import Dialect
from ._intake import guess_job, parse
from ._jobs import (
    JOB_COLUMNS,
    Registration,
    count_jobs,
    job_record,
    mark_stale,
    register,
    select_transitions,
)
from ._listing import JobPage, JobQuery, count_states, select_page
from ._locks import KnownJobs
from ._log import LogRow, MessageQuery, count_rejections, insert_log, select_messages
from ._outbox import Outbox, create_outbox
from ._prune import Pruned, prune, trim
from ._records import Delivery, JobRecord, MessageRecord, Outcome, StoreRejection, Transition
from ._schema import create_schema
from ._text import DETAIL_LIMIT, body_text, cut, error_text
from ._tx import Pool, Tx

__all__ = ["SqlStore"]

#: Attempts of a batch that met a deadlock or a busy database.
RETRIES = 4
#: Jobs created by this process before the jobs table's statistics are refreshed.
ANALYZE_AFTER = 200

log = logging.getLogger("trainwire.serve")


class SqlStore(Store):
    """Jobs and the message log in one SQL database."""

    def __init__(self, url: str, dialect: Dialect, pool_size: int = 4) -> None:
        self.url = describe_url(url)
        self._raw_url = url
        self.dialect = dialect
        self.pool = Pool(
            dialect.connect, dialect.begin, dialect.placeholder, pool_size, dialect.pipeline
        )
        with self.pool.write() as tx:
            dialect.lock_schema(tx)
            create_schema(tx, dialect.serial, self.url)
            dialect.room_for_updates(tx)
            create_outbox(tx, dialect.serial)
        self.outbox = Outbox(self.pool)
        self._created = 0
        self._analyze_at = ANALYZE_AFTER
        #: Jobs found in the table before: their insert is skipped (see :mod:`._locks`).
        self.known_jobs = KnownJobs()

    # -- writing
    def receive_many(
        self,
        deliveries: Sequence[Delivery],
        now: float,
        project_keys: frozenset[str] = frozenset(),
    ) -> list[Outcome]:
        deliveries = [d.received(now) for d in deliveries]
        parsed = [parse(d.body) for d in deliveries]
        for attempt in range(1, RETRIES + 1):
            try:
                # Pipelined: a batch's statements are checked by the database at its reads
                # and its COMMIT; anything raised fails the whole batch, as before.
                with self.pool.write(pipelined=True) as tx:
                    batch = Batch(
                        self.dialect, tx, deliveries, parsed, now, project_keys, self.known_jobs
                    )
                    outcomes = batch.settle()
                    self.outbox.after_batch(tx, batch, outcomes)
            except Exception as exc:
                if attempt == RETRIES or not self.dialect.transient(exc):
                    raise
                log.info("trainwire serve: retrying a batch after %s", type(exc).__name__)
                time.sleep(0.05 * attempt)
                continue
            self._grown(batch.created)
            return outcomes
        raise AssertionError("unreachable")

    def _grown(self, created: int) -> None:
        """Count created jobs; refresh the jobs table's statistics each time they double.

        PostgreSQL plans the batch's lock query from them: without any (a new database,
        a fleet's jobs created faster than autovacuum's once a minute) it reads every job
        of a kind for each batch, about 1.8 ms a batch of 25 among 1,000 jobs instead of
        0.2 ms.
        """
        self._created += created
        if self._created < self._analyze_at:
            return
        self._analyze_at = 2 * self._created
        try:
            with self.pool.read() as tx:
                self.dialect.analyze_jobs(tx)
        except Exception as exc:  # a lost refresh costs time, never a message
            log.info("trainwire serve: cannot refresh the jobs' statistics: %s", error_text(exc))

    def settle_alone(
        self, delivery: Delivery, now: float, project_keys: frozenset[str] = frozenset()
    ) -> Outcome:
        delivery = delivery.received(now)
        with self.pool.write() as tx:
            # A savepoint, not a second transaction: if the database is down, the
            # quarantine fails too, and nothing is set aside that could have been applied.
            tx.run("SAVEPOINT tw_alone")
            try:
                parsed = [parse(delivery.body)]
                batch = Batch(
                    self.dialect, tx, [delivery], parsed, now, project_keys, self.known_jobs
                )
                outcomes = batch.settle()
                self.outbox.after_batch(tx, batch, outcomes)
                return outcomes[0]
            except Exception as exc:
                if self.outage(exc):
                    raise
                refused = exc
            tx.run("ROLLBACK TO SAVEPOINT tw_alone")
            try:
                return self._quarantine(tx, delivery, now, refused, whole=True)
            except Exception as exc:
                if self.outage(exc):
                    raise
            tx.run("ROLLBACK TO SAVEPOINT tw_alone")  # even its text was refused: bare row
            return self._quarantine(tx, delivery, now, refused, whole=False)

    def _quarantine(
        self, tx: Tx, delivery: Delivery, now: float, exc: Exception, *, whole: bool
    ) -> Outcome:
        """Log ``delivery`` as quarantined (with its id, guessed job and body if ``whole``)."""
        reason = StoreRejection.QUARANTINED.value
        kind = job_id = status = message_id = body = None
        error = type(exc).__name__
        if whole:
            kind, job_id, status = guess_job(delivery.body)
            message_id, body = delivery.message_id, body_text(delivery.body)
            error = error_text(exc)
            if message_id is not None:  # a redelivered copy is then a duplicate
                self.dialect.insert_seen(tx, [message_id], now)
        detail = cut(
            f"the database refused this message even on its own ({error}); it is kept here "
            "so that the messages after it go through",
            DETAIL_LIMIT,
        )
        ts = delivery.timestamp if whole else None
        row = LogRow(now, message_id, ts, kind, job_id, status, None, None, reason, True, False,
                     detail, body)  # fmt: skip
        insert_log(tx, self.dialect, [row])
        return Outcome(reason, kind, job_id, detail)

    def outage(self, exc: BaseException) -> bool:
        return self.dialect.outage(exc)

    def mark_stale(self, now: float, stale_after: float) -> list[tuple[str, str]]:
        with self.pool.write() as tx:
            changed = mark_stale(tx, now, stale_after, self.dialect.for_update)
            self.outbox.after_stale(tx, changed, now)
            return changed

    def register(
        self,
        kind: Kind,
        job_id: str,
        project_key: str,
        model_write_path: str,
        config_path: str,
        *,
        reset: bool = False,
        now: float | None = None,
    ) -> JobRecord:
        reg = Registration(kind, job_id, project_key, model_write_path, config_path)
        with self.pool.write() as tx:
            return register(tx, reg, time.time() if now is None else now, reset=reset)

    # -- reading
    def jobs(self) -> list[JobRecord]:
        with self.pool.read() as tx:
            rows = tx.all(
                f"SELECT {JOB_COLUMNS} FROM tw_jobs ORDER BY created_at DESC, kind, job_id"
            )
        return [job_record(r) for r in rows]

    def job(self, kind: str, job_id: str) -> JobRecord | None:
        with self.pool.read() as tx:
            row = tx.one(
                f"SELECT {JOB_COLUMNS} FROM tw_jobs WHERE kind = ? AND job_id = ?", (kind, job_id)
            )
        return job_record(row) if row else None

    def job_page(self, query: JobQuery) -> JobPage:
        with self.pool.read() as tx:
            return select_page(tx, query)

    def state_counts(self, query: JobQuery) -> dict[JobState, int]:
        with self.pool.read() as tx:
            return count_states(tx, query)

    def jobs_changed_since(self, since: float) -> list[JobRecord]:
        with self.pool.read() as tx:
            rows = tx.all(f"SELECT {JOB_COLUMNS} FROM tw_jobs WHERE updated_at >= ?", (since,))
        return [job_record(r) for r in rows]

    def job_counts(self) -> dict[tuple[Kind, JobState], int]:
        with self.pool.read() as tx:
            return count_jobs(tx)

    def timeline(self, kind: str, job_id: str) -> list[Transition]:
        with self.pool.read() as tx:
            return select_transitions(tx, kind, job_id)

    def messages(
        self,
        *,
        kind: str | None = None,
        job_id: str | None = None,
        rejected_only: bool = False,
        outcome: str | None = None,
        limit: int = 100,
        before: int | None = None,
    ) -> list[MessageRecord]:
        query = MessageQuery(kind, job_id, rejected_only, outcome, limit, before)
        with self.pool.read() as tx:
            return select_messages(tx, query)

    def counts(self) -> dict[str, int]:
        with self.pool.read() as tx:
            return count_rejections(tx)

    def prune(self, cutoff: float, states: Collection[JobState]) -> Pruned:
        with self.pool.write() as tx:
            return prune(tx, cutoff, states)

    def trim_messages(self, keep: int, after: int) -> tuple[int, int]:
        with self.pool.write() as tx:
            return trim(tx, keep, after)

    def close(self) -> None:
        self.pool.close()
        self.dialect.close()
