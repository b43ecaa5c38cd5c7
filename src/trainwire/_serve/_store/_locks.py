"""A batch's job rows: created, locked in one global order, and written back together.

A batch touches many jobs (a fleet's messages arrive interleaved), so its rows are read
and written with a few statements per batch, not a few per job:

1. the rows of new jobs are inserted (``waiting``) in one statement, sorted by
   (kind, job id); a row that exists already is left alone;
2. every row is then read and locked in one statement per kind, sorted the same way
   (``FOR UPDATE`` on PostgreSQL, by code point: ``COLLATE "C"``, the order Python sorts
   in), so that two consumers always lock in the same order and never deadlock;
3. the changed rows are written back with one ``executemany``.

Inserting before locking keeps the order whole: a row another consumer creates meanwhile
is found by the insert (which waits for that transaction), never locked out of turn later.
Jobs this process has found in the table before (:class:`KnownJobs`) are left out of the
insert: an insert that finds the row costs a lookup (4 µs a message on PostgreSQL). A
known job whose row is gone (pruned, or removed by another server) is inserted after the
lock, out of turn: that rare case can deadlock with another consumer, which PostgreSQL
breaks and the batch retries. A SQLite transaction holds the whole file's write lock
(``BEGIN IMMEDIATE``): there every row is read first and only the missing ones inserted.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from ..._spec._protocol import Job, JobState, Kind
from ._bulk import Bulk, Column
from ._dialect import Dialect
from ._jobs import INSERT_TRANSITION, Locked, transition_row
from ._pace import Pace
from ._text import TEXT
from ._tx import Tx

__all__ = ["KnownJobs", "lock_jobs", "write_jobs"]

#: Jobs per statement (their values stay well under every database's parameter limit).
CHUNK = 200


#: Jobs a :class:`KnownJobs` holds before it starts again (a hash each: a few MB at most).
KNOWN_JOBS = 100_000


class KnownJobs:
    """The jobs this process found in the jobs table, as hashes of their keys; bounded.

    Only an optimization: a job taken for known whose row is missing (a row removed
    since, or two keys of one hash) is inserted after the lock, as on SQLite.
    """

    def __init__(self, limit: int = KNOWN_JOBS) -> None:
        self.limit = limit
        self._hashes: set[int] = set()

    def __contains__(self, key: tuple[Kind, str]) -> bool:
        return hash(key) in self._hashes

    def add(self, keys: Sequence[tuple[Kind, str]]) -> None:
        """Remember ``keys`` (all of them forgotten first when the set is full)."""
        if len(self._hashes) + len(keys) > self.limit:
            self._hashes.clear()
        self._hashes.update(map(hash, keys))


def lock_jobs(
    tx: Tx,
    firsts: Mapping[tuple[Kind, str], str],
    now: float,
    dialect: Dialect,
    known: KnownJobs,
) -> tuple[dict[tuple[str, str], Locked], int]:
    """The rows of the jobs ``firsts`` names, locked for this transaction, and how many
    of them this transaction created.

    ``firsts`` maps (kind, job id) to the ``project_key`` of the job's first message, kept
    on a job created now (a registered job's config overrides it). The dialect's ``order``
    makes the database sort job ids by code point (see the module docstring). The jobs
    not in ``known`` are inserted first, where the order matters (PostgreSQL); where the
    transaction holds the whole file's write lock (SQLite) the usual batch has no new job,
    so the rows are read first and only the missing ones inserted.
    """
    keys = sorted(firsts)  # a Kind sorts as its text
    fresh = [] if dialect.locks_whole_file else [key for key in keys if key not in known]
    created = _insert(tx, fresh, firsts, now, dialect)
    locked = _select(tx, keys, dialect)  # its read also ends a pipeline's insert
    count = 0 if created is None else max(0, created.rowcount)
    missing = [(kind, job_id) for kind, job_id in keys if (TEXT[kind], job_id) not in locked]
    if missing:
        created = _insert(tx, missing, firsts, now, dialect)
        locked.update(_select(tx, missing, dialect))
        count += 0 if created is None else max(0, created.rowcount)
    known.add(keys)
    return locked, count


#: A new job's row (``waiting``); a row that exists is left alone.
INSERT_JOB = Bulk(
    "INSERT INTO tw_jobs (kind, job_id, state, applied, created_at, updated_at, project_key)"
    " VALUES (?, ?, ?, 0, ?, ?, ?) ON CONFLICT (kind, job_id) DO NOTHING",
    "INSERT INTO tw_jobs (kind, job_id, state, applied, created_at, updated_at, project_key)"
    " SELECT kind, job_id, state, 0, created_at, updated_at, project_key"
    " FROM {rows} AS v(kind, job_id, state, created_at, updated_at, project_key)"
    " ON CONFLICT (kind, job_id) DO NOTHING",
    (Column.TEXT, Column.TEXT, Column.TEXT, Column.FLOAT, Column.FLOAT, Column.TEXT),
)


def _insert(
    tx: Tx,
    keys: list[tuple[Kind, str]],
    firsts: Mapping[tuple[Kind, str], str],
    now: float,
    dialect: Dialect,
) -> Any:
    """Insert the rows of new jobs (``waiting``), in the order of ``keys``; the cursor:
    its ``rowcount`` is the number of rows created (once the result is in)."""
    waiting = TEXT[JobState.WAITING]
    rows = [(TEXT[kind], job_id, waiting, now, now, firsts[kind, job_id]) for kind, job_id in keys]
    return dialect.many(tx, INSERT_JOB, rows, checked=True)  # validated identifiers


def _select(
    tx: Tx, keys: list[tuple[Kind, str]], dialect: Dialect
) -> dict[tuple[str, str], Locked]:
    """The rows of ``keys`` that exist, read (and locked) in one statement per kind."""
    locked: dict[tuple[str, str], Locked] = {}
    for start in range(0, len(keys), CHUNK):
        chunk = keys[start : start + CHUNK]
        for kind in sorted({k for k, _ in chunk}):
            text = TEXT[kind]
            among, ids = dialect.one_of("job_id", [job_id for k, job_id in chunk if k is kind])
            rows = tx.all(
                "SELECT job_id, state, step, percentage, message, last_seen, applied, ts, pace"
                f" FROM tw_jobs WHERE kind = ? AND {among}"
                f" ORDER BY job_id{dialect.order}{dialect.for_update}",
                [text, *ids],
            )
            for row in rows:
                locked[text, row[0]] = _locked(kind, row)
    return locked


def _locked(kind: Kind, row: Sequence[Any]) -> Locked:
    state = JobState.of(row[1])
    job = Job(kind, row[0], state, row[2], row[3], row[4], row[5], int(row[6] or 0))
    return Locked(job, row[7], Pace.loads(row[8]), state)


def write_jobs(tx: Tx, jobs: Iterable[Locked], now: float, dialect: Dialect) -> None:
    """Write the changed rows of locked jobs (and their new states on the timeline)."""
    rows = []
    transitions = []
    for locked in jobs:
        if not locked.dirty:
            continue
        job = locked.job
        running = job.state is JobState.RUNNING
        speed = locked.pace.speed() if running else None
        rows.append(
            (TEXT[job.state], job.step, job.percentage, job.message, job.last_seen,
             job.applied, locked.ts, now, locked.pace.dumps() if running else None,
             None if speed is None else speed.steps_per_second,
             None if speed is None else speed.eta_seconds, TEXT[job.kind], job.job_id)
        )  # fmt: skip
        if job.state is not locked.was:
            transitions.append(transition_row(TEXT[job.kind], job.job_id, job.state, now, job))
    # Storable already: validated identifiers, cleaned messages, paces as ASCII JSON (or
    # as read back from the database), enum values.
    tx.many(INSERT_TRANSITION, transitions, checked=True)
    dialect.many(tx, UPDATE_JOB, rows, checked=True)


_T, _B, _F = Column.TEXT, Column.BIGINT, Column.FLOAT
#: A locked job's new values.
UPDATE_JOB = Bulk(
    "UPDATE tw_jobs SET state = ?, step = ?, percentage = ?, message = ?,"
    " last_seen = ?, applied = ?, ts = ?, updated_at = ?, pace = ?, steps_per_second = ?,"
    " eta_seconds = ? WHERE kind = ? AND job_id = ?",
    "UPDATE tw_jobs AS j SET state = v.state, step = v.step, percentage = v.percentage,"
    " message = v.message, last_seen = v.last_seen, applied = v.applied, ts = v.ts,"
    " updated_at = v.updated_at, pace = v.pace, steps_per_second = v.steps_per_second,"
    " eta_seconds = v.eta_seconds FROM {rows} AS v(state, step, percentage, message, last_seen,"
    " applied, ts, updated_at, pace, steps_per_second, eta_seconds, kind, job_id)"
    " WHERE j.kind = v.kind AND j.job_id = v.job_id",
    (_T, _B, _F, _T, _F, _B, _B, _F, _T, _F, _F, _T, _T),
)
