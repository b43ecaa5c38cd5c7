"""The SQL of the jobs table: reading jobs, registering them, turning silent ones
abnormal, and the locked row a batch settles messages against."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from ..._spec._protocol import Job, JobState, Kind
from ._pace import Pace, Sample
from ._records import JobRecord, Transition
from ._tx import Tx

__all__ = [
    "INSERT_TRANSITION",
    "JOB_COLUMNS",
    "Locked",
    "Registration",
    "count_jobs",
    "job_record",
    "mark_stale",
    "record_transition",
    "register",
    "select_transitions",
    "transition_row",
]

JOB_COLUMNS = (
    "kind, job_id, state, step, percentage, message, last_seen, applied, created_at, "
    "updated_at, registered, project_key, model_write_path, config_path, steps_per_second, "
    "eta_seconds"
)


def job_record(row: Sequence[Any]) -> JobRecord:
    """A row of :data:`JOB_COLUMNS` as a record."""
    return JobRecord(
        kind=Kind.of(row[0]),
        job_id=row[1],
        state=JobState.of(row[2]),
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
        steps_per_second=row[14],
        eta_seconds=row[15],
    )


@dataclass
class Locked:
    """A job row locked by a batch's transaction, with the batch's changes."""

    job: Job
    #: The publisher's timestamp of the job's last moving message.
    ts: int | None
    #: The job's recent progress samples.
    pace: Pace
    #: The state when the row was locked (a change is recorded as a transition).
    was: JobState
    dirty: bool = False

    def moved(self, published: int | None, now: float) -> None:
        """The job took a message that moved it: keep its pace up to date."""
        self.dirty = True
        if published is not None:
            self.ts = published
        job = self.job
        if job.state is JobState.RUNNING and job.step is not None:
            sample = Sample(now, published, job.step, job.percentage or 0.0)
            self.pace = self.pace.add(sample)


#: A new state on a job's timeline (the values of :func:`transition_row`).
INSERT_TRANSITION = (
    "INSERT INTO tw_transitions (kind, job_id, at, state, step, percentage)"
    " VALUES (?, ?, ?, ?, ?, ?)"
)


def transition_row(
    kind: str, job_id: str, state: JobState, now: float, job: Job | None = None
) -> tuple[Any, ...]:
    """The values of :data:`INSERT_TRANSITION` for a job's new ``state``."""
    step, percentage = (job.step, job.percentage) if job is not None else (None, None)
    return (kind, job_id, now, state.value, step, percentage)


def record_transition(
    tx: Tx, kind: str, job_id: str, state: JobState, now: float, job: Job | None = None
) -> None:
    """Put a job's new ``state`` on its timeline."""
    tx.run(INSERT_TRANSITION, transition_row(kind, job_id, state, now, job))


def count_jobs(tx: Tx) -> dict[tuple[Kind, JobState], int]:
    """How many jobs there are of each kind in each state (only the pairs that occur)."""
    rows = tx.all("SELECT kind, state, COUNT(*) FROM tw_jobs GROUP BY kind, state")
    return {(Kind.of(r[0]), JobState.of(r[1])): int(r[2]) for r in rows}


def select_transitions(tx: Tx, kind: str, job_id: str, limit: int = 1000) -> list[Transition]:
    """A job's timeline, oldest first (its newest ``limit`` changes)."""
    rows = tx.all(
        "SELECT at, state, step, percentage FROM tw_transitions WHERE kind = ? AND job_id = ?"
        " ORDER BY id DESC LIMIT ?",
        (kind, job_id, limit),
    )
    return [Transition(r[0], JobState.of(r[1]), r[2], r[3]) for r in reversed(rows)]


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
            record_transition(tx, kind, job_id, job.state, now)
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
    known = tx.one("SELECT 1 FROM tw_jobs WHERE kind = ? AND job_id = ?", key) is not None
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
            " last_seen = NULL, ts = NULL, applied = 0, created_at = ?, pace = NULL,"
            " steps_per_second = NULL, eta_seconds = NULL WHERE kind = ? AND job_id = ?",
            (JobState.WAITING.value, now, *key),
        )
        tx.run("DELETE FROM tw_transitions WHERE kind = ? AND job_id = ?", key)
    if reset or not known:
        record_transition(tx, reg.kind.value, reg.job_id, JobState.WAITING, now)
    row = tx.one(f"SELECT {JOB_COLUMNS} FROM tw_jobs WHERE kind = ? AND job_id = ?", key)
    assert row is not None
    return job_record(row)
