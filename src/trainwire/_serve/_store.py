"""Where ``trainwire serve`` keeps jobs and messages: one interface, SQLite and PostgreSQL.

Deliveries are settled in **one transaction** per batch (:meth:`Store.receive_many`; the
receiver passes what the broker has handed it, up to the prefetch count):

1. their AMQP ``message_id`` values go into ``tw_seen`` (primary key): a second copy of
   a message, in this process or another one on the same database, finds the row and
   is recorded as a ``duplicate``, never applied again;
2. a rejected message (malformed, missing field, unknown project key, ...) is written to
   ``tw_messages`` with its reason;
3. otherwise its job's row is locked (``SELECT ... FOR UPDATE`` on PostgreSQL; SQLite
   takes the database's write lock with ``BEGIN IMMEDIATE``), the message is settled
   against it by :func:`settle` (the protocol's :class:`~trainwire._protocol.Job` plus the
   ordering rule below), and the row and the message log are written.

The receiver acknowledges the deliveries only after the commit, so a crash at any point
either loses nothing (the broker redelivers) or finds the ``message_id`` already seen.
Locks are always taken in the same order (message ids sorted, then jobs sorted), so two
consumers on one PostgreSQL wait for each other but never deadlock.

Ordering. Several consumers (two ``serve`` processes, or one with prefetch) may deliver a
job's messages out of publish order. The publisher's AMQP ``timestamp`` (seconds) and the
``step`` say which is newer: a ``training_ing`` older than what the job already shows is
applied but *superseded*: it is counted once and logged, and moves nothing, so progress
never goes backwards. A ``training_ing`` published no later than the job's terminal
message (same second or before) was not sent "after" it: it is applied as superseded too,
instead of rejected as ``after_done``/``after_error``. A terminal state stays terminal.
"""

from __future__ import annotations

import abc
import contextlib
import json
import logging
import sqlite3
import threading
import time
import urllib.parse
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .._errors import TrainwireError
from .._protocol import (
    InvalidMessage,
    Job,
    JobState,
    Kind,
    Rejection,
    Status,
    StatusMessage,
    decode,
    validate,
)

__all__ = [
    "APPLIED",
    "DEFAULT_DB_URL",
    "Delivery",
    "JobRecord",
    "MessageRecord",
    "Outcome",
    "PostgresStore",
    "SqliteStore",
    "Store",
    "StoreError",
    "describe_db_url",
    "open_store",
    "settle",
]

#: The default database: a SQLite file in the current folder.
DEFAULT_DB_URL = "sqlite:///trainwire-serve.sqlite3"
#: The outcome of a message that was applied (the others are :class:`Rejection` values).
APPLIED = "applied"
SUPERSEDED_DETAIL = "published before news the job already shows: counted, moves nothing"
#: The same, for a job that already ended: worded so that a client bug stays visible.
SUPERSEDED_AFTER_END = (
    "published no later than the job's {status} (same second or before), delivered after "
    "it: counted, moves nothing. If your code sent it after {status}, that is a bug"
)
#: Bodies of rejected messages are kept up to this many characters.
BODY_LIMIT = 4096
SCHEMA_VERSION = "1"
#: Attempts of a batch that met a deadlock or a busy database.
RETRIES = 4

log = logging.getLogger("trainwire.serve")


class StoreError(TrainwireError):
    """The database cannot be opened or used; the text says which and what to do."""


@dataclass(frozen=True)
class Delivery:
    """One message as the broker delivered it."""

    body: bytes
    message_id: str | None = None
    #: AMQP ``timestamp`` property: when the publisher sent it (whole seconds).
    timestamp: int | None = None


@dataclass(frozen=True)
class Outcome:
    """What became of a delivery."""

    outcome: str
    kind: str | None = None
    job_id: str | None = None
    detail: str = ""
    #: Applied, but older than what the job already showed (out-of-order delivery).
    superseded: bool = False

    @property
    def rejected(self) -> bool:
        """True when the message was not applied (a :class:`Rejection` reason)."""
        return self.outcome != APPLIED


@dataclass(frozen=True)
class JobRecord:
    """One job as stored."""

    kind: str
    job_id: str
    state: str
    step: int | None
    percentage: float | None
    message: str | None
    last_seen: float | None
    applied: int
    created_at: float
    updated_at: float
    registered: bool
    project_key: str | None
    model_write_path: str | None
    config_path: str | None

    @property
    def metrics_dir(self) -> Path | None:
        """``<model_write_path>/save/metrics`` for a registered job, else None."""
        if not self.model_write_path:
            return None
        return Path(self.model_write_path) / "save" / "metrics"

    def to_json(self) -> dict[str, Any]:
        """The job as the JSON API shows it (no project key, no file paths)."""
        return {
            "kind": self.kind,
            "id": self.job_id,
            "state": self.state,
            "percentage": self.percentage,
            "step": self.step,
            "message": self.message,
            "last_message_at": iso_time(self.last_seen),
            "applied": self.applied,
            "registered": self.registered,
            "created_at": iso_time(self.created_at),
        }


@dataclass(frozen=True)
class MessageRecord:
    """One received message as logged (``body`` only for rejected ones)."""

    id: int
    received_at: float
    message_id: str | None
    published_ts: int | None
    kind: str | None
    job_id: str | None
    status: str | None
    step: int | None
    percentage: float | None
    outcome: str
    superseded: bool
    detail: str | None
    body: str | None

    def to_json(self) -> dict[str, Any]:
        """The message as the JSON API shows it (project keys shortened)."""
        return {
            "seq": self.id,
            "received_at": iso_time(self.received_at),
            "message_id": self.message_id,
            "published_at": iso_time(self.published_ts),
            "kind": self.kind,
            "id": self.job_id,
            "status": self.status,
            "step": self.step,
            "percentage": self.percentage,
            "outcome": self.outcome,
            "rejected": self.outcome != APPLIED,
            "superseded": bool(self.superseded),
            "detail": self.detail,
            "body": _mask_body(self.body),
        }


def iso_time(ts: float | None) -> str | None:
    """Epoch seconds as ISO 8601 UTC with milliseconds, or None."""
    if ts is None:
        return None
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ts)) + f".{int(ts % 1 * 1000):03d}Z"


def mask_key(key: str) -> str:
    """A project key shortened for display: its first 4 characters and its length."""
    return f"{key[:4]}… ({len(key)} chars)" if len(key) > 4 else "…"


def _mask_body(body: str | None) -> str | None:
    if body is None:
        return None
    try:
        value = json.loads(body)
    except ValueError:
        return body
    if isinstance(value, dict) and isinstance(value.get("project_key"), str):
        value["project_key"] = mask_key(value["project_key"])
        return json.dumps(value, ensure_ascii=False)
    return body


# -- the rules ---------------------------------------------------------------------------


def _older(msg: StatusMessage, msg_ts: int | None, job: Job, job_ts: int | None) -> bool:
    if msg_ts is not None and job_ts is not None and msg_ts != job_ts:
        return msg_ts < job_ts
    return job.step is not None and msg.step is not None and msg.step < job.step


def settle(
    job: Job, job_ts: int | None, msg: StatusMessage, msg_ts: int | None, now: float
) -> bool:
    """Apply ``msg`` to ``job`` in place; False when it was superseded (moved nothing).

    ``job_ts``/``msg_ts`` are the publisher's timestamps of the job's last moving message
    and of ``msg`` (None when unknown). Raises ``InvalidMessage`` (``after_error``,
    ``after_done``) for a message the spec says not to process.
    """
    superseded = False
    if msg.status is Status.PROGRESS:
        if job.state in (JobState.DONE, JobState.ERROR):
            superseded = msg_ts is not None and job_ts is not None and msg_ts <= job_ts
        elif job.state in (JobState.RUNNING, JobState.ABNORMAL):
            superseded = _older(msg, msg_ts, job, job_ts)
    if superseded:
        job.applied += 1
        return False
    job.apply(msg, now)  # raises for anything after a terminal message
    return True


def _guess_job(raw: bytes) -> tuple[str | None, str | None, str | None]:
    """Best effort (kind, job id, status) of a rejected body, to file it under its job."""
    try:
        body = decode(raw)
    except InvalidMessage:
        return None, None, None
    kind: Kind | None = None
    with contextlib.suppress(ValueError):
        kind = Kind.from_cmd(str(body.get("cmd")))
    job_id = body.get(kind.id_field) if kind else None
    status = body.get("status")
    return (
        kind.value if kind else None,
        job_id if isinstance(job_id, str) and job_id else None,
        status if isinstance(status, str) else None,
    )


def _body_text(raw: bytes) -> str:
    return raw[: BODY_LIMIT * 4].decode("utf-8", "replace")[:BODY_LIMIT]


# -- the interface -----------------------------------------------------------------------


class Store(abc.ABC):
    """Jobs and the message log, behind one interface for every database."""

    #: The database URL without its password, for messages.
    url: str

    @abc.abstractmethod
    def receive(
        self, delivery: Delivery, now: float, project_keys: frozenset[str] = frozenset()
    ) -> Outcome:
        """Settle one delivery in one transaction; the caller acks after this returns.

        ``project_keys`` are the keys given on the command line; with the keys of the
        registered jobs they make the set a message's ``project_key`` must belong to
        (no check when both are empty).
        """

    @abc.abstractmethod
    def receive_many(
        self,
        deliveries: Sequence[Delivery],
        now: float,
        project_keys: frozenset[str] = frozenset(),
    ) -> list[Outcome]:
        """Settle several deliveries in one transaction; one outcome per delivery, in order.

        The caller acks them all after this returns (a failure leaves them all unacked).
        """

    @abc.abstractmethod
    def mark_stale(self, now: float, stale_after: float) -> list[tuple[str, str]]:
        """Turn running jobs silent for more than ``stale_after`` s ``abnormal``."""

    @abc.abstractmethod
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
        """Record a job from its training config (``waiting`` until its first message).

        A job that already exists keeps its state unless ``reset``.
        """

    @abc.abstractmethod
    def jobs(self) -> list[JobRecord]:
        """Every job, newest first."""

    @abc.abstractmethod
    def job(self, kind: str, job_id: str) -> JobRecord | None:
        """One job, or None."""

    @abc.abstractmethod
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
        """The message log, newest first, filtered."""

    @abc.abstractmethod
    def counts(self) -> dict[str, int]:
        """Number of logged messages per rejection reason (applied ones are not counted)."""

    @abc.abstractmethod
    def close(self) -> None:
        """Close every connection."""


# -- the SQL implementation shared by both databases --------------------------------------

_JOB_COLUMNS = (
    "kind, job_id, state, step, percentage, message, last_seen, applied, created_at, "
    "updated_at, registered, project_key, model_write_path, config_path"
)
_MESSAGE_COLUMNS = (
    "id, received_at, message_id, published_ts, kind, job_id, status, step, percentage, "
    "outcome, superseded, detail, body"
)


def _job_record(row: Sequence[Any]) -> JobRecord:
    return JobRecord(
        kind=row[0],
        job_id=row[1],
        state=row[2],
        step=row[3],
        percentage=row[4],
        message=row[5],
        last_seen=row[6],
        applied=int(row[7] or 0),
        created_at=row[8],
        updated_at=row[9],
        registered=bool(row[10]),
        project_key=row[11],
        model_write_path=row[12],
        config_path=row[13],
    )


def _message_record(row: Sequence[Any]) -> MessageRecord:
    values = list(row)
    values[10] = bool(values[10])
    return MessageRecord(*values)


class _Tx:
    """A cursor that speaks ``?`` placeholders on every database."""

    def __init__(self, conn: Any, placeholder: str) -> None:
        self.conn = conn
        self.placeholder = placeholder

    def run(self, sql: str, params: Sequence[Any] = ()) -> Any:
        if self.placeholder != "?":
            sql = sql.replace("?", self.placeholder)
        return self.conn.execute(sql, tuple(params))

    def one(self, sql: str, params: Sequence[Any] = ()) -> Sequence[Any] | None:
        row: Sequence[Any] | None = self.run(sql, params).fetchone()
        return row

    def all(self, sql: str, params: Sequence[Any] = ()) -> list[Sequence[Any]]:
        rows: list[Sequence[Any]] = self.run(sql, params).fetchall()
        return rows

    def many(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        if not rows:
            return
        if self.placeholder != "?":
            sql = sql.replace("?", self.placeholder)
        self.conn.cursor().executemany(sql, [tuple(r) for r in rows])


class _SqlStore(Store):
    placeholder = "?"
    for_update = ""
    serial = "INTEGER"

    def __init__(self, url: str, pool_size: int = 4) -> None:
        self.url = describe_db_url(url)
        self._raw_url = url
        self._idle: list[Any] = []
        self._lock = threading.Lock()
        self._pool_size = pool_size
        self._closed = False
        with self._write() as tx:
            self._create_schema(tx)

    # -- connections and transactions
    @abc.abstractmethod
    def _connect(self) -> Any: ...

    @abc.abstractmethod
    def _begin(self, conn: Any) -> None: ...

    def _lock_schema(self, tx: _Tx) -> None:
        """Serialise schema creation between processes (PostgreSQL only)."""

    @contextlib.contextmanager
    def _connection(self) -> Iterator[Any]:
        with self._lock:
            conn = self._idle.pop() if self._idle else None
        if conn is None:
            conn = self._connect()
        try:
            yield conn
        except BaseException:
            # The connection may be broken or mid-transaction: never reuse it.
            with contextlib.suppress(Exception):
                conn.close()
            raise
        with self._lock:
            if len(self._idle) < self._pool_size and not self._closed:
                self._idle.append(conn)
                conn = None
        if conn is not None:
            conn.close()

    @contextlib.contextmanager
    def _write(self) -> Iterator[_Tx]:
        with self._connection() as conn:
            self._begin(conn)
            try:
                yield _Tx(conn, self.placeholder)
            except BaseException:
                with contextlib.suppress(Exception):
                    conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")

    @contextlib.contextmanager
    def _read(self) -> Iterator[_Tx]:
        with self._connection() as conn:
            yield _Tx(conn, self.placeholder)

    def _create_schema(self, tx: _Tx) -> None:
        self._lock_schema(tx)
        statements = [
            "CREATE TABLE IF NOT EXISTS tw_meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)",
            "CREATE TABLE IF NOT EXISTS tw_jobs ("
            " kind TEXT NOT NULL, job_id TEXT NOT NULL, state TEXT NOT NULL,"
            " step BIGINT, percentage DOUBLE PRECISION, message TEXT,"
            " last_seen DOUBLE PRECISION, ts BIGINT, applied BIGINT NOT NULL DEFAULT 0,"
            " created_at DOUBLE PRECISION NOT NULL, updated_at DOUBLE PRECISION NOT NULL,"
            " registered INTEGER NOT NULL DEFAULT 0, project_key TEXT,"
            " model_write_path TEXT, config_path TEXT, PRIMARY KEY (kind, job_id))",
            "CREATE INDEX IF NOT EXISTS tw_jobs_keys ON tw_jobs (registered, project_key)",
            "CREATE INDEX IF NOT EXISTS tw_jobs_state ON tw_jobs (state, last_seen)",
            "CREATE TABLE IF NOT EXISTS tw_seen ("
            " message_id TEXT PRIMARY KEY, received_at DOUBLE PRECISION NOT NULL)",
            f"CREATE TABLE IF NOT EXISTS tw_messages (id {self.serial} PRIMARY KEY,"
            " received_at DOUBLE PRECISION NOT NULL, message_id TEXT, published_ts BIGINT,"
            " kind TEXT, job_id TEXT, status TEXT, step BIGINT, percentage DOUBLE PRECISION,"
            " outcome TEXT NOT NULL, rejected INTEGER NOT NULL,"
            " superseded INTEGER NOT NULL DEFAULT 0, detail TEXT, body TEXT)",
            "CREATE INDEX IF NOT EXISTS tw_messages_job ON tw_messages (kind, job_id, id)",
            "CREATE INDEX IF NOT EXISTS tw_messages_rejected ON tw_messages (rejected, id)",
        ]
        for sql in statements:
            tx.run(sql)
        row = tx.one("SELECT value FROM tw_meta WHERE key = ?", ("schema",))
        if row is None:
            tx.run("INSERT INTO tw_meta (key, value) VALUES (?, ?)", ("schema", SCHEMA_VERSION))
        elif row[0] != SCHEMA_VERSION:
            raise StoreError(
                f"{self.url}: the database has trainwire serve schema {row[0]}, this version "
                f"uses {SCHEMA_VERSION}: use another --db, or the trainwire that made it"
            )

    # -- writing
    def receive(
        self, delivery: Delivery, now: float, project_keys: frozenset[str] = frozenset()
    ) -> Outcome:
        return self.receive_many([delivery], now, project_keys)[0]

    def receive_many(
        self,
        deliveries: Sequence[Delivery],
        now: float,
        project_keys: frozenset[str] = frozenset(),
    ) -> list[Outcome]:
        parsed = [_parse(d.body) for d in deliveries]
        for attempt in range(1, RETRIES + 1):
            try:
                with self._write() as tx:
                    return _Batch(self, tx, deliveries, parsed, now, project_keys).settle()
            except Exception as exc:
                if attempt == RETRIES or not self._transient(exc):
                    raise
                log.info("trainwire serve: retrying a batch after %s", type(exc).__name__)
                time.sleep(0.05 * attempt)
        raise AssertionError("unreachable")

    def _transient(self, exc: BaseException) -> bool:
        """True for errors that a new attempt of the same transaction may not meet."""
        return False

    def _insert_seen(self, tx: _Tx, ids: list[str], now: float) -> set[str]:
        """Insert message ids (sorted: one lock order); the ones that were new."""
        inserted: set[str] = set()
        for start in range(0, len(ids), 400):
            chunk = ids[start : start + 400]
            rows = tx.all(
                "INSERT INTO tw_seen (message_id, received_at) VALUES "
                + ", ".join(["(?, ?)"] * len(chunk))
                + " ON CONFLICT (message_id) DO NOTHING RETURNING message_id",
                [v for mid in chunk for v in (mid, now)],
            )
            inserted.update(str(r[0]) for r in rows)
        return inserted

    def _check_key(
        self, tx: _Tx, msg: StatusMessage, project_keys: frozenset[str]
    ) -> InvalidMessage | None:
        # One round trip: the job's registered key, whether any registered job has this
        # key, and whether any job is registered at all.
        row = tx.one(
            "SELECT (SELECT project_key FROM tw_jobs WHERE kind = ? AND job_id = ?"
            " AND registered = 1),"
            " EXISTS (SELECT 1 FROM tw_jobs WHERE registered = 1 AND project_key = ?),"
            " EXISTS (SELECT 1 FROM tw_jobs WHERE registered = 1)",
            (msg.kind.value, msg.job_id, msg.project_key),
        )
        assert row is not None
        job_key, key_registered, any_registered = row[0], bool(row[1]), bool(row[2])
        if job_key is not None:
            if job_key == msg.project_key:
                return None
            return InvalidMessage(
                Rejection.UNKNOWN_PROJECT_KEY,
                f"project_key {mask_key(msg.project_key)} is not the one in the registered "
                f"config of {msg.kind.value} job {msg.job_id!r}",
            )
        if msg.project_key in project_keys or key_registered:
            return None
        if project_keys or any_registered:
            return InvalidMessage(
                Rejection.UNKNOWN_PROJECT_KEY,
                f"project_key {mask_key(msg.project_key)} is not one of the configured project "
                "keys (--project-key and the registered job configs)",
            )
        return None

    def mark_stale(self, now: float, stale_after: float) -> list[tuple[str, str]]:
        changed: list[tuple[str, str]] = []
        with self._write() as tx:
            rows = tx.all(
                "SELECT kind, job_id, last_seen FROM tw_jobs WHERE state = ? AND last_seen < ?"
                " ORDER BY kind, job_id" + self.for_update,
                (JobState.RUNNING.value, now - stale_after),
            )
            for kind, job_id, last_seen in rows:
                job = Job(Kind(kind), job_id, JobState.RUNNING, last_seen=last_seen)
                if job.check_stale(now, stale_after):
                    tx.run(
                        "UPDATE tw_jobs SET state = ?, updated_at = ?"
                        " WHERE kind = ? AND job_id = ?",
                        (job.state.value, now, kind, job_id),
                    )
                    changed.append((kind, job_id))
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
        now = time.time() if now is None else now
        with self._write() as tx:
            tx.run(
                "INSERT INTO tw_jobs (kind, job_id, state, applied, created_at, updated_at,"
                " registered, project_key, model_write_path, config_path)"
                " VALUES (?, ?, ?, 0, ?, ?, 1, ?, ?, ?) ON CONFLICT (kind, job_id) DO UPDATE SET"
                " registered = 1, project_key = excluded.project_key,"
                " model_write_path = excluded.model_write_path,"
                " config_path = excluded.config_path, updated_at = excluded.updated_at",
                (
                    kind.value,
                    job_id,
                    JobState.WAITING.value,
                    now,
                    now,
                    project_key,
                    model_write_path,
                    config_path,
                ),
            )
            if reset:
                tx.run(
                    "UPDATE tw_jobs SET state = ?, step = NULL, percentage = NULL, message = NULL,"
                    " last_seen = NULL, ts = NULL, applied = 0, created_at = ?"
                    " WHERE kind = ? AND job_id = ?",
                    (JobState.WAITING.value, now, kind.value, job_id),
                )
            row = tx.one(
                f"SELECT {_JOB_COLUMNS} FROM tw_jobs WHERE kind = ? AND job_id = ?",
                (kind.value, job_id),
            )
        assert row is not None
        return _job_record(row)

    # -- reading
    def jobs(self) -> list[JobRecord]:
        with self._read() as tx:
            rows = tx.all(
                f"SELECT {_JOB_COLUMNS} FROM tw_jobs ORDER BY created_at DESC, kind, job_id"
            )
        return [_job_record(r) for r in rows]

    def job(self, kind: str, job_id: str) -> JobRecord | None:
        with self._read() as tx:
            row = tx.one(
                f"SELECT {_JOB_COLUMNS} FROM tw_jobs WHERE kind = ? AND job_id = ?", (kind, job_id)
            )
        return _job_record(row) if row else None

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
        where: list[str] = []
        params: list[Any] = []
        if kind is not None and job_id is not None:
            where.append("kind = ? AND job_id = ?")
            params += [kind, job_id]
        if rejected_only:
            where.append("rejected = 1")
        if outcome is not None:
            where.append("outcome = ?")
            params.append(outcome)
        if before is not None:
            where.append("id < ?")
            params.append(before)
        sql = f"SELECT {_MESSAGE_COLUMNS} FROM tw_messages"
        if where:
            sql += " WHERE " + " AND ".join(where)
        sql += " ORDER BY id DESC LIMIT ?"
        params.append(max(1, min(int(limit), 1000)))
        with self._read() as tx:
            rows = tx.all(sql, params)
        return [_message_record(r) for r in rows]

    def counts(self) -> dict[str, int]:
        with self._read() as tx:
            rows = tx.all(
                "SELECT outcome, COUNT(*) FROM tw_messages WHERE rejected = 1 GROUP BY outcome"
            )
        return {str(r[0]): int(r[1]) for r in rows}

    def close(self) -> None:
        with self._lock:
            self._closed = True
            idle, self._idle = self._idle, []
        for conn in idle:
            with contextlib.suppress(Exception):
                conn.close()


def _parse(body: bytes) -> tuple[StatusMessage | None, InvalidMessage | None]:
    try:
        return validate(decode(body)), None
    except InvalidMessage as exc:
        return None, exc


@dataclass
class _Locked:
    """A job row locked by the batch's transaction, with the batch's changes."""

    job: Job
    ts: int | None
    dirty: bool = False


class _Batch:
    """Settles a list of deliveries inside one transaction.

    Locks are taken in one global order so that two consumers never deadlock: first the
    ``tw_seen`` rows (sorted by message id, in one statement), then the job rows sorted by
    (kind, job id). A job's messages keep their delivery order; the log rows are written in
    delivery order.
    """

    def __init__(
        self,
        store: _SqlStore,
        tx: _Tx,
        deliveries: Sequence[Delivery],
        parsed: list[tuple[StatusMessage | None, InvalidMessage | None]],
        now: float,
        project_keys: frozenset[str],
    ) -> None:
        self.store = store
        self.tx = tx
        self.deliveries = deliveries
        self.parsed = parsed
        self.now = now
        self.project_keys = project_keys
        self.jobs: dict[tuple[str, str], _Locked] = {}
        self.keys: dict[tuple[str, str, str], InvalidMessage | None] = {}
        self.log_rows: dict[int, tuple[Any, ...]] = {}

    def settle(self) -> list[Outcome]:
        duplicate = self._duplicates()
        outcomes: list[Outcome | None] = [None] * len(self.deliveries)

        def job_order(i: int) -> tuple[str, str]:
            msg = self.parsed[i][0]
            return (msg.kind.value, msg.job_id) if msg is not None else ("", "")

        for i in sorted(range(len(self.deliveries)), key=job_order):
            outcomes[i] = self._one(i, duplicate[i])
        for locked in self.jobs.values():
            if locked.dirty:
                self._write_job(locked)
        self.tx.many(
            "INSERT INTO tw_messages (received_at, message_id, published_ts, kind, job_id,"
            " status, step, percentage, outcome, rejected, superseded, detail, body)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [self.log_rows[i] for i in sorted(self.log_rows)],
        )
        return [o for o in outcomes if o is not None]

    def _duplicates(self) -> list[bool]:
        ids = sorted({d.message_id for d in self.deliveries if d.message_id is not None})
        inserted = self.store._insert_seen(self.tx, ids, self.now)
        first: set[str] = set()
        duplicate = []
        for d in self.deliveries:
            mid = d.message_id
            new = mid is None or (mid in inserted and mid not in first)
            if mid is not None and new:
                first.add(mid)
            duplicate.append(not new)
        return duplicate

    def _one(self, i: int, duplicate: bool) -> Outcome:
        delivery = self.deliveries[i]
        msg, rejection = self.parsed[i]
        if duplicate:
            rejection = InvalidMessage(
                Rejection.DUPLICATE,
                f"message_id {delivery.message_id!r} was received before; "
                "applied once, this copy is ignored",
            )
        if rejection is None and msg is not None:
            key = (msg.kind.value, msg.job_id, msg.project_key)
            if key not in self.keys:
                self.keys[key] = self.store._check_key(self.tx, msg, self.project_keys)
            rejection = self.keys[key]
        if rejection is not None or msg is None:
            assert rejection is not None
            return self._reject(i, rejection, msg)
        locked = self._lock(msg)
        try:
            moved = settle(locked.job, locked.ts, msg, delivery.timestamp, self.now)
        except InvalidMessage as exc:
            return self._reject(i, exc, msg)
        locked.dirty = True
        if moved and delivery.timestamp is not None:
            locked.ts = delivery.timestamp
        detail = ""
        if not moved:
            end = {JobState.DONE: Status.DONE, JobState.ERROR: Status.ERROR}.get(locked.job.state)
            detail = SUPERSEDED_AFTER_END.format(status=end.value) if end else SUPERSEDED_DETAIL
        self._log(i, msg.kind.value, msg.job_id, msg.status.value, msg, APPLIED, detail, not moved)
        return Outcome(APPLIED, msg.kind.value, msg.job_id, detail, superseded=not moved)

    def _reject(self, i: int, rejection: InvalidMessage, msg: StatusMessage | None) -> Outcome:
        if msg is not None:
            kind: str | None = msg.kind.value
            job_id: str | None = msg.job_id
            status: str | None = msg.status.value
        else:
            kind, job_id, status = _guess_job(self.deliveries[i].body)
        reason = rejection.reason.value
        self._log(i, kind, job_id, status, msg, reason, rejection.detail, False)
        return Outcome(reason, kind, job_id, rejection.detail)

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
        self.log_rows[i] = (
            self.now,
            delivery.message_id,
            delivery.timestamp,
            kind,
            job_id,
            status,
            msg.step if msg else None,
            msg.percentage if msg else None,
            outcome,
            1 if rejected else 0,
            1 if superseded else 0,
            detail or None,
            _body_text(delivery.body) if rejected else None,
        )

    def _lock(self, msg: StatusMessage) -> _Locked:
        key = (msg.kind.value, msg.job_id)
        locked = self.jobs.get(key)
        if locked is not None:
            return locked
        select = (
            "SELECT state, step, percentage, message, last_seen, applied, ts FROM tw_jobs"
            " WHERE kind = ? AND job_id = ?" + self.store.for_update
        )
        row = self.tx.one(select, key)
        if row is None:  # the job's first message: create it (another consumer may race us)
            self.tx.run(
                "INSERT INTO tw_jobs (kind, job_id, state, applied, created_at, updated_at)"
                " VALUES (?, ?, ?, 0, ?, ?) ON CONFLICT (kind, job_id) DO NOTHING",
                (*key, JobState.WAITING.value, self.now, self.now),
            )
            row = self.tx.one(select, key)
        assert row is not None
        job = Job(
            kind=msg.kind,
            job_id=msg.job_id,
            state=JobState(row[0]),
            step=row[1],
            percentage=row[2],
            message=row[3],
            last_seen=row[4],
            applied=int(row[5] or 0),
        )
        locked = self.jobs[key] = _Locked(job, row[6])
        return locked

    def _write_job(self, locked: _Locked) -> None:
        job = locked.job
        self.tx.run(
            "UPDATE tw_jobs SET state = ?, step = ?, percentage = ?, message = ?,"
            " last_seen = ?, applied = ?, ts = ?, updated_at = ? WHERE kind = ? AND job_id = ?",
            (
                job.state.value,
                job.step,
                job.percentage,
                job.message,
                job.last_seen,
                job.applied,
                locked.ts,
                self.now,
                job.kind.value,
                job.job_id,
            ),
        )


class SqliteStore(_SqlStore):
    """SQLite: one file, WAL journal, the write lock taken up front (``BEGIN IMMEDIATE``)."""

    def __init__(self, url: str, path: Path) -> None:
        self.path = path
        if sqlite3.sqlite_version_info < (3, 24):
            raise StoreError(
                f"{describe_db_url(url)}: needs SQLite 3.24 or newer, this Python has "
                f"{sqlite3.sqlite_version}: use PostgreSQL (--db postgresql://...)"
            )
        if not path.parent.is_dir():
            raise StoreError(
                f"{describe_db_url(url)}: the folder {str(path.parent)!r} does not exist; "
                "create it or give another --db"
            )
        super().__init__(url)

    def _connect(self) -> Any:
        try:
            conn = sqlite3.connect(
                str(self.path), timeout=30, isolation_level=None, check_same_thread=False
            )
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")
        except sqlite3.Error as exc:
            raise StoreError(f"{self.url}: cannot open the SQLite database: {exc}") from None
        return conn

    def _begin(self, conn: Any) -> None:
        conn.execute("BEGIN IMMEDIATE")

    def _transient(self, exc: BaseException) -> bool:
        return isinstance(exc, sqlite3.OperationalError) and "locked" in str(exc)

    def _insert_seen(self, tx: _Tx, ids: list[str], now: float) -> set[str]:
        # The write lock is already ours (BEGIN IMMEDIATE): look, then insert the new ones
        # (no RETURNING, which needs SQLite 3.35).
        known: set[str] = set()
        for start in range(0, len(ids), 400):
            chunk = ids[start : start + 400]
            rows = tx.all(
                "SELECT message_id FROM tw_seen WHERE message_id IN ("
                + ", ".join(["?"] * len(chunk))
                + ")",
                chunk,
            )
            known.update(str(r[0]) for r in rows)
        new = [mid for mid in ids if mid not in known]
        tx.many(
            "INSERT INTO tw_seen (message_id, received_at) VALUES (?, ?)", [(m, now) for m in new]
        )
        return set(new)


class PostgresStore(_SqlStore):
    """PostgreSQL through psycopg 3: row locks make several ``serve`` processes safe."""

    placeholder = "%s"
    for_update = " FOR UPDATE"
    serial = "BIGSERIAL"

    def __init__(self, url: str) -> None:
        try:
            import psycopg  # noqa: F401
        except ImportError:
            raise StoreError(
                f"{describe_db_url(url)}: PostgreSQL needs the psycopg package: "
                "pip install 'trainwire[serve]'"
            ) from None
        super().__init__(url)

    def _connect(self) -> Any:
        import psycopg

        try:
            return psycopg.connect(
                self._raw_url, autocommit=True, connect_timeout=10, application_name="trainwire"
            )
        except psycopg.Error as exc:
            text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise StoreError(f"{self.url}: cannot connect to PostgreSQL: {text}") from None

    def _begin(self, conn: Any) -> None:
        conn.execute("BEGIN")

    def _transient(self, exc: BaseException) -> bool:
        import psycopg.errors

        return isinstance(
            exc, (psycopg.errors.DeadlockDetected, psycopg.errors.SerializationFailure)
        )

    def _lock_schema(self, tx: _Tx) -> None:
        tx.run("SELECT pg_advisory_xact_lock(?)", (0x7472_6E77,))


def describe_db_url(url: str) -> str:
    """The URL with any password replaced by ``***``."""
    parts = urllib.parse.urlsplit(url)
    if parts.password is None:
        return url
    host = parts.hostname or ""
    if parts.port:
        host += f":{parts.port}"
    netloc = f"{parts.username or ''}:***@{host}"
    return urllib.parse.urlunsplit(parts._replace(netloc=netloc))


def open_store(url: str, *, cwd: Path | None = None) -> Store:
    """Open (and create the tables of) the database named by ``url``.

    ``sqlite:///relative.sqlite3``, ``sqlite:////absolute/path.sqlite3`` or a plain file
    path open SQLite; ``postgresql://user:pw@host:port/db`` opens PostgreSQL.
    """
    scheme = url.split("://", 1)[0].lower() if "://" in url else ""
    if scheme in ("postgresql", "postgres"):
        return PostgresStore(url)
    if scheme == "sqlite":
        rest = url.split("://", 1)[1]
        if not rest.startswith("/") or rest == "/":
            raise StoreError(
                f"{url}: a SQLite URL is sqlite:///file.sqlite3 (relative to the current "
                "folder) or sqlite:////absolute/file.sqlite3"
            )
        path = Path(urllib.parse.unquote(rest[1:]))
    elif scheme:
        raise StoreError(
            f"{describe_db_url(url)}: unknown database {scheme!r}: use sqlite:///FILE or "
            "postgresql://USER:PASSWORD@HOST:PORT/DB"
        )
    else:
        path = Path(url)
    if not path.is_absolute():
        path = (cwd or Path.cwd()) / path
    return SqliteStore(url, path)
