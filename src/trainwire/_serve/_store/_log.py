"""The SQL of the message log: every message received, applied or rejected with its reason."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

from ._bulk import Bulk, Column
from ._dialect import Dialect
from ._records import MessageRecord
from ._tx import Tx

__all__ = ["LogRow", "MessageQuery", "count_rejections", "insert_log", "select_messages"]

_COLUMNS = (
    "id, received_at, message_id, published_ts, kind, job_id, status, step, percentage, "
    "outcome, superseded, detail, body"
)
#: Largest page of the log one query returns.
MAX_PAGE = 1000


class LogRow(NamedTuple):
    """One line of the log as it is written (a tuple: one is made per message)."""

    received_at: float
    message_id: str | None
    published_ts: int | None
    kind: str | None
    job_id: str | None
    status: str | None
    step: int | None
    percentage: float | None
    outcome: str
    rejected: bool
    superseded: bool
    detail: str | None
    body: str | None


_T, _B, _F = Column.TEXT, Column.BIGINT, Column.FLOAT
_LOG = (
    "INSERT INTO tw_messages (received_at, message_id, published_ts, kind, job_id,"
    " status, step, percentage, outcome, rejected, superseded, detail, body)"
)
#: A line of the log (in order: ``id`` counts up row by row, the array's order too).
INSERT_LOG = Bulk(
    _LOG + " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
    _LOG + " SELECT * FROM {rows}",
    (_F, _T, _B, _T, _T, _T, _B, _F, _T, _B, _B, _T, _T),
)


def insert_log(tx: Tx, dialect: Dialect, rows: Sequence[LogRow], *, checked: bool = False) -> None:
    """Append ``rows`` to the log, in order (``checked``: see :meth:`Tx.many`)."""
    dialect.many(
        tx,
        INSERT_LOG,
        [
            (r.received_at, r.message_id, r.published_ts, r.kind, r.job_id, r.status, r.step,
             r.percentage, r.outcome, int(r.rejected), int(r.superseded), r.detail, r.body)
            for r in rows
        ],
        checked=checked,
    )  # fmt: skip


@dataclass(frozen=True)
class MessageQuery:
    """Which part of the log to read (newest first)."""

    kind: str | None = None
    job_id: str | None = None
    rejected_only: bool = False
    outcome: str | None = None
    limit: int = 100
    #: Only messages with a smaller ``seq`` (the previous page's last one).
    before: int | None = None


def select_messages(tx: Tx, query: MessageQuery) -> list[MessageRecord]:
    """The log, newest first, filtered by ``query``."""
    where: list[str] = []
    params: list[Any] = []
    if query.kind is not None and query.job_id is not None:
        where.append("kind = ? AND job_id = ?")
        params += [query.kind, query.job_id]
    if query.rejected_only:
        where.append("rejected = 1")
    if query.outcome is not None:
        where.append("outcome = ?")
        params.append(query.outcome)
    if query.before is not None:
        where.append("id < ?")
        params.append(query.before)
    sql = f"SELECT {_COLUMNS} FROM tw_messages"
    if where:
        sql += " WHERE " + " AND ".join(where)
    sql += " ORDER BY id DESC LIMIT ?"
    params.append(max(1, min(int(query.limit), MAX_PAGE)))
    return [_record(r) for r in tx.all(sql, params)]


def _record(row: Sequence[Any]) -> MessageRecord:
    values = list(row)
    values[10] = bool(values[10])
    return MessageRecord(*values)


def count_rejections(tx: Tx) -> dict[str, int]:
    """Number of logged messages per rejection reason."""
    rows = tx.all("SELECT outcome, COUNT(*) FROM tw_messages WHERE rejected = 1 GROUP BY outcome")
    return {str(r[0]): int(r[1]) for r in rows}
