"""What the store takes and gives: deliveries, their outcomes, jobs and logged messages."""

from __future__ import annotations

import enum
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

from ..._errors import TrainwireError
from ..._spec._layout import metrics_dir
from ..._spec._protocol import JobState, Kind, Rejection
from ._text import message_id_text

__all__ = [
    "APPLIED",
    "CLOCK_AHEAD",
    "MAX_BODY",
    "OUTCOMES",
    "Delivery",
    "JobRecord",
    "MessageRecord",
    "Outcome",
    "StoreError",
    "StoreRejection",
    "Transition",
]

#: The outcome of a message that was applied (the others are :class:`Rejection` values).
APPLIED = "applied"
#: A body longer than this many bytes is not read (a status message has a few hundred).
MAX_BODY = 1 << 20
#: A publisher's clock may run this many seconds ahead of the server's: a later AMQP
#: timestamp is not believed (taken as the receive time).
CLOCK_AHEAD = 10


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


class Delivery(NamedTuple):
    """One message as the broker delivered it (a tuple: one is made per message)."""

    body: bytes
    message_id: str | None = None
    #: AMQP ``timestamp`` property: when the publisher sent it (whole seconds).
    timestamp: int | None = None

    @classmethod
    def from_amqp(cls, body: bytes, message_id: object, timestamp: object) -> Delivery:
        """A delivery from the properties pika decoded, whatever the publisher put there.

        pika hands over a ``message_id`` that is not UTF-8 as bytes: see
        :func:`~._text.message_id_text`. A timestamp that is not an integer is ignored.
        """
        ts = timestamp if isinstance(timestamp, int) and not isinstance(timestamp, bool) else None
        return cls(bytes(body), message_id_text(message_id), ts)

    def received(self, now: float) -> Delivery:
        """The delivery as the store takes it at ``now``: its id as clean text, and a
        timestamp more than :data:`CLOCK_AHEAD` s in the future taken as ``now``. A bogus
        value such as 2**64-1 or a clock an hour ahead must neither freeze the job's
        progress (the messages after it would all look older) nor become a date nobody
        can show."""
        message_id = message_id_text(self.message_id)
        ts = self.timestamp
        if ts is not None and ts > now + CLOCK_AHEAD:
            ts = int(now)
        if message_id == self.message_id and ts == self.timestamp:
            return self
        return self._replace(message_id=message_id, timestamp=ts)


class Outcome(NamedTuple):
    """What became of a delivery (a tuple: one is made per message)."""

    #: :data:`APPLIED`, or the value of a :class:`Rejection` or :class:`StoreRejection`.
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


class JobRecord(NamedTuple):
    """One job as stored (a tuple: the hub reads every changed job a few times a second)."""

    kind: Kind
    job_id: str
    state: JobState
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
    #: The recent pace of a running job (see ``_pace``); None until there is enough signal.
    steps_per_second: float | None = None
    #: Seconds left as of the last message, from the percentage's recent pace.
    eta_seconds: float | None = None

    @property
    def metrics_dir(self) -> Path | None:
        """``<model_write_path>/save/metrics`` for a registered job, else None."""
        if not self.model_write_path:
            return None
        return metrics_dir(self.model_write_path)


@dataclass(frozen=True)
class Transition:
    """A job entering a state: when, and where it stood."""

    at: float
    state: JobState
    step: int | None
    percentage: float | None


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
