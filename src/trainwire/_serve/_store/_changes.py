"""The alert events of a transaction: the jobs whose state it changed, as JSON.

An event is made for a change *into* ``running`` (the first message, or a job that was
abnormal sending again), ``done``, ``error`` or ``abnormal``; what a batch changed is
judged from the state the job had when the batch locked its row, so a job that started
and finished within one batch gives a ``running`` and a ``done`` event.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any, Optional

from ..._spec._protocol import JobState, Status, StatusMessage
from ._batch import Batch
from ._records import APPLIED, Outcome
from ._text import iso_time, mask_key
from ._tx import Tx

__all__ = ["ALERT_STATES", "batch_events", "stale_events"]

#: The states a change into makes an event.
ALERT_STATES = frozenset({JobState.RUNNING, JobState.DONE, JobState.ERROR, JobState.ABNORMAL})

#: An event's step, percentage, error message and (unmasked) project key.
_Fields = tuple[Optional[int], Optional[float], Optional[str], Optional[str]]


def _event(
    kind: str,
    job_id: str,
    state: JobState,
    was: JobState,
    fields: _Fields,
    now: float,
) -> dict[str, Any]:
    step, percentage, message, key = fields
    return {
        "event_id": uuid.uuid4().hex,
        "kind": kind,
        "id": job_id,
        "project_key": None if key is None else mask_key(key),
        "state": state.value,
        "previous_state": was.value,
        "percentage": percentage,
        "step": step,
        "message": message,
        "time": iso_time(now),
    }


def batch_events(batch: Batch, outcomes: Sequence[Outcome]) -> list[dict[str, Any]]:
    """The events of the jobs a settled batch moved, in (kind, id) order."""
    applied: dict[tuple[str, str], list[StatusMessage]] = {}
    for (msg, _), outcome in zip(batch.parsed, outcomes):
        if msg is not None and outcome.outcome == APPLIED and not outcome.superseded:
            applied.setdefault((msg.kind.value, msg.job_id), []).append(msg)
    events = []
    for key in sorted(batch.jobs):
        locked, msgs = batch.jobs[key], applied.get(key, [])
        job, was = locked.job, locked.was
        if job.state is was or job.state not in ALERT_STATES or not msgs:
            continue
        started = [m for m in msgs if m.status is Status.PROGRESS]
        if job.state is not JobState.RUNNING and was is not JobState.RUNNING and started:
            first = started[0]
            start: _Fields = (first.step, first.percentage, None, first.project_key)
            events.append(_event(*key, JobState.RUNNING, was, start, batch.now))
            was = JobState.RUNNING
        fields: _Fields = (job.step, job.percentage, job.message, msgs[-1].project_key)
        events.append(_event(*key, job.state, was, fields, batch.now))
    return events


def stale_events(tx: Tx, changed: Sequence[tuple[str, str]], now: float) -> list[dict[str, Any]]:
    """The ``abnormal`` events of the jobs :func:`~._jobs.mark_stale` just changed."""
    events = []
    for kind, job_id in changed:
        row = tx.one(
            "SELECT step, percentage, project_key FROM tw_jobs WHERE kind = ? AND job_id = ?",
            (kind, job_id),
        )
        if row is not None:
            stale: _Fields = (row[0], row[1], None, row[2])
            events.append(_event(kind, job_id, JobState.ABNORMAL, JobState.RUNNING, stale, now))
    return events
