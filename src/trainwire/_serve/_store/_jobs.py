"""The SQL of the jobs table: reading jobs, registering them, turning silent ones
abnormal, and the locked row a batch settles messages against."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from ..._spec._protocol import Job, JobState, Kind
from ._records import JobRecord
from ._tx import Tx

__all__ = [
    "JOB_COLUMNS",
    "Locked",
    "Registration",
    "job_record",
    "lock_job",
    "mark_stale",
    "register",
    "write_job",
]

JOB_COLUMNS = (
    "kind, job_id, state, step, percentage, message, last_seen, applied, created_at, "
    "updated_at, registered, project_key, model_write_path, config_path"
)


def job_record(row: Sequence[Any]) -> JobRecord:
    """A row of :data:`JOB_COLUMNS` as a record."""
    return JobRecord(
        kind=Kind(row[0]),
        job_id=row[1],
        state=JobState(row[2]),
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


@dataclass
class Locked:
    """A job row locked by a batch's transaction, with the batch's changes."""

    job: Job
    #: The publisher's timestamp of the job's last moving message.
    ts: int | None
    dirty: bool = False


def lock_job(tx: Tx, kind: Kind, job_id: str, now: float, for_update: str) -> Locked:
    """The job's row locked for this transaction (created ``waiting`` if new)."""
    key = (kind.value, job_id)
    select = (
        "SELECT state, step, percentage, message, last_seen, applied, ts FROM tw_jobs"
        " WHERE kind = ? AND job_id = ?" + for_update
    )
    row = tx.one(select, key)
    if row is None:  # the job's first message: create it (another consumer may race us)
        tx.run(
            "INSERT INTO tw_jobs (kind, job_id, state, applied, created_at, updated_at)"
            " VALUES (?, ?, ?, 0, ?, ?) ON CONFLICT (kind, job_id) DO NOTHING",
            (*key, JobState.WAITING.value, now, now),
        )
        row = tx.one(select, key)
    assert row is not None
    job = Job(kind, job_id, JobState(row[0]), row[1], row[2], row[3], row[4], int(row[5] or 0))
    return Locked(job, row[6])


def write_job(tx: Tx, locked: Locked, now: float) -> None:
    """Write a locked job's changed row."""
    job = locked.job
    tx.run(
        "UPDATE tw_jobs SET state = ?, step = ?, percentage = ?, message = ?,"
        " last_seen = ?, applied = ?, ts = ?, updated_at = ? WHERE kind = ? AND job_id = ?",
        (job.state.value, job.step, job.percentage, job.message, job.last_seen,
         job.applied, locked.ts, now, job.kind.value, job.job_id),
    )  # fmt: skip


def mark_stale(tx: Tx, now: float, stale_after: float, for_update: str) -> list[tuple[str, str]]:
    """Turn running jobs silent for more than ``stale_after`` s abnormal; those jobs."""
    changed: list[tuple[str, str]] = []
    rows = tx.all(
        "SELECT kind, job_id, last_seen FROM tw_jobs WHERE state = ? AND last_seen < ?"
        " ORDER BY kind, job_id" + for_update,
        (JobState.RUNNING.value, now - stale_after),
    )
    for kind, job_id, last_seen in rows:
        job = Job(Kind(kind), job_id, JobState.RUNNING, last_seen=last_seen)
        if job.check_stale(now, stale_after):
            tx.run(
                "UPDATE tw_jobs SET state = ?, updated_at = ? WHERE kind = ? AND job_id = ?",
                (job.state.value, now, kind, job_id),
            )
            changed.append((kind, job_id))
    return changed


@dataclass(frozen=True)
class Registration:
    """A job as its training config describes it."""

    kind: Kind
    job_id: str
    project_key: str
    model_write_path: str
    config_path: str


def register(tx: Tx, reg: Registration, now: float, *, reset: bool) -> JobRecord:
    """Record a job from its config; ``reset`` forgets its state (back to waiting)."""
    key = (reg.kind.value, reg.job_id)
    tx.run(
        "INSERT INTO tw_jobs (kind, job_id, state, applied, created_at, updated_at,"
        " registered, project_key, model_write_path, config_path)"
        " VALUES (?, ?, ?, 0, ?, ?, 1, ?, ?, ?) ON CONFLICT (kind, job_id) DO UPDATE SET"
        " registered = 1, project_key = excluded.project_key,"
        " model_write_path = excluded.model_write_path,"
        " config_path = excluded.config_path, updated_at = excluded.updated_at",
        (*key, JobState.WAITING.value, now, now, reg.project_key, reg.model_write_path,
         reg.config_path),
    )  # fmt: skip
    if reset:
        tx.run(
            "UPDATE tw_jobs SET state = ?, step = NULL, percentage = NULL, message = NULL,"
            " last_seen = NULL, ts = NULL, applied = 0, created_at = ?"
            " WHERE kind = ? AND job_id = ?",
            (JobState.WAITING.value, now, *key),
        )
    row = tx.one(f"SELECT {JOB_COLUMNS} FROM tw_jobs WHERE kind = ? AND job_id = ?", key)
    assert row is not None
    return job_record(row)
