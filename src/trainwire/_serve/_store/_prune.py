"""Retention: forgetting old jobs in some states, and trimming each job's message log.

A pruned job loses its row, its message log and its timeline; message ids older than
the cut-off are forgotten too (a copy can only be redelivered within minutes), and so
are rejected messages older than it that name no job.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from typing import Any

from ..._spec._protocol import JobState
from ._tx import Tx

__all__ = ["Pruned", "prune", "trim"]


@dataclass(frozen=True)
class Pruned:
    """What :func:`prune` removed."""

    jobs: int
    messages: int


def _count(cursor: Any) -> int:
    return max(int(cursor.rowcount), 0)


def prune(tx: Tx, cutoff: float, states: Collection[JobState]) -> Pruned:
    """Delete the jobs in ``states`` unchanged since ``cutoff`` (epoch seconds)."""
    marks = ", ".join("?" * len(states))
    rows = tx.all(
        f"SELECT kind, job_id FROM tw_jobs WHERE updated_at < ? AND state IN ({marks})"
        " ORDER BY kind, job_id",
        (cutoff, *(s.value for s in states)),
    )
    messages = 0
    for kind, job_id in rows:
        key = (kind, job_id)
        messages += _count(tx.run("DELETE FROM tw_messages WHERE kind = ? AND job_id = ?", key))
        tx.run("DELETE FROM tw_transitions WHERE kind = ? AND job_id = ?", key)
        tx.run("DELETE FROM tw_jobs WHERE kind = ? AND job_id = ?", key)
    unfiled = tx.run("DELETE FROM tw_messages WHERE job_id IS NULL AND received_at < ?", (cutoff,))
    tx.run("DELETE FROM tw_seen WHERE received_at < ?", (cutoff,))
    return Pruned(len(rows), messages + _count(unfiled))


def trim(tx: Tx, keep: int, after: int) -> tuple[int, int]:
    """Keep the newest ``keep`` logged messages of every job that logged one after the
    row ``after``; the newest row id seen (the next ``after``) and how many were deleted."""
    newest = tx.one("SELECT MAX(id) FROM tw_messages")
    last = int(newest[0]) if newest and newest[0] is not None else after
    jobs = tx.all(
        "SELECT DISTINCT kind, job_id FROM tw_messages WHERE id > ? AND id <= ?"
        " AND job_id IS NOT NULL",
        (after, last),
    )
    deleted = 0
    for kind, job_id in jobs:
        deleted += _count(
            tx.run(
                "DELETE FROM tw_messages WHERE kind = ? AND job_id = ? AND id <= (SELECT id"
                " FROM tw_messages WHERE kind = ? AND job_id = ? ORDER BY id DESC LIMIT 1"
                " OFFSET ?)",
                (kind, job_id, kind, job_id, keep),
            )
        )
    return last, deleted
