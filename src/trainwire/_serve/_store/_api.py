"""Jobs and logged messages as the JSON API shows them: no project key in full, no paths."""

from __future__ import annotations

from typing import Any

from ..._spec._protocol import JobState
from ._records import APPLIED, JobRecord, MessageRecord, Transition
from ._text import iso_time, mask_body

__all__ = ["job_json", "message_json", "transition_json"]


def job_json(job: JobRecord) -> dict[str, Any]:
    """The job as ``/api/jobs`` and the event stream show it.

    ``steps_per_second`` and ``eta_seconds`` (as of ``last_message_at``; ``eta_at`` is
    when that is) only for a running job with enough recent progress, else null.
    """
    running = job.state is JobState.RUNNING
    rate = job.steps_per_second if running else None
    eta = job.eta_seconds if running else None
    eta_at = None if eta is None or job.last_seen is None else job.last_seen + eta
    return {
        "kind": job.kind.value,
        "id": job.job_id,
        "state": job.state.value,
        "percentage": job.percentage,
        "step": job.step,
        "message": job.message,
        "last_message_at": iso_time(job.last_seen),
        "applied": job.applied,
        "registered": job.registered,
        "created_at": iso_time(job.created_at),
        "steps_per_second": rate,
        "eta_seconds": eta,
        "eta_at": iso_time(eta_at),
    }


def transition_json(change: Transition) -> dict[str, Any]:
    """One entry of a job's timeline."""
    return {
        "at": iso_time(change.at),
        "state": change.state.value,
        "step": change.step,
        "percentage": change.percentage,
    }


def message_json(msg: MessageRecord) -> dict[str, Any]:
    """The logged message as the API shows it (the body's project key shortened)."""
    return {
        "seq": msg.id,
        "received_at": iso_time(msg.received_at),
        "message_id": msg.message_id,
        "published_at": iso_time(msg.published_ts),
        "kind": msg.kind,
        "id": msg.job_id,
        "status": msg.status,
        "step": msg.step,
        "percentage": msg.percentage,
        "outcome": msg.outcome,
        "rejected": msg.outcome != APPLIED,
        "superseded": bool(msg.superseded),
        "detail": msg.detail,
        "body": mask_body(msg.body),
    }
