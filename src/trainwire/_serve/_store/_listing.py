"""A list of jobs that scales: filters, search by id, sort, cursor pages, counts per state.

Pages are read by key (``WHERE (sort value, kind, id) < cursor ORDER BY ... LIMIT n``),
never by offset, so page 200 costs what page 1 costs and a job that arrives meanwhile
neither repeats nor skips a row. The cursor is the last row's sort value, kind and id,
as URL-safe base64 of JSON; the server checks it like any other input.
"""

from __future__ import annotations

import base64
import enum
import json
from dataclasses import dataclass
from typing import Any

from ..._spec._protocol import JobState, Kind
from ._jobs import JOB_COLUMNS, job_record
from ._records import JobRecord
from ._tx import Tx

__all__ = ["JobPage", "JobQuery", "SortKey", "count_states", "decode_cursor", "select_page"]

#: Largest page.
MAX_LIMIT = 1000


class SortKey(str, enum.Enum):
    """What a list of jobs is sorted by (then by kind and id)."""

    CREATED = "created"
    LAST_MESSAGE = "last_message"
    PROGRESS = "progress"
    ID = "id"


#: The SQL value of each sort key; never NULL, so that rows compare as tuples.
_SORT_SQL = {
    SortKey.CREATED: "created_at",
    SortKey.LAST_MESSAGE: "COALESCE(last_seen, -1)",
    SortKey.PROGRESS: "COALESCE(percentage, -1)",
    SortKey.ID: "job_id",
}


@dataclass(frozen=True)
class JobQuery:
    """Which jobs, in which order, how many."""

    states: tuple[JobState, ...] = ()
    kinds: tuple[Kind, ...] = ()
    #: Exactly this ``project_key`` (of the job's config, or of its first message).
    project_key: str | None = None
    #: Part of the id, any case.
    search: str | None = None
    sort: SortKey = SortKey.CREATED
    descending: bool = True
    #: At most this many jobs (None: all).
    limit: int | None = None
    #: Only the jobs after this one (a cursor from :func:`decode_cursor`).
    after: tuple[Any, str, str] | None = None


@dataclass(frozen=True)
class JobPage:
    """A page of jobs and the cursor of the next one (None: this is the last)."""

    jobs: list[JobRecord]
    next: str | None


def decode_cursor(text: str) -> tuple[Any, str, str]:
    """A cursor as :class:`JobQuery` takes it; ``ValueError`` when it is not one."""
    try:
        value, kind, job_id = json.loads(base64.urlsafe_b64decode(text.encode("ascii")))
    except Exception:
        raise ValueError("cursor is not one this server gave") from None
    if not isinstance(value, (int, float, str)) or isinstance(value, bool):
        raise ValueError("cursor is not one this server gave")
    if not isinstance(kind, str) or not isinstance(job_id, str):
        raise ValueError("cursor is not one this server gave")
    return value, kind, job_id


def _encode_cursor(value: Any, job: JobRecord) -> str:
    raw = json.dumps([value, job.kind.value, job.job_id], ensure_ascii=False)
    return base64.urlsafe_b64encode(raw.encode("utf-8")).decode("ascii")


def _where(query: JobQuery, with_states: bool) -> tuple[list[str], list[Any]]:
    where: list[str] = []
    params: list[Any] = []
    if with_states and query.states:
        where.append(f"state IN ({', '.join('?' * len(query.states))})")
        params += [s.value for s in query.states]
    if query.kinds:
        where.append(f"kind IN ({', '.join('?' * len(query.kinds))})")
        params += [k.value for k in query.kinds]
    if query.project_key is not None:
        where.append("project_key = ?")
        params.append(query.project_key)
    if query.search:
        escaped = query.search.lower().replace("\\", "\\\\").replace("%", "\\%")
        where.append("LOWER(job_id) LIKE ? ESCAPE '\\'")
        params.append("%" + escaped.replace("_", "\\_") + "%")
    return where, params


def select_page(tx: Tx, query: JobQuery) -> JobPage:
    """One page of jobs for ``query``."""
    where, params = _where(query, with_states=True)
    value = _SORT_SQL[query.sort]
    order = "DESC" if query.descending else "ASC"
    if query.after is not None:
        where.append(f"({value}, kind, job_id) {'<' if query.descending else '>'} (?, ?, ?)")
        params += list(query.after)
    sql = f"SELECT {JOB_COLUMNS}, {value} FROM tw_jobs"
    if where:
        sql += " WHERE " + " AND ".join(where)
    sql += f" ORDER BY {value} {order}, kind {order}, job_id {order}"
    limit = None if query.limit is None else max(1, min(query.limit, MAX_LIMIT))
    if limit is not None:
        sql += " LIMIT ?"
        params.append(limit + 1)  # one more: is there a next page?
    rows = tx.all(sql, params)
    jobs = [job_record(r) for r in rows[:limit]]
    more = limit is not None and len(rows) > limit
    return JobPage(jobs, _encode_cursor(rows[limit - 1][-1], jobs[-1]) if more and limit else None)


def count_states(tx: Tx, query: JobQuery) -> dict[JobState, int]:
    """How many jobs match ``query`` in each state (its state filter left out)."""
    where, params = _where(query, with_states=False)
    sql = "SELECT state, COUNT(*) FROM tw_jobs"
    if where:
        sql += " WHERE " + " AND ".join(where)
    counts = {state: 0 for state in JobState}
    for state, n in tx.all(sql + " GROUP BY state", params):
        counts[JobState(state)] = int(n)
    return counts
