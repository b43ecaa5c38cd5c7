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
   against it by :func:`settle` (the protocol's :class:`~trainwire._spec._protocol.Job` plus the
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

Hostile input. Nothing a publisher sends may stop the store: a body is read only up to
:data:`MAX_BODY` bytes, every failure to read or check it is a rejection with its reason
(:func:`~trainwire._spec._protocol.validate` holds the limits: steps, identifiers, the cleaned
error ``message``), an AMQP ``message_id`` that is not UTF-8 is written with escapes and
a timestamp far in the future is taken as the receive time.
Every string written passes :func:`_storable` (no lone surrogate, no NUL: neither database
nor the JSON API could take them). What the database still refuses is found by
:meth:`Store.settle_alone` and kept as ``quarantined`` instead of blocking the queue.
"""

from __future__ import annotations

import abc
import contextlib
import dataclasses
import enum
import json
import logging
import os
import re
import sqlite3
import threading
import time
import urllib.parse
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .._errors import TrainwireError
from .._spec._protocol import (
    InvalidMessage,
    Job,
    JobState,
    Kind,
    Rejection,
    Status,
    StatusMessage,
    decode,
    identity_problem,
    validate,
)
from ._urls import describe_url

__all__ = [
    "APPLIED",
    "DEFAULT_DB_URL",
    "MAX_BODY",
    "OUTCOMES",
    "Delivery",
    "JobRecord",
    "MessageRecord",
    "Outcome",
    "PostgresStore",
    "SqliteStore",
    "Store",
    "StoreError",
    "StoreRejection",
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
#: A body longer than this many bytes is not read (a status message has a few hundred).
MAX_BODY = 1 << 20
#: A rejection's detail is kept up to this many characters.
DETAIL_LIMIT = 1000
#: A publisher's clock may run this many seconds ahead of the server's: a later AMQP
#: timestamp is not believed (taken as the receive time).
CLOCK_AHEAD = 10
#: What no database column and no JSON answer can hold: NUL and lone surrogates.
_UNSTORABLE = re.compile(r"[\x00\ud800-\udfff]")
SCHEMA_VERSION = "1"
#: Attempts of a batch that met a deadlock or a busy database.
RETRIES = 4

log = logging.getLogger("trainwire.serve")


class StoreError(TrainwireError):
    """The database cannot be opened or used; the text says which and what to do."""


class StoreRejection(str, enum.Enum):
    """Why the receiver did not apply a message, besides the protocol's :class:`Rejection`."""

    #: The body is longer than :data:`MAX_BODY`: not read.
    TOO_LARGE = "too_large"
    #: The database refused the message even on its own: kept aside, the queue goes on.
    QUARANTINED = "quarantined"


#: Every outcome a logged message can have.
OUTCOMES = (APPLIED, *(r.value for r in Rejection), *(r.value for r in StoreRejection))


@dataclass(frozen=True)
class Delivery:
    """One message as the broker delivered it."""

    body: bytes
    message_id: str | None = None
    #: AMQP ``timestamp`` property: when the publisher sent it (whole seconds).
    timestamp: int | None = None

    @classmethod
    def from_amqp(cls, body: bytes, message_id: object, timestamp: object) -> Delivery:
        """A delivery from the properties pika decoded, whatever the publisher put there.

        pika hands over a ``message_id`` that is not UTF-8 as bytes: see
        :func:`_message_id_text`. A timestamp that is not an integer is ignored.
        """
        ts = timestamp if isinstance(timestamp, int) and not isinstance(timestamp, bool) else None
        return cls(bytes(body), _message_id_text(message_id), ts)


def _message_id_text(value: object) -> str | None:
    """An AMQP ``message_id`` as the text the store keeps, or None for none or empty.

    Bytes that are not UTF-8 are written with backslash escapes (``b"\\xff"`` -> ``\\xff``),
    always the same way, so that a second copy is still found as a duplicate.
    """
    if isinstance(value, (bytes, bytearray)):
        value = bytes(value).decode("utf-8", "backslashreplace")
    if not isinstance(value, str) or not value:
        return None
    return _storable(value)


def _storable(text: str) -> str:
    """``text`` as every database can store and every JSON answer can show it: a NUL or a
    lone surrogate (from a JSON escape such as ``"\\ud800"``) becomes U+FFFD."""
    return _UNSTORABLE.sub("\ufffd", text) if _UNSTORABLE.search(text) else text


def _cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "\u2026"


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
    try:
        day = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ts))
    except (OverflowError, OSError, ValueError):  # not a time this platform can show
        return None
    return day + f".{int(ts % 1 * 1000):03d}Z"


def mask_key(key: str) -> str:
    """A project key shortened for display: its first 4 characters and its length."""
    return f"{key[:4]}… ({len(key)} chars)" if len(key) > 4 else "…"


def _mask_body(body: str | None) -> str | None:
    if body is None:
        return None
    try:
        value = json.loads(body)
        if not isinstance(value, dict) or not isinstance(value.get("project_key"), str):
            return body
        value["project_key"] = mask_key(value["project_key"])
        # An escape in the body such as "\ud800" decodes to a lone surrogate: keep it out.
        return _storable(json.dumps(value, ensure_ascii=False))
    except Exception:  # not JSON, nested too deeply, ...: shown as it was stored
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
    if len(raw) > MAX_BODY:
        return None, None, None
    try:
        body = decode(raw)
    except Exception:  # InvalidMessage, or anything a hostile body makes the parser raise
        return None, None, None
    cmd, status = body.get("cmd"), body.get("status")
    kind: Kind | None = None
    if isinstance(cmd, str):
        with contextlib.suppress(ValueError):
            kind = Kind.from_cmd(cmd)
    job_id = body.get(kind.id_field) if kind else None
    return (
        kind.value if kind else None,
        job_id if _is_name(job_id) else None,
        status if _is_name(status) else None,
    )


def _is_name(value: object) -> bool:
    """Whether a rejected body's text may file it under a job (and so go into an index)."""
    return identity_problem(value) is None


def _body_text(raw: bytes) -> str:
    return raw[: BODY_LIMIT * 4].decode("utf-8", "replace")[:BODY_LIMIT]


def _received(delivery: Delivery, now: float) -> Delivery:
    """``delivery`` as the store takes it at ``now``: its id as clean text, and a timestamp
    more than :data:`CLOCK_AHEAD` s in the future taken as ``now``. A bogus value such as
    2**64-1 or a clock an hour ahead must neither freeze the job's progress (the messages
    after it would all look older) nor become a date nobody can show."""
    message_id = _message_id_text(delivery.message_id)
    ts = delivery.timestamp
    if ts is not None and ts > now + CLOCK_AHEAD:
        ts = int(now)
    if message_id == delivery.message_id and ts == delivery.timestamp:
        return delivery
    return dataclasses.replace(delivery, message_id=message_id, timestamp=ts)


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
        A body that cannot be read or checked is a rejection, never an exception; what
        still fails (the database refused a row) fails the batch: see :meth:`settle_alone`.
        """

    @abc.abstractmethod
    def settle_alone(
        self, delivery: Delivery, now: float, project_keys: frozenset[str] = frozenset()
    ) -> Outcome:
        """Settle one delivery of a batch that failed, on its own.

        When the database refuses it even alone (and is not :meth:`outage`), it is kept as
        ``quarantined`` with the error, so that one message cannot block the queue.
        Raises when the database cannot be used at all: the caller then leaves it unacked.
        """

    def outage(self, exc: BaseException) -> bool:
        """True when ``exc`` says the database cannot be used now (down, locked, full),
        rather than that it refused one message."""
        return isinstance(exc, StoreError)

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
        return self.conn.execute(sql, _params(params))

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
        self.conn.cursor().executemany(sql, [_params(r) for r in rows])


def _params(values: Sequence[Any]) -> tuple[Any, ...]:
    """Query parameters with every string :func:`_storable`: written and looked up alike."""
    return tuple(_storable(v) if isinstance(v, str) else v for v in values)


class _SqlStore(Store):
    placeholder = "?"
    for_update = ""
    serial = "INTEGER"

    def __init__(self, url: str, pool_size: int = 4) -> None:
        self.url = describe_url(url)
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
        deliveries = [_received(d, now) for d in deliveries]
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

    def settle_alone(
        self, delivery: Delivery, now: float, project_keys: frozenset[str] = frozenset()
    ) -> Outcome:
        delivery = _received(delivery, now)
        parsed = [_parse(delivery.body)]
        with self._write() as tx:
            # A savepoint, not a second transaction: if the database is down, the
            # quarantine fails too, and nothing is set aside that could have been applied.
            tx.run("SAVEPOINT tw_alone")
            try:
                return _Batch(self, tx, [delivery], parsed, now, project_keys).settle()[0]
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
        self, tx: _Tx, delivery: Delivery, now: float, exc: Exception, *, whole: bool
    ) -> Outcome:
        """Log ``delivery`` as quarantined (with its id, guessed job and body if ``whole``)."""
        reason = StoreRejection.QUARANTINED.value
        kind = job_id = status = message_id = body = None
        error = type(exc).__name__
        if whole:
            kind, job_id, status = _guess_job(delivery.body)
            message_id, body = delivery.message_id, _body_text(delivery.body)
            error = _error_text(exc)
            if message_id is not None:  # a redelivered copy is then a duplicate
                self._insert_seen(tx, [message_id], now)
        detail = _cut(
            f"the database refused this message even on its own ({error}); it is kept here "
            "so that the messages after it go through",
            DETAIL_LIMIT,
        )
        tx.run(
            "INSERT INTO tw_messages (received_at, message_id, published_ts, kind, job_id,"
            " status, outcome, rejected, superseded, detail, body)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, 1, 0, ?, ?)",
            (now, message_id, delivery.timestamp if whole else None, kind, job_id, status,
             reason, detail, body),
        )  # fmt: skip
        return Outcome(reason, kind, job_id, detail)

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


def _error_text(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return _storable(f"{type(exc).__name__}: {text[0]}" if text else type(exc).__name__)


@dataclass(frozen=True)
class _Refusal:
    """Why a message is not applied: a protocol or a store reason, and the detail."""

    reason: Rejection | StoreRejection
    detail: str

    @classmethod
    def of(cls, exc: InvalidMessage) -> _Refusal:
        return cls(exc.reason, exc.detail)


def _parse(body: bytes) -> tuple[StatusMessage | None, _Refusal | None]:
    """The message in ``body``, or why not; never raises, whatever the body holds."""
    if len(body) > MAX_BODY:
        return None, _Refusal(
            StoreRejection.TOO_LARGE,
            f"the body has {len(body):,} bytes, more than the {MAX_BODY:,} a status message "
            "may have: not read",
        )
    try:
        msg = validate(decode(body))
    except InvalidMessage as exc:
        return None, _Refusal.of(exc)
    except RecursionError:
        return None, _Refusal(Rejection.MALFORMED_JSON, "the JSON is nested too deeply to read")
    except Exception as exc:  # validate promises InvalidMessage only; never fail a batch
        return None, _Refusal(Rejection.BAD_FIELD, f"cannot be checked: {_error_text(exc)}")
    return msg, None


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
        parsed: list[tuple[StatusMessage | None, _Refusal | None]],
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
        self.keys: dict[tuple[str, str, str], _Refusal | None] = {}
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
            rejection = _Refusal(
                Rejection.DUPLICATE,
                f"message_id {delivery.message_id!r} was received before; "
                "applied once, this copy is ignored",
            )
        if rejection is None and msg is not None:
            key = (msg.kind.value, msg.job_id, msg.project_key)
            if key not in self.keys:
                wrong = self.store._check_key(self.tx, msg, self.project_keys)
                self.keys[key] = None if wrong is None else _Refusal.of(wrong)
            rejection = self.keys[key]
        if rejection is not None or msg is None:
            assert rejection is not None
            return self._reject(i, rejection, msg)
        locked = self._lock(msg)
        try:
            moved = settle(locked.job, locked.ts, msg, delivery.timestamp, self.now)
        except InvalidMessage as exc:
            return self._reject(i, _Refusal.of(exc), msg)
        locked.dirty = True
        if moved and delivery.timestamp is not None:
            locked.ts = delivery.timestamp
        detail = ""
        if not moved:
            end = {JobState.DONE: Status.DONE, JobState.ERROR: Status.ERROR}.get(locked.job.state)
            detail = SUPERSEDED_AFTER_END.format(status=end.value) if end else SUPERSEDED_DETAIL
        self._log(i, msg.kind.value, msg.job_id, msg.status.value, msg, APPLIED, detail, not moved)
        return Outcome(APPLIED, msg.kind.value, msg.job_id, detail, superseded=not moved)

    def _reject(self, i: int, rejection: _Refusal, msg: StatusMessage | None) -> Outcome:
        if msg is not None:
            kind: str | None = msg.kind.value
            job_id: str | None = msg.job_id
            status: str | None = msg.status.value
        else:
            kind, job_id, status = _guess_job(self.deliveries[i].body)
        reason = rejection.reason.value
        detail = _storable(_cut(rejection.detail, DETAIL_LIMIT))
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
                f"{describe_url(url)}: needs SQLite 3.24 or newer, this Python has "
                f"{sqlite3.sqlite_version}: use PostgreSQL (--db postgresql://...)"
            )
        if not path.parent.is_dir():
            raise StoreError(
                f"{describe_url(url)}: the folder {str(path.parent)!r} does not exist; "
                "create it or give another --db"
            )
        _create_private(url, path)
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

    def outage(self, exc: BaseException) -> bool:
        # OperationalError: locked, disk full, I/O error, read-only file. The data errors
        # (a trigger's RAISE, a constraint, a value too big) are IntegrityError, DataError...
        return isinstance(exc, (StoreError, sqlite3.OperationalError))

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
                f"{describe_url(url)}: PostgreSQL needs the psycopg package: "
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

    def outage(self, exc: BaseException) -> bool:
        import psycopg.errors

        # OperationalError: the connection, the server, resources; but class 54 (a value
        # beyond a limit, e.g. an index row too large) is this message's fault.
        if isinstance(exc, psycopg.errors.ProgramLimitExceeded):
            return False
        return isinstance(exc, (StoreError, psycopg.OperationalError, psycopg.InterfaceError))


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
            f"{describe_url(url)}: cannot create the SQLite file {str(path)!r}: "
            f"{exc.strerror}; give another --db"
        ) from None
    os.close(fd)


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
            f"{describe_url(url)}: unknown database {scheme!r}: use sqlite:///FILE or "
            "postgresql://USER:PASSWORD@HOST:PORT/DB"
        )
    else:
        path = Path(url)
    if not path.is_absolute():
        path = (cwd or Path.cwd()) / path
    return SqliteStore(url, path)
