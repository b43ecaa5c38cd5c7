"""The ordering rule: applying a message to a job, and which messages move its state.

Several consumers (two ``serve`` processes, or one with prefetch) may deliver a job's
messages out of publish order. The publisher's AMQP ``timestamp`` (seconds) and the
``step`` say which is newer: a ``training_ing`` older than what the job already shows is
applied but *superseded*: it is counted once and logged, and moves nothing, so progress
never goes backwards. A ``training_ing`` published no later than the job's terminal
message (same second or before) was not sent "after" it: it is applied as superseded too,
instead of rejected as ``after_done``/``after_error``. A terminal state stays terminal.
"""

from __future__ import annotations

from ..._spec._protocol import Job, JobState, Status, StatusMessage

__all__ = ["SUPERSEDED_AFTER_END", "SUPERSEDED_DETAIL", "settle", "superseded_detail"]

SUPERSEDED_DETAIL = "published before news the job already shows: counted, moves nothing"
#: The same, for a job that already ended: worded so that a client bug stays visible.
SUPERSEDED_AFTER_END = (
    "published no later than the job's {status} (same second or before), delivered after "
    "it: counted, moves nothing. If your code sent it after {status}, that is a bug"
)
_ENDS = {JobState.DONE: Status.DONE, JobState.ERROR: Status.ERROR}


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
        if job.state in _ENDS:
            superseded = msg_ts is not None and job_ts is not None and msg_ts <= job_ts
        elif job.state in (JobState.RUNNING, JobState.ABNORMAL):
            superseded = _older(msg, msg_ts, job, job_ts)
    if superseded:
        job.applied += 1
        return False
    job.apply(msg, now)  # raises for anything after a terminal message
    return True


def superseded_detail(state: JobState) -> str:
    """What the log says of a superseded message, for a job now in ``state``."""
    end = _ENDS.get(state)
    return SUPERSEDED_AFTER_END.format(status=end.value) if end else SUPERSEDED_DETAIL
