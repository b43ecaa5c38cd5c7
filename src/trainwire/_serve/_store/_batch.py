"""Settling a list of deliveries inside one transaction.

1. their AMQP ``message_id`` values go into ``tw_seen`` (primary key): a second copy of
   a message, in this process or another one on the same database, finds the row and
   is recorded as a ``duplicate``, never applied again;
2. a rejected message (malformed, missing field, unknown project key, ...) is written to
   the log with its reason (the project keys of the whole batch checked in one query);
3. the rows of the other messages' jobs are locked all at once (``SELECT ... FOR
   UPDATE`` on PostgreSQL; SQLite takes the database's write lock with ``BEGIN
   IMMEDIATE``, see :mod:`._locks`), each message is settled against its job by
   :func:`~._rule.settle`, and the changed rows and the log are written with one
   ``executemany`` each.

Locks are taken in one global order so that two consumers never deadlock: first the
``tw_seen`` rows (sorted by message id, in one statement), then the job rows sorted by
(kind, job id). A job's messages keep their delivery order; the log rows are written in
delivery order.
"""

from __future__ import annotations

from collections.abc import Sequence

from ..._spec._protocol import InvalidMessage, Kind, Rejection, StatusMessage
from ._dialect import Dialect
from ._intake import Parsed, Refusal, guess_job
from ._jobs import Locked
from ._keys import AnyRegistered, key_problems
from ._locks import KnownJobs, lock_jobs, write_jobs
from ._log import LogRow, insert_log
from ._records import APPLIED, Delivery, Outcome
from ._rule import settle, superseded_detail
from ._text import DETAIL_LIMIT, TEXT, body_text, cut, storable
from ._tx import Tx

__all__ = ["Batch"]


class Batch:
    """The deliveries of one transaction, settled by :meth:`settle`."""

    def __init__(
        self,
        dialect: Dialect,
        tx: Tx,
        deliveries: Sequence[Delivery],
        parsed: Sequence[Parsed],
        now: float,
        project_keys: frozenset[str],
        known: KnownJobs,
    ) -> None:
        self.dialect = dialect
        self.known = known
        self.tx = tx
        self.deliveries = deliveries
        self.parsed = parsed
        self.now = now
        self.project_keys = project_keys
        self.jobs: dict[tuple[str, str], Locked] = {}
        self.keys: dict[tuple[str, str, str], Refusal | None] = {}
        self.log_rows: dict[int, LogRow] = {}
        #: Job rows this batch created.
        self.created = 0

    def settle(self) -> list[Outcome]:
        """Settle every delivery; one outcome each, in delivery order."""
        registered = AnyRegistered(self.tx)  # read with the message ids' insert
        refusals = self._refusals(self._duplicates(), registered)
        self._lock(refusals)
        outcomes: dict[int, Outcome] = {}

        def job_order(i: int) -> tuple[str, str]:
            msg = self.parsed[i][0]
            return (msg.kind, msg.job_id) if msg is not None else ("", "")  # Kind sorts as str

        for i in sorted(range(len(self.deliveries)), key=job_order):
            outcomes[i] = self._one(i, refusals[i])
        write_jobs(self.tx, self.jobs.values(), self.now, self.dialect)
        # Every string of a batch's rows is storable where it is made: an identifier or
        # status that passed validate() (or guess_job's check), an id of Delivery.received,
        # a detail through storable(), a body through body_text(), a cleaned error message.
        rows = [self.log_rows[i] for i in sorted(self.log_rows)]
        insert_log(self.tx, self.dialect, rows, checked=True)
        return [outcomes[i] for i in range(len(self.deliveries))]

    def _duplicates(self) -> list[bool]:
        ids = sorted({d.message_id for d in self.deliveries if d.message_id is not None})
        inserted = self.dialect.insert_seen(self.tx, ids, self.now)
        first: set[str] = set()
        duplicate = []
        for d in self.deliveries:
            mid = d.message_id
            new = mid is None or (mid in inserted and mid not in first)
            if mid is not None and new:
                first.add(mid)
            duplicate.append(not new)
        return duplicate

    def _refusals(self, duplicate: list[bool], registered: AnyRegistered) -> list[Refusal | None]:
        """Why each delivery is refused (None: it goes on), project keys checked at once."""
        fresh = [m for (m, r), dup in zip(self.parsed, duplicate) if m and not r and not dup]
        problems = key_problems(self.tx, fresh, self.project_keys, registered)
        self.keys = {k: None if p is None else Refusal.of(p) for k, p in problems.items()}
        return [self._refusal(i, dup) for i, dup in enumerate(duplicate)]

    def _refusal(self, i: int, duplicate: bool) -> Refusal | None:
        msg, refusal = self.parsed[i]
        if duplicate:
            return Refusal(
                Rejection.DUPLICATE,
                f"message_id {self.deliveries[i].message_id!r} was received before; "
                "applied once, this copy is ignored",
            )
        if refusal is not None or msg is None:
            return refusal
        return self.keys[msg.kind, msg.job_id, msg.project_key]  # a Kind is its text's key

    def _lock(self, refusals: list[Refusal | None]) -> None:
        """Lock the rows of the jobs that have a message to settle, all at once."""
        firsts: dict[tuple[Kind, str], str] = {}
        for (msg, _), refusal in zip(self.parsed, refusals):
            if msg is not None and refusal is None:
                firsts.setdefault((msg.kind, msg.job_id), msg.project_key)
        self.jobs, self.created = lock_jobs(self.tx, firsts, self.now, self.dialect, self.known)

    def _one(self, i: int, refusal: Refusal | None) -> Outcome:
        delivery = self.deliveries[i]
        msg = self.parsed[i][0]
        if refusal is not None or msg is None:
            assert refusal is not None
            return self._reject(i, refusal, msg)
        kind = TEXT[msg.kind]
        locked = self.jobs[kind, msg.job_id]
        try:
            moved = settle(locked.job, locked.ts, msg, delivery.timestamp, self.now)
        except InvalidMessage as exc:
            return self._reject(i, Refusal.of(exc), msg)
        if moved:
            locked.moved(delivery.timestamp, self.now)
        else:
            locked.dirty = True  # counted
        detail = "" if moved else superseded_detail(locked.job.state)
        self._log(i, kind, msg.job_id, TEXT[msg.status], msg, APPLIED, detail, not moved)
        return Outcome(APPLIED, kind, msg.job_id, detail, superseded=not moved)

    def _reject(self, i: int, refusal: Refusal, msg: StatusMessage | None) -> Outcome:
        if msg is not None:
            kind: str | None = msg.kind.value
            job_id: str | None = msg.job_id
            status: str | None = msg.status.value
        else:
            kind, job_id, status = guess_job(self.deliveries[i].body)
        reason = refusal.reason.value
        detail = storable(cut(refusal.detail, DETAIL_LIMIT))
        self._log(i, kind, job_id, status, msg, reason, detail, False)
        return Outcome(reason, kind, job_id, detail)

    def _log(
        self,
        i: int,
        kind: str | None,
        job_id: str | None,
        status: str | None,
        msg: StatusMessage | None,
        outcome: str,
        detail: str,
        superseded: bool,
    ) -> None:
        delivery = self.deliveries[i]
        rejected = outcome != APPLIED
        self.log_rows[i] = LogRow(
            self.now, delivery.message_id, delivery.timestamp, kind, job_id, status,
            msg.step if msg else None, msg.percentage if msg else None, outcome, rejected,
            superseded, detail or None, body_text(delivery.body) if rejected else None,
        )  # fmt: skip
